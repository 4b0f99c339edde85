// One Node instance of `make fleet-lab`: the protocol and options of
// redis/examples/lab_instance.rs (a JSON command per line on stdin, a JSON answer per line), with a
// healcache Cache whose loader asks the lab's origin over HTTP (Node's fetch).
//
//   node tests/fleet_lab/js_instance.mjs --origin URL --ttl-ms N [--redis URL] [--fleet-lock M]
//     [--swr] [--grace-ms N] [--xfetch] [--jitter F] [--negative-ttl-ms N] [--lease-ms N]
//     [--max-hold-ms N] [--extra-load-ms N] [--l2-timeout-ms N]
import readline from 'node:readline';
import { Cache, NOT_FOUND } from 'healcache';

const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const num = (name) => (opt(name) === undefined ? undefined : Number(opt(name)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const origin = opt('--origin');
const extra = num('--extra-load-ms') ?? 0;
const options = { ttl: num('--ttl-ms'), maxEntries: 10_000, loadTimeout: 10_000 };
if (opt('--redis')) {
  Object.assign(options, {
    redis: opt('--redis'),
    fleetLock: opt('--fleet-lock'),
    fleetLockLease: num('--lease-ms'),
    fleetLockMaxHold: num('--max-hold-ms'),
    l2Timeout: num('--l2-timeout-ms') ?? 1000,
  });
}
Object.assign(options, { grace: num('--grace-ms'), negativeTtl: num('--negative-ttl-ms'), ttlJitter: num('--jitter') });
if (args.includes('--swr')) options.staleWhileRevalidate = true;
if (args.includes('--xfetch')) options.xfetch = true;
for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k];
const cache = new Cache(options);

async function load(key) {
  const res = await fetch(`${origin}/${encodeURIComponent(key)}`);
  const value = res.status === 404 ? NOT_FOUND : res.ok ? await res.json() : undefined;
  if (value === undefined) throw new Error(`origin answered ${res.status}`);
  if (extra) await sleep(extra);
  return value;
}

const fetchKey = (key) => cache.fetch(key, () => load(key));

// Zipf(1.0) over 0..n by inverse CDF, as the Rust instance builds it.
function zipfCdf(n) {
  let acc = 0;
  const cdf = [];
  for (let k = 1; k <= n; k++) cdf.push((acc += 1 / k));
  return cdf.map((c) => c / acc);
}

function sample(cdf, u) {
  let lo = 0;
  let hi = cdf.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return Math.min(lo, cdf.length - 1);
}

// mulberry32: a seeded generator (Math.random cannot be seeded), so runs repeat
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function run(cmd) {
  const tail = cmd.tail ?? 400;
  const missingFrom = cmd.missing_from ?? tail;
  const cdf = zipfCdf(tail);
  const lat = [];
  const statuses = {};
  let errors = 0;
  let firstError = null;
  const client = async (c) => {
    const random = rng((cmd.seed ?? 1) * 1000 + c);
    while (Date.now() < cmd.until_ms) {
      let key = 'hot';
      if (random() >= 0.5) {
        const i = sample(cdf, random());
        key = i >= missingFrom ? `absent:${i}` : `tail:${i}`;
      }
      const t = process.hrtime.bigint();
      try {
        const f = await fetchKey(key);
        statuses[f.status] = (statuses[f.status] ?? 0) + 1;
      } catch (e) {
        errors += 1; // counted and reported: the driver prints them
        firstError ??= String(e);
      }
      lat.push(Number(process.hrtime.bigint() - t));
      await sleep(1);
    }
  };
  await Promise.all(Array.from({ length: cmd.clients ?? 32 }, (_, c) => client(c)));
  return { requests: lat.length, errors, first_error: firstError, lat_ns: lat, statuses };
}

async function answer(cmd) {
  const key = cmd.key ?? '';
  switch (cmd.op) {
    case 'warm': {
      const done = await Promise.allSettled(cmd.keys.map(fetchKey));
      return { loaded: done.filter((d) => d.status === 'fulfilled').length };
    }
    case 'run':
      return run(cmd);
    case 'fetch': {
      const f = await fetchKey(key);
      return { status: f.status, value: f.value };
    }
    case 'peek':
      return { value: cache.peek(key) ?? null };
    case 'stats': {
      const s = cache.stats();
      return { l2_fenced_out: s.l2FencedOut, fenced_writes: s.fencedWrites, loads: s.loads, l2_hits: s.l2Hits, l2_writes: s.l2Writes };
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
