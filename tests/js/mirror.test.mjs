// The slot mirror at its edges: the slot table growing past its first size, slots reused after
// the core drops values replaced outside any JS call (a background refresh), the expiry the core
// decided (jitter), and dispose across a refresh. Runs on the addon and, with TEST_WASM=1, WASM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, hammerFetches, sleep } from './helpers.mjs';

test('the slot table grows past its first 1,024 slots and every key keeps its own value', () => {
  const c = new Cache({ maxEntries: 100_000 });
  const objs = Array.from({ length: 5000 }, (_, i) => ({ i }));
  for (let r = 0; r < 3; r++) {
    for (let i = 0; i < 5000; i++) c.set(`k${i}`, objs[(i + r) % 5000]);
    for (let i = 0; i < 5000; i += 7) c.delete(`k${i}`);
  }
  for (let i = 0; i < 5000; i++) {
    assert.equal(c.get(`k${i}`), i % 7 === 0 ? undefined : objs[(i + 2) % 5000], `k${i}`);
  }
  assert.equal(c.size, 5000 - Math.ceil(5000 / 7));
});

test('a set value replaced by a background refresh frees its slot without another key reading it', async () => {
  const c = new Cache({ ttl: 30, grace: 60_000, staleWhileRevalidate: true });
  c.set('k', 'from set');
  await sleep(50); // past the TTL, within grace
  let release;
  const gate = new Promise((r) => (release = r));
  const { status } = await c.fetch('k', () => gate.then(() => 'refreshed'), { ttl: 60_000 });
  assert.equal(status, 'stale');
  release();
  await sleep(20); // the refresh lands outside any JS call, replacing the set value
  // writes of other keys reuse freed slots; `k` answers only its own value
  for (let i = 0; i < 600; i++) c.set(`other${i}`, `v${i}`);
  assert.equal(c.get('k'), 'refreshed');
  for (let i = 0; i < 600; i++) assert.equal(c.get(`other${i}`), `v${i}`);
  assert.equal(c.get('k'), 'refreshed');
});

test('with jitter the first read after a set is a hit that ends when the core says', async () => {
  const c = new Cache({ ttl: 40, ttlJitter: 1 });
  c.set('k', 'v');
  const s0 = c.stats();
  assert.equal(c.get('k'), 'v');
  const left = c.getRemainingTTL('k');
  assert.ok(left > 0 && left <= 80, String(left));
  await sleep(100); // past any jittered expiry (at most 2x the TTL)
  assert.equal(c.get('k'), undefined);
  assert.equal(c.has('k'), false);
  const s1 = c.stats();
  assert.equal(s1.hits - s0.hits, 1);
});

test('dispose sees a stale loaded value replaced by a background refresh, once, as expired', async () => {
  const log = [];
  const c = new Cache({ ttl: 30, grace: 60_000, staleWhileRevalidate: true, dispose: (v, k, r) => log.push([v, k, r]) });
  let n = 0;
  const load = async () => `v${++n}`;
  assert.equal(await c.getOrLoad('k', load), 'v1');
  await sleep(50);
  assert.equal((await c.fetch('k', load, { ttl: 60_000 })).status, 'stale');
  for (let t = 0; t < 200 && c.get('k') !== 'v2'; t++) await sleep(5);
  assert.equal(c.get('k'), 'v2');
  // the stale value had passed its TTL when the refresh replaced it: the core says "expired"
  assert.deepEqual(log, [['v1', 'k', 'expire']]);
});

test('a hit reads the JS clock near its expiry, and whenever the ticking clock lags', async () => {
  const c = new Cache({ ttl: 1400 });
  const ticking = c._tickOff !== Infinity; // the addon has a ticking clock, WASM none
  if (!process.env.TEST_WASM) assert.ok(ticking, 'the addon starts its ticking clock');
  c.set('k', 'v');
  assert.equal(c.get('k'), 'v');
  await sleep(600); // within a second of the expiry: the hit asks the JS clock
  assert.equal(c.get('k'), 'v');
  await sleep(900);
  assert.equal(c.get('k'), undefined, 'expired');
  if (!ticking) return;
  // a ticking clock held back (its thread starved) is trusted no longer once hits are reported
  const d = new Cache({ ttl: 1100 });
  d.set('short', 's');
  d.set('long', 'l', { ttl: 60_000 });
  d.set('near', 'n', { ttl: 900 });
  const live = d._T;
  d._T = new Float64Array([live[0]]); // stops where it is
  await sleep(1200);
  // under a second from its expiry by the tick's time: the hit asks the JS clock, lag or none
  assert.equal(d.get('near'), undefined);
  for (let i = 0; i < 1100; i++) assert.equal(d.get('long'), 'l');
  assert.equal(d._tickOff, Infinity);
  assert.equal(d.get('short'), undefined, 'expired, though the held-back tick says otherwise');
  // and trusted again once it has caught up
  d._T = live;
  for (let i = 0; i < 1100; i++) d.get('long');
  assert.notEqual(d._tickOff, Infinity);
  assert.equal(d.get('short'), undefined);
  // at the bound: 60 ms further behind than its least lag is still trusted, 140 ms is not
  // (the live tick may itself be up to 20 ms behind, at its idle pace)
  for (const [behind, trusted] of [[60, true], [140, false], [0, true]]) {
    d._T = new Float64Array([live[0] - behind]);
    d._tickCheck();
    assert.equal(d._tickOff !== Infinity, trusted, `${behind} ms behind`);
  }
});

test('caches in worker threads and in both module formats each read a ticking clock of their own', async (t) => {
  if (process.env.TEST_WASM) return t.skip('WebAssembly has no ticking clock');
  const { Worker } = await import('node:worker_threads');
  const { createRequire } = await import('node:module');
  const code = `const { Cache } = require('healcache');
    const c = new Cache({ ttl: 60000 });
    c.set('k', 1);
    require('node:worker_threads').parentPort.postMessage([c.get('k'), c._tickOff !== Infinity, c._T[0] > 0]);`;
  for (let i = 0; i < 2; i++) {
    const w = new Worker(code, { eval: true });
    const got = await new Promise((resolve, reject) => {
      w.on('message', resolve);
      w.on('error', reject);
    });
    assert.deepEqual(got, [1, true, true]);
    await w.terminate();
  }
  const { Cache: Cjs } = createRequire(import.meta.url)('healcache');
  const [a, b] = [new Cache({ ttl: 60000 }), new Cjs({ ttl: 60000 })];
  a.set('k', 'esm');
  b.set('k', 'cjs');
  assert.deepEqual([a.get('k'), b.get('k')], ['esm', 'cjs']);
  assert.ok(a._tickOff !== Infinity && b._tickOff !== Infinity);
});

// The mirror's Map takes written keys in batches of 64; evictions, deletes, overwrites and
// reads in between must each see every write made before them.
test('writes enter the mirror in batches, and every call sees the writes made before it', () => {
  const c = new Cache({ maxEntries: 8 });
  const held = new Set();
  for (let i = 0; i < 300; i++) {
    const k = `k${i % 40}`;
    c.set(k, `${k}@${i}`);
    if (i % 3 === 0) assert.equal(c.get(k), `${k}@${i}`, 'the first read after a set');
    if (i % 7 === 0) c.delete(`k${(i + 5) % 40}`);
    if (i % 11 === 0) assert.equal(c.has(k), true);
  }
  for (let j = 0; j < 40; j++) {
    const v = c.peek(`k${j}`);
    // a key is either absent or holds its own last value: never a value of a reused slot
    if (v !== undefined) {
      assert.match(v, new RegExp(`^k${j}@`));
      held.add(`k${j}`);
    }
  }
  assert.equal(held.size, c.size);
  assert.deepEqual(new Set(c.keys()), held);
  // a key written while its slot's old key is still waiting in the batch
  const d = new Cache({ maxEntries: 2 });
  for (let i = 0; i < 200; i++) {
    d.set(`a${i}`, i);
    assert.equal(d.get(`a${i}`), i);
    if (i > 2) assert.equal(d.get(`a${i - 3}`), undefined, `a${i - 3} was evicted`);
  }
  // keys evicted before their batch entered the Map, their slots reused by later writes
  for (let i = 0; i < 200; i++) d.set(`b${i}`, i);
  let found = 0;
  for (let i = 0; i < 200; i++) {
    const v = d.get(`b${i}`);
    if (v !== undefined) {
      assert.equal(v, i, `b${i}`);
      found++;
    }
  }
  assert.equal(found, d.size);
});

test('an overwrite enters the mirror after the new keys written before it', () => {
  const c = new Cache();
  // new keys wait in the write batch; their overwrites enter the Map at once, after them
  for (let i = 0; i < 10; i++) c.set(`n${i}`, `first${i}`);
  for (let i = 0; i < 10; i++) c.set(`n${i}`, `second${i}`);
  for (let i = 0; i < 10; i++) assert.equal(c.get(`n${i}`), `second${i}`, `n${i}`);
  // the same with the overwrite of a key its read left in the mirror
  c.set('m', 1);
  assert.equal(c.get('m'), 1);
  for (let i = 0; i < 5; i++) c.set(`p${i}`, i);
  c.set('m', 2);
  assert.equal(c.get('m'), 2);
  for (let i = 0; i < 5; i++) assert.equal(c.get(`p${i}`), i);
  assert.equal(c.stats().misses, 0);
});

test('mirror hits are counted by the core, in batches', () => {
  const c = new Cache();
  c.set('k', 1);
  for (let i = 0; i < 1000; i++) c.get('k');
  assert.equal(c.stats().hits, 1000);
  assert.equal(c.stats().misses, 0);
});

// A stale value served while its refresh lands: the value a caller is answered with is the one
// the core chose, never a slot freed by the refresh before the caller read it.
test('concurrent fetches under stale-while-revalidate and XFetch always get a value', async () => {
  const c = new Cache({ ttl: 50, maxEntries: 10_000, grace: 5000, staleWhileRevalidate: true, xfetch: true, negativeTtl: 50 });
  const { n, errors } = await hammerFetches([c], { ms: 1500, loops: 32 });
  assert.deepEqual(errors, [], `${n} answered`);
  assert.ok(n > 1000, `${n} answered`);
});
