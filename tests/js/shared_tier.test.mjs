// The shared tier from Node against a real redis-server (tests/js/rediskit.mjs starts it on a free
// 127.0.0.1 port as the restricted ACL user, and stops it by its pid): values cross processes and
// languages as MessagePack, values without a neutral form are refused and change nothing,
// credentials never show, a Redis that is down degrades to the loader. Node addon only: the
// WebAssembly package refuses `redis` (no TCP from a worker's module).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO, redisAvailable, redisFor, sleep } from './rediskit.mjs';
import { Cache, hammerFetches, WASM, unloadable, waitFor } from './helpers.mjs';

const skip = !redisAvailable() ? 'redis-server is not installed' : false;

const DOC = { name: 'Ada', langs: ['en', 'fr'], n: 36, big: 2n ** 63n - 1n, neg: -(2n ** 63n), pi: 3.5, ok: true, none: null, nested: { a: [1, { b: 'c' }] } };
test('wasm refuses redis with a typed error', { skip: !WASM }, () => {
  assert.throws(() => new Cache({ redis: 'redis://127.0.0.1:1' }), (e) => e.code === 'InvalidConfig' && e.field === 'redis');
});

test('what one process loads another reads: an l2-hit, the same value', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const a = new Cache({ redis: redis.url, ttl: 60_000 });
  const b = new Cache({ redis: redis.url, ttl: 60_000 });
  t.after(() => [a.close(), b.close()]);
  assert.deepEqual(await a.getOrLoad('user:1', async () => DOC), DOC);
  await waitFor(() => a.stats().l2Writes === 1);
  const f = await b.fetch('user:1', unloadable);
  assert.equal(f.status, 'l2-hit');
  assert.deepEqual(f.value, DOC);
  assert.equal(b.stats().l2Hits, 1);
  assert.equal(b.stats().l2CodecErrors, 0);
  // a hit now comes from L1, the same value, and a sync get sees it
  assert.deepEqual(b.get('user:1'), DOC);
  assert.deepEqual((await b.fetch('user:1', unloadable)).status, 'hit');
  // set values cross too; bytes come back as a Buffer
  a.set('bytes', new Uint8Array([0, 255, 7]));
  a.set('list', [1, 'two', [3.25]]);
  await waitFor(() => a.stats().l2Writes === 3);
  assert.deepEqual([...(await b.getOrLoad('bytes', unloadable))], [0, 255, 7]);
  assert.ok(Buffer.isBuffer(b.get('bytes')));
  assert.deepEqual(await b.getOrLoad('list', unloadable), [1, 'two', [3.25]]);
});

// A value read from L2 reaches its caller even when the core has evicted it by the time the
// caller's promise settles (a cache of one entry, 300 reads at once: all 300 once failed).
test('every caller gets its L2 value, also when the cache evicted it meanwhile', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const w = new Cache({ redis: redis.url });
  const r = new Cache({ redis: redis.url, maxEntries: 1 });
  t.after(() => [w.close(), r.close()]);
  for (let i = 0; i < 300; i++) w.set(`k${i}`, { i });
  await waitFor(() => w.stats().l2Writes === 300);
  const got = await Promise.all(Array.from({ length: 300 }, (_, i) => r.getOrLoad(`k${i}`, unloadable)));
  assert.deepEqual(got.map((v) => v.i), Array.from({ length: 300 }, (_, i) => i));
  assert.equal(r.stats().l2Hits, 300);
});

test('values without a neutral form are refused with ValueNotEncodable and change nothing', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const c = new Cache({ redis: redis.url });
  t.after(() => c.close());
  class Point {
    constructor() {
      this.x = 1;
    }
  }
  let deep = [];
  for (let i = 0; i < 100; i++) deep = [deep];
  const cyclic = {};
  cyclic.self = cyclic;
  for (const bad of [() => 1, Symbol('s'), new Date(0), new Map(), new Set([1]), new Point(), { f: () => 1 }, 2n ** 64n, new Float32Array(2), deep, cyclic]) {
    // `reason` says what could not be encoded, as the message does
    const refused = (e) => e.code === 'ValueNotEncodable' && typeof e.reason === 'string' && e.reason !== '' && e.message.includes(e.reason);
    assert.throws(() => c.set('k', bad), refused, String(bad));
    assert.equal(c.has('k'), false);
    assert.equal(c.size, 0);
  }
  assert.equal(c.stats().l2Writes, 0);
  // properties holding undefined are left out, as JSON does
  c.set('k', { a: 1, gone: undefined });
  const other = new Cache({ redis: redis.url });
  t.after(() => other.close());
  await waitFor(() => c.stats().l2Writes === 1);
  assert.deepEqual(await other.getOrLoad('k', unloadable), { a: 1 });
  // a loaded value with no neutral form stays in this process: served, not written to L2
  assert.equal(typeof (await c.getOrLoad('fn', async () => () => 7))(), 'number');
  await sleep(100);
  assert.equal(c.stats().l2Writes, 1);
  // without a shared tier, any value is fine
  const plain = new Cache();
  plain.set('k', new Map([[1, 2]]));
  assert.ok(plain.get('k') instanceof Map);
});

// P5: a value crosses nested at most 64 levels deep (what every language's decoder reads), and
// numbers up to 2^53 - 1 cross as integers. At the bound a value is written and read back whole
// by another cache; one level deeper is refused, changing nothing.
test('values at the nesting and integer bounds cross whole, one past them does not', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const a = new Cache({ redis: redis.url });
  const b = new Cache({ redis: redis.url });
  t.after(() => {
    a.close();
    b.close();
  });
  const nest = (n) => {
    let v = 1;
    for (let i = 0; i < n; i++) v = i % 2 ? { a: v } : [v];
    return v;
  };
  a.set('deep', nest(64));
  assert.throws(() => a.set('deeper', nest(65)), (e) => e.code === 'ValueNotEncodable');
  assert.equal(a.has('deeper'), false);
  const ints = [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 53, 0.5];
  a.set('ints', ints);
  await waitFor(() => a.stats().l2Writes === 2);
  assert.deepEqual(await b.getOrLoad('deep', unloadable), nest(64));
  assert.deepEqual(await b.getOrLoad('ints', unloadable), ints);
  assert.equal(b.stats().l2CodecErrors, 0);
  // in MessagePack, 2^53 - 1 is an integer (0xcf: uint 64, 0xd3: int 64) and 2^53 a float (0xcb)
  const r = await redis.connect();
  t.after(() => r.close());
  const [, keys] = await r.command('SCAN', '0', 'MATCH', 'hc1:*:v:ints', 'COUNT', '1000');
  assert.equal(keys.length, 1);
  const stored = Buffer.from(await r.command('GET', keys[0].toString()));
  const payload = stored.subarray(56);
  assert.deepEqual([payload[0], payload[1], payload[10], payload[19]], [0x94, 0xcf, 0xd3, 0xcb], payload.toString('hex'));
});

test('a value planted in Redis that is no envelope is a miss and a codec error', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const c = new Cache({ redis: redis.url });
  t.after(() => c.close());
  // the key layout: <prefix>:{<slot>}:v:<key>; found as a writer would find it
  c.set('victim', 'placeholder');
  await waitFor(() => c.stats().l2Writes === 1);
  const r = await redis.connect();
  t.after(() => r.close());
  const [, keys] = await r.command('SCAN', '0', 'MATCH', 'hc1:*:v:victim');
  assert.equal(keys.length, 1);
  await r.command('SET', keys[0].toString(), 'not an envelope');
  c.delete('victim'); // L1 forgets it (and leaves a tombstone in L2: planted again below)
  await waitFor(() => c.stats().l2Writes === 2); // the tombstone is written in the background
  await r.command('SET', keys[0].toString(), 'not an envelope');
  assert.equal(await c.getOrLoad('victim', async () => 'loaded'), 'loaded');
  assert.equal(c.stats().l2CodecErrors, 1);
  assert.equal(c.stats().l2Hits, 0);
});

test('credentials never show; a Redis that is down degrades to the loader', { skip: skip || WASM }, async (t) => {
  const c = new Cache({ redis: 'redis://hc:s3cret-pass@127.0.0.1:1', l2Timeout: 50 });
  t.after(() => c.close());
  assert.equal(await c.getOrLoad('k', async () => 'v'), 'v');
  const text = JSON.stringify(c.stats(), (k, v) => (typeof v === 'bigint' ? String(v) : v)) + c.prometheus('hc');
  assert.ok(!text.includes('s3cret-pass'));
  assert.throws(() => new Cache({ redis: 'http://x' }), (e) => e.code === 'InvalidConfig' && e.field === 'redis' && !String(e.message).includes('s3cret'));
  assert.throws(() => new Cache({ redis: 5 }), (e) => e.code === 'InvalidConfig' && e.field === 'redis');
  assert.throws(() => new Cache({ l2Prefix: 5 }), (e) => e.code === 'InvalidConfig' && e.field === 'l2Prefix');
  // P5: with a shared tier a key's bus message must fit in 64 KiB
  const long = { redis: 'redis://127.0.0.1:1', l2Timeout: 50 };
  assert.throws(() => new Cache({ ...long, maxKeyLen: 65_483 }), (e) => e.code === 'InvalidConfig' && e.field === 'maxKeyLen');
  new Cache({ ...long, maxKeyLen: 65_482 }).close();
  new Cache({ maxKeyLen: 65_483 }).close(); // no bus without a shared tier
});

// A Python process writes, Node reads, and the other way round (the Python package must be built:
// `make test` builds it before the JS suites).
const PY = path.join(REPO, '.venv/bin/python');
const L2_GET = path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'release/examples/l2_get');
test('Python and Node read each other\'s entries, and Rust reads both', { skip: skip || WASM || (!existsSync(PY) && 'no .venv') }, async (t) => {
  const redis = await redisFor(t);
  const c = new Cache({ redis: redis.url, ttl: 60_000 });
  t.after(() => c.close());
  const py = (code) => {
    const r = spawnSync(PY, ['-c', code, redis.url], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  py(`import sys, time, healcache
c = healcache.Cache(redis=sys.argv[1], ttl=60)
c.set("from:python", {"lang": "python", "n": [1, 2, 3], "pi": 3.5, "raw": b"\\x01", "none": None})
end = time.time() + 5
while c.stats()["l2_writes"] < 1 and time.time() < end: time.sleep(0.01)
print(c.stats()["l2_writes"])`);
  const got = await c.fetch('from:python', unloadable);
  assert.equal(got.status, 'l2-hit');
  assert.deepEqual({ ...got.value, raw: [...got.value.raw] }, { lang: 'python', n: [1, 2, 3], pi: 3.5, raw: [1], none: null });
  c.set('from:node', { lang: 'node', n: [1, 2, 3], big: 2n ** 62n * 3n, ok: true });
  await waitFor(() => c.stats().l2Writes === 1);
  const out = py(`import sys, json, healcache
c = healcache.Cache(redis=sys.argv[1])
f = c.fetch_sync("from:node", lambda: 1 / 0) if hasattr(c, "fetch_sync") else None
v = c.get_or_load_sync("from:node", lambda: 1 / 0)
print(json.dumps([v, c.stats()["l2_hits"]]))`);
  assert.deepEqual(JSON.parse(out.split('\n').pop()), [{ lang: 'node', n: [1, 2, 3], big: 3 * 2 ** 62, ok: true }, 1]);

  // a Rust process reads Node's entry, and writes one Node reads (`l2_get`, built by make
  // build-l2-tools; tests/python/test_shared_tier.py has Rust read Python's). Its values are
  // serde_json::Value, which has no bytes: Python's entry (it holds bytes) is a miss there.
  const r = spawnSync(L2_GET, [redis.url, '--set', 'from:rust={"lang":"rust","n":[1,2,3]}', 'from:node', 'from:python'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const [fromNode, fromPython] = r.stdout.trim().split('\n');
  assert.deepEqual(JSON.parse(fromNode), { lang: 'node', n: [1, 2, 3], big: 3 * 2 ** 62, ok: true });
  assert.equal(fromPython, 'error: LoaderError');
  const rust = await c.fetch('from:rust', unloadable);
  assert.deepEqual([rust.value, rust.status], [{ lang: 'rust', n: [1, 2, 3] }, 'l2-hit']);
});

test('the fleet lock: three caches missing one key rebuild it once, the others fleet-coalesced', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const caches = [0, 1, 2].map(() => new Cache({ redis: redis.url, fleetLock: 'all', fleetLockLease: 2000 }));
  t.after(() => caches.map((c) => c.close()));
  let calls = 0;
  const load = async () => {
    calls += 1;
    await sleep(200);
    return 'built';
  };
  const got = await Promise.all(caches.map((c) => c.fetch('hot', load)));
  assert.equal(calls, 1);
  assert.deepEqual(got.map((f) => f.status).sort(), ['fleet-coalesced', 'fleet-coalesced', 'loaded']);
  assert.ok(got.every((f) => f.value === 'built'));
  const s = caches.map((c) => c.stats());
  assert.ok(s.reduce((n, x) => n + x.l2LockAcquired, 0) >= 1);
  assert.equal(s.reduce((n, x) => n + x.l2LockContended, 0), s.reduce((n, x) => n + x.l2LockWait.counts.reduce((a, b) => a + b, 0), 0));
});

test('a rebuild that lost its lease is fenced out, and the newer value stays in every cache', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const opts = { redis: redis.url, fleetLock: 'all', fleetLockLease: 100, fleetLockMaxHold: 100 };
  const [a, b] = [new Cache(opts), new Cache(opts)];
  t.after(() => [a.close(), b.close()]);
  const slow = a.fetch('acct', async () => {
    await sleep(800);
    return 'A';
  });
  await waitFor(() => a.stats().l2LockAcquired === 1);
  const fb = await b.fetch('acct', async () => 'B');
  assert.deepEqual([fb.status, fb.value], ['loaded', 'B']);
  const fa = await slow;
  assert.deepEqual([fa.status, fa.value], ['fenced-out', 'A']);
  assert.equal(a.stats().l2FencedOut, 1);
  assert.deepEqual([a.get('acct'), b.get('acct')], ['B', 'B']);
});

// Promise P7: another instance's write reaches this instance's read mirror too (its hits are
// answered in JS, without a call into the core that the bus message changed).
test('a bus invalidation reaches the JS read mirror: get and getOrLoad stop serving the old value', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const [a, b] = [new Cache({ redis: redis.url, ttl: 60_000 }), new Cache({ redis: redis.url, ttl: 60_000 })];
  t.after(() => [a.close(), b.close()]);
  a.set('doc', 'old');
  await waitFor(() => a.stats().l2Writes === 1);
  assert.equal((await b.fetch('doc', unloadable)).status, 'l2-hit');
  // mirror hits now
  for (let i = 0; i < 100; i++) assert.equal(b.get('doc'), 'old');
  assert.equal(await b.getOrLoad('doc', unloadable), 'old');
  a.set('doc', 'new');
  await waitFor(() => b.stats().l2BusInvalidated === 1);
  assert.notEqual(b.get('doc'), 'old', 'get: the changed copy is stale, no longer a hit');
  assert.equal(await b.getOrLoad('doc', unloadable), 'new', 'getOrLoad re-reads L2');
  assert.equal(b.get('doc'), 'new');
  a.delete('doc');
  await waitFor(() => b.stats().l2BusInvalidated === 2);
  assert.equal(b.get('doc'), undefined, 'a deleted key is gone here too');
  // each message b received is in its invalidation-latency histogram (one clock here)
  const s = b.stats();
  assert.equal(s.l2BusLatency.counts.reduce((n, c) => n + c, 0), s.l2BusReceived);
  assert.ok(s.l2BusReceived >= 2);
  assert.equal(s.l2SuspectRereads, 0, 'no gap: nothing was suspect');
});

test('a tag invalidated in one cache reaches the other\'s read mirror; hard removes', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const opts = { redis: redis.url, ttl: 60_000, grace: 60_000 };
  const [a, b] = [new Cache(opts), new Cache(opts)];
  t.after(() => [a.close(), b.close()]);
  a.set('user:1', 'u1', { tags: ['team:7'] });
  a.set('user:2', 'u2', { tags: ['team:8'] });
  // tags a did not know: each value is written, then again with the tag's version read
  await waitFor(() => a.stats().l2Writes === 4);
  await waitFor(() => b.stats().l2BusReceived >= a.stats().l2BusSent);
  assert.equal((await b.fetch('user:1', unloadable)).status, 'l2-hit');
  for (let i = 0; i < 100; i++) assert.equal(b.get('user:1'), 'u1');
  assert.equal(a.get('user:1'), 'u1');
  assert.equal(await a.invalidateTag('team:7'), 1);
  assert.equal(a.get('user:1'), undefined, 'the invalidating cache\'s own mirror');
  assert.equal(a.get('user:2'), 'u2');
  await waitFor(() => b.stats().l2TagReceived === 1);
  assert.equal(b.get('user:1'), undefined, 'the other cache\'s mirror');
  const f = await b.fetch('user:1', async () => { throw new Error('origin down'); });
  assert.deepEqual([f.value, f.status], ['u1', 'stale-fail-safe'], 'soft: the stale copy is a fallback');
  a.set('user:3', 'u3', { tags: ['team:9'] });
  assert.equal(await a.invalidateTag('team:9', { hard: true }), 1);
  assert.equal(a.peek('user:3'), undefined);
  assert.throws(() => a.set('k', 1, { tags: 'team' }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  assert.throws(() => a.set('k', 1, { tags: Array.from({ length: 17 }, (_, i) => `t${i}`) }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  assert.equal(a.peek('k'), undefined, 'refused: nothing written');
});

test('tags on a cache without a shared tier, set and fetched', { skip: WASM }, async () => {
  const c = new Cache({ ttl: 60_000 });
  c.set('a', 1, { tags: ['t'] });
  c.set('b', 2, { tags: ['u'] });
  assert.equal((await c.fetch('f', async () => 3, { tags: ['t'] })).status, 'loaded');
  assert.equal(c.get('a'), 1);
  assert.equal(await c.invalidateTag('t'), 2);
  assert.deepEqual([c.get('a'), c.get('b'), c.get('f')], [undefined, 2, undefined]);
  await assert.rejects(c.fetch('g', async () => 1, { tags: [''] }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
});

test('P7: a soft invalidation keeps an entry without expiry stale for grace; a hard one after it removes the stale entry', { skip: WASM }, async () => {
  const { ManualClock } = await import('healcache');
  const clock = new ManualClock();
  const c = new Cache({ clock, ttl: 1000, grace: 500 });
  const down = async () => { throw new Error('origin down'); };
  c.set('withTtl', 'A', { tags: ['t'] });
  c.set('noTtl', 'D', { tags: ['t'], ttl: Infinity });
  assert.equal(await c.invalidateTag('t'), 2);
  assert.deepEqual([c.get('withTtl'), c.get('noTtl'), c.size], [undefined, undefined, 2]);
  for (const [k, v] of [['withTtl', 'A'], ['noTtl', 'D']]) {
    const f = await c.fetch(k, down);
    assert.deepEqual([f.value, f.status], [v, 'stale-fail-safe'], k);
  }
  clock.advance(500);
  await assert.rejects(c.fetch('noTtl', down), /origin down/, 'past its grace window');

  c.set('x', 'X', { tags: ['h'] });
  assert.equal(await c.invalidateTag('h'), 1);
  assert.equal(await c.invalidateTag('h', { hard: true }), 0, 'x was stale already: not counted, removed');
  await assert.rejects(c.fetch('x', down), /origin down/, 'no fallback after a hard invalidation');
  assert.equal(c.peek('x'), undefined);
});

test('tags are refused by the WebAssembly package with a typed error', { skip: !WASM }, async () => {
  const c = new Cache();
  assert.throws(() => c.set('a', 1, { tags: ['t'] }), (e) => e.code === 'InvalidConfig');
  await assert.rejects(c.invalidateTag('t'), (e) => e.code === 'InvalidConfig');
  await assert.rejects(c.fetch('a', async () => 1, { tags: ['t'] }), (e) => e.code === 'InvalidConfig');
  assert.equal(c.peek('a'), undefined);
});

test('fleetLock is checked: a typed error names it', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  assert.throws(() => new Cache({ redis: redis.url, fleetLock: 'sometimes' }), (e) => e.code === 'InvalidConfig' && e.field === 'fleetLock');
  assert.throws(() => new Cache({ redis: redis.url, fleetLock: 1 }), (e) => e.code === 'InvalidConfig' && e.field === 'fleetLock');
  assert.throws(() => new Cache({ redis: redis.url, fleetLockLease: -1 }), (e) => e.code === 'InvalidConfig' && e.field === 'fleetLockLease');
});

test('the fleet verifier settings reach the shared tier; bad values are refused and change nothing', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const c = new Cache({ redis: redis.url, healing: { fleetVerify: false, fleetVerifyLease: 2000, fleetVerifyScanBudget: 250 } });
  t.after(() => c.close());
  const shown = (cfg) => [cfg.fleetVerify, cfg.fleetVerifyLease, cfg.fleetVerifyScanBudget];
  assert.deepEqual(shown(c.healingConfig()), [false, 2000, 250]);
  c.set('k:1', 1);
  c.registerSource('k:', () => 1);
  for (let i = 0; i < 3; i++) await c.verifyNow();
  await sleep(200);
  assert.equal(c.stats().l2VerifierAcquired, 0, 'off: no lease taken');
  c.setHealing({ fleetVerify: true });
  await c.verifyNow();
  for (let i = 0; i < 500 && c.stats().l2VerifierAcquired === 0; i++) await sleep(10);
  assert.ok(c.stats().l2VerifierAcquired >= 1, 'on: a lease taken');
  // at the bounds, in ms
  c.setHealing({ fleetVerifyLease: 1, fleetVerifyScanBudget: 10_000_000 });
  for (const bad of [{ fleetVerifyLease: 0.5 }, { fleetVerifyLease: 0 }, { fleetVerifyScanBudget: 0 }, { fleetVerifyScanBudget: 10_000_001 }]) {
    const name = Object.keys(bad)[0];
    assert.throws(() => c.setHealing(bad), (e) => e.code === 'InvalidConfig' && e.field === `healing.${name}`, name);
  }
  assert.deepEqual(shown(c.healingConfig()), [true, 1, 10_000_000]);
});

// One fleet, three languages: a Rust, a Python and a Node instance miss one key at the same
// moment under the fleet lock; exactly one of them runs its loader.
const FLEET_NODE = path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'release/examples/fleet_node');
test('Rust, Python and Node instances rebuild a key once for the fleet', { skip: skip || WASM || (!existsSync(PY) && 'no .venv') }, async (t) => {
  const redis = await redisFor(t);
  // each child's output lines, in order, whether they arrive before or after they are asked for
  const lines = (child) => {
    let buf = '';
    const ready = [];
    const waiting = [];
    child.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (waiting.length > 0) waiting.shift()(line);
        else ready.push(line);
      }
    });
    return () => (ready.length > 0 ? Promise.resolve(ready.shift()) : new Promise((resolve) => waiting.push(resolve)));
  };
  const rust = spawn(FLEET_NODE, ['--redis', redis.url, '--fleet-lock', 'all'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const python = spawn(PY, ['-c', `import asyncio, sys, time, healcache
c = healcache.Cache(redis=sys.argv[1], fleet_lock="all")
end = time.time() + 10
while not c.ready() and time.time() < end:
    time.sleep(0.01)
print("ready", flush=True)
start = float(sys.stdin.readline())
async def load():
    await asyncio.sleep(0.3)
    return "python"
async def go():
    while time.time() * 1000 < start:
        await asyncio.sleep(0.001)
    return await c.fetch("fleet", load)
f = asyncio.run(go())
print(f.status, f.value)`, redis.url], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => [rust.kill('SIGKILL'), python.kill('SIGKILL')]);
  const [rustLine, pyLine] = [lines(rust), lines(python)];
  const c = new Cache({ redis: redis.url, fleetLock: 'all' });
  t.after(() => c.close());
  assert.equal(await rustLine(), '"ready"');
  assert.equal(await pyLine(), 'ready');
  await waitFor(() => c.ready());
  // the moment is set once every child has started (a fixed head start may not cover an
  // interpreter's start on a loaded machine)
  const start = Date.now() + 500;
  python.stdin.end(`${start}\n`);
  await sleep(start - Date.now());
  rust.stdin.write('fetch fleet 300 "rust"\n');
  const node = await c.fetch('fleet', async () => {
    await sleep(300);
    return 'node';
  });
  const r = JSON.parse(await rustLine());
  const [pyStatus, pyValue] = (await pyLine()).split(' ');
  const statuses = [r.status, pyStatus, node.status].sort();
  assert.deepEqual(statuses, ['fleet-coalesced', 'fleet-coalesced', 'loaded'], `rust ${r.status}, python ${pyStatus}, node ${node.status}`);
  assert.ok(r.value === pyValue && pyValue === node.value, `one value for all: ${r.value} ${pyValue} ${node.value}`);
  rust.stdin.end();
});

// Three instances rebuilding and invalidating the same keys (fleet lock, stale-while-revalidate,
// XFetch, negative caching): every fetch is answered with a value or a "not found", never with a
// value the wrapper already let go (a value read from L2 is numbered apart from this process's
// loads, and decides none of them).
test('concurrent fetches across instances always get their value', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const opts = { redis: redis.url, l2Timeout: 1000, fleetLock: 'all', ttl: 100, grace: 5000, staleWhileRevalidate: true, xfetch: true, negativeTtl: 100, loadTimeout: 10_000 };
  const caches = [new Cache(opts), new Cache(opts), new Cache(opts)];
  t.after(() => caches.map((c) => c.close()));
  const { n, errors } = await hammerFetches(caches, { ms: 2000, loops: 16 });
  assert.deepEqual(errors, [], `${n} answered`);
  assert.ok(n > 1000, `${n} answered`);
});
