// An in-process hit returns the very value stored, as with Map and lru-cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, WASM } from './helpers.mjs';

test('get returns the stored object itself', () => {
  const c = new Cache();
  const obj = { user: 'ada', tags: ['x'] };
  c.set('u', obj);
  assert.equal(c.get('u'), obj);
  obj.user = 'grace';
  assert.equal(c.get('u').user, 'grace');
  const buf = Buffer.from('bytes');
  c.set('b', buf);
  assert.equal(c.get('b'), buf);
  assert.equal(c.getEntry('u').value, obj);
});

test('getOrLoad gives every waiter the loaded object itself, then hits return it', async () => {
  const c = new Cache();
  const obj = { loaded: true };
  const got = await Promise.all(Array.from({ length: 10 }, () => c.getOrLoad('k', async () => obj)));
  for (const g of got) assert.equal(g, obj);
  assert.equal(c.get('k'), obj);
  assert.equal(await c.getOrLoad('k', () => ({ other: 1 })), obj);
});

// Values `set` stored live in slots the wrapper reuses once the core has dropped them (Node's
// read mirror is filled by reads): a reused slot never answers for another key.
test('every key answers its own value while slots are reused (evictions, overwrites, deletes)', () => {
  const c = new Cache({ maxEntries: 100, shards: 1 });
  const mine = new Map();
  let hot;
  for (let i = 0; i < 20_000; i++) {
    const key = `k${i % 3000}`;
    const v = { key, i };
    c.set(key, v);
    mine.set(key, v);
    assert.equal(c.get(key), v);
    if (i % 7 === 0) c.delete(`k${(i * 13) % 3000}`);
    if (i % 5 === 0) {
      hot = { key: 'hot', i };
      c.set('hot', hot);
      assert.equal(c.get('hot'), hot);
    }
    const probe = `k${(i * 31) % 3000}`;
    const got = c.get(probe);
    assert.ok(got === undefined || got === mine.get(probe), `${probe} answered ${JSON.stringify(got)}`);
  }
  // 'hot' is overwritten often but never read between its writes, so the eviction policy may
  // take it (the cache's seed is random): it answers its latest value or nothing
  const last = c.get('hot');
  assert.ok(last === undefined || last === hot, `hot answered ${JSON.stringify(last)}`);
  assert.ok(c.size <= 100);
  // the slot table stays bounded by the live values, not by the writes made
  assert.ok(c._sn <= 1024, `slots used: ${c._sn}`);
});

test('an overwrite frees the slot of the value it replaced at once: rewriting one key uses two slots', async () => {
  const c = new Cache({ maxEntries: 100 });
  const values = [];
  for (let i = 0; i < 1000; i++) {
    values.push({ i });
    c.set('k', values[i]);
  }
  assert.equal(c.get('k'), values[999]);
  // the new value's slot is taken before the core answers which value it replaced
  assert.equal(c._sn, 2, `slots used: ${c._sn}`);
  // a slot freed for a key with a load under way waits for its waiters (who may settle on it)
  const p = c.getOrLoad('w', () => new Promise((r) => setTimeout(() => r({ loaded: true }), 20)));
  const ws = [];
  for (let i = 0; i < 10; i++) {
    ws.push({ i });
    c.set('w', ws[i]);
  }
  assert.equal(c.get('w'), ws[9]);
  const got = await p;
  assert.ok(got.loaded === true || ws.includes(got), `the waiter got ${JSON.stringify(got)}`);
  assert.equal(c.get('w'), ws[9], 'the load began before the writes: it does not replace them');
  assert.equal(c.get('k'), values[999]);
});

// A plain overwrite, when only the mirror holds the key's set value, is stored under that value's
// handle (the backend's `write_plain_keeping`): the key keeps its slot and mirror entry, updated in
// place. Not while a load, a write-behind queue, `dispose` or a healing source may name the value.
test('a plain overwrite keeps the key\'s slot when only the mirror holds its value', { skip: WASM && 'the napi addon only' }, async () => {
  const c = new Cache({ maxEntries: 100, ttl: 60_000 });
  c.set('k', { i: -1 });
  const slot = c._map().get('k');
  const h = c._h[slot];
  let ver = c.getEntry('k').version;
  for (let i = 0; i < 100; i++) {
    const v = { i };
    const nv = c.set('k', v);
    assert.equal(nv, ver + 1, 'a new version each write');
    ver = nv;
    assert.equal(c._map().get('k'), slot, 'the same slot');
    assert.equal(c._h[slot], h, 'the same handle');
    assert.equal(c.get('k'), v);
    assert.equal(c.getEntry('k').version, nv);
  }
  assert.ok(c.getRemainingTTL('k') > 59_000, 'the expiry of the last write');
  // a write with options, or a replace the core reports (dispose hears of it), takes a new slot
  c.set('k', { ttl: 1 }, { ttl: 30_000 });
  assert.notEqual(c._h[c._map().get('k')], h, 'a write with options: a new handle');
  const told = [];
  const d = new Cache({ maxEntries: 100, dispose: (v, k, why) => told.push([v, k, why]) });
  const first = { first: true };
  d.set('k', first);
  d.set('k', { second: true });
  assert.deepEqual(told, [[first, 'k', 'set']], 'dispose hears of the replaced value');
  // a load under way anywhere: the overwrite takes a new slot (a waiter may settle on the old one)
  const e = new Cache({ maxEntries: 100 });
  e.set('k', 'a');
  const before = e._map().get('k');
  let finish;
  const called = new Promise((called) => {
    finish = (v) => called(v);
  });
  const p = e.getOrLoad('other', () => called);
  e.set('k', 'b');
  assert.notEqual(e._map().get('k'), before, 'a new slot while a load is under way');
  finish('loaded');
  assert.equal(await p, 'loaded');
  assert.equal(e.get('k'), 'b');
  const after = e._map().get('k');
  e.set('k', 'c');
  assert.equal(e._map().get('k'), after, 'in place again once the load is done');
  assert.equal(e.get('k'), 'c');
  // a healing source, even once removed: a check may name the value by its handle
  const f = new Cache({ maxEntries: 100 });
  f.registerSource('p:', () => undefined);
  f.unregisterSource('p:');
  f.set('p:k', 1);
  const s0 = f._map().get('p:k');
  f.set('p:k', 2);
  assert.notEqual(f._map().get('p:k'), s0);
  assert.equal(f.get('p:k'), 2);
});

test('a getOrLoad answered from a set value gets that key\'s value while the key is rewritten', async () => {
  const c = new Cache({ maxEntries: 50, shards: 1 });
  const a = { v: 'a' };
  const ours = new Set([a]);
  c.set('k', a);
  const p = c.getOrLoad('k', () => ({ v: 'loaded' }));
  // let the backend answer (napi: on its own thread) before the rewrites below run
  const until = Date.now() + 20;
  while (Date.now() < until);
  for (let i = 0; i < 600; i++) {
    const o = { v: i };
    ours.add(o);
    c.set('k', o); // replaces: the replaced slots are freed in batches, then reused
    c.set(`other${i}`, { other: i });
  }
  const got = await p;
  assert.ok(ours.has(got), JSON.stringify(got));
});
