// The opt-in wire module (healcache/wasm/wire): what the fleet's caches store in Redis, read by
// an edge worker's code from the raw bytes and PTTL of the value key, gives the same values and
// freshness the caches see. A real redis-server; the entries are written by the Node package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { redisAvailable, redisFor, sleep } from './rediskit.mjs';
import { Cache, WASM } from './helpers.mjs';

const require = createRequire(import.meta.url);
const wire = require('healcache/wasm/wire');
const skip = !redisAvailable() ? 'redis-server is not installed' : WASM;

test('l2Keys gives the layout of docs/wire-format.md; a bad prefix throws', () => {
  const [v, l, f] = wire.l2Keys('hc1', 'user:1');
  assert.match(v, /^hc1:\{[0-9a-f]{4}\}:v:user:1$/);
  assert.equal(l, v.replace(':v:', ':l:'));
  assert.equal(f, v.slice(0, v.indexOf(':v:')) + ':f');
  assert.throws(() => wire.l2Keys('', 'k'));
});

test('bytes that are not an envelope for the key throw CodecError', () => {
  const [v] = wire.l2Keys('hc1', 'k');
  assert.throws(() => wire.decodeEntry(v, new Uint8Array([1, 2, 3]), 1000), (e) => e.code === 'CodecError');
});

test('entries the fleet wrote decode to the same values, kinds and freshness', { skip }, async (t) => {
  const redis = await redisFor(t);
  const c = new Cache({ redis: redis.url, ttl: 60_000, grace: 5_000, negativeTtl: 30_000 });
  t.after(() => c.close());
  const values = {
    'w:str': 'héllo',
    'w:int': 42,
    'w:float': 3.5,
    'w:big': 2n ** 63n - 1n,
    'w:doc': { name: 'Ada', langs: ['en', 'fr'], nested: { a: [1, { b: null, ok: true }] } },
    'w:bytes': new Uint8Array([0, 1, 254, 255]),
  };
  for (const [k, v] of Object.entries(values)) c.set(k, v);
  await c.fetch('w:absent', async () => Symbol.for('healcache.NOT_FOUND'));
  c.set('w:gone', 1);
  const end = Date.now() + 5000;
  while (c.stats().l2Writes < Object.keys(values).length + 2) {
    assert.ok(Date.now() < end, 'the writes reach L2');
    await sleep(5);
  }
  c.delete('w:gone');
  const conn = await redis.connect();
  t.after(() => conn.close());
  const raw = async (key) => {
    const [v] = wire.l2Keys('hc1', key);
    for (const end2 = Date.now() + 5000; ; await sleep(5)) {
      const bytes = await conn.command('GET', v);
      const pttl = Number(await conn.command('PTTL', v));
      if (bytes !== null) return wire.decodeEntry(v, new Uint8Array(bytes), pttl);
      assert.ok(Date.now() < end2);
    }
  };
  for (const [k, v] of Object.entries(values)) {
    const e = await raw(k);
    assert.equal(e.kind, 'value', k);
    assert.deepEqual(e.value, v, k);
    assert.equal(e.fresh, true, k);
    assert.ok(e.freshMs > 50_000 && e.freshMs <= 60_000, `${k}: ${e.freshMs}`);
    assert.equal(e.graceMs, 5_000);
    assert.equal(e.token.length, 16);
  }
  const absent = await raw('w:absent');
  assert.deepEqual([absent.kind, absent.value, absent.fresh], ['not-found', undefined, true]);
  let gone;
  for (const end3 = Date.now() + 5000; ; await sleep(5)) {
    gone = await raw('w:gone');
    if (gone.kind === 'tombstone') break;
    assert.ok(Date.now() < end3, 'the delete reaches L2');
  }
  assert.equal(gone.fresh, false, 'a tombstone is never served');
  // the caches' freshness rule: a key past its fresh time (PTTL within the grace) is stale
  const [v] = wire.l2Keys('hc1', 'w:str');
  const bytes = new Uint8Array(await conn.command('GET', v));
  assert.equal(wire.decodeEntry(v, bytes, 4_000).fresh, false);
  assert.equal(wire.decodeEntry(v, bytes, -2).fresh, false);
  assert.equal(wire.decodeEntry(v, bytes, 5_001).freshMs, 1);
  // bound to its key: the same bytes under another key are refused
  assert.throws(() => wire.decodeEntry(wire.l2Keys('hc1', 'w:int')[0], bytes, 10_000), (e) => e.code === 'CodecError');
});
