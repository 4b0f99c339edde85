// The WebAssembly package under real edge runtimes: the README's worker and tests/edge/worker.mjs
// run under workerd (npm `workerd`) and Deno (npm `deno`), each a child process on 127.0.0.1,
// against an origin on 127.0.0.1 that this file starts and counts. A runtime whose binary cannot
// run on this platform is skipped with the reason printed; any other failure fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { cannotRun, denoImports, processesMentioning, root, runDeno, startDeno, startOrigin, startWorkerd } from './harness.mjs';

const README_WORKER = (() => {
  const m = readFileSync(`${root}README.md`, 'utf8').match(/^```js\n(\/\/ worker\.mjs[\s\S]*?)^```$/m);
  assert.ok(m, 'README.md has the worker example (a js block starting with `// worker.mjs`)');
  return m[1];
})();
const TEST_WORKER = readFileSync(new URL('./worker.mjs', import.meta.url), 'utf8');
const ORIGIN_LINE = "const ORIGIN = 'https://api.internal';";

const RUNTIMES = [
  { name: 'workerd', start: startWorkerd, source: (s) => s },
  { name: 'deno', start: startDeno, source: denoImports },
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const getJson = async (url) => {
  const r = await fetch(url);
  return [r.status, await r.json().catch(() => undefined)];
};

for (const rt of RUNTIMES) {
  const why = cannotRun(rt.name);
  if (why) console.log(`# tests/edge: ${rt.name} skipped: ${why}`);
  // CI installs both runtimes: there a runtime that cannot run is a failure, not a skip
  if (why && process.env.CI) throw new Error(`tests/edge: ${rt.name} cannot run in CI: ${why}`);

  test(`${rt.name}: the README worker: 100 concurrent cold requests, one origin call; healing from scheduled()`, { skip: why }, async () => {
    const users = new Map([['/users/42', { name: 'Ada' }]]);
    // slow enough that all 100 requests arrive while the first load is under way
    const origin = await startOrigin((path) =>
      users.has(path) ? { body: JSON.stringify(users.get(path)), delayMs: 300 } : { status: 404 },
    );
    assert.ok(README_WORKER.includes(ORIGIN_LINE));
    const w = await rt.start(rt.source(README_WORKER.replace(ORIGIN_LINE, `const ORIGIN = '${origin.url}';`)));
    try {
      const answers = await Promise.all(Array.from({ length: 100 }, () => getJson(`${w.url}/users/42`)));
      const ok = answers.filter(([s, b]) => s === 200 && b && b.name === 'Ada').length;
      console.log(`# ${rt.name}: 100 concurrent cold requests: ${ok} successes, ${origin.calls('/users/42')} origin call(s)`);
      assert.equal(ok, 100, `every request answered (${rt.name} output:\n${w.output().slice(0, 2000)})`);
      assert.equal(origin.calls('/users/42'), 1, 'one origin call for the 100 requests');
      assert.equal((await fetch(`${w.url}/users/7`)).status, 404);

      users.set('/users/42', { name: 'Ada L.' }); // drift behind the cache's back
      const reports = await w.scheduled();
      if (rt.name === 'deno') assert.deepEqual([reports[0].drift, reports[0].repaired], [1, 1]);
      const [, body] = await getJson(`${w.url}/users/42`);
      assert.equal(body.name, 'Ada L.', 'the scheduled healing interval repaired the drifted key');
    } finally {
      await w.stop();
      await origin.close();
    }
  });

  // The runtime is the child started, stopped by its pid: nothing of it outlives the stop (an npm
  // `bin` shim in between once kept the runtime, and this file, running after every test).
  test(`${rt.name}: stopping the runtime leaves no process behind`, { skip: why }, async () => {
    const w = await rt.start(rt.source(TEST_WORKER));
    assert.ok(processesMentioning(w.dir).length > 0, 'the runtime runs, its config in its own directory');
    await w.stop();
    assert.deepEqual(processesMentioning(w.dir), [], 'processes left running after stop');
  });

  test(`${rt.name}: a stale value's refresh lands through waitUntil`, { skip: why }, async () => {
    let version = 1;
    const origin = await startOrigin(() => ({ body: JSON.stringify({ version }), delayMs: 100 }));
    const w = await rt.start(rt.source(TEST_WORKER));
    const get = () => getJson(`${w.url}/swr/k?origin=${encodeURIComponent(origin.url)}`);
    try {
      let [status, body] = await get();
      assert.deepEqual([status, body.value, body.status], [200, { version: 1 }, 'loaded']);
      version = 2;
      await sleep(400); // past the TTL (300 ms), within grace
      [status, body] = await get();
      assert.deepEqual([status, body.value, body.status], [200, { version: 1 }, 'stale'], 'served stale at once');
      // the refresh was handed to waitUntil after the request answered: it lands
      const end = Date.now() + 5000;
      while (body.value.version !== 2 && Date.now() < end) {
        await sleep(50);
        [, body] = await get();
      }
      assert.deepEqual([body.value, body.status], [{ version: 2 }, 'hit'], 'the refresh landed');
      assert.equal(origin.calls('/k'), 2, 'one load and one refresh');
    } finally {
      await w.stop();
      await origin.close();
    }
  });

  test(`${rt.name}: timed-out loads never strand their key`, { skip: why }, async () => {
    let delayMs = 1000;
    let version = 1;
    const origin = await startOrigin(() => ({ body: JSON.stringify({ version }), delayMs }));
    const w = await rt.start(rt.source(TEST_WORKER));
    const q = `?origin=${encodeURIComponent(origin.url)}`;
    try {
      // a hard load timeout (300 ms): the call fails, the next one loads again
      let [status, body] = await getJson(`${w.url}/timed/slow${q}`);
      assert.deepEqual([status, body.code], [500, 'LoadTimeout']);
      delayMs = 0;
      [status, body] = await getJson(`${w.url}/timed/slow${q}`);
      assert.deepEqual([status, body.value, body.status], [200, { version: 1 }, 'loaded']);

      // a request that leaves its load by a race answers; the host then stops that load's I/O
      // and timers. A caller past the load timeout ends that load (LoadTimeout, not a request
      // the host cancels as hung), and the next one loads again.
      delayMs = 1000;
      [status, body] = await getJson(`${w.url}/timed-race/left${q}`);
      assert.deepEqual([status, body], [200, 'gave up']);
      await sleep(600);
      [status, body] = await getJson(`${w.url}/timed/left${q}`);
      assert.deepEqual([status, body && body.code], [500, 'LoadTimeout']);
      delayMs = 0;
      [status, body] = await getJson(`${w.url}/timed/left${q}`);
      assert.deepEqual([status, body.value, body.status], [200, { version: 1 }, 'loaded']);

      // a soft timeout (50 ms) with a stale value: the request answers stale and the load's tail
      // goes on. Handed to no waitUntil, the host may stop it once the request has answered:
      // later callers never wait on it (each answers at once, and may start a load of its own)
      for (const [route, key] of [['soft-unkept', '/u'], ['soft', '/k']]) {
        [delayMs, version] = [0, 1];
        [status, body] = await getJson(`${w.url}/${route}${key}${q}`);
        assert.deepEqual([status, body.status], [200, 'loaded']);
        await sleep(400); // past the TTL (300 ms), within grace
        [delayMs, version] = [600, 2];
        [status, body] = await getJson(`${w.url}/${route}${key}${q}`);
        assert.deepEqual([status, body.value, body.status], [200, { version: 1 }, 'stale-soft-timeout']);
        // a caller that joins the tail within its soft timeout of the tail's end gets the new
        // value ('coalesced'): it still answered at once
        const fresh = ['hit', 'coalesced'];
        const end = Date.now() + (route === 'soft' ? 8000 : 1500);
        while (Date.now() < end && !fresh.includes(body.status)) {
          const t0 = Date.now();
          [status, body] = await getJson(`${w.url}/${route}${key}${q}`);
          assert.equal(status, 200);
          assert.ok(Date.now() - t0 < 2000, `${route}: answered within 2 s (${body.status})`);
          assert.ok(['stale-soft-timeout', ...fresh].includes(body.status), body.status);
          if (fresh.includes(body.status)) assert.deepEqual(body.value, { version: 2 });
          await sleep(100);
        }
        // handed to waitUntil, the tail lands
        if (route === 'soft') {
          assert.deepEqual(body.value, { version: 2 });
          assert.ok(fresh.includes(body.status), body.status);
        }
      }
    } finally {
      await w.stop();
      await origin.close();
    }
  });
}

// P1 (every call ends): a loader that asks for its own key would wait on itself. The web build
// finds it through the host's AsyncLocalStorage (`node:async_hooks`: Deno, and workerd with
// nodejs_compat or nodejs_als); without one the load timeout ends it. Either way the key is
// not stranded: the next call loads.
const RECURSION = [
  ['deno', startDeno, [], 'RecursiveLoad'],
  ['workerd', startWorkerd, ['nodejs_als'], 'RecursiveLoad'],
  ['workerd', startWorkerd, ['nodejs_compat'], 'RecursiveLoad'],
  ['workerd', startWorkerd, [], 'LoadTimeout'],
];
for (const [name, start, flags, code] of RECURSION) {
  const source = name === 'deno' ? denoImports(TEST_WORKER) : TEST_WORKER;
  test(`P1: ${name}${flags.length ? ` (${flags})` : ''}: a loader that asks for its own key gets ${code}; the key is not stranded`, { skip: cannotRun(name) }, async () => {
    const w = await start(source, { flags });
    try {
      const t0 = Date.now();
      const [status, body] = await getJson(`${w.url}/recursive/r`);
      assert.deepEqual([status, body && body.code], [500, code], `${name} output:\n${w.output().slice(0, 2000)}`);
      if (code === 'RecursiveLoad') assert.ok(Date.now() - t0 < 900, 'at once, not by the load timeout');
      const [s2, b2] = await getJson(`${w.url}/rec-plain/r`);
      assert.deepEqual([s2, b2 && b2.value, b2 && b2.status], [200, 'plain', 'loaded']);
      assert.equal((await getJson(`${w.url}/stats`))[1].rec.inFlight, 0, 'no load left in flight');
    } finally {
      await w.stop();
    }
  });
}

test('P1: node: healcache/wasm/web gets RecursiveLoad as healcache/wasm does', async () => {
  const web = await import('healcache/wasm/web');
  web.initSync(readFileSync(`${root}bindings-wasm/pkg-web/healcache_wasm_bg.wasm`));
  const c = new web.Cache({ loadTimeout: 2000 });
  await assert.rejects(c.getOrLoad('k', () => c.getOrLoad('k', async () => 1)), (e) => e.code === 'RecursiveLoad');
  assert.equal(await c.getOrLoad('k', async () => 2), 2);
  assert.equal(c.stats().inFlight, 0);
});

// The web build is instantiated by the user: a use before `init`/`initSync` says so, with a code.
test('node: the web build used before init throws HEALCACHE_NOT_INITIALIZED', () => {
  const script = `
    const { Cache, ManualClock, initSync } = await import('healcache/wasm/web');
    const codes = [];
    for (const f of [() => new Cache(), () => new Cache({ maxEntries: -1 }), () => new ManualClock()]) {
      try { f(); codes.push('no error'); } catch (e) { codes.push(e.code + ': ' + e.message.includes('call init() or initSync() first')); }
    }
    initSync(readFileSync(${JSON.stringify(`${root}bindings-wasm/pkg-web/healcache_wasm_bg.wasm`)}));
    const c = new Cache();
    c.set('k', 1);
    codes.push(c.get('k'));
    console.log(JSON.stringify(codes));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `import { readFileSync } from 'node:fs';${script}`], { cwd: root, encoding: 'utf8' });
  const nope = 'HEALCACHE_NOT_INITIALIZED: true';
  assert.deepEqual(JSON.parse(out), [nope, nope, nope, 1]);
});

// `init()` with no argument fetches the .wasm beside the glue, `init(url)` the one at `url`: both
// reach the host's `fetch` (a module export named `fetch` once shadowed it in the glue).
test('deno: init() and init(url) load the module', { skip: cannotRun('deno') }, async () => {
  const wasmUrl = pathToFileURL(`${root}bindings-wasm/pkg-web/healcache_wasm_bg.wasm`).href;
  for (const call of ['init()', `init(${JSON.stringify(wasmUrl)})`]) {
    const r = await runDeno(
      `import init, { Cache } from 'healcache/wasm/web';
await ${call};
const c = new Cache({ maxEntries: 10 });
c.set('k', 'v');
console.log(JSON.stringify([c.get('k'), await c.getOrLoad('j', async () => 'w')]));`,
    );
    assert.equal(r.status, 0, `${call}: ${r.stderr}`);
    assert.equal(r.stdout.trim(), '["v","w"]', call);
  }
});

test('node: init(url) loads the module over HTTP; no export shadows a global', async () => {
  const bytes = readFileSync(`${root}bindings-wasm/pkg-web/healcache_wasm_bg.wasm`);
  const server = createServer((req, res) => res.writeHead(200, { 'content-type': 'application/wasm' }).end(bytes));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const glue = await import('../../bindings-wasm/pkg-web/healcache_wasm.js');
    const shadowing = Object.keys(glue).filter((name) => name in globalThis);
    assert.deepEqual(shadowing, [], 'module exports named like globals');
    const web = await import('healcache/wasm/web');
    await web.init(`http://127.0.0.1:${server.address().port}/healcache_wasm_bg.wasm`);
    const c = new web.Cache();
    c.set('k', 1);
    assert.equal(c.get('k'), 1);
  } finally {
    server.close();
  }
});

test('node: waitUntil is a function, as a cache option and a call option', async () => {
  const { Cache } = await import('healcache/wasm');
  for (const bad of [5, 'ctx', {}]) {
    assert.throws(() => new Cache({ waitUntil: bad }), (e) => e.code === 'InvalidConfig' && e.field === 'waitUntil');
    const c = new Cache();
    await assert.rejects(c.fetch('k', async () => 1, { waitUntil: bad }), (e) => e.code === 'InvalidConfig' && e.field === 'waitUntil');
    await assert.rejects(c.getOrLoad('k', async () => 1, { waitUntil: bad }), (e) => e.code === 'InvalidConfig' && e.field === 'waitUntil');
  }
  // a stale value's refresh is handed to the call's waitUntil, else to the cache's
  const handed = [];
  const c = new Cache({ ttl: 200, grace: 10_000, staleWhileRevalidate: true, waitUntil: (p) => handed.push(['cache', p]) });
  assert.equal((await c.fetch('k', async () => 1)).status, 'loaded');
  assert.equal((await c.fetch('j', async () => 1)).status, 'loaded');
  await new Promise((r) => setTimeout(r, 250));
  assert.equal((await c.fetch('k', async () => 2, { waitUntil: (p) => handed.push(['call', p]) })).status, 'stale');
  assert.equal((await c.fetch('j', async () => 2)).status, 'stale');
  assert.deepEqual(handed.map(([who]) => who), ['call', 'cache']);
  await Promise.all(handed.map(([, p]) => p));
  assert.deepEqual([c.get('k'), c.get('j')], [2, 2], 'the refreshes landed');
});

// workerd refuses crypto.getRandomValues in global scope, where caches are often created (there it
// throws, and the module falls back to Math.random): creating a cache draws no randomness.
test('node: a cache draws its seed at its first use, never at its creation', async () => {
  const { Cache } = await import('healcache/wasm');
  const { crypto } = globalThis;
  const real = crypto.getRandomValues;
  let draws = 0;
  Object.defineProperty(crypto, 'getRandomValues', {
    value: (a) => {
      draws++;
      return real.call(crypto, a);
    },
    configurable: true,
    writable: true,
  });
  try {
    const c = new Cache({ maxEntries: 10, ttl: 60_000 });
    assert.equal(draws, 0, 'new Cache() drew no randomness');
    c.set('k', 1);
    assert.equal(draws, 1, 'the first call that needs the engine draws the seed');
    c.set('j', 2);
    assert.deepEqual([c.get('k'), c.get('j'), draws], [1, 2, 1]);
    const seeded = new Cache({ seed: 7 });
    seeded.set('k', 1);
    assert.equal(draws, 1, 'a cache given a seed draws none');
    assert.throws(() => new Cache({ maxEntries: -1 }), (e) => e.code === 'InvalidConfig', 'settings are still checked at creation');
    assert.equal(draws, 1);
  } finally {
    Object.defineProperty(crypto, 'getRandomValues', { value: real, configurable: true, writable: true });
  }
});

// The opt-in wire module in a worker: entries the Node package wrote to a real redis-server,
// read by the worker through an HTTP-to-Redis service on 127.0.0.1, decode to the same values.
const WIRE_WORKER = readFileSync(new URL('./wire_worker.mjs', import.meta.url), 'utf8');
const { redisAvailable, RedisServer } = await import('../js/rediskit.mjs');
const { Cache: NodeCache } = await import('healcache');

for (const rt of RUNTIMES) {
  const why = cannotRun(rt.name) || (!redisAvailable() && 'redis-server is not installed');
  test(`${rt.name}: the wire module reads what the fleet wrote, through an HTTP-to-Redis service`, { skip: why }, async () => {
    const redis = await RedisServer.start({});
    const cache = new NodeCache({ redis: redis.url, ttl: 60_000 });
    const conn = await redis.connect();
    const service = createServer(async (req, res) => {
      const key = decodeURIComponent(req.url.slice(1));
      const bytes = await conn.command('GET', key);
      if (bytes === null) return res.writeHead(404).end();
      const pttl = await conn.command('PTTL', key);
      res.writeHead(200, { 'x-pttl': String(pttl) }).end(bytes);
    });
    await new Promise((r) => service.listen(0, '127.0.0.1', r));
    const serviceUrl = `http://127.0.0.1:${service.address().port}`;
    const w = await rt.start(rt.source(WIRE_WORKER));
    try {
      const doc = { name: 'Ada', langs: ['en', 'fr'], n: 36, pi: 3.5, big: 2n ** 63n - 1n, raw: new Uint8Array([0, 255]) };
      cache.set('user:1', doc);
      cache.set('n', 42);
      for (const end = Date.now() + 5000; cache.stats().l2Writes < 2; await sleep(5)) assert.ok(Date.now() < end);
      const read = async (key) => (await getJson(`${w.url}/?service=${encodeURIComponent(serviceUrl)}&key=${encodeURIComponent(key)}`))[1];
      const got = await read('user:1');
      assert.deepEqual(got, {
        kind: 'value',
        fresh: true,
        value: { name: 'Ada', langs: ['en', 'fr'], n: 36, pi: 3.5, big: { bigint: String(2n ** 63n - 1n) }, raw: { bytes: [0, 255] } },
      }, `${rt.name} output:\n${w.output().slice(0, 2000)}`);
      assert.deepEqual(await read('n'), { kind: 'value', fresh: true, value: 42 });
      assert.deepEqual(await read('absent'), { kind: 'miss' });
      cache.delete('n');
      let after;
      for (const end = Date.now() + 5000; (after = await read('n')).kind !== 'tombstone'; await sleep(10)) assert.ok(Date.now() < end);
      assert.equal(after.fresh, false);
    } finally {
      await w.stop();
      cache.close();
      conn.close();
      await new Promise((r) => service.close(r));
      await redis.close();
    }
  });
}
