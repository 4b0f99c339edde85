// The conventions JS users expect from lru-cache and Map: peek, getRemainingTTL, iteration,
// dispose(value, key, reason), Symbol.dispose. Runs against the addon and, with TEST_WASM=1,
// the WebAssembly build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, sleep, thrown } from './helpers.mjs';

test('peek returns the live value without counting a read', async () => {
  const c = new Cache({ ttl: 40 });
  const v = { a: 1 };
  c.set('k', v);
  const before = c.stats();
  assert.equal(c.peek('k'), v);
  assert.equal(c.peek('absent'), undefined);
  const after = c.stats();
  assert.equal(after.hits, before.hits);
  assert.equal(after.misses, before.misses);
  await sleep(60);
  assert.equal(c.peek('k'), undefined); // past its TTL
  assert.equal(thrown(() => c.peek(7)).code, 'InvalidKey');
});

test('peek sees a value a loader stored, without counting it', async () => {
  const c = new Cache();
  assert.equal(await c.getOrLoad('k', async () => 'loaded'), 'loaded');
  const hits = c.stats().hits;
  assert.equal(c.peek('k'), 'loaded');
  assert.equal(c.stats().hits, hits);
});

test('getRemainingTTL: ms left, Infinity without a TTL, 0 when absent', async () => {
  const c = new Cache({ ttl: 10_000 });
  c.set('a', 1);
  c.set('forever', 2, { ttl: Infinity });
  c.set('short', 3, { ttl: 50 });
  const left = c.getRemainingTTL('a');
  assert.ok(left > 9_000 && left <= 10_000, String(left));
  assert.equal(c.getRemainingTTL('forever'), Infinity);
  assert.equal(c.getRemainingTTL('absent'), 0);
  const s = c.getRemainingTTL('short');
  assert.ok(s > 0 && s <= 50, String(s));
  await sleep(70);
  assert.equal(c.getRemainingTTL('short'), 0);
  c.delete('a');
  assert.equal(c.getRemainingTTL('a'), 0);
  assert.equal(new Cache().set('x', 1) > 0 && new Cache().getRemainingTTL('x'), 0);
});

test('getRemainingTTL with jitter is the expiry the core decided, within [ttl, ttl * (1 + jitter))', () => {
  const c = new Cache({ ttl: 10_000, ttlJitter: 0.5, seed: 7 });
  const seen = new Set();
  for (let i = 0; i < 50; i++) {
    c.set(`k${i}`, i);
    const left = c.getRemainingTTL(`k${i}`);
    assert.ok(left > 9_900 && left <= 15_000, String(left));
    seen.add(Math.round(left / 100));
  }
  assert.ok(seen.size > 10, 'the jitter spreads expiries');
});

test('keys, values, entries and the iterator visit every live entry once', async () => {
  const c = new Cache({ ttl: 10_000 });
  const objs = Array.from({ length: 100 }, (_, i) => ({ i }));
  for (let i = 0; i < 100; i++) c.set(`k${i}`, objs[i]);
  await c.getOrLoad('loaded', async () => 'L');
  c.set('gone', 1, { ttl: 20 });
  c.delete('k0');
  await sleep(40);
  const keys = [...c.keys()].sort();
  const want = [...Array.from({ length: 99 }, (_, i) => `k${i + 1}`), 'loaded'].sort();
  assert.deepEqual(keys, want);
  const entries = new Map(c.entries());
  assert.equal(entries.size, 100);
  assert.equal(entries.get('k5'), objs[5]); // the very object stored
  assert.equal(entries.get('loaded'), 'L');
  assert.deepEqual(new Map([...c]), entries);
  assert.equal([...c.values()].length, 100);
  assert.ok([...c.values()].includes(objs[42]));
  // iterating does not count reads
  const hits = c.stats().hits;
  for (const _ of c) {
    // nothing
  }
  assert.equal(c.stats().hits, hits);
});

test('a key deleted while iterating is skipped; iterating an empty cache yields nothing', () => {
  const c = new Cache();
  assert.deepEqual([...c], []);
  c.set('a', 1);
  c.set('b', 2);
  const seen = [];
  for (const [k] of c) {
    seen.push(k);
    c.delete(k === 'a' ? 'b' : 'a');
  }
  assert.equal(seen.length, 1);
});

test('dispose(value, key, reason) is called for every value the cache lets go', async () => {
  const log = [];
  const c = new Cache({ maxEntries: 2, shards: 1, ttl: 10_000, dispose: (v, k, reason) => log.push([v, k, reason]) });
  const a1 = { a: 1 };
  c.set('a', a1);
  c.set('a', { a: 2 }); // replaced
  assert.deepEqual(log, [[a1, 'a', 'set']]);
  c.delete('a');
  assert.deepEqual(log[1][1], 'a');
  assert.equal(log[1][2], 'delete');
  c.set('x', 1);
  c.set('y', 2);
  c.set('z', 3); // one of x, y evicted
  const evicted = log.filter(([, , r]) => r === 'evict');
  assert.equal(evicted.length, 1);
  assert.ok(['x', 'y'].includes(evicted[0][1]));
  c.set('t', 't', { ttl: 20 });
  await sleep(40);
  assert.equal(c.get('t'), undefined);
  assert.ok(log.some(([v, k, r]) => v === 't' && k === 't' && r === 'expire'), JSON.stringify(log));
  const n = log.length;
  const size = c.size;
  assert.ok(size > 0);
  c.clear();
  assert.ok(log.slice(n).every(([, , r]) => r === 'delete'));
  assert.equal(log.length - n, size);
});

test('setting the value a key already holds calls no dispose, as in lru-cache', () => {
  // a dispose that closes a resource must not close the value the cache still serves
  const log = [];
  const c = new Cache({ dispose: (v, k, reason) => log.push([v, k, reason]) });
  const o = { conn: 'socket' };
  const p = { conn: 'other' };
  c.set('a', o);
  c.set('a', o);
  c.setIfVersion('a', o, c.version('a'));
  assert.deepEqual(log, []);
  assert.equal(c.get('a'), o);
  c.set('a', p);
  assert.deepEqual(log, [[o, 'a', 'set']]);
  c.set('b', 1);
  c.set('b', 1); // a primitive equal to the one held is the same value too
  assert.equal(log.length, 1);
  c.delete('a');
  assert.deepEqual(log[1], [p, 'a', 'delete']);
});

test('dispose gets loaded values too, and a throwing dispose never breaks the cache', async () => {
  const log = [];
  const c = new Cache({
    dispose: (v, k, reason) => {
      log.push([v, k, reason]);
      throw new Error('dispose failed');
    },
  });
  await c.getOrLoad('k', async () => 'loaded');
  c.set('k', 'set'); // replaces the loaded value
  assert.deepEqual(log, [['loaded', 'k', 'set']]);
  assert.equal(c.get('k'), 'set');
  assert.equal(thrown(() => new Cache({ dispose: 3 })).code, 'InvalidConfig');
});

test('Symbol.dispose closes the cache (a `using` declaration)', () => {
  assert.equal(typeof Symbol.dispose, 'symbol');
  const c = new Cache();
  assert.equal(typeof c[Symbol.dispose], 'function');
  c.registerSource('u:', () => 1);
  c[Symbol.dispose]();
  assert.deepEqual(c.scores(), []); // closed: its sources are gone
});

test('registerSource prefixes are checked like keys', () => {
  const c = new Cache();
  for (const bad of ['\uD800', 'a\uDC00b', 7, null, undefined, {}]) {
    assert.equal(thrown(() => c.registerSource(bad, () => 1)).code, 'InvalidKey', String(bad));
    assert.equal(thrown(() => c.unregisterSource(bad)).code, 'InvalidKey');
    assert.equal(thrown(() => c.score(bad)).code, 'InvalidKey');
  }
  // a well-formed pair is fine
  c.registerSource('\uD83D\uDE00', () => 1);
  assert.equal(c.scores().length, 1);
});

test('InvalidConfig and InvalidKey errors carry `reason`, the message after the field, as in Python', () => {
  const cases = [
    // refused by the core's settings table
    () => new Cache({ maxEntries: 0 }),
    // refused by the wrapper before the core
    () => new Cache({ maxEntries: 10 }).set('k', 1, { ttl: 'soon' }),
    () => new Cache().set('k', 1, { bogus: 1 }),
  ];
  for (const f of cases) {
    const e = thrown(f);
    assert.equal(e.code, 'InvalidConfig', String(f));
    assert.equal(typeof e.reason, 'string', `${f}: ${e.message}`);
    assert.ok(e.reason.length > 0);
    assert.equal(e.message, `invalid config: \`${e.field}\` ${e.reason}`);
  }
  assert.equal(thrown(() => new Cache({ maxEntries: 0 })).reason, 'must be between 1 and 2147483648, got 0');
  for (const f of [() => new Cache().set(7, 1), () => new Cache().get('\uD800'), () => new Cache().registerSource(null, () => 1)]) {
    const e = thrown(f);
    assert.equal(e.code, 'InvalidKey', String(f));
    assert.equal(typeof e.reason, 'string', `${f}: ${e.message}`);
    assert.equal(e.message, `invalid key: ${e.reason}`);
  }
  assert.equal(thrown(() => new Cache().set(7, 1)).reason, 'cache keys are strings, got number');
});

test('a wrong type is shown as what was given, and an argument of the wrong type is a TypeError, as Node does', () => {
  assert.match(thrown(() => new Cache({ ttl: null })).message, /got null$/);
  assert.match(thrown(() => new Cache({ ttl: '5' })).message, /got a string "5"$/);
  assert.match(thrown(() => new Cache({ staleWhileRevalidate: 1 })).message, /must be a boolean, got 1$/);
  const e = thrown(() => new Cache().prometheus(5));
  assert.equal(e.code, 'ERR_INVALID_ARG_TYPE');
  assert.ok(e instanceof TypeError, e.constructor.name);
});
