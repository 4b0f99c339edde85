// Benchmark harness (not shipped, not a test) shared by bench/node_bench.mjs and bench/wasm_bench.mjs: 1,000,000 keys, uniform and
// Zipf(0.99) access, every contender timed in the same run, ratios printed. Not part of the tests.
import { LRUCache } from 'lru-cache';

export const N = Number(process.env.BENCH_KEYS || 1_000_000);
const OPS = Number(process.env.BENCH_OPS || 2_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 5);
const TTL = 10 * 60_000;

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uniform(n, ops, seed) {
  const r = rng(seed);
  const out = new Uint32Array(ops);
  for (let i = 0; i < ops; i++) out[i] = Math.floor(r() * n);
  return out;
}

function zipf(n, ops, s, seed) {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    sum += 1 / Math.pow(i + 1, s);
    cdf[i] = sum;
  }
  const r = rng(seed);
  const out = new Uint32Array(ops);
  for (let i = 0; i < ops; i++) {
    const x = r() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    // scatter ranks over the key space so hot keys are not neighbours
    out[i] = (lo * 2654435761) % n;
  }
  return out;
}

function time(fn) {
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    const dt = Number(process.hrtime.bigint() - t0);
    if (dt < best) best = dt;
  }
  return best;
}

/**
 * Runs the get and set benchmarks. `contenders` maps a name to a factory of
 * { get(k), set(k, v) } filled with N keys; `subject` is the one whose ratios are printed.
 */
export function run({ title, Cache, subject }) {
  const keys = Array.from({ length: N }, (_, i) => `key:${i}`);
  const values = Array.from({ length: N }, (_, i) => ({ i }));
  const makers = {
    // a cache of N holds N: the 1M keys all fit, as in lru-cache (the stats line shows evictions)
    [subject]: () => new Cache({ maxEntries: N, ttl: TTL }),
    'Map': () => new Map(),
    'lru-cache': () => new LRUCache({ max: N }),
    'lru-cache+ttl': () => new LRUCache({ max: N, ttl: TTL }),
  };
  const fill = (c) => {
    for (let i = 0; i < N; i++) c.set(keys[i], values[i]);
    return c;
  };
  console.log(`${title}: ${N.toLocaleString()} keys, ${OPS.toLocaleString()} ops per round, best of ${ROUNDS} rounds (node ${process.version})`);
  const rows = [];
  // set: N fresh keys into an empty cache
  const set = {};
  for (const [name, make] of Object.entries(makers)) {
    let best = Infinity;
    for (let r = 0; r < Math.min(ROUNDS, 3); r++) {
      const c = make();
      const t0 = process.hrtime.bigint();
      fill(c);
      const dt = Number(process.hrtime.bigint() - t0);
      if (dt < best) best = dt;
    }
    set[name] = best / N;
  }
  rows.push(['set (insert)', set]);
  // get hits, uniform and Zipf
  const filled = Object.fromEntries(Object.entries(makers).map(([n, m]) => [n, fill(m())]));
  const order = uniform(N, N, 3);
  // get: the first read of each key after the fill, one round (a cache that fills its read
  // mirror on reads pays for it here); the rounds below read warm caches
  const first = {};
  for (const [name, c] of Object.entries(filled)) {
    let sink = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += c.get(keys[i]).i;
    first[name] = Number(process.hrtime.bigint() - t0) / N;
    if (sink === 0) throw new Error('no hits');
  }
  rows.push(['get, first read', first]);
  // set: overwrite live keys, uniform order
  const upd = {};
  for (const [name, c] of Object.entries(filled)) {
    upd[name] = time(() => {
      for (let i = 0; i < order.length; i++) c.set(keys[order[i]], values[order[i]]);
    }) / N;
  }
  rows.push(['set (overwrite)', upd]);
  for (const [pattern, idx] of [['get hit, uniform', uniform(N, OPS, 1)], ['get hit, zipf 0.99', zipf(N, OPS, 0.99, 2)]]) {
    const res = {};
    for (const [name, c] of Object.entries(filled)) {
      let sink = 0;
      const ns = time(() => {
        for (let i = 0; i < idx.length; i++) sink += c.get(keys[idx[i]]).i;
      });
      if (sink === 0) throw new Error('no hits');
      res[name] = ns / idx.length;
    }
    rows.push([pattern, res]);
  }
  const names = Object.keys(makers);
  const pad = (s, n) => String(s).padEnd(n);
  console.log(pad('ns/op', 20) + names.map((n) => pad(n, 16)).join('') + `${subject}/lru-cache+ttl`);
  for (const [label, res] of rows) {
    const ratio = res[subject] / res['lru-cache+ttl'];
    console.log(pad(label, 20) + names.map((n) => pad(res[n].toFixed(1), 16)).join('') + `${ratio.toFixed(2)}x`);
  }
  // the bars: healcache's time over lru-cache's (with TTL, as healcache runs here)
  const bars = [['get, first read', 1.2], ['set (insert)', 1.5], ['set (overwrite)', 1.5]];
  console.log(`bars (${subject} / lru-cache+ttl):`);
  for (const [label, bar] of bars) {
    const res = rows.find(([l]) => l === label)[1];
    const ratio = res[subject] / res['lru-cache+ttl'];
    console.log(`  ${pad(label, 18)}${ratio.toFixed(2)}x  (bar ${bar}x: ${ratio <= bar ? 'met' : 'NOT met'})`);
  }
  const s = filled[subject].stats();
  console.log(`${subject} stats after the run: entries=${s.entries} evictions=${s.evictions} hits=${s.hits}`);
  return rows;
}
