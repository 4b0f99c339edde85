// The default bounds on keys and loads (P5, "Everything is bounded") with `new Cache()` at its
// defaults: `maxKeyLen` 4,096 bytes and `maxInFlight` 10,000 keys, each checked exactly at the
// bound and one past it (other tests check them at small configured values only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, WASM, sleep, thrown } from './helpers.mjs';

const MAX_KEY_LEN = 4096;
const MAX_IN_FLIGHT = 10_000;

const bytes = (s) => Buffer.byteLength(s, 'utf8');
const keys = (n) => Array.from({ length: n }, (_, i) => `k${i}`);

/** Passes for a `KeyTooLong` error naming a 4,097-byte key and the default limit. */
const keyTooLong = (e) => {
  assert.equal(e.code, 'KeyTooLong');
  assert.equal(e.message, `key is ${MAX_KEY_LEN + 1} bytes, over the limit of ${MAX_KEY_LEN}`);
  return true;
};

/**
 * A key of exactly 4,096 UTF-8 bytes (`at`) works with every call; one a byte longer (`past`) is
 * `KeyTooLong` from every call, changing nothing.
 */
async function checkKeyBound(at, past) {
  assert.deepEqual([bytes(at), bytes(past)], [MAX_KEY_LEN, MAX_KEY_LEN + 1]);
  const c = new Cache();
  let calls = 0;
  const loader = () => {
    calls++;
    return 0;
  };

  // at the bound: written, read, answered from the cache, and loaded when absent
  assert.ok(c.set(at, 7) > 0);
  assert.equal(c.get(at), 7);
  assert.equal(c.has(at), true);
  assert.equal(await c.getOrLoad(at, loader), 7);
  assert.equal(calls, 0, 'a cached key at the bound is not loaded');
  assert.equal(c.delete(at), true);
  assert.deepEqual(await c.fetch(at, () => 8), { value: 8, status: 'loaded' });
  assert.equal(c.get(at), 8);
  if (!WASM) assert.deepEqual(await c.getMany([at], (ks) => new Map(ks.map((k) => [k, 9]))), new Map([[at, 8]]));

  // one byte past it: refused by writes, loads and batch reads alike, before any work
  const before = [c.size, c.stats(), c.version(at)];
  assert.ok(keyTooLong(thrown(() => c.set(past, 1))));
  assert.ok(keyTooLong(thrown(() => c.setIfVersion(past, 1, 0))));
  await assert.rejects(c.getOrLoad(past, loader), keyTooLong);
  await assert.rejects(c.fetch(past, loader), keyTooLong);
  if (!WASM) {
    // one key over the bound refuses the whole batch: the key at the bound is not read either
    await assert.rejects(c.getMany([at, past], () => { calls++; return new Map(); }), keyTooLong);
  }
  assert.equal(calls, 0, 'no loader ran for a refused key');
  assert.equal(c.has(past), false);
  assert.deepEqual([c.size, c.stats(), c.version(at)], before, 'refused calls changed nothing');
}

test('P5: default maxKeyLen is 4,096 bytes: 4,096 work, 4,097 are KeyTooLong and change nothing', async () => {
  await checkKeyBound('k'.repeat(MAX_KEY_LEN), 'k'.repeat(MAX_KEY_LEN + 1));
});

test('P5: default maxKeyLen counts UTF-8 bytes, not UTF-16 units or characters', async () => {
  // 2,048 two-byte characters are 4,096 bytes; 1,024 emoji and a letter are 2,049 UTF-16 units
  // (1,025 characters) but 4,097 bytes
  const at = 'é'.repeat(MAX_KEY_LEN / 2);
  const past = '😀'.repeat(MAX_KEY_LEN / 4) + 'a';
  assert.deepEqual([at.length, past.length], [2048, 2049]);
  await checkKeyBound(at, past);
});

test('P5: default maxInFlight is 10,000 loads: the 10,001st distinct key is TooManyLoads', async () => {
  const c = new Cache();
  const ks = keys(MAX_IN_FLIGHT + 1);
  let open;
  const gate = new Promise((r) => (open = r));
  let started = 0;
  const loads = ks.slice(0, MAX_IN_FLIGHT).map((k, i) =>
    c.getOrLoad(k, async () => {
      started++;
      await gate;
      return i;
    }),
  );
  // every loader runs and waits at the gate: all 10,000 loads are under way at once
  const until = Date.now() + 10_000;
  while (started < MAX_IN_FLIGHT && Date.now() < until) await sleep(1);
  assert.equal(started, MAX_IN_FLIGHT);
  assert.equal(c.stats().inFlight, MAX_IN_FLIGHT);

  let refused = 0;
  const mustNotRun = () => {
    refused++;
    return -1;
  };
  await assert.rejects(c.getOrLoad(ks[MAX_IN_FLIGHT], mustNotRun), (e) => {
    assert.equal(e.code, 'TooManyLoads');
    assert.equal(e.message, `too many loads in flight (limit ${MAX_IN_FLIGHT})`);
    return true;
  });
  assert.equal(refused, 0);
  assert.equal(c.has(ks[MAX_IN_FLIGHT]), false);

  open();
  assert.deepEqual(await Promise.all(loads), ks.slice(0, MAX_IN_FLIGHT).map((_, i) => i));
  const s = c.stats();
  assert.deepEqual([s.loads, s.loadErrors, s.inFlight], [MAX_IN_FLIGHT, 0, 0]);
  // the default maxEntries is 10,000 too: every loaded value is kept
  assert.equal(c.size, MAX_IN_FLIGHT);
  ks.slice(0, MAX_IN_FLIGHT).forEach((k, i) => assert.equal(c.peek(k), i, k));
  // with the flights ended there is room again
  assert.equal(await c.getOrLoad(ks[MAX_IN_FLIGHT], () => 42), 42);
  assert.equal(refused, 0);
});

test('P5: a batch read takes at most 10,000 distinct keys by default: 10,001 are InvalidConfig (keys)', { skip: WASM }, async () => {
  const c = new Cache();
  const ks = keys(MAX_IN_FLIGHT + 1);
  const batches = [];
  const load = (batch) => {
    batches.push(batch.length);
    return new Map(batch.map((k) => [k, Number(k.slice(1))]));
  };

  const before = [c.size, c.stats()];
  await assert.rejects(c.getMany(ks, load), (e) => {
    assert.equal(e.code, 'InvalidConfig');
    assert.equal(e.field, 'keys');
    assert.equal(e.message, `invalid config: \`keys\` must not exceed \`maxInFlight\`, got ${MAX_IN_FLIGHT + 1}`);
    return true;
  });
  assert.deepEqual(batches, [], 'a refused batch loads nothing');
  assert.deepEqual([c.size, c.stats()], before, 'a refused batch changes nothing');

  // the bound counts distinct keys: 10,001 keys of which 10,000 differ are accepted
  const got = await c.getMany([...ks.slice(0, MAX_IN_FLIGHT), ks[0]], load);
  assert.deepEqual(batches, [MAX_IN_FLIGHT], 'one loader call with every distinct key');
  assert.deepEqual(got, new Map(ks.slice(0, MAX_IN_FLIGHT).map((k, i) => [k, i])));
  assert.equal(c.size, MAX_IN_FLIGHT);
  assert.equal(c.stats().inFlight, 0);
});
