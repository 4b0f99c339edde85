// An L2 hit from Node (L1 cold) beside ioredis GET of the same bytes plus a MessagePack decode of
// the payload (@msgpack/msgpack), against one real redis-server on loopback (started by the test
// kit, stopped by its pid), interleaved rounds in one run; prints each side's median per
// operation and the ratio. `make bench-l2-node`
//
// The healcache side is a `getOrLoad` from a fresh cache (L1 cold): the core's READ script call
// (value and PTTL), the envelope's checks, the decode, the L1 insert, and the value turned into a
// JS object. The peer skips the envelope's checks: GET, then decode the bytes after the header.
import { decode } from '@msgpack/msgpack';
import Redis from 'ioredis';
import { Cache } from '../js/node/index.mjs';
import { RedisServer } from '../tests/js/rediskit.mjs';

const KEYS = 2000;
const ROUNDS = 9;
const HEADER = 56; // the envelope's fixed header (docs/wire-format.md)

const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = await RedisServer.start();
try {
  const writer = new Cache({ redis: server.url, maxEntries: 1_000_000 });
  // 64-byte payloads, as the Rust bench and the design's figures use
  for (let i = 0; i < KEYS; i++) writer.set(`k${i}`, { id: i, name: 'a name of some length', pad: 'xxxxxxxx' });
  while (writer.stats().l2Writes < KEYS) await sleep(10);
  const peer = new Redis(server.url, { lazyConnect: true, enableAutoPipelining: false });
  await peer.connect();
  // the value keys as a writer finds them: <prefix>:{<slot>}:v:<key>
  const l2Keys = new Map();
  let cursor = '0';
  do {
    const [next, found] = await peer.scan(cursor, 'MATCH', 'hc1:*:v:*', 'COUNT', 1000);
    cursor = next;
    for (const k of found) l2Keys.set(k.slice(k.indexOf(':v:') + 3), k);
  } while (cursor !== '0');
  const keys = Array.from({ length: KEYS }, (_, i) => l2Keys.get(`k${i}`));
  if (keys.includes(undefined)) throw new Error('an L2 key was not found');
  const unloadable = async () => {
    throw new Error('the loader ran');
  };

  const ours = [];
  const theirs = [];
  for (let round = 0; round < ROUNDS; round++) {
    const c = new Cache({ redis: server.url, maxEntries: 1_000_000 });
    let t = performance.now();
    for (let i = 0; i < KEYS; i++) {
      const v = await c.getOrLoad(`k${i}`, unloadable);
      if (v.id !== i) throw new Error('wrong value');
    }
    ours.push(((performance.now() - t) * 1e6) / KEYS);
    if (c.stats().l2Hits !== KEYS) throw new Error(`expected ${KEYS} L2 hits, saw ${c.stats().l2Hits}`);
    c.close();

    t = performance.now();
    for (let i = 0; i < KEYS; i++) {
      const b = await peer.getBuffer(keys[i]);
      const v = decode(b.subarray(HEADER));
      if (v.id !== i) throw new Error('wrong value');
    }
    theirs.push(((performance.now() - t) * 1e6) / KEYS);
  }
  const [a, b] = [median(ours), median(theirs)];
  console.log(`L2 hit, L1 cold (${KEYS} keys, ${ROUNDS} interleaved rounds, median ns/op)`);
  console.log(`  healcache getOrLoad          ${a.toFixed(0)} ns (rounds ${ours.map((x) => x.toFixed(0)).join(' ')})`);
  console.log(`  ioredis GET + msgpack decode ${b.toFixed(0)} ns (rounds ${theirs.map((x) => x.toFixed(0)).join(' ')})`);
  console.log(`  ratio ${(a / b).toFixed(2)}x`);
  peer.disconnect();
  writer.close();
} finally {
  await server.close();
}
