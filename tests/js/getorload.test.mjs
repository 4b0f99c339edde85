// Coalescing through the core's flight table, loader errors, cancellation, timeouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cache, WASM, sleep } from './helpers.mjs';

test('1,000 concurrent callers share one loader call', async () => {
  const c = new Cache();
  let calls = 0;
  const value = { v: 1 };
  const loader = async (key) => {
    calls++;
    assert.equal(key, 'cold');
    await sleep(20);
    return value;
  };
  const all = await Promise.all(Array.from({ length: 1000 }, () => c.getOrLoad('cold', loader)));
  assert.equal(calls, 1);
  assert.equal(all.length, 1000);
  for (const v of all) assert.equal(v, value);
  const s = c.stats();
  assert.equal(s.loads, 1);
  assert.equal(s.coalesced, 999);
  assert.equal(s.inFlight, 0);
  assert.equal(c.get('cold'), value);
});

test('a loader may return a plain value', async () => {
  const c = new Cache();
  assert.equal(await c.getOrLoad('k', () => 7), 7);
  assert.equal(c.get('k'), 7);
});

test("the loader's rejection reaches every waiter unchanged and is not cached", async () => {
  const c = new Cache();
  const boom = new Error('origin down');
  boom.status = 503;
  let calls = 0;
  const loader = async () => {
    calls++;
    await sleep(10);
    throw boom;
  };
  const results = await Promise.allSettled(Array.from({ length: 50 }, () => c.getOrLoad('k', loader)));
  assert.equal(calls, 1);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.equal(r.reason, boom);
  }
  assert.equal(c.stats().loadErrors, 1);
  assert.equal(c.has('k'), false);
  assert.equal(await c.getOrLoad('k', async () => 'ok'), 'ok');
  assert.equal(calls, 1);
});

test('a rejection with a non-Error value reaches waiters as that value', async () => {
  const c = new Cache();
  const reason = { why: 'not an Error' };
  const results = await Promise.allSettled([1, 2, 3].map(() => c.getOrLoad('k', () => Promise.reject(reason))));
  for (const r of results) assert.equal(r.reason, reason);
  await assert.rejects(c.getOrLoad('s', () => Promise.reject('text')), (e) => e === 'text');
});

test('a loader that throws synchronously rejects every waiter and the process goes on', async () => {
  const c = new Cache();
  const err = new TypeError('sync throw');
  const loader = () => {
    throw err;
  };
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => c.getOrLoad('k', loader)));
  for (const r of results) assert.equal(r.reason, err);
  assert.equal(await c.getOrLoad('k', () => 'fine'), 'fine');
});

test('aborting the first caller does not fail the others', async () => {
  const c = new Cache();
  let calls = 0;
  const loader = async () => {
    calls++;
    await sleep(50);
    return 'value';
  };
  const ac = new AbortController();
  const first = c.getOrLoad('k', loader, { signal: ac.signal });
  const others = Array.from({ length: 5 }, () => c.getOrLoad('k', loader));
  await sleep(10);
  ac.abort();
  // the signal's own reason, as fetch() rejects
  await assert.rejects(first, (e) => e === ac.signal.reason && e.name === 'AbortError');
  assert.deepEqual(await Promise.all(others), Array(5).fill('value'));
  assert.equal(calls, 1);
  assert.equal(c.get('k'), 'value');
});

test('an already aborted signal rejects at once with its reason', async () => {
  const c = new Cache();
  const ac = new AbortController();
  const why = new Error('gave up');
  ac.abort(why);
  let called = false;
  await assert.rejects(c.getOrLoad('k', () => { called = true; return 1; }, { signal: ac.signal }),
    (e) => e === why);
  assert.equal(called, false);
});

test('the only caller aborting leaves the key loadable again', async () => {
  const c = new Cache();
  const ac = new AbortController();
  const p = c.getOrLoad('k', () => sleep(30).then(() => 'late'), { signal: ac.signal });
  await sleep(5);
  ac.abort();
  await assert.rejects(p, (e) => e === ac.signal.reason);
  assert.equal(await c.getOrLoad('k', () => 'fresh'), 'fresh');
});

test('loadTimeout rejects every waiter with LoadTimeout', async () => {
  const c = new Cache({ loadTimeout: 30 });
  const results = await Promise.allSettled([1, 2].map(() => c.getOrLoad('k', () => sleep(300).then(() => 1))));
  for (const r of results) assert.equal(r.reason.code, 'LoadTimeout');
  assert.equal(c.stats().loadTimeouts, 1);
});

test('getOrLoad checks its key', async () => {
  const c = new Cache({ maxKeyLen: 4 });
  await assert.rejects(c.getOrLoad('too-long', () => 1), (e) => e.code === 'KeyTooLong');
  await assert.rejects(c.getOrLoad(5, () => 1), (e) => e instanceof TypeError && e.code === 'InvalidKey');
});

test('maxInFlight bounds distinct loads with TooManyLoads', async () => {
  const c = new Cache({ maxInFlight: 2 });
  const slow = () => sleep(30).then(() => 1);
  const a = c.getOrLoad('a', slow);
  const b = c.getOrLoad('b', slow);
  await sleep(5);
  await assert.rejects(c.getOrLoad('c', slow), (e) => e.code === 'TooManyLoads');
  assert.deepEqual(await Promise.all([a, b]), [1, 1]);
});

test('a write during the load wins over the loaded value (fenced)', async () => {
  const c = new Cache();
  const p = c.getOrLoad('k', () => sleep(30).then(() => 'stale'));
  await sleep(5);
  c.set('k', 'fresh');
  assert.equal(await p, 'stale');
  assert.equal(c.get('k'), 'fresh');
  assert.equal(c.stats().fencedWrites, 1);
});

test('a loader asking for its own key gets RecursiveLoad instead of waiting forever', async () => {
  const c = new Cache();
  const loadA = async () => {
    await sleep(1);
    return c.getOrLoad('a', loadA);
  };
  await assert.rejects(c.getOrLoad('a', loadA), (e) => e.code === 'RecursiveLoad');
  // a cycle through another key too
  const loadX = async () => c.getOrLoad('y', async () => c.getOrLoad('x', loadX));
  await assert.rejects(c.getOrLoad('x', loadX), (e) => e.code === 'RecursiveLoad');
  // nesting distinct keys is fine
  assert.equal(await c.getOrLoad('outer', async () => `${await c.getOrLoad('inner', () => 'i')}o`), 'io');
});

test('a loader that is not a function is refused on a hit as on a miss', async () => {
  const c = new Cache();
  c.set('k', 'v');
  for (const bad of [5, 'nope', undefined, null, {}]) {
    for (const key of ['k', 'miss']) {
      await assert.rejects(c.getOrLoad(key, bad), (e) => e.code === 'ERR_INVALID_ARG_TYPE', `getOrLoad(${key}, ${String(bad)})`);
      await assert.rejects(c.getOrLoad(key, bad, { ttl: 10 }), (e) => e.code === 'ERR_INVALID_ARG_TYPE', `getOrLoad(${key}, ${String(bad)}, opts)`);
      await assert.rejects(c.fetch(key, bad), (e) => e.code === 'ERR_INVALID_ARG_TYPE', `fetch(${key}, ${String(bad)})`);
    }
  }
  assert.equal(c.get('k'), 'v');
  assert.equal(c.has('miss'), false);
});

test('a loader promise collected before it settles fails its load with a message that says so', { skip: WASM }, () => {
  // a fresh process that may force collections: nothing but the addon refers to the promise
  const entry = path.join(fileURLToPath(new URL('../..', import.meta.url)), 'js', 'node', 'index.mjs');
  const script = `
import { Cache } from ${JSON.stringify(entry)};
const c = new Cache();
const collect = setInterval(() => globalThis.gc(), 5);
try {
  await c.getOrLoad('k', () => new Promise(() => {}));
  console.log(JSON.stringify({ resolved: true }));
} catch (e) {
  console.log(JSON.stringify({ code: e.code, message: e.message, inFlight: c.stats().inFlight }));
}
clearInterval(collect);
`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  const r = JSON.parse(out.trim().split('\n').pop());
  assert.equal(r.code, 'LoaderError');
  assert.match(r.message, /promise was collected before it settled/);
  assert.equal(r.inFlight, 0);
});
