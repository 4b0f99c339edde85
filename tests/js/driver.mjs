// The JS conformance driver, on any runtime (no Node built-ins): the names converted between the
// scenarios' snake_case and JS's camelCase, the one matcher of `expect`, the run of a scenario's
// steps and the table of ops, over the package given. tests/js/conformance.test.mjs runs it on
// Node (the addon, or the WebAssembly build), tests/edge on workerd and Deno (the web build).

export const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
export const snake = (s) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
/** An object's keys in camelCase. */
export const camelKeys = (o) => Object.fromEntries(Object.entries(o || {}).map(([k, v]) => [camel(k), v]));
/** Plain data with JS's camelCase keys under the scenarios' snake_case ones. */
export const snaked = (v) =>
  Array.isArray(v) ? v.map(snaked)
  : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [snake(k), snaked(x)]))
  : v;
export const nulled = (v) => (v === undefined ? null : v);

/** Objects by the keys expected, lists item by item, numbers within 1e-6. */
export function matches(expect, actual) {
  if (Array.isArray(expect)) return Array.isArray(actual) && expect.length === actual.length && expect.every((e, i) => matches(e, actual[i]));
  if (expect !== null && typeof expect === 'object') {
    return actual !== null && typeof actual === 'object' && Object.entries(expect).every(([k, v]) => matches(v, nulled(actual[k])));
  }
  if (typeof expect === 'number') return typeof actual === 'number' && Math.abs(expect - actual) < 1e-6;
  return expect === actual;
}

/**
 * Builds the scenario's run (or checks its `build_error`), checks each step's `expect` against
 * what `run.step` gives (a throw is its outcome), lets background work finish, closes the cache.
 */
export async function runSteps(s, build, outcome) {
  let r;
  try {
    r = build();
  } catch (e) {
    check(s.build_error, `build: ${e.stack}`);
    check(matches(s.build_error, outcome(e)), `expected ${JSON.stringify(s.build_error)}, got ${JSON.stringify(outcome(e))}`);
    return;
  }
  check(!s.build_error, `built, expected ${JSON.stringify(s.build_error)}`);
  try {
    for (const [i, st] of s.steps.entries()) {
      let got;
      try {
        got = await r.step(st);
      } catch (e) {
        got = outcome(e);
      }
      if ('expect' in st) {
        check(matches(st.expect, got), `step ${i} (${st.op}): expected ${JSON.stringify(st.expect)}, got ${JSON.stringify(got)}`);
      } else {
        // a step that states nothing must still succeed: an error there would pass unseen
        check(!(got !== null && typeof got === 'object' && 'error' in got), `step ${i} (${st.op}): no expect, got ${JSON.stringify(got)}`);
      }
    }
    await r.settle();
  } finally {
    r.cache.close();
  }
}

/** A failed check of a scenario: its message says which step and what differed. */
function check(ok, message) {
  if (!ok) throw new Error(message);
}

/**
 * The driver over a package's `{ Cache, ManualClock, NOT_FOUND }`: `run(s)` runs scenario `s`,
 * resolving when it passed and rejecting with what differed.
 */
export function makeDriver({ Cache, ManualClock, NOT_FOUND }) {
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
      this.hung = [];
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
        // held by the run, as a real hung call is by what it waits on: a promise nothing references
        // is collected, and the addon then sees its loader's answer dropped (a LoaderError)
        if (spec.hang) await new Promise((resolve) => this.hung.push(resolve));
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

  return { run: (s) => runSteps(s, () => new Run(s), outcome) };
}
