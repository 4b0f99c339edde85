// The load path's answers agree across calls: a load past loadTimeout, the counting of a cached
// "not found", a per-call xfetch, and a compare-and-delete that removes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WASM, NOT_FOUND } from './helpers.mjs';

const { Cache, ManualClock } = WASM ? await import('healcache/wasm') : await import('healcache');

test('P2: a loader that holds the thread past loadTimeout is a LoadTimeout, not stored, counted', async () => {
  const c = new Cache({ loadTimeout: 50 });
  const blocking = () => {
    const end = Date.now() + 150;
    while (Date.now() < end);
    return 'late';
  };
  await assert.rejects(c.getOrLoad('k', blocking), (e) => e.code === 'LoadTimeout');
  assert.equal(c.get('k'), undefined);
  assert.equal(c.stats().loadTimeouts, 1);
});

test('one set of counters: every read of a cached "not found" is a negative hit, never a hit', async () => {
  const c = new Cache({ negativeTtl: 5000 });
  await c.fetch('x', () => NOT_FOUND);
  const counts = () => {
    const s = c.stats();
    return [s.hits, s.misses, s.negativeHits];
  };
  const reads = [
    ['get', () => assert.equal(c.get('x'), undefined)],
    ['getEntry', () => assert.equal(c.getEntry('x'), undefined)],
    ['getOrLoad', () => assert.rejects(c.getOrLoad('x', () => 1), (e) => e.code === 'NotFound')],
    ['fetch', async () => assert.equal((await c.fetch('x', () => 1)).status, 'negative-hit')],
  ];
  for (const [name, read] of reads) {
    const before = counts();
    await read();
    const after = counts();
    assert.deepEqual(after.map((a, i) => a - before[i]), [0, 0, 1], name);
  }
});

test('a per-call xfetch turns early refresh on with the cache xfetchBeta', async () => {
  const clock = new ManualClock();
  const c = new Cache({ clock, ttl: 1000, xfetchBeta: 1000, seed: 11 });
  const load = async () => {
    clock.advance(100);
    return 'v';
  };
  assert.equal((await c.fetch('k', load, { xfetch: true })).status, 'loaded');
  clock.advance(800);
  assert.equal((await c.fetch('k', load)).status, 'hit');
  assert.equal((await c.fetch('k', load, { xfetch: true })).status, 'early-refresh');
  assert.equal(c.stats().earlyRefreshes, 1);
});

test('a delete with ifVersion 0 of a stale key keeps the stale copy, as a refused one does', async () => {
  const clock = new ManualClock();
  const c = new Cache({ clock, ttl: 1000, grace: 100000 });
  c.set('m', 'old');
  clock.advance(2000);
  assert.equal(c.delete('m', { ifVersion: 0 }), false);
  assert.equal(c.size, 1);
  const down = async () => {
    throw new Error('origin down');
  };
  assert.deepEqual(await c.fetch('m', down), { value: 'old', status: 'stale-fail-safe' });
});
