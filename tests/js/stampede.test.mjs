// The core's stampede layers through the JS API: options, fetch statuses, stale values,
// background refreshes and the read mirror, negative caching, jitter, metrics. Node and WASM.
// Small real durations; only behaviour is asserted, never speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, NOT_FOUND, WASM, eventually, sleep, prometheusJoin, thrown } from './helpers.mjs';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

test('every stampede option is validated and a bad one names its camelCase field', () => {
  const cases = [
    [{ grace: 0 }, 'grace'],
    [{ grace: -1 }, 'grace'],
    [{ grace: '5' }, 'grace'],
    [{ staleWhileRevalidate: 'yes' }, 'staleWhileRevalidate'],
    [{ staleWhileRevalidate: true }, 'staleWhileRevalidate'], // needs grace (core)
    [{ loadSoftTimeout: 0 }, 'loadSoftTimeout'],
    [{ loadSoftTimeout: 100, loadTimeout: 50 }, 'loadSoftTimeout'],
    [{ xfetch: 1 }, 'xfetch'],
    [{ xfetchBeta: 0 }, 'xfetchBeta'],
    [{ xfetchBeta: NaN }, 'xfetchBeta'],
    [{ refreshAfter: -5 }, 'refreshAfter'],
    [{ ttlJitter: 1.5 }, 'ttlJitter'],
    [{ ttlJitter: -0.1 }, 'ttlJitter'],
    [{ negativeTtl: 0 }, 'negativeTtl'],
    [{ maxNegativeShare: 2 }, 'maxNegativeShare'],
  ];
  for (const [opts, field] of cases) {
    const e = thrown(() => new Cache(opts));
    assert.equal(e.code, 'InvalidConfig', JSON.stringify(opts));
    assert.equal(e.field, field, JSON.stringify(opts));
    assert.match(e.message, new RegExp(`\`${field}\``), e.message);
  }
  // every layer at once is accepted (the bindings give the core a spawner and a timer)
  const c = new Cache({
    ttl: 1000, grace: 5000, staleWhileRevalidate: true, loadSoftTimeout: 100, loadTimeout: 1000, xfetch: true,
    xfetchBeta: 2, refreshAfter: 500, ttlJitter: 0.2, negativeTtl: 100, maxNegativeShare: 0.5,
  });
  assert.ok(c.set('k', 1) > 0);
});

test('fetch options are validated per call', async () => {
  const c = new Cache();
  const load = () => 1;
  for (const [opts, field] of [
    [{ ttl: 0 }, 'ttl'], [{ ttl: 'x' }, 'ttl'], [{ negativeTtl: -1 }, 'negativeTtl'], [{ softTimeout: 0 }, 'softTimeout'],
    [{ xfetch: 'no' }, 'xfetch'], [{ staleWhileRevalidate: 1 }, 'staleWhileRevalidate'], [{ tll: 5 }, 'tll'],
  ]) {
    await assert.rejects(c.fetch('k', load, opts), (e) => e.code === 'InvalidConfig' && e.field === field, JSON.stringify(opts));
  }
  const f = await c.fetch('k', load, { ttl: 5000, negativeTtl: 10, softTimeout: 10, xfetch: false, staleWhileRevalidate: false });
  assert.deepEqual(f, { value: 1, status: 'loaded' });
  assert.ok(c.getEntry('k').expiresIn <= 5000);
});

test('fetch statuses: loaded, coalesced, hit', async () => {
  const c = new Cache();
  let calls = 0;
  const obj = { v: 1 };
  const load = async () => {
    calls++;
    await sleep(20);
    return obj;
  };
  const all = await Promise.all(Array.from({ length: 10 }, () => c.fetch('k', load)));
  assert.equal(calls, 1);
  assert.deepEqual(all.map((f) => f.status).sort(), [...Array(9).fill('coalesced'), 'loaded']);
  for (const f of all) assert.equal(f.value, obj);
  assert.deepEqual(await c.fetch('k', load), { value: obj, status: 'hit' });
  assert.equal(c.get('k'), obj);
});

test('NOT_FOUND: negative-loaded, then negative-hit within negativeTtl; getOrLoad rejects NotFound', async () => {
  const c = new Cache({ negativeTtl: 60, maxEntries: 100 });
  let calls = 0;
  const missing = async () => {
    calls++;
    return NOT_FOUND;
  };
  assert.deepEqual(await c.fetch('gone', missing), { value: undefined, status: 'negative-loaded' });
  assert.deepEqual(await c.fetch('gone', missing), { value: undefined, status: 'negative-hit' });
  assert.equal(calls, 1);
  assert.equal(c.get('gone'), undefined);
  assert.equal(c.has('gone'), false);
  await assert.rejects(c.getOrLoad('gone', () => 'never'), (e) => e.code === 'NotFound' && e instanceof Error);
  assert.equal(calls, 1);
  let s = c.stats();
  assert.equal(s.negativeEntries, 1);
  assert.ok(s.negativeHits >= 2, String(s.negativeHits));
  await sleep(90); // the negative entry expires on its own TTL
  assert.equal((await c.fetch('gone', missing)).status, 'negative-loaded');
  assert.equal(calls, 2);
  // a real value replaces it
  c.set('gone', 5);
  assert.deepEqual(await c.fetch('gone', missing), { value: 5, status: 'hit' });
  // getOrLoad's own loader answering NOT_FOUND
  await assert.rejects(c.getOrLoad('other', () => NOT_FOUND), (e) => e.code === 'NotFound');
  // bounded: at most maxNegativeShare (default 0.1) of maxEntries
  for (let i = 0; i < 30; i++) await c.fetch(`nf${i}`, missing);
  s = c.stats();
  assert.ok(s.negativeEntries <= 10, String(s.negativeEntries));
  assert.ok(s.negativeRefused > 0);
});

test('without negativeTtl a not-found is not cached; per call it is', async () => {
  const c = new Cache();
  let calls = 0;
  const missing = () => {
    calls++;
    return NOT_FOUND;
  };
  assert.equal((await c.fetch('k', missing)).status, 'negative-loaded');
  assert.equal((await c.fetch('k', missing)).status, 'negative-loaded');
  assert.equal(calls, 2);
  assert.equal((await c.fetch('k', missing, { negativeTtl: 1000 })).status, 'negative-loaded');
  assert.equal((await c.fetch('k', missing)).status, 'negative-hit');
  assert.equal(calls, 3);
});

test('stale-while-revalidate: "stale" at once, one refresh for many stale reads, then the new value', async () => {
  const c = new Cache({ ttl: 40, grace: 10_000, staleWhileRevalidate: true });
  let calls = 0;
  const load = async () => {
    calls++;
    await sleep(20);
    return `v${calls}`;
  };
  assert.deepEqual(await c.fetch('k', load), { value: 'v1', status: 'loaded' });
  await sleep(60);
  assert.equal(c.get('k'), undefined, 'a stale value is not fresh: plain get does not return it');
  assert.equal(c.has('k'), false);
  // the refresh stores its value with the options of the call that started it: a long TTL here
  const stale = await Promise.all(Array.from({ length: 50 }, () => c.fetch('k', load, { ttl: 10_000 })));
  for (const f of stale) assert.deepEqual(f, { value: 'v1', status: 'stale' });
  assert.equal(await c.getOrLoad('k', load), 'v1', 'getOrLoad serves the stale value too');
  // the refresh completes in the background: its flight ends once its value is stored
  await eventually(() => c.stats().inFlight === 0);
  assert.equal(calls, 2, 'exactly one refresh');
  assert.equal(c.get('k'), 'v2', 'the next get sees the refreshed value');
  assert.deepEqual(await c.fetch('k', load), { value: 'v2', status: 'hit' });
  assert.equal(c.stats().staleServedSwr, 51);
  // per call: off
  c.set('k', 'short', { ttl: 20 });
  await sleep(40);
  assert.deepEqual(await c.fetch('k', load, { staleWhileRevalidate: false }), { value: 'v3', status: 'loaded' });
});

test('a value a background refresh stored stays servable as stale after its own TTL', async () => {
  const c = new Cache({ ttl: 30, grace: 10_000, staleWhileRevalidate: true });
  let calls = 0;
  const load = async () => {
    await sleep(10);
    return `v${++calls}`;
  };
  assert.equal((await c.fetch('k', load)).status, 'loaded');
  await sleep(50);
  assert.deepEqual(await c.fetch('k', load), { value: 'v1', status: 'stale' });
  await eventually(() => c.stats().inFlight === 0); // v2 is stored in the background (not read)
  await sleep(65); // v2, stored in the background and never read, is stale now too
  assert.equal(c.get('k'), undefined);
  assert.deepEqual(await c.fetch('k', load, { ttl: 10_000 }), { value: 'v2', status: 'stale' });
  await eventually(() => c.stats().inFlight === 0); // the refresh to v3 lands
  assert.equal(c.get('k'), 'v3');
});

test('fail-safe: within grace a failing loader gives "stale-fail-safe"; past grace the rejection', async () => {
  const c = new Cache({ ttl: 30, grace: 5000 });
  c.set('k', 'old');
  await sleep(50);
  const boom = new Error('origin down');
  const failing = async () => {
    throw boom;
  };
  assert.deepEqual(await c.fetch('k', failing), { value: 'old', status: 'stale-fail-safe' });
  assert.equal(await c.getOrLoad('k', failing), 'old');
  const s = c.stats();
  assert.equal(s.staleServedFailSafe, 2);
  assert.equal(s.loadErrors, 2);
  assert.equal(c.get('k'), undefined);
  const short = new Cache({ ttl: 20, grace: 20 });
  short.set('k', 'old');
  await sleep(70);
  await assert.rejects(short.fetch('k', failing), (e) => e === boom);
});

test('soft timeout: "stale-soft-timeout" at the soft timeout, the load finishing in the background', async () => {
  const c = new Cache({ ttl: 30, grace: 10_000, loadSoftTimeout: 20 });
  c.set('k', 1);
  await sleep(50);
  const slow = async () => {
    await sleep(100);
    return 2;
  };
  assert.deepEqual(await c.fetch('k', slow, { ttl: 10_000 }), { value: 1, status: 'stale-soft-timeout' });
  assert.equal(c.get('k'), undefined);
  await eventually(() => c.stats().inFlight === 0); // the load goes on in the background
  assert.equal(c.get('k'), 2, 'the load finished in the background and the next get sees it');
  assert.equal(c.stats().staleServedSoftTimeout, 1);
  // per call
  const d = new Cache({ ttl: 30, grace: 10_000 });
  d.set('k', 1);
  await sleep(50);
  assert.deepEqual(await d.fetch('k', slow, { softTimeout: 20, ttl: 10_000 }), { value: 1, status: 'stale-soft-timeout' });
  await eventually(() => d.stats().inFlight === 0); // the load goes on in the background
  assert.deepEqual(await d.fetch('k', slow), { value: 2, status: 'hit' });
});

test('refresh-ahead: an old value is served and refreshed once; the mirror then gives the new one', async () => {
  const c = new Cache({ ttl: 10_000, refreshAfter: 30 });
  let calls = 0;
  const load = async () => {
    calls++;
    await sleep(30);
    return `v${calls}`;
  };
  assert.equal((await c.fetch('k', load)).status, 'loaded');
  assert.deepEqual(await c.fetch('k', load), { value: 'v1', status: 'hit' });
  await sleep(50);
  assert.deepEqual(await c.fetch('k', load), { value: 'v1', status: 'refresh-ahead' });
  assert.deepEqual(await c.fetch('k', load), { value: 'v1', status: 'hit' }, 'one refresh at a time');
  assert.equal(c.get('k'), 'v1');
  await eventually(() => c.stats().inFlight === 0); // the refresh runs in the background
  assert.equal(calls, 2);
  assert.equal(c.get('k'), 'v2', 'the background refresh replaced the fresh value in the mirror');
  assert.equal(c.getEntry('k').value, 'v2');
  assert.equal(c.stats().refreshAhead, 1);
});

test('a background refresh answering NOT_FOUND removes the value from the mirror', async () => {
  const c = new Cache({ ttl: 10_000, refreshAfter: 20, negativeTtl: 10_000 });
  c.set('k', 'v');
  await sleep(40);
  assert.deepEqual(await c.fetch('k', () => NOT_FOUND), { value: 'v', status: 'refresh-ahead' });
  await eventually(() => c.stats().inFlight === 0); // the refresh runs in the background
  assert.equal(c.get('k'), undefined);
  assert.equal(c.has('k'), false);
  assert.equal((await c.fetch('k', () => 'x')).status, 'negative-hit');
});

test('xfetch: hot reads refresh early ("early-refresh"); off per call', async () => {
  const c = new Cache({ ttl: 1000, xfetch: true, xfetchBeta: 1000 });
  let calls = 0;
  const load = async () => {
    calls++;
    await sleep(15);
    return calls;
  };
  assert.equal((await c.fetch('k', load)).status, 'loaded');
  for (let i = 0; i < 20; i++) assert.equal((await c.fetch('k', load, { xfetch: false })).status, 'hit');
  assert.equal(calls, 1);
  let early = 0;
  for (let i = 0; i < 20 && early === 0; i++) if ((await c.fetch('k', load)).status === 'early-refresh') early++;
  assert.equal(early, 1);
  await eventually(() => c.stats().inFlight === 0); // the early refresh runs in the background
  assert.equal(calls, 2);
  assert.equal(c.get('k'), 2);
  assert.ok(c.stats().earlyRefreshes >= 1);
});

test('ttlJitter spreads expiries (remaining TTL from getEntry)', () => {
  const c = new Cache({ ttl: 10_000, ttlJitter: 0.5, maxEntries: 1000 });
  const left = [];
  for (let i = 0; i < 200; i++) {
    c.set(`k${i}`, i);
    left.push(c.getEntry(`k${i}`).expiresIn);
  }
  left.sort((a, b) => a - b);
  assert.ok(left[0] > 9000, String(left[0]));
  assert.ok(left[199] <= 15_000, String(left[199]));
  assert.ok(left[199] - left[0] > 1000, `spread ${left[199] - left[0]}`);
  const plain = new Cache({ ttl: 10_000 });
  plain.set('a', 1);
  assert.ok(plain.getEntry('a').expiresIn <= 10_000);
});

test('fenced rebuild: a slow load finishing after a fresh set keeps the set value', async () => {
  const c = new Cache();
  const p = c.fetch('k', () => sleep(30).then(() => 'rebuilt'));
  await sleep(5);
  c.set('k', 'fresh');
  assert.deepEqual(await p, { value: 'rebuilt', status: 'loaded' });
  assert.equal(c.get('k'), 'fresh');
  assert.deepEqual(await c.fetch('k', () => 'x'), { value: 'fresh', status: 'hit' });
  assert.equal(c.stats().fencedWrites, 1);
});

test('stats carry the stampede counters and the load-latency histogram; prometheus text', async () => {
  const c = new Cache();
  await c.fetch('k', () => sleep(5).then(() => 1));
  c.get('k');
  const s = c.stats();
  for (const k of ['staleServedSwr', 'staleServedFailSafe', 'staleServedSoftTimeout', 'earlyRefreshes', 'refreshAhead',
    'negativeHits', 'negativeEntries', 'negativeRefused', 'fencedWrites', 'oversizeRejections']) {
    assert.equal(typeof s[k], 'number', k);
  }
  assert.equal(s.loadLatency.counts.length, 14);
  assert.equal(s.loadLatency.counts.reduce((a, b) => a + b, 0), 1);
  assert.ok(s.loadLatency.sumNanos > 0);
  const text = c.prometheus('users');
  assert.match(text, /^healcache_loader_calls_total\{cache="users"\} 1$/m);
  assert.match(text, new RegExp(`^healcache_hits_total\\{cache="users"\\} ${s.hits}$`, 'm'));
  assert.match(text, /^healcache_load_duration_seconds_count\{cache="users"\} 1$/m);
  assert.match(c.prometheus('a"b'), /cache="a\\"b"/);
});

test('NOT_FOUND is one value for both packages', async () => {
  // The Node suite runs before the WASM build exists on a fresh clone: compare only when it is
  // built (the WASM run, which always has the Node addon, checks the other direction).
  const wasmBuilt = existsSync(new URL('../../bindings-wasm/pkg-node/healcache_wasm.js', import.meta.url));
  const other = WASM ? await import('healcache') : wasmBuilt ? await import('healcache/wasm') : null;
  if (other) assert.equal(other.NOT_FOUND, NOT_FOUND);
  assert.equal(typeof NOT_FOUND, 'symbol');
});

test('the expositions of several caches join into one a strict parser accepts', () => {
  if (WASM) {
    const e = thrown(() => prometheusJoin([]));
    assert.equal(e.code, 'InvalidConfig');
    assert.match(e.message, /needs the Node package/);
    return;
  }
  const a = new Cache();
  const b = new Cache();
  a.set('k', 1);
  assert.equal(a.get('k'), 1);
  const [ta, tb] = [a.prometheus('a'), b.prometheus('b')];
  const check = (text) => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.error, undefined, 'promtool runs');
    return r.stdout + r.stderr;
  };
  // concatenated, every HELP line comes twice: promtool (Go's parser) refuses the text
  assert.match(check(ta + tb), /second HELP line/);
  const joined = prometheusJoin([ta, tb]);
  assert.doesNotMatch(check(joined), /parsing error/);
  const samples = (t) => t.split('\n').filter((l) => l && !l.startsWith('#')).sort();
  assert.deepEqual(samples(joined), samples(ta + tb));
  assert.ok(joined.includes('healcache_hits_total{cache="a"} 1\nhealcache_hits_total{cache="b"} 0\n'));
  // two caches with one name: one of the two values would be lost
  const e = thrown(() => prometheusJoin([ta, a.prometheus('a')]));
  assert.equal(e.code, 'InvalidConfig');
  assert.equal(e.field, 'texts');
  assert.equal(thrown(() => prometheusJoin(ta)).code, 'ERR_INVALID_ARG_TYPE');
});
