// The microservice patterns from Node: write-through (the writer first, the cache only on
// success), batch reads with one loader call for the keys no layer answered, and warming with a
// readiness check, in one process and across two caches on a real redis-server. The WebAssembly
// package refuses them with a typed error.
//
// Promises checked: bad input gets a typed error and changes nothing; nothing is lost or hidden
// silently (a writer's rejection reaches the caller, a failed batch keeps the cache not ready).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redisAvailable, redisFor, sleep } from './rediskit.mjs';
import { Cache, WASM } from './helpers.mjs';

const noRedis = !redisAvailable() ? 'redis-server is not installed' : false;

test('wasm refuses the batch and write-through calls with a typed error', { skip: !WASM }, async () => {
  const c = new Cache();
  const code = (e) => e.code === 'InvalidConfig';
  await assert.rejects(c.writeThrough('k', 1, async () => {}), code);
  await assert.rejects(c.getMany(['k'], async () => new Map()), code);
  await assert.rejects(c.warm(['k'], async () => new Map()), code);
  assert.equal(c.get('k'), undefined);
});

test('writeThrough calls the writer first and caches only on success', { skip: WASM }, async () => {
  const c = new Cache();
  c.set('stock', 1);
  const seen = [];
  const v = await c.writeThrough('stock', 2, async (key, value) => {
    seen.push([key, value, c.get('stock')]);
  });
  assert.deepEqual(seen, [['stock', 2, 1]], 'the writer ran before the cache changed');
  assert.equal(c.get('stock'), 2);
  assert.equal(c.version('stock'), v);
  const err = new Error('database down');
  await assert.rejects(
    c.writeThrough('stock', 3, async () => {
      throw err;
    }),
    (e) => e === err,
  );
  assert.equal(c.get('stock'), 2, 'a failed writer changes nothing');
  assert.equal(c.version('stock'), v);
  assert.equal(await c.writeThrough('stock', 4, () => {}, { invalidate: true }), 0);
  assert.equal(c.get('stock'), undefined);
  // checked before the writer runs
  const small = new Cache({ maxKeyLen: 4 });
  let ran = 0;
  await assert.rejects(small.writeThrough('12345', 1, () => ran++), (e) => e.code === 'KeyTooLong');
  await assert.rejects(small.writeThrough('k', 1, () => ran++, { ttl: 0 }), (e) => e.code === 'InvalidConfig');
  await assert.rejects(small.writeThrough('k', 1, 'no'), (e) => e.code === 'ERR_INVALID_ARG_TYPE');
  assert.equal(ran, 0);
  assert.equal(small.size, 0);
});

test('getMany loads the missing keys in one call', { skip: WASM }, async () => {
  const c = new Cache();
  c.set('a', 'cached');
  const calls = [];
  const load = async (keys) => {
    calls.push([...keys].sort());
    return new Map(keys.filter((k) => !k.startsWith('no:')).map((k) => [k, k.toUpperCase()]));
  };
  const got = await c.getMany(['a', 'b', 'no:1', 'b', 'c'], load);
  assert.deepEqual(calls, [['b', 'c', 'no:1']]);
  assert.deepEqual([...got], [['a', 'cached'], ['b', 'B'], ['c', 'C']]);
  assert.deepEqual([...(await c.getMany(['a', 'b', 'c'], load))].length, 3);
  assert.equal(calls.length, 1, 'everything was cached');
  // a plain object answers too; keys not asked for are ignored
  assert.deepEqual([...(await c.getMany(['d'], () => ({ d: 4, zz: 9 })))], [['d', 4]]);
  assert.equal(c.get('zz'), undefined);
  // an array of pairs is no answer (read as an object, it found nothing): refused, not empty
  await assert.rejects(
    c.getMany(['g'], async () => [['g', 7]]),
    (e) => e.code === 'ERR_INVALID_ARG_TYPE' && /not an array/.test(e.message),
  );
  assert.equal(c.has('g'), false);
  const err = new Error('origin down');
  await assert.rejects(
    c.getMany(['e', 'f'], async () => {
      throw err;
    }),
    (e) => e === err,
  );
  assert.equal(c.get('e'), undefined);
  const bounded = new Cache({ maxInFlight: 3 });
  assert.equal((await bounded.getMany(['a', 'b', 'c'], (ks) => new Map(ks.map((k) => [k, 1])))).size, 3);
  await assert.rejects(bounded.getMany(['a', 'b', 'c', 'd'], () => new Map()), (e) => e.code === 'InvalidConfig' && e.field === 'keys');
});

test('warm reports progress and readiness', { skip: WASM }, async () => {
  const c = new Cache({ maxEntries: 10_000 });
  assert.equal(c.ready(), true, 'never warmed: ready');
  const keys = Array.from({ length: 1000 }, (_, i) => `k:${i}`);
  const readyDuring = [];
  const report = await c.warm(
    keys,
    async (batch) => {
      readyDuring.push(c.ready());
      await sleep(1);
      return new Map(batch.map((k) => [k, Number(k.slice(2))]));
    },
    { batch: 100, concurrency: 4 },
  );
  assert.deepEqual(report, { total: 1000, found: 1000, notFound: 0, failed: 0, error: undefined });
  assert.deepEqual(readyDuring, Array(10).fill(false));
  assert.equal(c.ready(), true);
  assert.deepEqual(c.warmProgress(), { answered: 1000, failed: 0, total: 1000 });
  assert.equal(c.get('k:999'), 999);
  const cold = new Cache();
  const r = await cold.warm(['x', 'y'], async () => {
    throw new Error('origin down');
  }, { batch: 1 });
  assert.equal(r.failed, 2);
  // the first failure's text, as Python's report gives it ('loader failed: RuntimeError: ...')
  assert.equal(r.error, 'loader failed: Error: origin down');
  assert.equal(cold.ready(), false);
  assert.match(cold.prometheus('cold'), /healcache_warm_keys_total\{cache="cold",outcome="failed"\} 2\n/);
  await assert.rejects(cold.warm(['x'], async () => new Map(), { batch: 0 }), (e) => e.code === 'InvalidConfig' && e.field === 'batch');
  await assert.rejects(cold.warm(['x'], async () => new Map(), { batch: 'many' }), (e) => e.code === 'ERR_INVALID_ARG_TYPE');
  // a count that is not whole is named as such, not mistaken for 0
  await assert.rejects(cold.warm(['x'], async () => new Map(), { batch: 1.5 }), (e) => e.code === 'InvalidConfig' && e.field === 'batch' && /whole/.test(e.message));
  // a key pattern is listed from the shared tier: refused without one
  await assert.rejects(cold.warm('x*', async () => new Map()), (e) => e.code === 'InvalidConfig' && e.field === 'pattern');
});

test('writeThrough reaches another instance when it returns; warm takes what L2 holds', { skip: noRedis || WASM }, async (t) => {
  const redis = await redisFor(t);
  const a = new Cache({ redis: redis.url, ttl: 60_000 });
  const b = new Cache({ redis: redis.url, ttl: 60_000 });
  t.after(() => [a.close(), b.close()]);
  b.set('user:1', { name: 'old' });
  // B's write lands in L2 in the background: A's write-through comes after it
  for (const end = Date.now() + 5000; b.stats().l2Writes < 1; await sleep(5)) assert.ok(Date.now() < end);
  await a.writeThrough('user:1', { name: 'Ada' }, async () => {});
  const end = Date.now() + 5000;
  while (b.get('user:1')?.name === 'old') {
    assert.ok(Date.now() < end, "B's copy was not dropped");
    await sleep(10);
  }
  const never = async () => {
    throw new Error('the source must not be asked');
  };
  assert.deepEqual(await b.fetch('user:1', never), { value: { name: 'Ada' }, status: 'l2-hit' });
  const keys = Array.from({ length: 50 }, (_, i) => `w:${i}`);
  await a.warm(keys, async (ks) => new Map(ks.map((k) => [k, k])));
  await (async () => {
    const probe = new Cache({ redis: redis.url });
    t.after(() => probe.close());
    const end2 = Date.now() + 5000;
    for (;;) {
      try {
        await probe.fetch('w:49', never);
        return;
      } catch {
        assert.ok(Date.now() < end2);
        await sleep(10);
      }
    }
  })();
  const r = await b.warm(keys, never);
  assert.deepEqual([r.found, r.failed], [50, 0]);
  assert.equal(b.ready(), true);
  assert.deepEqual([...(await b.getMany(['w:1', 'w:2'], never))], [['w:1', 'w:1'], ['w:2', 'w:2']]);
  // a new instance warms by key pattern what L2 holds, without asking the source
  const c = new Cache({ redis: redis.url, ttl: 60_000 });
  t.after(() => c.close());
  await assert.rejects(c.warm('w:*', never, { maxKeys: 49 }), (e) => e.code === 'InvalidConfig' && e.field === 'maxKeys');
  assert.equal(c.size, 0);
  const byPattern = await c.warm('w:*', never, { maxKeys: 50 });
  assert.deepEqual([byPattern.total, byPattern.found, byPattern.failed], [50, 50, 0]);
  assert.equal(c.get('w:7'), 'w:7');
  assert.equal(c.get('user:1'), undefined);
  assert.match(c.prometheus('c'), /healcache_warm_keys_total\{cache="c",outcome="answered"\} 50\n/);
});

test('readiness with Redis down follows the allowDegraded option', { skip: noRedis || WASM }, async (t) => {
  const redis = await redisFor(t);
  const strict = new Cache({ redis: redis.url, l2Timeout: 50 });
  const lenient = new Cache({ redis: redis.url, l2Timeout: 50, allowDegraded: true });
  t.after(() => [strict.close(), lenient.close()]);
  assert.deepEqual([strict.ready(), lenient.ready()], [true, true]);
  await redis.kill();
  const end = Date.now() + 10_000;
  for (const c of [strict, lenient]) {
    while (c.stats().l2BreakerState === 0) {
      assert.ok(Date.now() < end, 'the breaker did not open');
      await c.fetch('other', async () => 1);
      c.delete('other');
    }
  }
  assert.equal(strict.ready(), false);
  assert.equal(lenient.ready(), true);
});

test('the default warm batch fits a small maxInFlight', { skip: WASM }, async () => {
  const c = new Cache({ maxInFlight: 5 });
  const sizes = [];
  const keys = Array.from({ length: 12 }, (_, i) => `k:${i}`);
  const report = await c.warm(keys, async (ks) => {
    sizes.push(ks.length);
    return new Map(ks.map((k) => [k, 1]));
  });
  assert.equal(report.found, 12);
  assert.deepEqual(sizes.sort((a, b) => a - b), [2, 5, 5]);
  await assert.rejects(c.warm(keys, async () => new Map(), { batch: 6 }), (e) => e.code === 'InvalidConfig' && e.field === 'batch');
});
