// WriteBehind from Node: conversion, error codes, the JS writer called on the JS thread, values
// carried to the writer, close. The queue's algorithms are tested in Rust
// (core/tests/write_behind.rs); these are the same behaviours, smaller. Node addon only: the
// WebAssembly package refuses `WriteBehind` (the drainer needs the addon's runtime).
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { redisAvailable, redisFor } from './rediskit.mjs';
import { Cache, WriteBehind, WASM, sleep } from './helpers.mjs';

const node = WASM ? 'the WebAssembly package refuses WriteBehind' : false;

async function waitFor(f, ms = 20000) {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${f}`);
    await sleep(2);
  }
}

/** A writer that records the batches it accepts and waits while its gate is shut. */
function gated(open = false) {
  const w = { batches: [], calls: 0 };
  let release;
  let gate = open ? Promise.resolve() : new Promise((r) => (release = r));
  w.open = () => {
    if (release) release();
    gate = Promise.resolve();
  };
  w.writer = async (batch) => {
    w.calls += 1;
    await gate;
    w.batches.push(batch);
  };
  return w;
}

const FAST = { flushInterval: 1, retryMin: 1, retryMax: 5 };

test('the WebAssembly package refuses WriteBehind with InvalidConfig', { skip: !WASM }, () => {
  assert.throws(() => new WriteBehind(new Cache(), async () => {}), (e) => e.code === 'InvalidConfig' && e.field === 'WriteBehind');
});

test('set and delete reach the cache at once and the writer in batches', { skip: node }, async () => {
  const cache = new Cache();
  const w = gated(true);
  const wb = new WriteBehind(cache, w.writer, { batch: 10, flushInterval: 3_600_000 });
  assert.ok((await wb.set('a', { n: 1 })) > 0);
  assert.deepEqual(cache.get('a'), { n: 1 });
  const doc = { same: true };
  await wb.set('doc', doc);
  assert.equal(cache.get('doc'), doc, 'the very value stored');
  assert.equal(await wb.delete('doc'), true); // coalesced over the queued put
  assert.equal(cache.get('doc'), undefined);
  assert.equal(cache.has('doc'), false);
  assert.equal(wb.closed, false);
  assert.equal(await wb.close(20_000), 0);
  assert.equal(wb.closed, true);
  assert.deepEqual(w.batches.flat(), [
    { op: 'put', key: 'a', value: { n: 1 } },
    { op: 'delete', key: 'doc' },
  ]);
  const s = wb.stats();
  assert.deepEqual([s.flushedItems, s.failed, s.queueDepth, s.closed], [2, 0, 0, true]);
  assert.equal(s.batchSizes.length, s.batchSizeBuckets.length + 1);
  assert.match(wb.prometheus('x'), /^healcache_write_behind_flushes_total\{cache="x"\} \d+$/m);
});

test('the queue bound holds under a stalled writer: the next write rejects with QueueFull and changes nothing', { skip: node }, async () => {
  const cache = new Cache();
  const w = gated();
  const wb = new WriteBehind(cache, w.writer, { maxQueue: 5, batch: 1, ...FAST });
  for (let i = 0; i < 5; i++) await wb.set(`k${i}`, i);
  await waitFor(() => w.calls === 1); // the first batch is under way, still counted
  assert.equal(wb.stats().queueDepth, 5);
  await assert.rejects(wb.set('k5', 5), (e) => e.code === 'QueueFull');
  await assert.rejects(wb.delete('k0x'), (e) => e.code === 'QueueFull');
  assert.equal(cache.get('k5'), undefined);
  assert.equal(cache.has('k5'), false);
  assert.equal(wb.stats().queueDepth, 5);
  // a key still queued is updated in place, full or not
  await wb.set('k4', 40);
  assert.equal(cache.get('k4'), 40);
  w.open();
  assert.equal(await wb.close(20_000), 0);
  const got = w.batches.flat();
  assert.equal(got.length, 5);
  assert.deepEqual(got.at(-1), { op: 'put', key: 'k4', value: 40 });
  assert.ok(!got.some((o) => o.key === 'k5'));
});

test('a maxQueue below the default batch is its own batch; a batch above it is refused', { skip: node }, async () => {
  const c = new Cache();
  const w = gated(false);
  const wb = new WriteBehind(c, w.writer, { maxQueue: 3, flushInterval: 3_600_000 });
  for (let i = 0; i < 3; i++) wb.set(`k${i}`, i);
  await waitFor(() => w.calls === 1);
  w.open();
  assert.equal(await wb.close(), 0);
  assert.deepEqual(w.batches.map((b) => b.map((o) => o.key)), [['k0', 'k1', 'k2']]);
  assert.throws(() => new WriteBehind(c, w.writer, { maxQueue: 3, batch: 4 }), (e) => e.code === 'InvalidConfig' && e.field === 'batch');
});

test('onFull block waits for room, then succeeds', { skip: node }, async () => {
  const cache = new Cache();
  const w = gated();
  const wb = new WriteBehind(cache, w.writer, { maxQueue: 1, batch: 1, ...FAST, onFull: { block: 60_000 } });
  await wb.set('a', 1);
  let done = false;
  const waiting = wb.set('b', 2).then((v) => {
    done = true;
    return v;
  });
  await sleep(50);
  assert.equal(done, false);
  assert.equal(cache.get('b'), undefined, 'not written while it waits for room');
  w.open();
  assert.ok((await waiting) > 0);
  assert.equal(cache.get('b'), 2);
  assert.equal(await wb.close(20_000), 0);
  assert.deepEqual(w.batches.flat(), [
    { op: 'put', key: 'a', value: 1 },
    { op: 'put', key: 'b', value: 2 },
  ]);
  // a block that times out is a QueueFull too
  const stalled = gated();
  const wb2 = new WriteBehind(new Cache(), stalled.writer, { maxQueue: 1, batch: 1, ...FAST, onFull: { block: 20 } });
  await wb2.set('a', 1);
  await assert.rejects(wb2.set('b', 2), (e) => e.code === 'QueueFull');
  assert.equal(await wb2.close(1), 1);
});

test('100 writes of one key coalesce into one item, the last value', { skip: node }, async () => {
  const w = gated(true);
  const wb = new WriteBehind(new Cache(), w.writer, { flushInterval: 3_600_000 });
  const writes = [];
  for (let i = 0; i < 100; i++) writes.push(wb.set('k', { i }));
  await Promise.all(writes);
  assert.equal(wb.stats().queueDepth, 1);
  assert.equal(await wb.close(20_000), 0);
  assert.deepEqual(w.batches, [[{ op: 'put', key: 'k', value: { i: 99 } }]]);
});

test('batches hold at most `batch` items, in queue order', { skip: node }, async () => {
  const w = gated(true);
  const wb = new WriteBehind(new Cache(), w.writer, { batch: 7, flushInterval: 3_600_000 });
  for (let i = 0; i < 50; i++) await wb.set(`k${i}`, i);
  assert.equal(await wb.close(20_000), 0);
  assert.ok(w.batches.every((b) => b.length >= 1 && b.length <= 7));
  assert.ok(w.batches.some((b) => b.length === 7));
  assert.deepEqual(w.batches.flat().map((o) => o.value), [...Array(50).keys()]);
});

test('a writer failing twice then succeeding delivers everything', { skip: node }, async () => {
  const calls = [];
  const writer = async (batch) => {
    calls.push(batch);
    if (calls.length <= 2) throw new Error('db down');
  };
  // the batch goes once full: a and b together, however long the first set takes (with
  // FAST's 1 ms flush interval a slow first call sent a alone, and the calls were four)
  const wb = new WriteBehind(new Cache(), writer, { ...FAST, batch: 2, flushInterval: 60_000 });
  await wb.set('a', 1);
  await wb.set('b', 2);
  assert.equal(await wb.close(20_000), 0);
  assert.equal(calls.length, 3);
  assert.deepEqual(calls[2], [
    { op: 'put', key: 'a', value: 1 },
    { op: 'put', key: 'b', value: 2 },
  ]);
  const s = wb.stats();
  assert.deepEqual([s.failures, s.failed, s.flushedItems], [2, 0, 2]);
  assert.deepEqual(wb.failed(), []);
});

test('a writer always failing: items counted as failed and kept with the error', { skip: node }, async () => {
  const wb = new WriteBehind(new Cache(), async () => {
    throw new TypeError('bad row');
  }, { ...FAST, attempts: 2 });
  await wb.set('a', { v: 1 });
  await wb.delete('b');
  assert.equal(await wb.close(20_000), 0);
  assert.equal(wb.stats().failed, 2);
  const failed = [
    { op: 'put', key: 'a', value: { v: 1 }, attempts: 2, error: 'TypeError: bad row' },
    { op: 'delete', key: 'b', attempts: 2, error: 'TypeError: bad row' },
  ];
  assert.deepEqual(wb.failed(), failed);
  assert.deepEqual(wb.failed({ take: true }), failed);
  assert.deepEqual(wb.failed(), []);
  assert.equal(wb.stats().failed, 2, 'still counted');
  // a writer that throws before returning a promise, or rejects with a non-Error, fails too
  const wb2 = new WriteBehind(new Cache(), () => {
    throw 'plain'; // eslint-disable-line no-throw-literal
  }, { ...FAST, attempts: 1 });
  await wb2.set('x', 1);
  assert.equal(await wb2.close(20_000), 0);
  assert.deepEqual(wb2.failed().map((f) => f.error), ['plain']);
});

test('close flushes what it can and resolves to the count left; later writes reject with Closed', { skip: node }, async () => {
  const cache = new Cache();
  const w = gated();
  const wb = new WriteBehind(cache, w.writer, FAST);
  await wb.set('a', 1);
  await wb.set('b', 2);
  assert.equal(await wb.close(30), 2);
  assert.deepEqual(wb.failed().map((f) => [f.key, f.value]).sort(), [['a', 1], ['b', 2]]);
  await assert.rejects(wb.set('c', 3), (e) => e.code === 'Closed');
  await assert.rejects(wb.delete('a'), (e) => e.code === 'Closed');
  assert.equal(cache.get('c'), undefined);
  assert.equal(cache.get('a'), 1, 'a refused delete changes nothing');
  w.open();
});

test('the writer gets each queued value even after the cache evicted it and reused its slot', { skip: node }, async () => {
  const cache = new Cache({ maxEntries: 2 });
  const w = gated();
  const wb = new WriteBehind(cache, w.writer, { batch: 100, flushInterval: 3_600_000 });
  for (let i = 0; i < 40; i++) {
    await wb.set(`wb${i}`, { i });
    cache.set(`churn${i}`, { churn: i }); // evicts, frees slots, takes free ones
  }
  for (let i = 0; i < 40; i++) await wb.set(`wb${i}`, { i, again: true }); // coalesced over
  w.open();
  assert.equal(await wb.close(20_000), 0);
  const got = w.batches.flat();
  assert.deepEqual(got, [...Array(40).keys()].map((i) => ({ op: 'put', key: `wb${i}`, value: { i, again: true } })));
  for (let i = 0; i < 3; i++) cache.set(`after${i}`, i);
  assert.equal(cache.get('after2'), 2);
});

test('bad settings are refused with InvalidConfig naming the option', { skip: node }, () => {
  const c = new Cache();
  const field = (o) => {
    try {
      new WriteBehind(c, async () => {}, o); // eslint-disable-line no-new
    } catch (e) {
      assert.equal(e.code, 'InvalidConfig', String(e));
      return e.field;
    }
    throw new Error('accepted');
  };
  assert.equal(field({ maxQueue: 0 }), 'maxQueue');
  assert.equal(field({ maxQueue: 1.5 }), 'maxQueue');
  assert.equal(field({ batch: 20, maxQueue: 10 }), 'batch');
  assert.equal(field({ flushInterval: -1 }), 'flushInterval');
  assert.equal(field({ retryMin: 10, retryMax: 5 }), 'retryMin');
  assert.equal(field({ attempts: 0 }), 'attempts');
  assert.equal(field({ onFull: 'wait' }), 'onFull');
  assert.equal(field({ maxQueue: '5' }), 'maxQueue');
  assert.throws(() => new WriteBehind({}, async () => {}), (e) => e.code === 'ERR_INVALID_ARG_TYPE');
  assert.throws(() => new WriteBehind(c, 'nope'), (e) => e.code === 'ERR_INVALID_ARG_TYPE');
});

test('settings are accepted at their bounds and refused one step past (P5)', { skip: node }, async () => {
  // maxQueue 10,000,000, batch up to maxQueue, attempts 1,000, a day (86,400,000 ms) for
  // flushInterval, retryMin, retryMax and the block timeout
  const day = 86_400_000;
  const top = { maxQueue: 10_000_000, batch: 10_000_000, flushInterval: day, retryMin: day, retryMax: day, attempts: 1000, onFull: { block: day } };
  const c = new Cache();
  const w = gated(true);
  const wb = new WriteBehind(c, w.writer, top);
  await wb.set('a', 1);
  assert.equal(await wb.close(5000), 0, 'the partial batch went at close, not after a day');
  assert.deepEqual(w.batches, [[{ op: 'put', key: 'a', value: 1 }]]);
  const over = day + 1;
  for (const [change, field] of [
    [{ maxQueue: 10_000_001 }, 'maxQueue'],
    [{ batch: 10_000_001 }, 'batch'],
    [{ flushInterval: over }, 'flushInterval'],
    [{ retryMax: over }, 'retryMax'],
    [{ retryMin: over, retryMax: over }, 'retryMin'],
    [{ attempts: 1001 }, 'attempts'],
    [{ onFull: { block: over } }, 'onFull'],
  ]) {
    assert.throws(
      () => new WriteBehind(c, w.writer, { ...top, ...change }),
      (e) => e.code === 'InvalidConfig' && e.field === field,
      JSON.stringify(change),
    );
  }
});

test('with a shared tier the value is in L2 at once, while the writer is stalled', { skip: node || (!redisAvailable() && 'redis-server is not installed') }, async (t) => {
  const redis = await redisFor(t);
  const a = new Cache({ redis: redis.url, ttl: 60_000 });
  const b = new Cache({ redis: redis.url, ttl: 60_000 });
  t.after(() => [a.close(), b.close()]);
  const w = gated();
  const wb = new WriteBehind(a, w.writer, FAST);
  await wb.set('user:1', { name: 'Ada' });
  await waitFor(() => a.stats().l2Writes === 1);
  const f = await b.fetch('user:1', async () => {
    throw new Error('the loader ran: the value should have come from L2');
  });
  assert.equal(f.status, 'l2-hit');
  assert.deepEqual(f.value, { name: 'Ada' });
  assert.equal(w.batches.length, 0, 'the writer has not written yet');
  w.open();
  assert.equal(await wb.close(20_000), 0);
  assert.deepEqual(w.batches.flat(), [{ op: 'put', key: 'user:1', value: { name: 'Ada' } }]);
});

for (const writer of ['ok', 'stuck']) {
  test(`at exit, queued items are written or reported, never dropped silently (${writer} writer)`, { skip: node }, () => {
    // the event loop running dry without close(): the queue sends what it holds, as close() does
    // within the exit timeout; what it could not send is reported on stderr
    const entry = path.join(fileURLToPath(new URL('../..', import.meta.url)), 'js', 'node', 'index.mjs');
    const script = `
import { Cache, WriteBehind } from ${JSON.stringify(entry)};
const stuck = ${JSON.stringify(writer)} === 'stuck';
const wb = new WriteBehind(new Cache(), async (batch) => {
  if (stuck) {
    // a writer that never answers, which holds nothing open
    await new Promise((resolve) => { globalThis.held = resolve; });
  }
  console.log('wrote', JSON.stringify(batch.map((o) => o.key).sort()));
}, { flushInterval: 3_600_000 });
await wb.set('a', 1);
await wb.set('b', 2);
`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    if (writer === 'ok') {
      assert.match(r.stdout, /wrote \["a","b"\]/);
      assert.doesNotMatch(r.stderr, /not written/);
    } else {
      assert.doesNotMatch(r.stdout, /wrote/);
      assert.match(r.stderr, /healcache: 2 write-behind item\(s\) were not written before exit/);
    }
  });
}
