// healcache's JS `Cache`, shared by the Node (napi-rs) and WebAssembly (wasm-bindgen) packages:
// `makeCache(backend)` takes either backend module and returns the same class, so code moves
// between Node and an edge worker by changing the import. The source of truth is this ES module;
// `js/build.mjs` writes a CommonJS copy (dist/cache.cjs) for `require`.
//
// Design: the core is the authority, JS keeps the values.
// - The core (`healcache::Cache<Handle>`) stores a numeric handle per entry, with the value's weight
//   (`sizeOf`, for maxBytes/maxEntryBytes); this wrapper keeps the JS value under that handle. A hit
//   returns the very value that was stored (`get(k) === obj`), no value is copied or serialised, and
//   no napi Reference is needed; the same code runs over napi and WASM.
// - Eviction, TTL rules, versions, coalescing (the core flight table) and sampling live in the core.
//   This wrapper keeps a read mirror `Map<key, slot>` of what the core answered ({value, handle,
//   version, expiresAt}), so `get` is a Map lookup in JS (a call into Rust costs 75-420 ns against
//   about 12 ns for lru-cache's `get`, TOOLCHAIN.md).
// - The mirror stays exact: writes and deletes go through the core and update it with the core's
//   answer; entries the core evicts or expires are queued by the core's removal listener as
//   (key, handle) pairs, and a call that may evict returns a flag (a negative version from
//   `set`, `true` from `touch`), after which the wrapper drains the queue and drops those entries
//   (only if the mirror still holds that very handle: handles are never reused).
// - The mirror's expiry is computed from a JS clock read taken before the core's, so it expires an
//   entry no later than the core does.
// - The eviction policy still sees the reads: one mirror hit in 16 is recorded in a read buffer,
//   sent to the core in batches of 64 keys (`touch`, a core `get` per key), as Caffeine's read
//   buffer does; the core's LFU counters are 4-bit and halved with age, so sampling reads keeps
//   their order.
// - `getOrLoad`: a mirror hit answers at once; otherwise the core's `get_or_load` runs the flight
//   (one per key per cache) and calls back the JS loader once. The loader's value gets a handle like
//   a `set`; its rejection (or synchronous throw) is kept here under a load id, and every waiter
//   receives that very value. An AbortSignal cancels only its caller's wait (core `Cancelled`).
//   A loaded value enters the mirror once the core is seen to hold it (`peek` at settle time).

/** Options of `new Cache(options)`: [JS name, core `Config` field], in the order backends take them. */
const OPTIONS = [
  ['maxEntries', 'max_entries'],
  ['maxBytes', 'max_bytes'],
  ['ttl', 'ttl_ms'],
  ['maxKeyLen', 'max_key_len'],
  ['maxEntryBytes', 'max_entry_bytes'],
  ['maxInFlight', 'max_in_flight'],
  ['loadTimeout', 'load_timeout_ms'],
  ['shards', 'shards'],
  ['seed', 'seed'],
];
const JS_NAME = new Map(OPTIONS.map(([js, core]) => [core, js]));
// JS-only option: `sizeOf(value, key)`, the weight of a value in bytes for maxBytes/maxEntryBytes.
const SIZE_OF = 'sizeOf';
const KNOWN = new Map(OPTIONS.map(([js], i) => [js, i]));

/** Counters of `healcache::Stats`, in the order backends return them. */
const STATS = [
  'hits', 'misses', 'inserts', 'updates', 'evictions', 'expirations', 'entries', 'weight', 'loads',
  'coalesced', 'loadErrors', 'loadPanics', 'loadTimeouts', 'fencedWrites', 'oversizeRejections',
  'inFlight',
];

const SAMPLE_MASK = 15; // one mirror hit in 16 is reported to the core
const READ_BUFFER = 64; // keys per `touch` batch

const now = () => performance.now();

function codeError(code, message, props) {
  const e = new Error(message);
  e.code = code;
  return props ? Object.assign(e, props) : e;
}

function invalid(field, reason) {
  return codeError('InvalidConfig', `invalid config: \`${field}\` ${reason}`, { field });
}

/** A core error naming a core field gets the JS option name instead (`max_entries` -> `maxEntries`). */
function jsField(e) {
  if (e && e.code === 'InvalidConfig' && typeof e.field === 'string') {
    const js = JS_NAME.get(e.field);
    if (js !== undefined) {
      e.message = e.message.split(`\`${e.field}\``).join(`\`${js}\``);
      e.field = js;
    }
  }
  return e;
}

function checkKey(key) {
  if (typeof key !== 'string') {
    throw codeError('ERR_INVALID_ARG_TYPE', `cache keys are strings, got ${typeof key}`);
  }
}

function randomSeed() {
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === 'function') {
    const w = c.getRandomValues(new Uint32Array(2));
    return (BigInt(w[0]) << 32n) | BigInt(w[1]);
  }
  return BigInt(Math.floor(Math.random() * 2 ** 32)) << 32n | BigInt(Math.floor(Math.random() * 2 ** 32));
}

/** The backends' `create` arguments from the options object; names and types checked here. */
function coreArgs(options) {
  const args = new Array(OPTIONS.length).fill(undefined);
  if (options === undefined || options === null) return args;
  if (typeof options !== 'object') throw invalid('options', 'must be an object');
  for (const name of Object.keys(options)) {
    if (name === SIZE_OF) {
      if (options[name] !== undefined && typeof options[name] !== 'function') throw invalid(name, 'must be a function');
      continue;
    }
    const i = KNOWN.get(name);
    if (i === undefined) throw invalid(name, `is not an option (known: ${[...KNOWN.keys(), SIZE_OF].join(', ')})`);
    const v = options[name];
    if (v === undefined) continue;
    if (name === 'seed') {
      if (typeof v === 'bigint') {
        if (v < 0n || v >= 1n << 64n) throw invalid('seed', 'must fit in 64 bits');
        args[i] = v;
      } else if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
        args[i] = BigInt(v);
      } else {
        throw invalid('seed', `must be a non-negative integer or bigint, got ${String(v)}`);
      }
    } else if (typeof v !== 'number') {
      throw invalid(name, `must be a number, got ${typeof v}`);
    } else {
      args[i] = v; // NaN, negative, fractional: the core refuses them and names the field
    }
  }
  return args;
}

/**
 * The default weight of a value: strings weigh their length, ArrayBuffers and views (Buffer,
 * Uint8Array...) their byteLength, other values 0 (give `sizeOf` to weigh them).
 */
function defaultSizeOf(v) {
  if (typeof v === 'string') return v.length;
  if (typeof v === 'object' && v !== null && (ArrayBuffer.isView(v) || v instanceof ArrayBuffer)) return v.byteLength;
  return 0;
}

function weigh(sizeOf, value, key) {
  const w = sizeOf(value, key);
  if (typeof w !== 'number' || !(w >= 0) || w === Infinity) {
    throw invalid(SIZE_OF, `must return a non-negative number of bytes, got ${String(w)}`);
  }
  return w;
}

function ttlArg(ttl) {
  if (ttl === undefined || typeof ttl === 'number') return ttl;
  throw invalid('ttl', `must be a number of milliseconds, got ${typeof ttl}`);
}

/**
 * The `Cache` class over one backend module (napi addon or wasm-bindgen module), which exports
 * create, set, remove, removeIfVersion, peek, touch, drain, len, clear, purgeExpired, stats,
 * getOrLoad and cancel (see bindings-node/src/cache.rs). `asyncLocalStorage` (Node's, when the
 * host has one) lets a loader that asks for a key it is loading get `RecursiveLoad` instead of
 * waiting on itself: JS loaders run outside the core's poll, where the core detects it for Rust.
 */
function makeCache(B, { asyncLocalStorage: als } = {}) {
  let tickets = 0;

  class Cache {
    constructor(options) {
      const args = coreArgs(options);
      // On wasm32 std's RandomState is not random: the seed always comes from the host.
      if (args[8] === undefined) args[8] = randomSeed();
      try {
        this._c = B.create(...args);
      } catch (e) {
        throw jsField(e);
      }
      this._ttl = args[2] === undefined ? Infinity : args[2];
      this._sizeOf = (options && options.sizeOf) || defaultSizeOf;
      this._m = new Map(); // key -> slot {k, v, h, ver, exp}: what the core holds
      this._next = 0; // last handle / load id given (never reused)
      this._hits = 0;
      this._misses = 0;
      this._reads = [];
      this._loaded = new Map(); // handle or load id -> slot or {err}, while its key has waiters
      this._waiting = new Map(); // key -> getOrLoad calls under way
      this._keyLoads = new Map(); // key -> handles / load ids made by its loaders
      this._loading = 0;
    }

    /** The value of `key`, or undefined. A hit returns the very value stored. */
    get(key) {
      const s = this._m.get(key);
      if (s !== undefined && (s.exp === Infinity || s.exp > now())) {
        if ((++this._hits & SAMPLE_MASK) === 0) this._read(key);
        return s.v;
      }
      if (this._loading > 0 && typeof key === 'string') {
        const t = this._peekLoaded(key);
        if (t !== undefined) {
          this._hits++;
          return t.v;
        }
      }
      this._misses++;
      return undefined;
    }

    /** `{ value, version, expiresIn }` of `key` (expiresIn in ms, undefined: never), or undefined. */
    getEntry(key) {
      const s = this._m.get(key);
      const t = now();
      if (s === undefined || s.exp <= t) {
        this._misses++;
        return undefined;
      }
      if ((++this._hits & SAMPLE_MASK) === 0) this._read(key);
      return { value: s.v, version: s.ver, expiresIn: s.exp === Infinity ? undefined : s.exp - t };
    }

    /** Whether `key` has a live entry (not counted as a read). */
    has(key) {
      const s = this._m.get(key);
      return s !== undefined && s.exp > now();
    }

    /** The version of `key`'s live entry, 0 if it has none. */
    version(key) {
      const s = this._m.get(key);
      return s !== undefined && s.exp > now() ? s.ver : 0;
    }

    /**
     * Stores `value` under `key`; returns the entry's new version. `ttl` in ms (Infinity: never
     * expires; default: the cache's), `ifVersion` makes it a compare-and-set (0: only if absent).
     */
    set(key, value, options) {
      checkKey(key);
      let ttl;
      let ifVersion;
      if (options !== undefined) {
        ttl = ttlArg(options.ttl);
        ifVersion = options.ifVersion;
        if (ifVersion !== undefined && typeof ifVersion !== 'number') {
          throw codeError('ERR_INVALID_ARG_TYPE', 'ifVersion must be a number');
        }
      }
      const w = weigh(this._sizeOf, value, key);
      const t0 = now();
      const h = ++this._next;
      let ver = B.set(this._c, key, h, w, ttl, ifVersion);
      if (ver < 0) {
        ver = -ver;
        this._drain();
      }
      const ttlMs = ttl === undefined ? this._ttl : ttl;
      this._m.set(key, { k: key, v: value, h, ver, exp: ttlMs === Infinity ? Infinity : t0 + ttlMs });
      return ver;
    }

    /** Compare-and-set: writes only if `key`'s live version is `expected` (0: absent). */
    setIfVersion(key, value, expected, options) {
      return this.set(key, value, { ...options, ifVersion: expected });
    }

    /** Removes `key`; returns whether a live entry was removed. With `ifVersion`, only that version. */
    delete(key, options) {
      checkKey(key);
      const s = this._m.get(key);
      if (options !== undefined && options.ifVersion !== undefined) {
        B.removeIfVersion(this._c, key, options.ifVersion);
        if (s !== undefined) this._m.delete(key);
        return true;
      }
      const h = B.remove(this._c, key);
      if (s !== undefined) this._m.delete(key);
      return h >= 0;
    }

    /** Number of stored entries (expired ones not yet swept included). */
    get size() {
      return B.len(this._c);
    }

    /** Removes every entry. */
    clear() {
      B.clear(this._c);
      B.drain(this._c);
      this._m.clear();
    }

    /**
     * Removes every expired entry now; returns how many. The module runs no timer: the host
     * schedules this (setInterval in Node, a scheduled event or `waitUntil` in a worker).
     */
    purgeExpired() {
      const n = B.purgeExpired(this._c);
      this._drain();
      return n;
    }

    /** Every counter, as a plain object. hits/misses count the reads this cache answered. */
    stats() {
      const a = B.stats(this._c);
      const out = {};
      for (let i = 0; i < STATS.length; i++) out[STATS[i]] = a[i];
      out.hits = this._hits;
      out.misses = this._misses;
      return out;
    }

    /**
     * The value of `key`, or the value `loader(key)` returns or resolves to, stored in the cache.
     * Concurrent callers of one key share one loader call (the core's flight table) and its
     * result: a rejection reaches every waiter as the same value. `signal` stops this caller's
     * wait (it rejects with code "Cancelled"); the load goes on for the others.
     */
    async getOrLoad(key, loader, options) {
      const s = this._m.get(key);
      if (s !== undefined && (s.exp === Infinity || s.exp > now())) {
        if ((++this._hits & SAMPLE_MASK) === 0) this._read(key);
        return s.v;
      }
      checkKey(key);
      if (typeof loader !== 'function') throw codeError('ERR_INVALID_ARG_TYPE', 'loader must be a function');
      const signal = options === undefined ? undefined : options.signal;
      if (signal && signal.aborted) throw codeError('Cancelled', 'cancelled');
      this._misses++;
      tickets = (tickets + 1) >>> 0;
      const ticket = tickets;
      // the loads this call is nested in: [cache, key] pairs, carried by the host's async context
      const chain = als === undefined ? undefined : als.getStore();
      if (chain !== undefined && chain.some(([c, k]) => c === this && k === key)) {
        throw codeError('RecursiveLoad', 'recursive load: a loader asked for the key it is loading');
      }
      this._waiting.set(key, (this._waiting.get(key) || 0) + 1);
      this._loading++;
      let onAbort;
      try {
        const p = B.getOrLoad(this._c, key, () => this._runLoader(key, loader, chain), ticket);
        if (signal) {
          onAbort = () => B.cancel(this._c, ticket);
          signal.addEventListener('abort', onAbort, { once: true });
        }
        let h;
        try {
          h = await p;
        } catch (e) {
          throw this._loadError(e);
        }
        return this._settle(key, h);
      } finally {
        if (onAbort) signal.removeEventListener('abort', onAbort);
        this._leave(key);
      }
    }

    // ---- internals ----

    _read(key) {
      const r = this._reads;
      r.push(key);
      if (r.length >= READ_BUFFER) {
        const pending = B.touch(this._c, r);
        r.length = 0;
        if (pending) this._drain();
      }
    }

    // Drops the entries the core evicted or expired: [key, handle, key, handle, ...].
    _drain() {
      const a = B.drain(this._c);
      for (let i = 0; i < a.length; i += 2) {
        const s = this._m.get(a[i]);
        if (s !== undefined && s.h === a[i + 1]) this._m.delete(a[i]);
      }
    }

    // Called by the core, once per flight: runs the user's loader and gives the core
    // [handle, weight] (or [-loadId, 0] when it threw or rejected: that value is kept for every
    // waiter).
    async _runLoader(key, loader, chain) {
      let s;
      let w;
      try {
        const call = () => loader(key);
        const v = await (als === undefined ? call() : als.run([...(chain || []), [this, key]], call));
        s = { k: key, v, h: 0, ver: 0, exp: Infinity };
        w = weigh(this._sizeOf, s.v, key);
      } catch (err) {
        const id = ++this._next;
        this._track(key, id, { err });
        return [-id, 0];
      }
      s.h = ++this._next;
      // no waiter left: the core dropped this flight and will not store the value
      if (this._waiting.has(key)) this._track(key, s.h, s);
      return [s.h, w];
    }

    _track(key, id, v) {
      this._loaded.set(id, v);
      const l = this._keyLoads.get(key);
      if (l === undefined) this._keyLoads.set(key, [id]);
      else l.push(id);
    }

    _loadError(e) {
      if (e && e.code === 'LoaderError' && typeof e.loadId === 'number') {
        const r = this._loaded.get(e.loadId);
        if (r !== undefined && 'err' in r) return r.err;
      }
      return e;
    }

    // The core answered `h` for `key`: a value stored by `set` or by a loader; a loaded value
    // enters the mirror once the core is seen to hold it.
    _settle(key, h) {
      let s = this._m.get(key);
      if (s === undefined || s.h !== h) s = this._loaded.get(h);
      if (s === undefined) throw codeError('LoaderError', 'the loaded value is gone');
      if (this._m.get(key) !== s) this._confirm(key, s);
      return s.v;
    }

    _confirm(key, s) {
      const t0 = now();
      const e = B.peek(this._c, key);
      this._drain();
      if (e.length === 3 && e[0] === s.h) {
        s.ver = e[1];
        s.exp = e[2] < 0 ? Infinity : t0 + e[2];
        this._m.set(key, s);
      }
    }

    // A value a flight stored that no caller has settled yet (the core stored it just before).
    _peekLoaded(key) {
      const e = B.peek(this._c, key);
      if (e.length !== 3) return undefined;
      const s = this._loaded.get(e[0]);
      if (s === undefined || s.h === undefined) return undefined;
      this._confirm(key, s);
      return s;
    }

    _leave(key) {
      this._loading--;
      const n = this._waiting.get(key) - 1;
      if (n > 0) {
        this._waiting.set(key, n);
        return;
      }
      this._waiting.delete(key);
      const ids = this._keyLoads.get(key);
      if (ids === undefined) return;
      this._keyLoads.delete(key);
      // values the core kept are in the mirror by now; the others (fenced, too large) go
      for (const id of ids) this._loaded.delete(id);
    }
  }

  return Cache;
}

const BACKEND_FNS = [
  'create', 'set', 'remove', 'removeIfVersion', 'peek', 'touch', 'drain', 'len', 'clear',
  'purgeExpired', 'stats', 'getOrLoad', 'cancel', '__panicForTest',
];

/**
 * Guards a wasm-bindgen module: a Rust panic inside WebAssembly aborts (traps) and may leave the
 * instance's memory inconsistent, so after the first `WebAssembly.RuntimeError` every later call
 * throws an Error with code "Poisoned" instead of running on a broken instance. Recovery is a new
 * instance: a new worker/isolate, or re-instantiating the module. Values already in the JS mirror
 * stay readable with `get`.
 */
function guardWasm(raw) {
  let trap = null;
  const poisoned = () =>
    codeError(
      'Poisoned',
      `healcache: the WebAssembly instance trapped earlier (${trap.message}); it cannot be used any more, ` +
        'load the module again (a new worker or isolate)',
    );
  const B = { isPoisoned: () => trap !== null };
  for (const name of BACKEND_FNS) {
    const f = raw[name];
    if (typeof f !== 'function') continue;
    B[name] = (...args) => {
      if (trap !== null) throw poisoned();
      try {
        return f(...args);
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError) {
          trap = e;
          throw poisoned();
        }
        throw e;
      }
    };
  }
  return B;
}

export { makeCache, guardWasm, OPTIONS, STATS, codeError };
