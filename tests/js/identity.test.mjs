// An in-process hit returns the very value stored, as with Map and lru-cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache } from './helpers.mjs';

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
