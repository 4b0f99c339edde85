// The test clock a host moves by hand: at most 100 years a call; beyond, a clear InvalidConfig
// with the clock unmoved (never a panic, which aborts the Node process and poisons a
// WebAssembly instance).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WASM } from './helpers.mjs';

const { Cache, ManualClock } = WASM ? await import('healcache/wasm') : await import('healcache');

const CENTURY_MS = 100 * 365 * 24 * 3600 * 1000;

test('P5: advance takes at most 100 years a call; more is InvalidConfig and moves nothing', () => {
  const clock = new ManualClock();
  const start = clock.now();
  for (const bad of [CENTURY_MS * 1.000001, 1e300, 2 ** 64, Infinity, NaN, -1]) {
    assert.throws(() => clock.advance(bad), (e) => e.code === 'InvalidConfig' && e.field === 'ms', String(bad));
    assert.equal(clock.now(), start, String(bad));
  }
  const c = new Cache({ clock, ttl: 1000 });
  c.set('k', 1);
  clock.advance(CENTURY_MS);
  assert.equal(clock.now(), start + CENTURY_MS);
  assert.equal(c.get('k'), undefined, 'a century later the entry has expired');
});
