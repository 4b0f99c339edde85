// Timeouts longer than a host timeout takes. setTimeout's delay is a 32-bit signed int: Node and
// browsers (WebIDL) run a delay over 2^31-1 ms after about 1 ms, so the WebAssembly build arms
// host timeouts of at most that and re-arms them until the deadline. The first tests run on both
// backends (the addon's timers have no such limit: they check both builds alike); the last one
// runs the WebAssembly module with a host clock that jumps, to see a re-armed delay end on time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Cache, WASM, sleep } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const HOST_MAX = 2 ** 31 - 1;

for (const loadTimeout of [2 ** 31, 2 ** 31 + 5, 100 * 365 * 24 * 3600 * 1000]) {
  test(`loadTimeout ${loadTimeout} ms: a loader taking 20 ms answers its value`, async () => {
    const c = new Cache({ loadTimeout });
    const t0 = performance.now();
    assert.equal(await c.getOrLoad('k', () => sleep(20).then(() => 'v')), 'v');
    assert.ok(performance.now() - t0 >= 15);
    assert.equal(c.stats().loadTimeouts, 0);
  });
}

test('loadSoftTimeout 2^31 ms: a loader taking 20 ms answers its value, not the stale one', async () => {
  const c = new Cache({ ttl: 10, grace: 60_000, loadSoftTimeout: 2 ** 31 });
  c.set('k', 1);
  await sleep(30);
  const f = await c.fetch('k', () => sleep(20).then(() => 2));
  assert.equal(f.value, 2);
  assert.notEqual(f.status, 'stale-soft-timeout');
  assert.equal(c.stats().staleServedSoftTimeout, 0);
  // per call
  c.set('j', 1);
  await sleep(30);
  const g = await c.fetch('j', () => sleep(20).then(() => 2), { softTimeout: 2 ** 31 + 5 });
  assert.deepEqual([g.value, c.stats().staleServedSoftTimeout], [2, 0]);
});

test('healing.sourceTimeoutMs 2^31: a source taking 20 ms is verified, not a failure', async () => {
  const c = new Cache({ healing: { sampleRate: 1, sourceTimeoutMs: 2 ** 31 } });
  for (let i = 0; i < 3; i++) c.set(`user:${i}`, i);
  c.registerSource('user:', (key) => sleep(20).then(() => Number(key.slice(5))));
  const r = await c.verifyNow();
  assert.deepEqual([r.verified, r.failures], [3, 0]);
});

test('a short loadTimeout still ends a loader that never answers, on time', async () => {
  const c = new Cache({ loadTimeout: 50 });
  const t0 = performance.now();
  await assert.rejects(c.getOrLoad('k', () => new Promise(() => {})), (e) => e.code === 'LoadTimeout');
  const took = performance.now() - t0;
  assert.ok(took >= 45 && took < 1000, `timed out after ${took} ms`);
  assert.equal(c.stats().loadTimeouts, 1);
});

// In a child process: its setTimeout and performance.now are replaced by a host whose clock
// jumps. A host timeout of over 2^30 ms ends after 1 ms with the clock moved on by its delay; one
// over 2^31-1 ms ends after 1 ms with the clock not moved (what Node and browsers do).
test('WASM: a delay longer than a host timeout is re-armed, and ends at its deadline', { skip: !WASM && 'TEST_WASM not set' }, () => {
  const script = `
    const assert = require('node:assert/strict');
    const realNow = performance.now.bind(performance);
    const realSetTimeout = globalThis.setTimeout;
    let jumped = 0;
    const delays = [];
    performance.now = () => realNow() + jumped;
    globalThis.setTimeout = (f, ms, ...args) => {
      delays.push(ms);
      if (ms > ${HOST_MAX}) return realSetTimeout(f, 1, ...args);
      if (ms > 2 ** 30) return realSetTimeout(() => { jumped += ms; f(...args); }, 1);
      return realSetTimeout(f, ms, ...args);
    };
    const { Cache } = require('healcache/wasm');
    (async () => {
      for (const loadTimeout of [2 ** 31 + 5, 3 * 2 ** 31]) {
        delays.length = 0;
        const c = new Cache({ loadTimeout });
        const t0 = performance.now();
        // two loads waiting for the same deadline share each leg
        const never = () => new Promise(() => {});
        const timedOut = (e) => e.code === 'LoadTimeout';
        await Promise.all([assert.rejects(c.getOrLoad('a', never), timedOut), assert.rejects(c.getOrLoad('b', never), timedOut)]);
        const took = performance.now() - t0;
        const legs = delays.filter((ms) => ms > 2 ** 30).length;
        assert.equal(legs, Math.floor(loadTimeout / ${HOST_MAX}), 'host timeouts armed: ' + delays);
        assert.equal(c.stats().loadTimeouts, 2);
        assert.ok(delays.every((ms) => ms <= ${HOST_MAX}), 'host timeouts armed: ' + delays);
        assert.ok(took >= loadTimeout, loadTimeout + ' ms timed out after ' + took + ' ms; host timeouts: ' + delays);
        assert.ok(took < loadTimeout + 2000, loadTimeout + ' ms timed out after ' + took + ' ms; host timeouts: ' + delays);
      }
      console.log('rearmed-ok');
    })().catch((e) => { console.error(e); process.exit(1); });
  `;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /rearmed-ok/);
});
