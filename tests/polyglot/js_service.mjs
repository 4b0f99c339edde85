// The Node service of `make fleet-demo`: the HTTP routes of redis/examples/fleet_service.rs.
//   node tests/polyglot/js_service.mjs --redis URL --port P --origin URL [--ttl-ms N] [--fleet-lock all]
import http from 'node:http';
import { Cache } from 'healcache';

const opt = (name, d) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : d);
const origin = opt('--origin');
const ttl = opt('--ttl-ms');
const cache = new Cache({ redis: opt('--redis'), ttl: ttl ? Number(ttl) : undefined, fleetLock: opt('--fleet-lock', 'refresh') });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function route(path) {
  const parts = path.replace(/^\//, '').split('/');
  if (parts[0] === 'get' && parts.length === 2) {
    const key = parts[1];
    const f = await cache.fetch(key, async () => (await fetch(`${origin}/${key}`)).json());
    return { status: f.status, value: f.value };
  }
  if (parts[0] === 'set' && parts.length === 3) {
    const before = cache.stats().l2Writes;
    cache.set(parts[1], parts[2]);
    const end = Date.now() + 5000;
    while (cache.stats().l2Writes <= before && Date.now() < end) await sleep(1);
    return { ok: cache.stats().l2Writes > before };
  }
  if (parts[0] === 'stats') return cache.stats();
  return { error: 'not found' };
}

const server = http.createServer(async (req, res) => {
  const body = JSON.stringify(await route(req.url), (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.listen(Number(opt('--port')), '127.0.0.1', () => console.log('ready'));
// the demo stops this service by closing stdin (or by its pid)
process.stdin.on('end', () => {
  server.close();
  cache.close();
  process.exit(0);
});
process.stdin.resume();
