// Hardening of the JS surface: keys that are not well-formed strings, bad versions, loader
// rejections with any value, what a cache shows when printed, and the core's bounds seen from JS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import util from 'node:util';
import { Cache, thrown } from './helpers.mjs';

const isInvalidKey = (e) => e instanceof TypeError && e.code === 'InvalidKey';

// Lone surrogates: host string conversion would turn each into U+FFFD and make them one key.
const MALFORMED = ['\uD800', '\uDC00', 'a\uD83D', '\uDE00b', '\uDBFF\uDBFF', 'x\uDC00\uD800y'];

test('keys that are not well-formed UTF-16 are InvalidKey in every call taking a key', async () => {
  const c = new Cache();
  c.set('\uFFFD', 'replacement');
  for (const k of MALFORMED) {
    for (const f of [
      () => c.get(k),
      () => c.set(k, 1),
      () => c.has(k),
      () => c.delete(k),
      () => c.version(k),
      () => c.getEntry(k),
      () => c.setIfVersion(k, 1, 0),
      () => c.delete(k, { ifVersion: 0 }),
    ]) {
      assert.ok(isInvalidKey(thrown(f)), `${JSON.stringify(k)}: ${f}`);
    }
    let loads = 0;
    await assert.rejects(c.getOrLoad(k, () => ++loads), isInvalidKey);
    await assert.rejects(c.fetch(k, () => ++loads), isInvalidKey);
    assert.equal(loads, 0);
  }
  // nothing changed: the well-formed key that the malformed ones used to become is untouched
  assert.equal(c.get('\uFFFD'), 'replacement');
  assert.equal(c.size, 1);
  // well-formed pairs are keys as usual
  c.set('\uD83D\uDE00', 'smile');
  assert.equal(c.get('\uD83D\uDE00'), 'smile');
});

test('distinct malformed keys never collide (no writes read back as another key)', async () => {
  const c = new Cache();
  assert.ok(isInvalidKey(thrown(() => c.set('\uD800', 'a'))));
  assert.ok(isInvalidKey(thrown(() => c.set('\uDC00', 'b'))));
  assert.equal(c.size, 0);
});

test('a non-string key is InvalidKey, on an empty cache and on a full one', async () => {
  for (const fill of [false, true]) {
    const c = new Cache();
    if (fill) c.set('k', 'v');
    for (const k of [1, null, undefined, {}, Symbol('s'), 1n, ['k']]) {
      for (const f of [() => c.get(k), () => c.set(k, 1), () => c.has(k), () => c.delete(k), () => c.version(k), () => c.getEntry(k)]) {
        assert.ok(isInvalidKey(thrown(f)), `fill=${fill} ${String(k)}: ${f}`);
      }
      await assert.rejects(c.getOrLoad(k, () => 1), isInvalidKey);
      await assert.rejects(c.fetch(k, () => 1), isInvalidKey);
    }
    assert.equal(c.size, fill ? 1 : 0);
  }
});

test('ifVersion must be a non-negative integer, and a bad one changes nothing', () => {
  const c = new Cache();
  const v1 = c.set('k', 'a');
  for (const bad of [-1, NaN, -0.5, 1.5, Infinity, -Infinity, 2 ** 64]) {
    for (const f of [
      () => c.set('k', 'b', { ifVersion: bad }),
      () => c.set('absent', 'b', { ifVersion: bad }),
      () => c.setIfVersion('k', 'b', bad),
      () => c.delete('k', { ifVersion: bad }),
    ]) {
      const e = thrown(f);
      assert.equal(e.code, 'InvalidConfig', `${bad}: ${f}`);
      assert.equal(e.field, 'ifVersion');
    }
  }
  for (const bad of ['1', true, {}, null, 1n]) {
    assert.equal(thrown(() => c.set('k', 'b', { ifVersion: bad })).code, 'ERR_INVALID_ARG_TYPE');
    assert.equal(thrown(() => c.delete('k', { ifVersion: bad })).code, 'ERR_INVALID_ARG_TYPE');
  }
  assert.equal(c.get('k'), 'a');
  assert.equal(c.version('k'), v1);
  assert.equal(c.has('absent'), false);
  assert.equal(c.size, 1);
});

test('every waiter gets exactly the value the loader rejected with', async () => {
  const c = new Cache();
  const err = new Error('boom');
  for (const [i, r] of [undefined, null, 0, 42, '', 'text', false, err, { a: 1 }].entries()) {
    let calls = 0;
    let release;
    const gate = new Promise((res) => (release = res));
    const loader = async () => {
      calls++;
      await gate;
      throw r;
    };
    const key = `k${i}`;
    const waits = [c.getOrLoad(key, loader), c.getOrLoad(key, loader), c.fetch(key, loader)];
    release();
    const got = await Promise.allSettled(waits);
    for (const g of got) {
      assert.equal(g.status, 'rejected');
      assert.equal(g.reason, r, `rejected with ${String(r)}, waiter got ${String(g.reason)}`);
    }
    assert.equal(calls, 1);
    // a synchronous throw too
    const s = await Promise.allSettled([
      c.getOrLoad(`s${i}`, () => {
        throw r;
      }),
    ]);
    assert.equal(s[0].reason, r);
  }
});

test('printing a cache shows its size, never keys or values', () => {
  const c = new Cache({ maxEntries: 10 });
  c.set('secret-key-1234', 'secret-value-5678');
  c.set('other', { nested: 'secret-nested-9999' });
  const shown = util.inspect(c, { depth: 10, showHidden: true });
  for (const s of ['secret-key-1234', 'secret-value-5678', 'secret-nested-9999', 'other']) {
    assert.ok(!shown.includes(s), `${s} in ${shown}`);
  }
  assert.match(shown, /^Cache \{ entries: 2/);
  assert.ok(shown.length < 200, shown);
  assert.match(util.format('%o', c), /^Cache \{ entries: 2/);
  // nor does JSON, and the tag names the class as lru-cache's does
  const json = JSON.stringify(c);
  for (const s of ['secret-key-1234', 'secret-value-5678', 'secret-nested-9999', 'other']) {
    assert.ok(!json.includes(s), `${s} in ${json}`);
  }
  assert.deepEqual(JSON.parse(json), { entries: 2, maxEntries: 10 });
  assert.equal(Object.prototype.toString.call(c), '[object Cache]');
});

test('one synchronous burst of getOrLoad runs the loader once per key', async () => {
  let multi = 0;
  for (let burst = 0; burst < 100; burst++) {
    const c = new Cache();
    let calls = 0;
    const loader = () => {
      calls++;
      throw new Error('fails at once');
    };
    const waits = [];
    for (let i = 0; i < 200; i++) waits.push(c.getOrLoad('k', loader));
    const got = await Promise.allSettled(waits);
    assert.ok(got.every((g) => g.status === 'rejected' && g.reason.message === 'fails at once'));
    if (calls !== 1) multi++;
  }
  assert.equal(multi, 0, `bursts that ran the loader more than once: ${multi} of 100`);
});

test('a cache TTL of Infinity is no expiry, as a per-call TTL of Infinity is (and as Python reads math.inf)', () => {
  const c = new Cache({ ttl: Infinity });
  c.set('k', 1);
  assert.equal(c.getRemainingTTL('k'), Infinity);
  c.set('j', 2, { ttl: Infinity });
  assert.equal(c.getRemainingTTL('j'), Infinity);
  const e = thrown(() => new Cache({ ttl: -Infinity }));
  assert.equal(e.code, 'InvalidConfig');
  assert.equal(e.field, 'ttl');
});

test('setIfVersion without an expected version (undefined) is refused as null is, and changes nothing', () => {
  const c = new Cache();
  const v1 = c.set('k', 'a');
  let forgot; // a field the caller did not fill
  for (const bad of [forgot, null]) {
    assert.equal(thrown(() => c.setIfVersion('k', 'b', bad)).code, 'ERR_INVALID_ARG_TYPE', String(bad));
    assert.equal(thrown(() => c.setIfVersion('absent', 'b', bad)).code, 'ERR_INVALID_ARG_TYPE', String(bad));
  }
  assert.equal(thrown(() => c.setIfVersion('k', 'b')).code, 'ERR_INVALID_ARG_TYPE');
  assert.equal(c.get('k'), 'a');
  assert.equal(c.version('k'), v1);
  assert.equal(c.has('absent'), false);
});

test('messages show a refused value as JS writes it: Infinity, and a non-number by its type', async () => {
  const c = new Cache();
  c.set('k', 'v');
  const message = (f) => thrown(f).message;
  assert.match(message(() => c.set('k', 1, { ttl: -Infinity })), /got -Infinity\b/);
  for (const name of ['maxEntries', 'loadTimeout', 'maxBytes']) {
    const e = thrown(() => new Cache({ [name]: Infinity }));
    assert.equal(e.field, name);
    assert.match(e.message, /got Infinity\b/, name);
  }
  assert.match(message(() => c.close({ timeout: Infinity })), /got Infinity\b/);
  assert.match(message(() => c.setHealing({ sampleRate: -Infinity })), /got -Infinity\b/);
  await assert.rejects(c.fetch('miss', () => 1, { softTimeout: -Infinity }), (e) => e.field === 'softTimeout' && /got -Infinity\b/.test(e.message));
  for (const m of [message(() => c.set('k', 1, { ttl: -Infinity })), message(() => new Cache({ maxEntries: Infinity }))]) {
    assert.doesNotMatch(m, /\binf\b/);
  }
  const weighed = new Cache({ maxBytes: 100, sizeOf: () => '5' });
  const e = thrown(() => weighed.set('w', 'x'));
  assert.equal(e.field, 'sizeOf');
  assert.match(e.message, /got a string "5"/);
  assert.equal(weighed.has('w'), false);
  assert.equal(c.get('k'), 'v');
});

test('a seed past 2^53 - 1 as a number is refused with a message saying to pass a bigint', () => {
  for (const seed of [2 ** 53, 2 ** 60]) {
    const e = thrown(() => new Cache({ seed }));
    assert.equal(e.code, 'InvalidConfig');
    assert.equal(e.field, 'seed');
    assert.match(e.message, /2\*\*53-1/);
    assert.match(e.message, /bigint/);
    assert.match(e.message, /not exact/);
  }
  assert.match(thrown(() => new Cache({ seed: '5' })).message, /got a string "5"/);
  new Cache({ seed: 2n ** 53n });
  new Cache({ seed: 2 ** 53 - 1 });
  // a seed is below 2^64: taken at the bound, refused one past it
  new Cache({ seed: 2n ** 64n - 1n });
  for (const seed of [2n ** 64n, -1n]) {
    const e = thrown(() => new Cache({ seed }));
    assert.equal(e.code, 'InvalidConfig', String(seed));
    assert.equal(e.field, 'seed');
  }
});

// P5: a refusal at a bound carries the bound and what was over it as fields, as Python's
// exceptions do (`len`/`max`, `weight`/`max`, `max`, `after_ms` there; camelCase here)
test('errors at a bound carry their figures as fields, as in Python', async () => {
  const c = new Cache({ maxBytes: 10, maxKeyLen: 4, maxInFlight: 1, loadTimeout: 30 });
  const long = thrown(() => c.set('12345', 1));
  assert.deepEqual([long.code, long.len, long.max], ['KeyTooLong', 5, 4]);
  const big = thrown(() => c.set('k', 'x'.repeat(20)));
  assert.deepEqual([big.code, typeof big.weight, big.max], ['ValueTooLarge', 'number', 10]);
  assert.ok(big.weight > 10, `${big.weight}`);
  const hang = c.getOrLoad('l1', () => new Promise(() => {}));
  const many = await c.getOrLoad('l2', () => 1).catch((e) => e);
  assert.deepEqual([many.code, many.max], ['TooManyLoads', 1]);
  const late = await hang.catch((e) => e);
  assert.deepEqual([late.code, late.afterMs], ['LoadTimeout', 30]);
});
