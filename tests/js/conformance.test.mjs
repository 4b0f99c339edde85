// The conformance scenarios (tests/conformance/*.json, described in its README) on the Node
// surface, or on the WASM one under TEST_WASM=1: the same files the Rust and Python drivers run,
// on a ManualClock and a fixed seed. Load timeouts sleep on the host's timer (wall time), so a
// scenario awaiting one waits those few milliseconds. Writes target/conformance/<surface>.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WASM } from './helpers.mjs';
import { makeDriver, matches } from './driver.mjs';
import { testScenarios } from './scenarios.mjs';

const { Cache, ManualClock, NOT_FOUND } = WASM ? await import('healcache/wasm') : await import('healcache');
const SURFACE = WASM ? 'wasm' : 'node';

const { run } = makeDriver({ Cache, ManualClock, NOT_FOUND });

testScenarios(SURFACE, run);

test(`${SURFACE}: the test clock refuses what is not a duration, and two caches may share one`, () => {
  const clock = new ManualClock();
  for (const bad of [-1, NaN, Infinity]) assert.throws(() => clock.advance(bad), { code: 'InvalidConfig' });
  assert.throws(() => clock.advance('5'), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.ok(clock.now() < 1e-3);
  assert.throws(() => new Cache({ clock: { now: () => 0 } }), { code: 'InvalidConfig', field: 'clock' });
  const [a, b] = [new Cache({ ttl: 1000, clock }), new Cache({ ttl: 2000, clock })];
  a.set('k', 1);
  b.set('k', 2);
  clock.advance(1000);
  assert.deepEqual([a.get('k'), b.get('k')], [undefined, 2]);
  clock.advance(1000);
  assert.equal(b.get('k'), undefined);
});

test(`${SURFACE}: the matcher refuses what differs (it is what makes every scenario able to fail)`, () => {
  assert.ok(matches({ a: 1 }, { a: 1, b: 2 }), 'keys not expected are ignored');
  assert.ok(matches({ a: null }, {}), 'a missing key reads as null');
  assert.ok(matches(1, 1.0000001), 'numbers within 1e-6');
  for (const [e, a] of [[1, 1.00001], [[1, 2], [1, 2, 3]], [{ a: { b: 1 } }, { a: { b: 2 } }], [true, 1], [1, '1'], ['x', 'y'], [{ a: 1 }, [1]]]) {
    assert.ok(!matches(e, a), `${JSON.stringify(e)} matched ${JSON.stringify(a)}`);
  }
});
