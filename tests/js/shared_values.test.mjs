// Values read from the shared tier are the values written: a "__proto__" map key (JSON.parse and
// Python make it an own property) is read back as an own data property, never as the object's
// prototype; a string with a lone surrogate (not text: Python refuses it, UTF-8 has no form for
// it) is refused as a value, a property name or a tag, and changes nothing. A real redis-server
// (tests/js/rediskit.mjs); Node addon only: the WebAssembly package refuses `redis` and tags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { redisAvailable, redisFor } from './rediskit.mjs';
import { Cache, WASM, thrown, unloadable, waitFor } from './helpers.mjs';

const require = createRequire(import.meta.url);
const skip = !redisAvailable() ? 'redis-server is not installed' : false;

/** `v` is the plain object `{ "__proto__": proto, a: 2 }` with "__proto__" an own data property. */
function assertOwnProto(v, proto) {
  assert.equal(Object.getPrototypeOf(v), Object.prototype, 'the prototype is untouched');
  assert.equal(v.isAdmin, undefined, 'nothing inherited from the value');
  assert.deepEqual(Object.keys(v), ['__proto__', 'a']);
  const d = Object.getOwnPropertyDescriptor(v, '__proto__');
  assert.deepEqual(d.value, proto);
  assert.deepEqual([d.writable, d.enumerable, d.configurable], [true, true, true], 'as JSON.parse defines it');
  assert.equal(v.a, 2);
}

test('a "__proto__" key read from L2 is an own property, not the prototype', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const a = new Cache({ redis: redis.url, ttl: 60_000 });
  const b = new Cache({ redis: redis.url, ttl: 60_000 });
  t.after(() => [a.close(), b.close()]);
  a.set('p', JSON.parse('{"__proto__": {"isAdmin": true}, "a": 2}'));
  a.set('n', JSON.parse('{"__proto__": 1, "a": 2}')); // a non-object: [[Set]] would drop it
  a.set('deep', [JSON.parse('{"x": {"__proto__": {"isAdmin": true}, "a": 2}}')]);
  await waitFor(() => a.stats().l2Writes === 3);
  assertOwnProto(await b.getOrLoad('p', unloadable), { isAdmin: true });
  assertOwnProto(await b.getOrLoad('n', unloadable), 1);
  assertOwnProto((await b.getOrLoad('deep', unloadable))[0].x, { isAdmin: true });
  assert.equal({}.isAdmin, undefined, 'Object.prototype is untouched');
  assert.equal(b.stats().l2CodecErrors, 0);
});

test('lone surrogates are refused in values, property names and tags, changing nothing', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const a = new Cache({ redis: redis.url, ttl: 60_000 });
  const b = new Cache({ redis: redis.url, ttl: 60_000 });
  t.after(() => [a.close(), b.close()]);
  const bad = ['\uD800', 'a\uDC00b', '\uDE00\uD83D', { '\uD800': 1 }, { ok: ['x', { '\uDC00': 2 }] }, ['\uDBFF']];
  for (const v of bad) {
    assert.throws(() => a.set('k', v), (e) => e.code === 'ValueNotEncodable', JSON.stringify(v));
    assert.equal(a.has('k'), false);
  }
  assert.throws(() => a.set('k', 1, { tags: ['\uD800'] }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  assert.throws(() => a.set('k', 1, { tags: ['ok', 'x\uDC00'] }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  await assert.rejects(a.fetch('k', async () => 1, { tags: ['\uD800'] }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  assert.equal(a.has('k'), false);
  assert.equal(a.size, 0);
  assert.equal(a.stats().l2Writes, 0);
  // a tag with a lone surrogate is refused, not read as U+FFFD (which would invalidate this one)
  // (a tag a did not know: the value is written, then again with the version read)
  a.set('t', 1, { tags: ['\uFFFD'] });
  await waitFor(() => a.stats().l2Writes === 2);
  await assert.rejects(a.invalidateTag('\uDC00'), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  await assert.rejects(a.invalidateTag('\uD800', { hard: true }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  assert.equal(a.get('t'), 1, 'still fresh');
  // a loaded value with a lone surrogate is served here and stays in this process
  assert.equal(await a.getOrLoad('loaded', async () => 'x\uD800'), 'x\uD800');
  assert.equal(await b.getOrLoad('loaded', async () => 'b loaded it'), 'b loaded it');
  assert.equal(a.stats().l2Writes, 2);
  // well-formed text crosses unchanged: astral characters, and a real U+FFFD
  const good = { '\uD83D\uDE00': '\uD83D\uDE00', s: 'caf\u00e9 \uFFFD \uD834\uDD1E', '\uFFFD': ['\uD83D\uDE00'] };
  a.set('good', good, { tags: ['\uD83D\uDE00'] });
  a.set('astral', '\uD83D\uDE00');
  await waitFor(() => a.stats().l2Writes === 5);
  assert.deepEqual(await b.getOrLoad('good', unloadable), good);
  assert.equal(await b.getOrLoad('astral', unloadable), '\uD83D\uDE00');
  assert.equal(await a.invalidateTag('\uD83D\uDE00', { hard: true }), 1);
  assert.equal(a.peek('good'), undefined);
});

test('tags with a lone surrogate are refused without a shared tier too', { skip: WASM }, async () => {
  const c = new Cache({ ttl: 60_000 });
  c.set('u', 1, { tags: ['\uFFFD'] });
  assert.throws(() => c.set('k', 1, { tags: ['\uD800'] }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  await assert.rejects(c.invalidateTag('\uDC00'), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  assert.equal(c.has('k'), false);
  assert.equal(c.get('u'), 1, 'still fresh: U+FFFD is another tag');
});

test('the wire module decodes a "__proto__" key as an own property', { skip: skip || WASM }, async (t) => {
  const wire = require('healcache/wasm/wire');
  const redis = await redisFor(t);
  const c = new Cache({ redis: redis.url, ttl: 60_000 });
  t.after(() => c.close());
  c.set('p', JSON.parse('{"__proto__": {"isAdmin": true}, "a": 2}'));
  c.set('n', JSON.parse('{"__proto__": 1, "a": 2}'));
  await waitFor(() => c.stats().l2Writes === 2);
  const conn = await redis.connect();
  t.after(() => conn.close());
  const [p] = wire.l2Keys('hc1', 'p');
  assertOwnProto(wire.decodeEntry(p, new Uint8Array(await conn.command('GET', p)), 60_000).value, { isAdmin: true });
  const [n] = wire.l2Keys('hc1', 'n');
  assertOwnProto(wire.decodeEntry(n, new Uint8Array(await conn.command('GET', n)), 60_000).value, 1);
});

test('the wire module refuses a key or a prefix with a lone surrogate', async () => {
  const wire = require('healcache/wasm/wire');
  assert.throws(() => wire.l2Keys('hc1', 'a\uD800'), /lone surrogate/);
  assert.throws(() => wire.l2Keys('hc\uDC00', 'k'), /lone surrogate/);
  assert.deepEqual(wire.l2Keys('hc1', '\uD83D\uDE00').length, 3);
  assert.notDeepEqual(wire.l2Keys('hc1', '\uFFFD'), wire.l2Keys('hc1', '\uD83D\uDE00'));
});

test("the wire module's errors carry the code the cache gives for the same key", () => {
  // as the cache's own key checks: a TypeError with code InvalidKey and its reason
  const wire = require('healcache/wasm/wire');
  const cases = [['hc1', 'a\uD800'], ['hc\uDC00', 'k'], ['', 'k'], ['a b', 'k'], ['hc1', 5], [null, 'k']];
  for (const [prefix, key] of cases) {
    const e = thrown(() => wire.l2Keys(prefix, key));
    const what = `${String(prefix)} ${String(key)}: ${e.message}`;
    assert.equal(e.code, 'InvalidKey', what);
    assert.ok(e instanceof TypeError, what);
    assert.equal(e.message, `invalid key: ${e.reason}`, what);
  }
  assert.match(thrown(() => wire.l2Keys('', 'k')).reason, /prefix/);
  assert.match(thrown(() => wire.l2Keys('hc1', 5)).reason, /the key must be a string/);
  assert.equal(thrown(() => wire.decodeEntry(5, new Uint8Array(1), 0)).code, 'InvalidKey');
});
