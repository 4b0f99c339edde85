// Self-healing through the JS API: sources, verification, repair, scores, settings,
// the read mirror after repairs, the background loop (Node), URL-template sources over real HTTP
// on loopback (Node). The algorithms are tested in core/tests/healing.rs; these check the binding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Cache, NOT_FOUND, WASM, sleep } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

const thrown = (fn) => {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail('expected a throw');
};

/** A cache of `n` users and a Map "database" holding equal (not identical) objects. */
function filled(n, options) {
  const cache = new Cache({ maxEntries: 10 * n, seed: 7, ...options });
  const db = new Map();
  for (let i = 0; i < n; i++) {
    cache.set(`user:${i}`, { id: i, name: `user ${i}` });
    db.set(`user:${i}`, { id: i, name: `user ${i}` });
  }
  return { cache, db };
}

const dbSource = (db) => (key) => (db.has(key) ? db.get(key) : NOT_FOUND);

test('the issue scenario: 10% drift shows in the score, then repairs bring it to 1.0', async () => {
  const n = 2000;
  const { cache, db } = filled(n, { healing: { sampleRate: 0.25, autoRepair: false } });
  // drift behind the cache's back: 10% of the users changed at the source
  const changed = [];
  for (let i = 0; i < n; i += 10) {
    const v = { id: i, name: `renamed ${i}` };
    db.set(`user:${i}`, v);
    changed.push([`user:${i}`, v]);
  }
  cache.registerSource('user:', async (key) => dbSource(db)(key));
  for (let round = 0; round < 4; round++) {
    const r = await cache.verifyNow();
    assert.equal(r.drawn, 500);
    assert.equal(r.verified, 500);
    assert.equal(r.repaired, 0);
    assert.equal(r.consistent + r.drift, 500);
  }
  let s = cache.score('user:');
  assert.equal(s.sampled, 2000);
  assert.ok(Math.abs(s.score - 0.9) < 0.05, `score ${s.score} with 10% drift`);
  assert.equal(cache.get('user:10').name, 'user 10', 'nothing repaired with autoRepair off');

  cache.configSet('healing.auto_repair', 'true');
  cache.setHealing({ sampleRate: 0.5 });
  let last = s.score;
  let rounds = 0;
  while (cache.score('user:').score < 1) {
    rounds++;
    assert.ok(rounds <= 100, `score stuck at ${cache.score('user:').score}`);
    const r = await cache.verifyNow();
    assert.equal(r.repaired, r.drift, 'every drift found is repaired');
    const now = cache.score('user:').score;
    assert.ok(now >= last - 0.05, `score fell from ${last} to ${now}`);
    last = now;
  }
  // one full pass repairs whatever the samples missed
  cache.setHealing({ sampleRate: 1 });
  await cache.verifyNow();
  const r = await cache.verifyNow();
  assert.equal(r.drift, 0);
  // identity: a repaired key returns the very object the source gave
  for (const [key, v] of changed) assert.equal(cache.get(key), v, key);
  assert.deepEqual(cache.get('user:11'), db.get('user:11'));
  const st = cache.healingStats();
  assert.equal(st.totalRepaired, changed.length);
  assert.equal(st.sourceFailures, 0);
  assert.ok(st.totalSampled >= 2000 + n);
  assert.ok(st.totalDrift >= changed.length);
  assert.equal(st.intervalDuration.counts.length, 14);
  assert.ok(st.intervalDuration.counts.reduce((a, b) => a + b) >= 6);
  const events = cache.driftEvents();
  assert.ok(events.length > 0);
  for (const e of events) {
    assert.equal(e.prefix, 'user:');
    assert.match(e.oldDigest, /^[0-9a-f]{8}$/);
    assert.match(e.newDigest, /^[0-9a-f]{8}$/);
    assert.equal(typeof e.atMs, 'number');
  }
  const repairedEvents = events.filter((e) => e.repaired);
  assert.equal(repairedEvents.length, changed.length);
  // the same value digests the same: every repair of user:K went to one digest per key
  const byKey = new Map(repairedEvents.map((e) => [e.key, e.newDigest]));
  assert.equal(byKey.size, changed.length);
});

test('a sync source and an async source; repaired values are returned by get at once', async () => {
  for (const kind of ['sync', 'async']) {
    const { cache, db } = filled(50, { healing: { sampleRate: 1 } });
    const fresh = { id: 3, name: 'fresh' };
    db.set('user:3', fresh);
    const src = dbSource(db);
    cache.registerSource('user:', kind === 'sync' ? src : async (k) => (await sleep(1), src(k)));
    const r = await cache.verifyNow();
    assert.deepEqual([r.verified, r.consistent, r.drift, r.repaired, r.failures], [50, 49, 1, 1, 0], kind);
    assert.equal(cache.get('user:3'), fresh, kind);
    assert.equal(cache.getEntry('user:3').value, fresh);
    assert.ok(cache.has('user:3'));
    assert.equal(cache.score('user:').repaired, 1);
  }
});

test('NOT_FOUND at the source removes the cached entry', async () => {
  const { cache, db } = filled(20, { healing: { sampleRate: 1 } });
  db.delete('user:4');
  db.delete('user:5');
  cache.registerSource('user:', dbSource(db));
  const r = await cache.verifyNow();
  assert.deepEqual([r.drift, r.repaired], [2, 2]);
  assert.equal(cache.get('user:4'), undefined);
  assert.equal(cache.has('user:5'), false);
  assert.equal(cache.version('user:5'), 0);
  assert.equal(cache.size, 18);
  const ev = cache.driftEvents().find((e) => e.key === 'user:4');
  assert.equal(ev.newDigest, 'absent');
  assert.equal(ev.repaired, true);
  // written again later: a normal entry
  cache.set('user:4', 'back');
  assert.equal(cache.get('user:4'), 'back');
  assert.equal((await cache.verifyNow()).drift, 1);
  assert.equal(cache.get('user:4'), undefined);
});

test('a throwing, rejecting or undefined-returning source is a failure, never drift nor score', async () => {
  for (const bad of [
    () => {
      throw new Error('db down');
    },
    async () => Promise.reject(new Error('db down')),
    () => undefined,
  ]) {
    const { cache } = filled(10, { healing: { sampleRate: 1 } });
    cache.registerSource('user:', bad);
    const r = await cache.verifyNow();
    assert.deepEqual([r.verified, r.drift, r.failures, r.skipped], [0, 0, 10, 10]);
    const s = cache.score('user:');
    assert.deepEqual([s.score, s.sampled], [1, 0]);
    assert.equal(cache.healingStats().sourceFailures, 10);
    assert.equal(cache.get('user:1').name, 'user 1', 'nothing changed');
  }
});

test('a source that never answers times out as a failure', async () => {
  const { cache } = filled(3, { healing: { sampleRate: 1, sourceTimeoutMs: 30 } });
  cache.registerSource('user:', () => new Promise(() => {}));
  const r = await cache.verifyNow();
  assert.deepEqual([r.verified, r.failures], [0, 3]);
  assert.equal(cache.get('user:0').name, 'user 0');
});

test('the longest registered prefix wins; unregistering falls back to the shorter one', async () => {
  const cache = new Cache({ healing: { sampleRate: 1 } });
  for (const k of ['u:1', 'u:2', 'u:admin:1', 'other']) cache.set(k, k);
  const seen = { short: [], long: [] };
  cache.registerSource('u:', (k) => (seen.short.push(k), k));
  cache.registerSource('u:admin:', (k) => (seen.long.push(k), k));
  const r = await cache.verifyNow();
  assert.deepEqual([r.drawn, r.verified, r.skipped], [4, 3, 1], 'a key without a source is skipped');
  assert.deepEqual(seen.short.sort(), ['u:1', 'u:2']);
  assert.deepEqual(seen.long, ['u:admin:1']);
  assert.deepEqual(
    cache.scores().map((s) => [s.prefix, s.score, s.sampled]),
    [['u:', 1, 2], ['u:admin:', 1, 1]],
  );
  assert.equal(cache.unregisterSource('u:admin:'), true);
  assert.equal(cache.unregisterSource('u:admin:'), false);
  assert.equal(cache.score('u:admin:'), undefined);
  await cache.verifyNow();
  assert.deepEqual(seen.short.filter((k) => k === 'u:admin:1'), ['u:admin:1']);
  // registering a prefix again replaces its source
  cache.registerSource('u:', () => 'changed');
  await cache.verifyNow();
  assert.equal(cache.get('u:1'), 'changed');
});

test('compare: a custom comparator (canonical JSON) decides what is drift', async () => {
  const canonical = (v) => JSON.stringify(v, Object.keys(v).sort());
  const cache = new Cache({ healing: { sampleRate: 1 } });
  cache.set('p:1', { a: 1, b: 2 });
  const src = () => ({ b: 2, a: 1 });
  cache.registerSource('p:', src);
  assert.equal((await cache.verifyNow()).drift, 1, 'key order is drift for the default comparison');
  cache.set('p:1', { a: 1, b: 2 });
  let calls = 0;
  cache.registerSource('p:', src, {
    compare: (cached, fresh, key) => {
      calls++;
      assert.equal(key, 'p:1');
      return canonical(cached) === canonical(fresh);
    },
  });
  const r = await cache.verifyNow();
  assert.deepEqual([r.consistent, r.drift], [1, 0]);
  assert.equal(calls, 1);
  // a comparator that throws says "not the same" (as in Python): drift, never a source failure
  cache.registerSource('p:', src, { compare: () => { throw new Error('boom'); } });
  const thrownCompare = await cache.verifyNow();
  assert.deepEqual([thrownCompare.drift, thrownCompare.failures], [1, 0]);
});

test('the default comparison: strings and bytes byte for byte, other values by JSON text', async () => {
  const cache = new Cache({ healing: { sampleRate: 1 } });
  const answers = new Map([
    ['v:str', ['héllo', 'héllo']],
    ['v:buf', [Buffer.from('abc'), new Uint8Array([97, 98, 99])]],
    ['v:num', [42, 42]],
    ['v:obj', [{ x: [1, 2] }, { x: [1, 2] }]],
    ['v:strdiff', ['a', 'b']],
    ['v:bufdiff', [Buffer.from('abc'), Buffer.from('abd')]],
    ['v:type', ['1', 1]],
  ]);
  for (const [k, [cached]] of answers) cache.set(k, cached);
  cache.registerSource('v:', (k) => answers.get(k)[1]);
  const r = await cache.verifyNow();
  assert.deepEqual([r.consistent, r.drift], [4, 3]);
  const drifted = cache.driftEvents().map((e) => e.key).sort();
  assert.deepEqual(drifted, ['v:bufdiff', 'v:strdiff', 'v:type']);
  assert.equal(cache.get('v:type'), 1);
});

test('a set racing with the interval wins over the repair (fenced)', async () => {
  const cache = new Cache({ healing: { sampleRate: 1 } });
  cache.set('k', 'old');
  const mine = { mine: true };
  cache.registerSource('k', async (key) => {
    cache.set(key, mine); // a write while the source is asked
    await sleep(1);
    return 'from source';
  });
  const r = await cache.verifyNow();
  // the write made the sample moot: skipped, no drift, no event
  assert.deepEqual([r.drift, r.repaired, r.skipped], [0, 0, 1]);
  assert.equal(cache.get('k'), mine);
  assert.deepEqual(cache.driftEvents(), []);
  // and the next interval compares the newer value
  cache.registerSource('k', () => mine);
  assert.equal((await cache.verifyNow()).consistent, 1);
  assert.equal(cache.get('k'), mine);
});

test('reads while an interval runs give the old or the repaired value, then the repaired one', async () => {
  const cache = new Cache({ healing: { sampleRate: 1, sourceConcurrency: 1 } });
  cache.set('a', 'old a');
  cache.set('b', 'old b');
  const fresh = { a: ['new a'], b: ['new b'] };
  let release;
  const gate = new Promise((r) => (release = r));
  let answered = 0;
  cache.registerSource('', async (k) => {
    if (answered++ === 1) await gate; // the second key waits
    return fresh[k];
  });
  const running = cache.verifyNow();
  while (answered < 2) await sleep(1);
  for (const k of ['a', 'b']) {
    const v = cache.get(k);
    assert.ok(v === `old ${k}` || v === fresh[k], String(v));
  }
  release();
  const r = await running;
  assert.equal(r.repaired, 2);
  assert.equal(cache.get('a'), fresh.a);
  assert.equal(cache.get('b'), fresh.b);
  assert.equal(cache.getEntry('a').value, fresh.a);
  assert.ok(cache.version('a') > 0);
});

test('a cached "not found" is verified too', async () => {
  const cache = new Cache({ negativeTtl: 60_000, healing: { sampleRate: 1 } });
  const { status } = await cache.fetch('n:1', () => NOT_FOUND);
  assert.equal(status, 'negative-loaded');
  let answer = NOT_FOUND;
  cache.registerSource('n:', () => answer);
  assert.deepEqual(Object.values(await cache.verifyNow()).slice(1, 4), [1, 1, 0]);
  const created = { created: true };
  answer = created;
  const r = await cache.verifyNow();
  assert.deepEqual([r.drift, r.repaired], [1, 1]);
  assert.equal(cache.get('n:1'), created);
});

test('interval reports: overlapping calls do not run twice', async () => {
  const { cache } = filled(5, { healing: { sampleRate: 1 } });
  cache.registerSource('user:', async (k) => (await sleep(20), { id: Number(k.slice(5)), name: `user ${k.slice(5)}` }));
  const both = await Promise.all([cache.verifyNow(), cache.runHealingInterval()]);
  // which call starts the interval is up to the backend's scheduler (napi: a tokio pool)
  const [a, b] = both[0].overlapped ? [both[1], both[0]] : both;
  assert.deepEqual(Object.keys(a), ['drawn', 'verified', 'consistent', 'drift', 'repaired', 'skipped', 'failures', 'durationMs', 'overlapped']);
  assert.equal(a.overlapped, false);
  assert.equal(a.consistent, 5);
  assert.equal(b.overlapped, true);
  assert.equal(b.drawn, 0);
});

test('settings: constructor option, typed setter, by name; errors name the setting and change nothing', () => {
  const cache = new Cache({ healing: { sampleRate: 0.05, scoreWindow: 100 } });
  const before = cache.healingConfig();
  assert.deepEqual(before, {
    enabled: false, sampleRate: 0.05, verifyIntervalMs: 5000, autoRepair: true, scoreWindow: 100,
    sourceTimeoutMs: 2000, sourceConcurrency: 16, maxPrefixes: 1024, maxDriftEvents: 1000, maxSamples: 100000,
    // the fleet verifier's settings come with the shared tier, which WebAssembly lacks
    ...(WASM ? {} : { fleetVerify: true, fleetVerifyLease: 5000, fleetVerifyScanBudget: 10000 }),
  });
  assert.equal(cache.configGet('healing.sample_rate'), '0.05');
  cache.configSet('healing.sample_rate', '0.02');
  assert.equal(cache.configGet('healing.sample_rate'), '0.02');
  cache.configSet('healing.verify_interval_ms', 250);
  cache.configSet('healing.auto_repair', false);
  assert.equal(cache.configGet('healing.auto_repair'), 'false');
  cache.setHealing({ sampleRate: 0.5, autoRepair: true });
  assert.equal(cache.healingConfig().sampleRate, 0.5);

  const snapshot = cache.healingConfig();
  const cases = [
    [() => cache.configSet('healing.sample_rate', '2'), 'healing.sample_rate'],
    [() => cache.configSet('healing.sample_rate', 'abc'), 'healing.sample_rate'],
    [() => cache.configSet('healing.enabled', 'yes please'), 'healing.enabled'],
    [() => cache.configSet('healing.score_window', '0'), 'healing.score_window'],
    [() => cache.setHealing({ sampleRate: -1 }), 'healing.sampleRate'],
    [() => cache.setHealing({ sampleRate: 0.9, scoreWindow: 1.5 }), 'healing.scoreWindow'],
    [() => cache.setHealing({ verifyIntervalMs: NaN }), 'healing.verifyIntervalMs'],
    [() => cache.setHealing({ sampleRate: '0.1' }), 'healing.sampleRate'],
    [() => cache.setHealing({ enabled: 1 }), 'healing.enabled'],
    [() => cache.setHealing({ sampelRate: 0.1 }), 'healing.sampelRate'],
    [() => new Cache({ healing: { sampleRate: 3 } }), 'healing.sampleRate'],
    [() => new Cache({ healing: 'on' }), 'healing'],
  ];
  for (const [fn, field] of cases) {
    const e = thrown(fn);
    assert.equal(e.code, 'InvalidConfig', `${field}: ${e.message}`);
    assert.equal(e.field, field, e.message);
    assert.ok(e.message.includes(field), e.message);
  }
  assert.deepEqual(cache.healingConfig(), snapshot, 'nothing changed');
  const unknown = thrown(() => cache.configSet('healing.sample_rat', '0.1'));
  assert.equal(unknown.code, 'InvalidConfig');
  assert.match(unknown.message, /unknown setting "healing\.sample_rat".*healing\.sample_rate/);
  assert.equal(thrown(() => cache.configGet('nope')).code, 'InvalidConfig');
  assert.equal(thrown(() => cache.configSet(1, '1')).code, 'ERR_INVALID_ARG_TYPE');
  assert.equal(thrown(() => cache.configSet('healing.sample_rate', null)).code, 'ERR_INVALID_ARG_TYPE');
  assert.deepEqual(cache.healingConfig(), snapshot);
});

test('registerSource checks its arguments; prefixes are bounded by healing.maxPrefixes', () => {
  const cache = new Cache({ healing: { maxPrefixes: 2 } });
  // a prefix is checked as keys are: a non-string is a TypeError with code InvalidKey
  const notString = thrown(() => cache.registerSource(1, () => 1));
  assert.equal(notString.code, 'InvalidKey');
  assert.ok(notString instanceof TypeError);
  assert.equal(thrown(() => cache.registerSource('p', 42)).code, 'ERR_INVALID_ARG_TYPE');
  assert.equal(thrown(() => cache.registerSource('p', () => 1, { comparer: () => true })).field, 'comparer');
  assert.equal(thrown(() => cache.registerSource('p', () => 1, { decode: 'json' })).field, 'decode');
  assert.equal(thrown(() => cache.registerSource('p', () => 1, { compare: 'yes' })).field, 'compare');
  cache.registerSource('a', () => 1);
  cache.registerSource('b', () => 1);
  cache.registerSource('a', () => 2); // replacing is not one more
  const e = thrown(() => cache.registerSource('c', () => 1));
  assert.equal(e.code, 'InvalidConfig');
  assert.equal(e.field, 'healing.maxPrefixes');
  assert.equal(cache.scores().length, 2);
});

test('drift history is bounded by healing.maxDriftEvents', async () => {
  const cache = new Cache({ healing: { sampleRate: 1, maxDriftEvents: 5 } });
  for (let i = 0; i < 20; i++) cache.set(`d:${i}`, i);
  cache.registerSource('d:', (k) => `${k}!`);
  assert.equal((await cache.verifyNow()).drift, 20);
  assert.equal(cache.driftEvents().length, 5);
});

test('healing metrics are part of the Prometheus text', async () => {
  const { cache } = filled(10, { healing: { sampleRate: 1 } });
  cache.registerSource('user:', () => 'x');
  await cache.verifyNow();
  const text = cache.prometheus('users');
  assert.match(text, /^healcache_healing_samples_total\{cache="users"\} 10$/m);
  assert.match(text, /^healcache_healing_repairs_total\{cache="users"\} 10$/m);
  assert.match(text, /^healcache_healing_score\{cache="users",prefix="user:"\} 0$/m);
  assert.match(text, /healcache_healing_interval_duration_ms_bucket/);
  assert.match(text, /^healcache_inserts_total\{cache="users"\} 10$/m, 'the cache counters are still there');
});

test('close() unregisters every source', async () => {
  const { cache } = filled(5, { healing: { sampleRate: 1 } });
  let calls = 0;
  cache.registerSource('user:', () => (calls++, 'x'));
  cache.close();
  assert.deepEqual(cache.scores(), []);
  const r = await cache.verifyNow();
  assert.equal(r.skipped, 5);
  assert.equal(calls, 0);
  assert.equal(cache.get('user:1').name, 'user 1', 'entries stay');
});

test('the process exits after intervals, with sources registered and healing enabled', () => {
  const script = `
    const { Cache } = require(${JSON.stringify(WASM ? 'healcache/wasm' : 'healcache')});
    const c = new Cache({ healing: { enabled: true, verifyIntervalMs: 60000, sampleRate: 1, sourceTimeoutMs: 60000 } });
    for (let i = 0; i < 50; i++) c.set('k' + i, i);
    c.registerSource('k', (k) => Number(k.slice(1)));
    c.verifyNow().then((r) => console.log('verified', r.verified));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, `${r.stderr} ${r.signal}`);
  assert.match(r.stdout, /verified 50/);
});

// ---- Node only: the background loop ----

test('background loop: runs every verifyIntervalMs when enabled, never piles up, stops on close', { skip: WASM && 'WASM: the host schedules runHealingInterval' }, async () => {
  const cache = new Cache({ healing: { sampleRate: 1, verifyIntervalMs: 5 } });
  cache.set('slow', 1);
  let calls = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  cache.registerSource('slow', async () => {
    calls++;
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    await sleep(30);
    inFlight--;
    return 1;
  });
  await sleep(50);
  assert.equal(calls, 0, 'not enabled yet');
  cache.configSet('healing.enabled', 'true');
  const t0 = Date.now();
  while (calls < 3) {
    assert.ok(Date.now() - t0 < 20_000, 'the loop runs');
    await sleep(5);
  }
  assert.equal(maxInFlight, 1, 'one interval at a time');
  assert.ok(cache.score('slow').sampled >= 2);
  cache.close();
  await sleep(60);
  const after = calls;
  await sleep(150);
  assert.equal(calls, after, 'no interval after close');
  assert.equal(cache.healingStats().sourceFailures, 0);
});

test('background loop: turning healing off stops it, a new interval setting is taken', { skip: WASM && 'WASM: the host schedules runHealingInterval' }, async () => {
  const cache = new Cache({ healing: { enabled: true, sampleRate: 1, verifyIntervalMs: 5 } });
  cache.set('k', 1);
  let calls = 0;
  cache.registerSource('k', () => (calls++, 1));
  while (calls < 2) await sleep(5);
  cache.setHealing({ enabled: false });
  await sleep(30);
  const after = calls;
  await sleep(100);
  assert.equal(calls, after);
  cache.setHealing({ enabled: true, verifyIntervalMs: 10 });
  while (calls < after + 2) await sleep(5);
  cache.close();
});

// ---- WASM only ----

test('WASM: a URL-template source is refused with a clear error (use a function calling fetch)', { skip: !WASM && 'TEST_WASM not set' }, () => {
  const cache = new Cache();
  const e = thrown(() => cache.registerSource('u:', 'http://127.0.0.1:9/users/{key}'));
  assert.equal(e.code, 'InvalidConfig');
  assert.equal(e.field, 'source');
  assert.match(e.message, /fetch\(\)/);
});

// ---- Node only: URL-template sources over real HTTP on loopback ----

/** An HTTP server on 127.0.0.1 (port 0) answering from `routes` (raw path -> [status, body]); logs raw request paths. */
async function server() {
  const routes = new Map();
  const seen = [];
  const srv = createServer(async (req, res) => {
    seen.push(req.url);
    if (req.url.startsWith('/slow/')) await sleep(500);
    const r = routes.get(req.url);
    if (r === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(r[0], { 'content-type': 'application/octet-stream' }).end(r[1]);
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${srv.address().port}`;
  return { routes, seen, base, close: () => new Promise((r) => srv.close(r)) };
}

test('P1: an HTTP source follows a sourceTimeout set after its registration', { skip: WASM && 'URL-template sources are native only' }, async () => {
  const s = await server();
  try {
    const cache = new Cache({ healing: { sampleRate: 1, sourceTimeout: 200 } });
    cache.set('k', 's');
    s.routes.set('/slow/k', [200, 's']);
    cache.registerSource('', `${s.base}/slow/{key}`, { decode: 'text', allowPrivate: ['127.0.0.1'] });
    cache.setHealing({ sourceTimeout: 3000 });
    const r = await cache.verifyNow();
    assert.deepEqual([r.consistent, r.failures], [1, 0]);
  } finally {
    await s.close();
  }
});

test('HTTP source: 200 JSON decoded and compared, 404 removes, 500 is a failure', { skip: WASM && 'URL-template sources are native only' }, async () => {
  const s = await server();
  try {
    const cache = new Cache({ healing: { sampleRate: 1 } });
    cache.set('user:ann', { name: 'ann', age: 30 });
    cache.set('user:bob', { name: 'bob' });
    cache.set('user:gone', { name: 'gone' });
    cache.set('user:err', { name: 'err' });
    s.routes.set('/users/ann', [200, '{"name":"ann","age":30}']);
    s.routes.set('/users/bob', [200, '{"name":"robert"}']);
    s.routes.set('/users/err', [500, 'oops']);
    cache.registerSource('user:', `${s.base}/users/{key}`, { decode: 'json', stripPrefix: true, allowPrivate: ['127.0.0.1'] });
    const r = await cache.verifyNow();
    assert.deepEqual([r.verified, r.consistent, r.drift, r.repaired, r.failures], [3, 1, 2, 2, 1]);
    assert.deepEqual(cache.get('user:bob'), { name: 'robert' });
    assert.equal(cache.has('user:gone'), false);
    assert.deepEqual(cache.get('user:err'), { name: 'err' }, 'a failure changes nothing');
    assert.equal(cache.healingStats().sourceFailures, 1);
    assert.deepEqual(s.seen.sort(), ['/users/ann', '/users/bob', '/users/err', '/users/gone']);
    // a body that is not JSON is a failure too
    s.routes.set('/users/ann', [200, '{not json']);
    const r2 = await cache.verifyNow();
    assert.equal(r2.failures, 2);
    assert.deepEqual(cache.get('user:ann'), { name: 'ann', age: 30 });
  } finally {
    await s.close();
  }
});

test('HTTP source: loopback and other non-public destinations are refused unless allowed', { skip: WASM && 'URL-template sources are native only' }, async () => {
  const s = await server();
  try {
    const cache = new Cache({ healing: { sampleRate: 1 } });
    cache.set('d:1', 'stale');
    s.routes.set('/d/1', [200, 'fresh']);
    cache.registerSource('d:', `${s.base}/d/{key}`, { decode: 'text', stripPrefix: true });
    let r = await cache.verifyNow();
    assert.deepEqual([r.failures, r.repaired], [1, 0]);
    cache.registerSource('d:', `${s.base}/d/{key}`, { decode: 'text', stripPrefix: true, allowPrivate: ['api.internal'] });
    r = await cache.verifyNow();
    assert.deepEqual([r.failures, r.repaired], [1, 0]);
    assert.deepEqual(s.seen, [], 'a refused destination was contacted');
    cache.registerSource('d:', `${s.base}/d/{key}`, { decode: 'text', stripPrefix: true, allowPrivate: ['127.0.0.1'] });
    r = await cache.verifyNow();
    assert.equal(r.repaired, 1);
    assert.equal(cache.get('d:1'), 'fresh');
    assert.equal(thrown(() => cache.registerSource('d:', `${s.base}/d/{key}`, { allowPrivate: '127.0.0.1' })).field, 'allowPrivate');
    assert.equal(thrown(() => cache.registerSource('d:', () => 1, { allowPrivate: true })).field, 'allowPrivate');
  } finally {
    await s.close();
  }
});

test('HTTP source: buffer and text decoding, byte for byte', { skip: WASM && 'URL-template sources are native only' }, async () => {
  const s = await server();
  try {
    const cache = new Cache({ healing: { sampleRate: 1 } });
    cache.set('b:1', Buffer.from('same'));
    cache.set('b:2', Buffer.from('old'));
    cache.set('t:1', 'héllo');
    s.routes.set('/b/b%3A1', [200, 'same']);
    s.routes.set('/b/b%3A2', [200, 'new']);
    s.routes.set('/t?id=1', [200, 'héllo']);
    cache.registerSource('b:', `${s.base}/b/{key}`, { allowPrivate: true }); // decode: "buffer", the whole key in the URL
    cache.registerSource('t:', `${s.base}/t?id={key}`, { decode: 'text', stripPrefix: true, allowPrivate: true });
    const r = await cache.verifyNow();
    assert.deepEqual([r.consistent, r.drift, r.failures], [2, 1, 0], JSON.stringify(s.seen));
    assert.ok(Buffer.isBuffer(cache.get('b:2')));
    assert.equal(cache.get('b:2').toString(), 'new');
  } finally {
    await s.close();
  }
});

test('HTTP source: hostile keys stay one percent-encoded segment or are refused; bad templates are refused', { skip: WASM && 'URL-template sources are native only' }, async () => {
  const s = await server();
  try {
    const cache = new Cache({ healing: { sampleRate: 1 } });
    cache.set('u:../admin', 'x');
    cache.set('u:a/b?c#d', 'x');
    cache.set('u:..', 'x'); // `..` after the prefix is stripped: refused, never asked
    cache.set('u:', 'x'); // empty: refused
    cache.registerSource('u:', `${s.base}/users/{key}/profile`, { decode: 'text', stripPrefix: true, allowPrivate: true });
    const r = await cache.verifyNow();
    assert.deepEqual([r.drawn, r.verified, r.failures, r.skipped], [4, 2, 0, 2], 'refused keys are skipped, not failures');
    assert.deepEqual(s.seen.sort(), ['/users/..%2Fadmin/profile', '/users/a%2Fb%3Fc%23d/profile']);
    assert.equal(cache.has('u:../admin'), false, '404 at the one-segment URL');
    assert.equal(cache.get('u:..'), 'x');
    for (const t of [
      'http://{key}.example.com/x',
      `${s.base}/users/pre{key}`,
      `${s.base}/users`,
      'ftp://example.com/{key}',
      'not a url {key}',
    ]) {
      const e = thrown(() => cache.registerSource('v:', t));
      assert.equal(e.code, 'InvalidConfig', t);
      assert.equal(e.field, 'source', t);
    }
    assert.equal(thrown(() => cache.registerSource('v:', `${s.base}/{key}`, { maxBodyBytes: 0 })).field, 'maxBodyBytes');
    assert.equal(thrown(() => cache.registerSource('v:', `${s.base}/{key}`, { decode: 'xml' })).field, 'decode');
  } finally {
    await s.close();
  }
});

test('HTTP source: a connection refused or an oversized body is a failure', { skip: WASM && 'URL-template sources are native only' }, async () => {
  const s = await server();
  const port = Number(new URL(s.base).port);
  s.routes.set('/big/x:1', [200, 'y'.repeat(2000)]);
  try {
    const cache = new Cache({ healing: { sampleRate: 1 } });
    cache.set('x:1', 'v');
    cache.registerSource('x:', `${s.base}/big/{key}`, { maxBodyBytes: 1000, decode: 'text', allowPrivate: true });
    assert.equal(s.routes.has('/big/x:1'), true);
    s.routes.set('/big/x%3A1', s.routes.get('/big/x:1'));
    assert.equal((await cache.verifyNow()).failures, 1);
  } finally {
    await s.close();
  }
  const cache = new Cache({ healing: { sampleRate: 1 } });
  cache.set('x:1', 'v');
  cache.registerSource('x:', `http://127.0.0.1:${port}/{key}`);
  const r = await cache.verifyNow();
  assert.deepEqual([r.failures, r.verified], [1, 0]);
  assert.equal(cache.get('x:1'), 'v');
});
