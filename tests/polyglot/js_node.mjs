// One Node instance of a polyglot fleet: a healcache Cache on the shared tier, driven by one JSON
// command per line on stdin, answering one JSON line each; the protocol of
// redis/examples/polyglot_node.rs (bytes as {"$bytes": hex}, integers beyond 2^53 as {"$int": text}).
//
//   node tests/polyglot/js_node.mjs --redis URL
import readline from 'node:readline';
import { isDeepStrictEqual } from 'node:util';
import { Cache } from 'healcache';

const url = process.argv[process.argv.indexOf('--redis') + 1];
const cache = new Cache({ redis: url });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const unloadable = async () => {
  throw new Error('not in L1 or L2');
};

function toJs(v) {
  if (Array.isArray(v)) return v.map(toJs);
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '$bytes') return Buffer.from(v.$bytes, 'hex');
    if (keys.length === 1 && keys[0] === '$int') return BigInt(v.$int);
    return Object.fromEntries(keys.map((k) => [k, toJs(v[k])]));
  }
  return v;
}

function toWire(v) {
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('hex') };
  if (typeof v === 'bigint') return v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : { $int: v.toString() };
  if (Array.isArray(v)) return v.map(toWire);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toWire(x)]));
  return v;
}

async function read(key) {
  let called = false;
  try {
    const f = await cache.fetch(key, () => {
      called = true;
      return unloadable();
    });
    return { status: f.status, value: toWire(f.value) };
  } catch (e) {
    if (called) return { status: 'miss' };
    return { error: String(e) };
  }
}

async function landed(before) {
  const end = Date.now() + 5000;
  while (cache.stats().l2Writes <= before) {
    if (Date.now() > end) return { error: 'the L2 write did not land' };
    await sleep(1);
  }
  return { at_us: nowUs() };
}

async function answer(cmd) {
  const key = cmd.key ?? '';
  switch (cmd.op) {
    case 'set': {
      const before = cache.stats().l2Writes;
      cache.set(key, toJs(cmd.value));
      return landed(before);
    }
    case 'delete': {
      const before = cache.stats().l2Writes;
      cache.delete(key);
      return landed(before);
    }
    case 'fetch':
      return read(key);
    case 'await': {
      const since = cmd.since_us || nowUs();
      const until = Date.now() + (cmd.deadline_ms ?? 2000);
      for (;;) {
        const r = await read(key);
        const done = 'want' in cmd ? isDeepStrictEqual(r.value, cmd.want) : r.status === 'miss';
        if (done || Date.now() > until) return { ...r, after_ms: (nowUs() - since) / 1000 };
        await sleep(1);
      }
    }
    case 'stats': {
      const s = cache.stats();
      return { l2_hits: s.l2Hits, l2_writes: s.l2Writes, l2_bus_received: s.l2BusReceived, l2_bus_invalidated: s.l2BusInvalidated, l2_bus_gaps: s.l2BusGaps };
    }
    default:
      return { error: `unknown op ${JSON.stringify(cmd.op)}` };
  }
}

console.log(JSON.stringify('ready'));
for await (const line of readline.createInterface({ input: process.stdin })) {
  let reply;
  try {
    reply = await answer(JSON.parse(line));
  } catch (e) {
    reply = { error: String(e) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
cache.close();
