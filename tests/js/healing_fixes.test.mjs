// Self-healing through the JS wrapper, where it used to differ from the Python package: the
// wrapper's per-key healing state under the background loop, a `compare` that throws, settings
// after close(), and a source prefix longer than the cache's keys may be.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, WASM, eventually, sleep, thrown, waitFor } from './helpers.mjs';

test('P5: background healing over churning keys keeps per-key healing state to the keys still pending', { skip: WASM && 'WASM: the host schedules runHealingInterval' }, async () => {
  const c = new Cache({ maxEntries: 1000, healing: { enabled: true, sampleRate: 1, verifyIntervalMs: 20 } });
  c.registerSource('u:', () => 'fresh'); // every cached value drifts
  let n = 0;
  try {
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 500; i++) c.set(`u:${n++}`, 'stale'); // new keys each round, old ones evicted
      await sleep(30);
    }
    assert.ok(c.healingStats().totalRepaired > 10000, 'the background loop repaired the churning keys');
    for (const key of c._healKeys.keys()) assert.ok(c._pending.has(key), `${key} has healing state but nothing on its way`);
    assert.ok(c._healKeys.size <= 2048, `_healKeys holds ${c._healKeys.size} keys`);
  } finally {
    await c.close();
  }
});

test('P5: a key repaired and read while its interval still runs keeps no healing state once verifyNow resolves', async () => {
  const c = new Cache({ healing: { sampleRate: 1 } });
  let release;
  const gate = new Promise((r) => (release = r));
  c.set('a:1', 'old');
  c.set('b:1', 'old');
  c.registerSource('a:', () => 'new');
  c.registerSource('b:', async () => {
    await gate; // holds the interval open after a:1 is repaired
    return 'newer';
  });
  const run = c.verifyNow();
  // a:1's repair reaches the core while b:1's source holds the interval open (the core counts it
  // as an update; waited for without reading a:1, whose read below is the point)
  await eventually(() => c.stats().updates >= 1);
  assert.equal(c.get('a:1'), 'new'); // decided while the interval runs
  release();
  assert.equal((await run).repaired, 2);
  assert.equal(c.get('b:1'), 'newer');
  assert.equal(c._healKeys.size, 0);
  c.close();
});

test('P9: a compare that throws counts the pair as drift and the source value is written, never a source failure', async () => {
  const c = new Cache({ healing: { sampleRate: 1 } });
  c.set('u:1', 'old');
  c.registerSource('u:', () => 'new', {
    compare: () => {
      throw new Error('boom');
    },
  });
  const r = await c.verifyNow();
  assert.equal(r.drift, 1);
  assert.equal(r.repaired, 1);
  assert.equal(r.failures, 0);
  assert.equal(r.skipped, 0);
  assert.equal(c.get('u:1'), 'new');
  assert.equal(c.healingStats().sourceFailures, 0);
  c.close();
});

test('P9: after close(), turning healing on is Closed and changes nothing (setHealing and configSet)', async () => {
  const c = new Cache({ healing: { sampleRate: 0.5 } });
  await c.close();
  const before = c.healingConfig();
  const e = thrown(() => c.setHealing({ enabled: true, sampleRate: 1, verifyIntervalMs: 50 }));
  assert.equal(e.code, 'Closed');
  assert.deepEqual(c.healingConfig(), before);
  const f = thrown(() => c.configSet('healing.enabled', true));
  assert.equal(f.code, 'Closed');
  assert.deepEqual(c.healingConfig(), before);
  c.setHealing({ sampleRate: 1 }); // other settings still change while healing stays off
  assert.equal(c.healingConfig().sampleRate, 1);
});

test('P5: a source prefix longer than maxKeyLen (UTF-8 bytes) is KeyTooLong and takes no maxPrefixes slot', () => {
  const c = new Cache({ maxKeyLen: 16, healing: { maxPrefixes: 1 } });
  assert.equal(thrown(() => c.registerSource('x'.repeat(17), () => 1)).code, 'KeyTooLong');
  assert.equal(thrown(() => c.registerSource('é'.repeat(9), () => 1)).code, 'KeyTooLong'); // 18 bytes
  assert.deepEqual(c.scores(), []);
  c.registerSource('y'.repeat(16), () => 1);
  assert.deepEqual(c.scores().map((s) => s.prefix), ['y'.repeat(16)]);
  c.close();
});

// P5: a repair the core refuses (its key was evicted while the source answered) leaves nothing
// behind in the wrapper: the value is kept only while the core may still hand it back.
test('P5: repairs refused because their keys were evicted meanwhile keep no value alive', async () => {
  const c = new Cache({ maxEntries: 10, healing: { sampleRate: 1 } });
  let release;
  let asked = 0;
  const gate = new Promise((r) => (release = r));
  c.registerSource('u:', async () => {
    asked++;
    await gate;
    return 'fresh';
  });
  for (let i = 0; i < 10; i++) c.set(`u:${i}`, 'stale');
  const v = c.verifyNow();
  await waitFor(() => asked === 10); // every source call is under way
  for (let i = 0; i < 20; i++) c.set(`x:${i}`, 'other'); // evicts every u: key
  release();
  const r = await v;
  assert.equal(r.repaired, 0);
  assert.equal(c.get('u:0'), undefined);
  assert.deepEqual([c._loaded.size, c._cand.size, c._pending.size], [0, 0, 0]);
  c.close();
});
