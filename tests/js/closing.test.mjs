// Closing the shared tier from Node, against a real redis-server (tests/js/rediskit.mjs): `await
// cache.close()` sends the L2 writes under way (and their bus messages) and closes the Redis
// connections, a process whose event loop runs out of work loses none of its writes (the
// `beforeExit` hook), and a collected cache leaves no connection open. The WebAssembly build has
// no shared tier: its `close()` resolves to 0 at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO, redisAvailable, redisFor, sleep } from './rediskit.mjs';
import { Cache, WASM } from './helpers.mjs';

const skip = !redisAvailable() ? 'redis-server is not installed' : false;
const N = 5000;
const ENTRY = path.join(REPO, 'js', 'node', 'index.mjs');

/** One raw connection to the server: its clients (this one left out) and its keys. */
async function watch(redis) {
  const conn = await redis.connect();
  const me = `id=${await conn.command('CLIENT', 'ID')} `;
  return {
    async clients() {
      const list = (await conn.command('CLIENT', 'LIST')).toString().split('\n');
      return list.filter((l) => l.trim() !== '' && !l.startsWith(me)).length;
    },
    async stored(pattern) {
      let cursor = '0';
      let n = 0;
      do {
        const [next, keys] = await conn.command('SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000');
        cursor = next.toString();
        n += keys.length;
      } while (cursor !== '0');
      return n;
    },
    close: () => conn.close(),
  };
}

async function until(f, ms) {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${f}`);
    await sleep(10);
  }
}

/** Runs `node -e script args...`; resolves to its stdout once it exits with status 0. */
function node(flags, script, args) {
  const child = spawn(process.execPath, [...flags, '--input-type=module', '-e', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
  });
  return { child, done, out: () => out };
}

const WRITER = `
import { Cache } from ${JSON.stringify(ENTRY)};
const [url, prefix, n, how] = process.argv.slice(1);
const c = new Cache({ redis: url, l2Prefix: prefix, ttl: 300000 });
for (let i = 0; i < +n; i++) c.set('k' + i, 'v'.repeat(100));
if (how === 'close') console.log(await c.close());
`;

for (const how of ['end', 'close']) {
  test(`a process that sets ${N} keys and ${how === 'end' ? 'lets its event loop end' : 'awaits close()'} leaves all of them in Redis`, { skip: skip || WASM }, async (t) => {
    const redis = await redisFor(t);
    const w = await watch(redis);
    t.after(() => w.close());
    const prefix = `nx${how}1`;
    const out = await node([], WRITER, [redis.url, prefix, String(N), how]).done;
    if (how === 'close') assert.equal(out.trim(), '0');
    assert.equal(await w.stored(`${prefix}:*:v:*`), N);
  });
}

test('await close() sends every write with its bus message, then closes the connections', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const w = await watch(redis);
  t.after(() => w.close());
  const base = await w.clients();
  const other = new Cache({ redis: redis.url, ttl: 300_000 });
  const c = new Cache({ redis: redis.url, ttl: 300_000 });
  t.after(() => other.close());
  await until(async () => (await w.clients()) === base + 4, 5000);
  other.set('k0', 'old');
  await until(() => other.stats().l2Writes === 1, 5000);
  for (let i = 0; i < N; i++) c.set(`k${i}`, i);
  assert.equal(await c.close(), 0);
  assert.equal(c.stats().l2Writes, N);
  assert.equal(await w.stored('hc1:*:v:k*'), N);
  // the bus message of each write went out before the close: the other instance dropped its copy
  await until(() => other.get('k0') === undefined, 5000);
  await until(async () => (await w.clients()) === base + 2, 1000);
  // the cache works on from L1; L2 is skipped, counted, never an error
  const skipped = c.stats().l2Skipped;
  c.set('after', 1);
  assert.equal(c.get('after'), 1);
  assert.equal(await c.getOrLoad('loaded', async () => 2), 2);
  assert.ok(c.stats().l2Skipped >= skipped + 2);
  assert.equal(c.stats().l2Errors, 0);
  assert.equal(await w.stored('hc1:*:v:after'), 0);
  assert.equal(await w.clients(), base + 2);
  // a second close resolves at once; Symbol.asyncDispose awaits the flush
  assert.equal(await c.close({ timeout: 0 }), 0);
  const d = new Cache({ redis: redis.url });
  d.set('disposed', 1);
  await d[Symbol.asyncDispose]();
  assert.equal(await w.stored('hc1:*:v:disposed'), 1);
  await until(async () => (await w.clients()) === base + 2, 1000);
});

test('collected caches close their connections', { skip: skip || WASM }, async (t) => {
  const redis = await redisFor(t);
  const w = await watch(redis);
  t.after(() => w.close());
  const base = await w.clients();
  const script = `
import { Cache } from ${JSON.stringify(ENTRY)};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
for (let i = 0; i < 10; i++) {
  let c = new Cache({ redis: process.argv[1], ttl: 60000 });
  c.set('k' + i, i);
  while (c.stats().l2Writes !== 1) await sleep(5);
  c = null;
}
for (let i = 0; i < 5; i++) { globalThis.gc(); await sleep(20); }
console.log('dropped');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
`;
  const p = node(['--expose-gc'], script, [redis.url]);
  t.after(() => p.child.kill('SIGKILL'));
  await until(() => p.out().includes('dropped'), 20_000);
  await until(async () => (await w.clients()) === base, 1500);
  p.child.stdin.end();
  await p.done;
});

test('close options are checked', async () => {
  const c = new Cache({ ttl: 1000 });
  assert.throws(() => c.close({ timeout: 'soon' }), (e) => e.code === 'InvalidConfig' && e.field === 'timeout'); // as `ttl: 'x'` is
  assert.throws(() => c.close({ timeot: 1 }), (e) => e.code === 'InvalidConfig' && e.field === 'timeot');
  assert.throws(() => c.close({ timeout: -1 }), (e) => e.code === 'InvalidConfig' && e.field === 'timeout');
  // without a shared tier (the WebAssembly build has none) nothing is under way
  assert.equal(await c.close(), 0);
  assert.equal(await c.close({ timeout: 0 }), 0);
  await c[Symbol.asyncDispose]();
});

test('a close refused for its timeout changes nothing: the sources stay registered, healing goes on', async () => {
  // the core checks the timeout (its close_timeout_ms) before anything is stopped, on Node and WASM
  const c = new Cache({ healing: { enabled: !WASM, sampleRate: 1, verifyIntervalMs: 5 } });
  c.set('u:1', 1);
  let calls = 0;
  c.registerSource('u:', () => (calls++, 1));
  for (const timeout of [-1, NaN, Infinity, 1e-9, 4e12]) {
    assert.throws(
      () => c.close({ timeout }),
      (e) => e.code === 'InvalidConfig' && e.field === 'timeout',
      `close({ timeout: ${timeout} })`,
    );
    assert.deepEqual(c.scores().map((s) => s.prefix), ['u:'], `after close({ timeout: ${timeout} })`);
  }
  if (WASM) {
    await c.runHealingInterval();
    assert.equal(calls, 1);
  } else {
    // the background loop still runs
    const seen = calls;
    const end = Date.now() + 5000;
    while (calls < seen + 2 && Date.now() < end) await sleep(5);
    assert.ok(calls >= seen + 2, `no interval after a refused close (${calls} source calls)`);
  }
  assert.equal(await c.close({ timeout: 1000 }), 0);
  assert.deepEqual(c.scores(), []);
  const after = calls;
  await sleep(50);
  assert.equal(calls, after, 'no interval after close');
});

test('after close, healingConfig() says healing is off (as Python does)', async () => {
  for (const options of [undefined, { timeout: 0 }]) {
    const c = new Cache({ healing: { enabled: true, sampleRate: 1, verifyIntervalMs: 20 } });
    assert.equal(c.healingConfig().enabled, true);
    await c.close(options);
    assert.equal(c.healingConfig().enabled, false, JSON.stringify(options));
    assert.equal(c.configGet('enabled'), 'false');
    // turning it on again is refused, turning it off is not
    assert.throws(() => c.setHealing({ enabled: true }), (e) => e.code === 'Closed');
    c.setHealing({ enabled: false });
    assert.equal(c.healingConfig().enabled, false);
  }
  // a close refused for its timeout leaves healing on
  const c = new Cache({ healing: { enabled: true } });
  assert.throws(() => c.close({ timeout: -1 }), (e) => e.code === 'InvalidConfig');
  assert.equal(c.healingConfig().enabled, true);
  await c.close();
});
