// The conformance scenarios (tests/conformance/*.json, described in its README) on the Node
// surface, or on the WASM one under TEST_WASM=1: the same files the Rust and Python drivers run,
// on a ManualClock and a fixed seed. Load timeouts sleep on the host's timer (wall time), so a
// scenario awaiting one waits those few milliseconds. Writes target/conformance/<surface>.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WASM } from './helpers.mjs';
import { camel, camelKeys, matches, nulled, runSteps, snake, snaked, testScenarios } from './scenarios.mjs';

const { Cache, ManualClock, NOT_FOUND } = WASM ? await import('healcache/wasm') : await import('healcache');
const SURFACE = WASM ? 'wasm' : 'node';

/** A scripted loader's or source's own error. */
class ScenarioError extends Error {}

function outcome(e) {
  if (e instanceof ScenarioError) return { error: 'LoaderError', message: e.message };
  // Node's own ERR_* codes are a driver's mistake (a wrong argument type), never an engine result
  if (e && typeof e.code === 'string' && !e.code.startsWith('ERR_')) {
    // JS names a healing setting under `healing.`; the scenarios name it alone
    return { error: e.code, field: typeof e.field === 'string' ? snake(e.field.replace(/^healing\./, '')) : null };
  }
  throw e;
}

const tick = (ms = 2) => new Promise((r) => setTimeout(r, ms));

// The steps that need nothing but the cache and the clock: op -> (run, step) => what it gives.
const OPS = {
  set: (r, st) => r.cache.set(st.key, st.value, { ttl: st.ttl === 'never' ? Infinity : st.ttl, ifVersion: st.if_version }),
  get: (r, st) => nulled(r.cache.get(st.key)),
  get_entry: (r, st) => {
    const e = r.cache.getEntry(st.key);
    return e === undefined ? null : { value: e.value, version: e.version, expires_in: nulled(e.expiresIn) };
  },
  contains: (r, st) => r.cache.has(st.key),
  version: (r, st) => r.cache.version(st.key),
  delete: (r, st) => r.cache.delete(st.key, st.if_version === undefined ? undefined : { ifVersion: st.if_version }),
  len: (r) => r.cache.size,
  clear: (r) => r.cache.clear(),
  purge_expired: (r) => r.cache.purgeExpired(),
  advance: (r, st) => r.clock.advance(st.ms),
  release: (r, st) => r.gate(st.gate).open(),
  stats: (r) => snaked(r.cache.stats()),
  register_source: (r, st) => r.cache.registerSource(st.prefix, r.source(st.answers)) ?? true,
  score: (r, st) => nulled(snaked(r.cache.score(st.prefix))),
  drift_events: (r) => snaked(r.cache.driftEvents()),
  healing_stats: (r) => snaked(r.cache.healingStats()),
};

class Run {
  constructor(s) {
    this.clock = new ManualClock();
    const o = { seed: 1, clock: this.clock };
    for (const [k, v] of Object.entries(s.config || {})) {
      if (k === 'weigher') o.sizeOf = (x) => (typeof x === 'string' ? x.length : 0);
      else o[camel(k)] = v;
    }
    if (s.healing) o.healing = camelKeys(s.healing);
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
    const opts = camelKeys(st.opts);
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
    // bounded by time, not by a count of 2 ms ticks (each may take far longer on a loaded machine)
    for (const end = Date.now() + 10_000; this.cache.stats().inFlight !== 0 && Date.now() < end; ) await tick();
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
    if (Object.hasOwn(OPS, st.op)) return OPS[st.op](this, st);
    switch (st.op) {
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
      case 'settle': return this.settle();
      case 'verify_now': return snaked(await this.cache.verifyNow());
      default: throw new Error(`unknown op ${st.op}`);
    }
  }
}

testScenarios(SURFACE, (s) => runSteps(s, () => new Run(s), outcome));

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

test(`${SURFACE}: the matcher refuses what differs (it is what makes every scenario able to fail)`, () => {
  assert.ok(matches({ a: 1 }, { a: 1, b: 2 }), 'keys not expected are ignored');
  assert.ok(matches({ a: null }, {}), 'a missing key reads as null');
  assert.ok(matches(1, 1.0000001), 'numbers within 1e-6');
  for (const [e, a] of [[1, 1.00001], [[1, 2], [1, 2, 3]], [{ a: { b: 1 } }, { a: { b: 2 } }], [true, 1], [1, '1'], ['x', 'y'], [{ a: 1 }, [1]]]) {
    assert.ok(!matches(e, a), `${JSON.stringify(e)} matched ${JSON.stringify(a)}`);
  }
});
