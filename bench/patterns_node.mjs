// Read-through over Redis from Node beside bentocache (its Redis driver with its memory L1, the
// tiered setup it recommends), against one real redis-server on loopback (started by the test
// kit, stopped by its pid), interleaved rounds in one run; prints each side's median per
// operation and the ratio. `make bench-l2-node`
//
// Two readings of 2,000 keys of 64-byte documents:
// - L2 hit, L1 cold: healcache `getOrLoad` on a fresh cache (the value is in Redis) beside
//   bentocache `getOrSet` on a fresh BentoCache (empty memory L1, the same Redis);
// - a repeated read (L1 warm): the same calls again on the same instances.
//
// bentocache 1.6 wants ioredis 5 and the project's tests pin ioredis 6, so bentocache lives in a
// directory of its own (bench/peers, installed by the make target) and is imported from there:
// its own imports then find its own ioredis.
import { BentoCache, bentostore } from './peers/node_modules/bentocache/build/index.js';
import { memoryDriver } from './peers/node_modules/bentocache/build/src/drivers/memory.js';
import { redisDriver } from './peers/node_modules/bentocache/build/src/drivers/redis.js';
import { Cache } from '../js/node/index.mjs';
import { RedisServer } from '../tests/js/rediskit.mjs';

const KEYS = 2000;
const ROUNDS = 9;

const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const doc = (i) => ({ id: i, name: 'a name of some length', pad: 'xxxxxxxx' });
const unloadable = async () => {
  throw new Error('the loader ran');
};

function bento(url) {
  const { hostname, port } = new URL(url);
  const connection = { host: hostname, port: Number(port), lazyConnect: false };
  return new BentoCache({
    default: 'c',
    stores: { c: bentostore().useL1Layer(memoryDriver({ maxItems: 1_000_000 })).useL2Layer(redisDriver({ connection })) },
  });
}

/** ns per read of every key through `read(i)`, checked. */
async function timed(read) {
  const t = performance.now();
  for (let i = 0; i < KEYS; i++) {
    const v = await read(i);
    if (v.id !== i) throw new Error('wrong value');
  }
  return ((performance.now() - t) * 1e6) / KEYS;
}

function report(title, rows) {
  console.log(`${title} (${KEYS} keys, ${ROUNDS} interleaved rounds, median ns/op)`);
  const base = median(rows[0][1]);
  for (const [name, xs] of rows) {
    const m = median(xs);
    console.log(`  ${name.padEnd(40)} ${m.toFixed(0).padStart(8)} ns  ${(m / base).toFixed(2)}x of healcache (rounds ${xs.map((x) => x.toFixed(0)).join(' ')})`);
  }
}

const server = await RedisServer.start();
try {
  // each side writes its own entries (their formats differ), 64-byte documents
  const writer = new Cache({ redis: server.url, maxEntries: 1_000_000 });
  for (let i = 0; i < KEYS; i++) writer.set(`k${i}`, doc(i));
  while (writer.stats().l2Writes < KEYS) await sleep(10);
  const bentoWriter = bento(server.url);
  for (let i = 0; i < KEYS; i++) await bentoWriter.set({ key: `k${i}`, value: doc(i), ttl: '1h' });

  const cold = { ours: [], bento: [] };
  const warm = { ours: [], bento: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const c = new Cache({ redis: server.url, maxEntries: 1_000_000 });
    const b = bento(server.url);
    // connected before the clock starts, on a key outside the measured ones
    await c.getOrLoad('connect', async () => 0);
    await b.getOrSet({ key: 'connect', factory: () => 0 });
    const before = c.stats().l2Hits;
    cold.ours.push(await timed((i) => c.getOrLoad(`k${i}`, unloadable)));
    const hits = c.stats().l2Hits - before;
    if (hits !== KEYS) throw new Error(`expected ${KEYS} L2 hits, saw ${hits}`);
    cold.bento.push(await timed((i) => b.getOrSet({ key: `k${i}`, factory: unloadable, ttl: '1h' })));
    warm.ours.push(await timed((i) => c.getOrLoad(`k${i}`, unloadable)));
    warm.bento.push(await timed((i) => b.getOrSet({ key: `k${i}`, factory: unloadable, ttl: '1h' })));
    c.close();
    await b.disconnectAll();
  }
  report('L2 hit, L1 cold', [
    ['healcache getOrLoad', cold.ours],
    ['bentocache getOrSet (memory L1 + Redis)', cold.bento],
  ]);
  report('repeated read, L1 warm', [
    ['healcache getOrLoad', warm.ours],
    ['bentocache getOrSet (memory L1 + Redis)', warm.bento],
  ]);
  writer.close();
  await bentoWriter.disconnectAll();
} finally {
  await server.close();
}
