// The conformance scenarios (tests/conformance/*.json, described in its README) on the Node
// surface, or on the WASM one under TEST_WASM=1: the same files the Rust and Python drivers run,
// on a ManualClock and a fixed seed. Load timeouts sleep on the host's timer (wall time), so a
// scenario awaiting one waits those few milliseconds. Writes target/conformance/<surface>.json.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WASM } from './helpers.mjs';

const { Cache, ManualClock, NOT_FOUND } = WASM ? await import('healcache/wasm') : await import('healcache');
const SURFACE = WASM ? 'wasm' : 'node';
const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = `${root}tests/conformance/`;
const SCENARIOS = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .flatMap((f) => JSON.parse(readFileSync(dir + f, 'utf8')).scenarios);
const RESULTS = {};

/** A scripted loader's or source's own error. */
class ScenarioError extends Error {}

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const snake = (s) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
/** Plain data with JS's camelCase keys under the scenarios' snake_case ones. */
const snaked = (v) =>
  Array.isArray(v) ? v.map(snaked)
  : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [snake(k), snaked(x)]))
  : v;
const nulled = (v) => (v === undefined ? null : v);

function outcome(e) {
  if (e instanceof ScenarioError) return { error: 'LoaderError', message: e.message };
  if (e && typeof e.code === 'string') return { error: e.code, field: typeof e.field === 'string' ? snake(e.field) : null };
  throw e;
}

/** Objects by the keys expected, lists item by item, numbers within 1e-6. */
function matches(expect, actual) {
  if (Array.isArray(expect)) return Array.isArray(actual) && expect.length === actual.length && expect.every((e, i) => matches(e, actual[i]));
  if (expect !== null && typeof expect === 'object') {
    return actual !== null && typeof actual === 'object' && Object.entries(expect).every(([k, v]) => matches(v, nulled(actual[k])));
  }
  if (typeof expect === 'number') return typeof actual === 'number' && Math.abs(expect - actual) < 1e-6;
  return expect === actual;
}

const tick = (ms = 2) => new Promise((r) => setTimeout(r, ms));

class Run {
  constructor(s) {
    this.clock = new ManualClock();
    const o = { seed: 1, clock: this.clock };
    for (const [k, v] of Object.entries(s.config || {})) {
      if (k === 'weigher') o.sizeOf = (x) => (typeof x === 'string' ? x.length : 0);
      else o[camel(k)] = v;
    }
    if (s.healing) o.healing = Object.fromEntries(Object.entries(s.healing).map(([k, v]) => [camel(k), v]));
    this.cache = new Cache(o);
    this.gates = new Map();
    this.calls = new Map();
    this.aborts = new Map();
  }

  gate(name) {
    if (!this.gates.has(name)) {
      let open;
      const p = new Promise((r) => (open = r));
      this.gates.set(name, { p, open });
    }
    return this.gates.get(name);
  }

  loader(spec) {
    const gate = spec.gate === undefined ? undefined : this.gate(spec.gate);
    return async () => {
      if (gate) await gate.p;
      if (spec.advance !== undefined) this.clock.advance(spec.advance);
      if (spec.hang) await new Promise(() => {});
      if (spec.error !== undefined) throw new ScenarioError(spec.error);
      if (spec.load !== undefined) return this.cache.getOrLoad(spec.load, this.loader(spec.loader));
      return spec.not_found ? NOT_FOUND : spec.value;
    };
  }

  start(st) {
    const opts = Object.fromEntries(Object.entries(st.opts || {}).map(([k, v]) => [camel(k), v]));
    let ac;
    if (st.id !== undefined) {
      ac = new AbortController(); // a cancelled caller stops waiting
      this.aborts.set(st.id, ac);
      opts.signal = ac.signal;
    }
    const call = st.op === 'fetch' ? this.cache.fetch(st.key, this.loader(st.loader), opts) : this.cache.getOrLoad(st.key, this.loader(st.loader), opts);
    // JS rejects an aborted call with its signal's reason, as fetch() does: the scenarios' "Cancelled"
    const failed = (e) => (ac !== undefined && ac.signal.aborted && e === ac.signal.reason ? { error: 'Cancelled', field: null } : outcome(e));
    return call.then((r) => (st.op === 'fetch' ? { value: nulled(r.value), status: r.status } : r), failed);
  }

  async wait(call) {
    let timer;
    const late = new Promise((r) => (timer = setTimeout(() => r({ error: 'did not end' }), 5000)));
    try {
      return await Promise.race([call, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Lets background work run until no load is in flight (a hung one ends by its timeout). */
  async settle() {
    for (let i = 0; i < 500 && this.cache.stats().inFlight !== 0; i++) await tick();
    await tick();
  }

  source(answers) {
    return (key) => {
      const a = answers[key];
      if (a === undefined || a.error !== undefined) throw new ScenarioError('source down');
      return a.not_found ? NOT_FOUND : a.value;
    };
  }

  async step(st) {
    const c = this.cache;
    const key = st.key;
    switch (st.op) {
      case 'set': {
        const ttl = st.ttl === 'never' ? Infinity : st.ttl;
        return c.set(key, st.value, { ttl, ifVersion: st.if_version });
      }
      case 'get': return nulled(c.get(key));
      case 'get_entry': {
        const e = c.getEntry(key);
        return e === undefined ? null : { value: e.value, version: e.version, expires_in: nulled(e.expiresIn) };
      }
      case 'contains': return c.has(key);
      case 'version': return c.version(key);
      case 'delete': return c.delete(key, st.if_version === undefined ? undefined : { ifVersion: st.if_version });
      case 'len': return c.size;
      case 'clear': return c.clear();
      case 'purge_expired': return c.purgeExpired();
      case 'advance': return this.clock.advance(st.ms);
      case 'fetch':
      case 'get_or_load': {
        const call = this.start(st);
        if (st.id === undefined) return this.wait(call);
        this.calls.set(st.id, call);
        return await tick(0);
      }
      case 'cancel':
        this.aborts.get(st.id).abort();
        return await tick(0);
      case 'await': return this.wait(this.calls.get(st.id));
      case 'release': return this.gate(st.gate).open();
      case 'settle': return this.settle();
      case 'stats': return snaked(c.stats());
      case 'register_source': return c.registerSource(st.prefix, this.source(st.answers)) ?? true;
      case 'verify_now': return snaked(await c.verifyNow());
      case 'score': return nulled(snaked(c.score(st.prefix)));
      case 'drift_events': return snaked(c.driftEvents());
      case 'healing_stats': return snaked(c.healingStats());
      default: throw new Error(`unknown op ${st.op}`);
    }
  }
}

async function run(s) {
  let r;
  try {
    r = new Run(s);
  } catch (e) {
    assert.ok(s.build_error, `build: ${e.stack}`);
    assert.ok(matches(s.build_error, outcome(e)), `expected ${JSON.stringify(s.build_error)}, got ${JSON.stringify(outcome(e))}`);
    return;
  }
  assert.ok(!s.build_error, `built, expected ${JSON.stringify(s.build_error)}`);
  try {
    for (const [i, st] of s.steps.entries()) {
      let got;
      try {
        got = await r.step(st);
      } catch (e) {
        got = outcome(e);
      }
      if ('expect' in st) {
        assert.ok(matches(st.expect, got), `step ${i} (${st.op}): expected ${JSON.stringify(st.expect)}, got ${JSON.stringify(got)}`);
      }
    }
    await r.settle();
  } finally {
    r.cache.close();
  }
}

for (const s of SCENARIOS) {
  const why = s.skip && s.skip[SURFACE];
  test(`${SURFACE}: ${s.name}`, { skip: why || false }, async () => {
    RESULTS[s.name] = { feature: s.feature, result: 'fail', reason: 'did not finish' };
    try {
      await run(s);
      RESULTS[s.name] = { feature: s.feature, result: 'pass', reason: '' };
    } catch (e) {
      RESULTS[s.name].reason = e.message;
      throw e;
    }
  });
  if (why) RESULTS[s.name] = { feature: s.feature, result: 'skip', reason: why };
}

after(() => {
  mkdirSync(`${root}target/conformance`, { recursive: true });
  writeFileSync(`${root}target/conformance/${SURFACE}.json`, JSON.stringify({ surface: SURFACE, scenarios: RESULTS }, null, 2));
});

test(`${SURFACE}: the test clock refuses what is not a duration, and two caches may share one`, () => {
  const clock = new ManualClock();
  for (const bad of [-1, NaN, Infinity]) assert.throws(() => clock.advance(bad), { code: 'InvalidConfig' });
  assert.throws(() => clock.advance('5'), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.ok(clock.now() < 1e-3);
  assert.throws(() => new Cache({ clock: { now: () => 0 } }), { code: 'InvalidConfig', field: 'clock' });
  const [a, b] = [new Cache({ ttl: 1000, clock }), new Cache({ ttl: 2000, clock })];
  a.set('k', 1);
  b.set('k', 2);
  clock.advance(1000);
  assert.deepEqual([a.get('k'), b.get('k')], [undefined, 2]);
  clock.advance(1000);
  assert.equal(b.get('k'), undefined);
});
