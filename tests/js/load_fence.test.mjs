// Newer writes win, removals included: a delete or a clear during a load keeps the loaded value
// out of the cache (its callers still get it). And `delete` answers whether it removed a live
// entry, with `ifVersion` too. Runs on the addon and, with TEST_WASM=1, on the WebAssembly build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, thrown } from './helpers.mjs';

/** A loader held open until `release()`: `started` resolves once the load is under way. */
function held(value) {
  let release, began;
  const gate = new Promise((r) => (release = r));
  const started = new Promise((r) => (began = r));
  const loader = async () => {
    const v = value();
    began();
    await gate;
    return v;
  };
  return { loader, started, release };
}

test('newer writes win: a set then a delete during a load keep the old loaded value out', async () => {
  const cache = new Cache();
  let db = 'v1';
  const { loader, started, release } = held(() => db);
  const p = cache.getOrLoad('user:1', loader);
  await started;
  db = 'v2';
  cache.set('user:1', 'v2');
  assert.equal(cache.delete('user:1'), true);
  release();
  assert.equal(await p, 'v1', 'the caller gets what it loaded');
  assert.equal(cache.get('user:1'), undefined, 'not the stale v1');
  assert.equal(cache.has('user:1'), false);
  assert.equal(cache.stats().fencedWrites, 1);
  assert.equal(await cache.getOrLoad('user:1', () => db), 'v2', 'the next read loads again');
});

test('newer writes win: a clear, or a delete of the still-absent key, during a load keeps its value out', async () => {
  const cache = new Cache();
  for (const during of [(c) => (c.set('user:1', 'v2'), c.clear()), (c) => assert.equal(c.delete('user:1'), false)]) {
    const { loader, started, release } = held(() => 'v1');
    const p = cache.getOrLoad('user:1', loader);
    await started;
    during(cache);
    release();
    assert.equal(await p, 'v1');
    assert.equal(cache.get('user:1'), undefined);
  }
  assert.equal(cache.stats().fencedWrites, 2);
});

test('delete with ifVersion answers whether it removed a live entry', () => {
  const c = new Cache();
  c.set('other', 1);
  assert.equal(c.delete('never', { ifVersion: 0 }), false, 'absent: nothing removed');
  assert.equal(c.has('never'), false);
  assert.equal(c.size, 1);
  const v = c.set('k', 'x');
  assert.equal(thrown(() => c.delete('k', { ifVersion: v + 1 })).code, 'VersionMismatch');
  assert.equal(thrown(() => c.delete('k', { ifVersion: 0 })).code, 'VersionMismatch');
  assert.equal(c.get('k'), 'x', 'a mismatch changes nothing');
  assert.equal(c.delete('k', { ifVersion: v }), true);
  assert.equal(c.get('k'), undefined);
});
