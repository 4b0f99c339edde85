// healcache's JS `Cache`, shared by the Node (napi-rs) and WebAssembly (wasm-bindgen) packages:
// `makeCache(backend)` takes either backend module and returns the same class, so code moves
// between Node and an edge worker by changing the import. The source of truth is this ES module
// and its siblings; `js/build.mjs` writes a CommonJS bundle of them (dist/cache.cjs) for `require`.
//
// The core decides everything: eviction, expiry, versions, coalescing, every stampede layer,
// the counters, the healing loop. This class checks arguments, keeps the values
// (`mirror.mjs`: the read mirror and its rules) and compares values for self-healing
// (`healing.mjs`). `getOrLoad` and `fetch` run the core's flight for the key (one per key per
// cache), which calls the JS loader once; the loader's rejection (or synchronous throw) is kept
// here under a load id and every waiter receives that very value. An AbortSignal cancels only
// its caller's wait, which rejects with the signal's reason.

import { makeMirror } from './mirror.mjs';
import { makeHealing } from './healing.mjs';
import { makeWriteBehind } from './write_behind.mjs';
import {
  settingsOf, codeError, invalid, argError, errorText, checkKey, makeClock, clockArg, createArgs, callOptions, fetchArgs, signalArg, flagArg, ttlArg, tagsArg,
  waitUntilArg, setArgs, checkVersion, defaultSizeOf, weigh,
} from './options.mjs';

/**
 * What a loader returns for a key that does not exist at the source (core `Loaded::NotFound`):
 * `fetch` gives `{ value: undefined, status: "negative-loaded" }`, `getOrLoad` rejects with code
 * "NotFound", and with `negativeTtl` the answer is cached. A registered symbol, so the Node and
 * WASM packages (and their CommonJS and ES copies) share it.
 */
const NOT_FOUND = Symbol.for('healcache.NOT_FOUND');

// `Symbol.dispose` where the host has it (Node 20, current browsers and workers), else the name
// TypeScript's polyfill registers, so `using` works once a polyfill is loaded.
const DISPOSE = typeof Symbol.dispose === 'symbol' ? Symbol.dispose : Symbol.for('Symbol.dispose');
const ASYNC_DISPOSE = typeof Symbol.asyncDispose === 'symbol' ? Symbol.asyncDispose : Symbol.for('Symbol.asyncDispose');

/**
 * The `Cache` class over one backend module (napi addon or wasm-bindgen module; see
 * `BACKEND_FNS` for what it exports). `asyncLocalStorage` (Node's, when the host has one) lets a
 * loader that asks for a key it is loading get `RecursiveLoad` instead of waiting on itself: JS
 * loaders run outside the core's poll, where the core detects it for Rust. With
 * `backgroundHealing` (Node), the core's healing loop runs on the backend's runtime once
 * `healing.enabled` is set, until `close()`.
 */
// The calls waiting with each signal: one 'abort' listener per signal, however many calls share
// it (a request's signal handed to every load it makes), since Node warns past 10 listeners on
// one signal. It is removed once no call waits with the signal any more.
const waitingOn = new WeakMap();

/** Calls `f` when `signal` aborts; returns what stops that. */
function onAbort(signal, f) {
  let w = waitingOn.get(signal);
  if (w === undefined) {
    const calls = new Set();
    const fire = () => {
      // an AbortSignal of another implementation may not honour `once`
      signal.removeEventListener('abort', fire);
      waitingOn.delete(signal);
      for (const g of calls) g();
    };
    w = { calls, fire };
    waitingOn.set(signal, w);
    signal.addEventListener('abort', fire, { once: true });
  }
  const mine = w;
  mine.calls.add(f);
  return () => {
    mine.calls.delete(f);
    if (mine.calls.size === 0 && waitingOn.get(signal) === mine) {
      waitingOn.delete(signal);
      signal.removeEventListener('abort', mine.fire);
    }
  };
}

function makeCache(B, { asyncLocalStorage: als, backgroundHealing = false } = {}) {
  let tickets = 0;
  // The protocol's named numbers, read once the backend is ready (a WebAssembly module is
  // instantiated after this module loads).
  const P = {};
  let out;
  // a view of the backend's result row (of WebAssembly memory: a new one once memory grew)
  const row = () => (out !== undefined && out.length !== 0 ? out : (out = B.outRow()));
  function ready() {
    if (P.out !== undefined) return;
    Object.assign(P, B.protocol());
    P.settings = settingsOf(B.settings());
  }

  class Cache extends makeHealing(makeMirror(B, P, row), B, P, NOT_FOUND) {
    constructor(options) {
      ready();
      super();
      const [names, values, seed, redis, l2Prefix, fleetLock] = createArgs(P.settings, options);
      const clock = options == null ? undefined : options.clock;
      this._c = B.create(names, values, seed, backgroundHealing, clockArg(B, clock), redis, l2Prefix, fleetLock);
      this._shared = redis !== undefined; // values also cross to L2, converted by the binding
      if (this._shared) {
        const g = B.localGeneration(this._c);
        this._G = g === null ? new Float64Array([NaN]) : new Uint32Array(g);
      }
      if (clock !== undefined) this._useClock(() => clock.now());
      // background work (refreshes, a soft timeout's tail) goes to the host's waitUntil when given
      const waitUntil = waitUntilArg(options);
      if (waitUntil !== undefined && typeof B.setWaitUntil === 'function') B.setWaitUntil(this._c, waitUntil);
      // layers that decide on reads of fresh values: getOrLoad/fetch always ask the core
      this._readRefresh = options != null && (options.xfetch === true || options.refreshAfter !== undefined);
      // the per-call values (and tags) of the last fetch the core answered (see `_accepted`)
      this._took = undefined;
      this._sizeOf = (options && options.sizeOf) || defaultSizeOf;
      this._maxEntries = options != null && typeof options.maxEntries === 'number' ? options.maxEntries : undefined;
      this._errors = new Map(); // load id -> a loader's rejection, while its key has waiters
      this._keyErrors = new Map(); // key -> load ids of rejections
      if (options && options.healing !== undefined) this._healingSet(options.healing);
      if (options && typeof options.dispose === 'function') this._disposeWith(options.dispose);
    }

    /** The value of `key`, or undefined. A hit returns the very value stored. */
    get(key) {
      const i = this._hit(key);
      if (i >= 0) return this._v[i]; // only checked keys enter the mirror
      checkKey(key);
      return this._readMissed(key);
    }

    /**
     * `{ value, version, expiresIn }` of `key` (expiresIn in ms, undefined: never), or undefined.
     * A read of the core, which has the entry's exact expiry (the mirror keeps a lower bound).
     */
    getEntry(key) {
      checkKey(key);
      const i = this._reconcile(key);
      if (i < 0) return undefined;
      const exp = this._exp[i];
      return { value: this._v[i], version: this._ver[i], expiresIn: exp === Infinity ? undefined : exp - this._now() };
    }

    /**
     * The value of `key` if it has a live entry, or undefined, without counting a read or
     * changing what eviction sees of the key (lru-cache's `peek`).
     */
    peek(key) {
      const i = this._peekSlot(key);
      return i < 0 ? undefined : this._v[i];
    }

    /**
     * Milliseconds until `key`'s live entry expires: Infinity if it never does, 0 if `key` has
     * no live entry (lru-cache's `getRemainingTTL`). Not counted as a read.
     */
    getRemainingTTL(key) {
      const i = this._peekSlot(key);
      if (i < 0) return 0;
      const exp = this._exp[i];
      return exp === Infinity ? Infinity : Math.max(0, exp - this._now());
    }

    // The slot of `key`'s live entry without counting a read (a peek of the core when the
    // mirror cannot answer), or -1.
    _peekSlot(key) {
      const i = this._at(key);
      if (i !== undefined && this._exp[i] > this._now()) return i;
      checkKey(key);
      if (i !== undefined && this._exp[i] !== -Infinity && !this._lower) return -1;
      return this._reconcile(key, true);
    }

    /** Whether `key` has a live entry (not counted as a read). */
    has(key) {
      return this._fresh(key) >= 0;
    }

    /** The version of `key`'s live entry (a cached "not found" included), 0 if it has none. */
    version(key) {
      const i = this._fresh(key);
      // the mirror holds values only: a cached "not found" has its version in the core
      return i >= 0 ? this._ver[i] : B.version(this._c, key);
    }

    /**
     * The keys of the live entries, in no particular order: a snapshot taken when the call is
     * made (entries written later are not visited; one removed meanwhile is skipped).
     */
    *keys() {
      for (const [k] of this._live()) yield k;
    }

    /** The values of the live entries, in the order of `keys()`. Not counted as reads. */
    *values() {
      for (const [, v] of this._live()) yield v;
    }

    /** `[key, value]` of the live entries, in the order of `keys()`. Not counted as reads. */
    *entries() {
      yield* this._live();
    }

    [Symbol.iterator]() {
      return this.entries();
    }

    // [key, value] of each live entry of a snapshot of the core's keys, read as `peek` reads.
    *_live() {
      this._flushReads();
      for (const k of B.keys(this._c)) {
        const i = this._peekSlot(k);
        if (i >= 0) yield [k, this._v[i]];
      }
    }

    /**
     * Stores `value` under `key`; returns the entry's new version. `ttl` in ms (Infinity: never
     * expires; default: the cache's), `ifVersion` makes it a compare-and-set (0: only if the key has no entry, a cached "not found" being one),
     * `tags`; another name is refused (InvalidConfig), null is no options.
     */
    set(key, value, options) {
      checkKey(key);
      let ttl;
      let ifVersion;
      let tags;
      // no options, the common call, checks nothing more
      if (options != null) [ttl, ifVersion, tags] = setArgs(options);
      return this._write(key, value, weigh(this._sizeOf, value, key), ttl, ifVersion, tags);
    }

    /**
     * Invalidates every entry written with `tag` (`set(key, value, { tags })`): made stale (a
     * fallback within its grace window) or, with `hard`, removed; with a shared tier, in every
     * instance and in L2. Resolves to how many fresh entries of this process it invalidated.
     */
    async invalidateTag(tag, options) {
      if (B.invalidateTag === undefined) throw invalid('tags', 'needs the Node package');
      if (typeof tag !== 'string') throw argError('the tag is a string');
      const hard = flagArg(callOptions(options, 'invalidateTag'), 'hard');
      this._flushReads();
      try {
        return await B.invalidateTag(this._c, tag, hard);
      } finally {
        this._distrustMirror();
        this._drain();
      }
    }

    /** Compare-and-set: writes only if `key`'s live version is `expected` (0: absent). */
    setIfVersion(key, value, expected, options) {
      // an `ifVersion` among the options would be overridden by `expected`: refused
      const o = callOptions(options, 'setIfVersion');
      // checked here: `ifVersion: undefined` is no check, which would make this a plain set
      checkVersion(expected);
      // read by name, not spread (a spread copies own properties only: an inherited `ttl` is one)
      return this.set(key, value, o === undefined ? { ifVersion: expected } : { ttl: o.ttl, tags: o.tags, ifVersion: expected });
    }

    /** Removes `key`; returns whether a live entry was removed. With `ifVersion`, only that version. */
    delete(key, options) {
      checkKey(key);
      const o = callOptions(options, 'delete');
      this._flushReads();
      if (o !== undefined && o.ifVersion !== undefined) {
        const removed = B.removeIfVersion(this._c, key, checkVersion(o.ifVersion));
        this._unmirror(key);
        // the removed value is let go now, as Map lets it go, not at a later batch
        if (removed || this._dispose !== undefined) this._drain();
        return removed;
      }
      const h = B.remove(this._c, key);
      this._unmirror(key);
      if (h !== P.none || this._dispose !== undefined) this._drain();
      return h !== P.none;
    }

    /** Number of stored entries (expired ones not yet swept included). */
    get size() {
      this._flushReads(); // the reads the mirror found expired let the core drop those entries
      return B.len(this._c);
    }

    /** Removes every entry. */
    clear() {
      this._flushReads();
      B.clear(this._c);
      this._clearMirror();
    }

    /**
     * Removes every expired entry now; returns how many. The module runs no timer: the host
     * schedules this (setInterval in Node, a scheduled event or `waitUntil` in a worker).
     */
    purgeExpired() {
      const n = B.purgeExpired(this._c);
      this._drain();
      this._sweep();
      return n;
    }

    /** Every counter (the core's), as a plain object. */
    stats() {
      this._flushReads();
      return B.stats(this._c);
    }

    /**
     * Every counter in the Prometheus text format (core `Cache::prometheus`), then the healing
     * metrics (core `Healer::prometheus`), labelled `cache="<name>"`.
     */
    prometheus(name) {
      if (typeof name !== 'string') throw argError('the cache name is a string');
      this._flushReads();
      return B.prometheus(this._c, name);
    }

    /**
     * The value of `key`, or the value `loader(key)` returns or resolves to, stored in the cache.
     * Concurrent callers of one key share one loader call (the core's flight table) and its
     * result: a rejection reaches every waiter as the same value. `signal` stops this caller's
     * wait (it rejects with `signal.reason`, as `fetch()` does, at once when already aborted);
     * the load goes on for the others. A loader
     * answering `NOT_FOUND` (or a cached "not found") rejects with code "NotFound". Options: those
     * of `fetch`, which this is without the status.
     */
    async getOrLoad(key, loader, options) {
      // refused before the hit path, so whether the key is cached does not decide
      if (typeof loader !== 'function') throw argError('loader must be a function');
      if (options == null) {
        if (!this._readRefresh) {
          const i = this._hit(key);
          if (i >= 0) return this._v[i];
        }
        const [v] = await this._flight(key, loader, undefined, (ticket, run) => B.getOrLoad(this._c, key, run, ticket, undefined));
        return v;
      }
      const [v] = await this._fetch(key, loader, options, 'getOrLoad');
      return v;
    }

    /**
     * `getOrLoad` with the core's status: resolves to `{ value, status }`, `status` one of "hit",
     * "loaded", "coalesced", "stale", "stale-fail-safe", "stale-soft-timeout", "early-refresh",
     * "refresh-ahead", "negative-hit", "negative-loaded" (value undefined for the last two). The
     * loader may return `NOT_FOUND`. Options: `ttl`, `negativeTtl`, `softTimeout` (ms),
     * `staleWhileRevalidate`, `xfetch` (booleans), `signal`, `waitUntil` (the host's hook for the
     * background work this call starts), `tags`; unset ones take the cache's, others are refused.
     */
    async fetch(key, loader, options) {
      const [value, status] = await this._fetch(key, loader, options, 'fetch');
      return { value, status };
    }

    // `fetch` for `method` (fetch, or getOrLoad given options): [value, status]. Every option is
    // checked whether or not the key is cached: types here, values by the core. A hit the mirror
    // answers does not reach the core, so it is taken only for values the core already accepted.
    async _fetch(key, loader, options, method) {
      const args = fetchArgs(options, method);
      const signal = signalArg(options);
      if (typeof loader !== 'function') throw argError('loader must be a function');
      if (signal !== undefined && signal.aborted) throw signal.reason;
      const tags = tagsArg(options);
      // a per-call xfetch decides on the read of a fresh value too: only the core can
      if (!this._readRefresh && !(options != null && options.xfetch === true) && this._accepted(args, tags)) {
        const i = this._hit(key);
        if (i >= 0) return [this._v[i], 'hit'];
      }
      const waitUntil = waitUntilArg(options);
      // getOrLoad: the core answers "not found" with NotFound instead of a status
      const mustValue = method === 'getOrLoad';
      if (tags !== undefined && B.fetchTagged === undefined) throw invalid('tags', 'needs the Node package');
      const r = await this._flight(key, loader, signal, (ticket, run) =>
        tags === undefined
          ? B.fetch(this._c, key, run, ticket, ...args, mustValue, waitUntil)
          : B.fetchTagged(this._c, key, run, ticket, ...args, mustValue, tags),
      );
      // a call with no per-call values leaves the last accepted ones: they still hold
      if (tags !== undefined || args.some((a) => a !== undefined)) {
        this._took = [args, tags === undefined ? undefined : tags.slice()];
      }
      return r;
    }

    // Whether the core took these per-call values (and tags) in this cache's last answered fetch
    // with options, or there are none: callers mostly pass the same options each time.
    _accepted(args, tags) {
      if (tags === undefined && args.every((a) => a === undefined)) return true;
      const took = this._took;
      if (took === undefined) return false;
      const [a, t] = took;
      for (let i = 0; i < a.length; i++) if (a[i] !== args[i]) return false;
      if (t === undefined || tags === undefined) return t === tags;
      if (t.length !== tags.length) return false;
      for (let i = 0; i < t.length; i++) if (t[i] !== tags[i]) return false;
      return true;
    }

    /**
     * Write-through: `writer(key, value)` (the source of truth's write) first, then the cache (and
     * with a shared tier L2 and the bus, awaited within `l2Timeout`); resolves to the new version.
     * A writer's rejection reaches the caller as it is and the cache is left as it was. Options:
     * `ttl` (ms), `invalidate` (remove the key instead of caching the value; resolves to 0). The
     * key, the TTL and the value's weight are checked before the writer is called.
     */
    async writeThrough(key, value, writer, options) {
      if (B.writeThrough === undefined) throw invalid('writeThrough', 'needs the Node package');
      checkKey(key);
      if (typeof writer !== 'function') throw argError('writer must be a function');
      const o = callOptions(options, 'writeThrough');
      const ttl = ttlArg(o);
      const invalidate = flagArg(o, 'invalidate');
      const w = weigh(this._sizeOf, value, key);
      this._flushReads();
      // the value in a slot of its own, as `set` stores it (none when it is not to be cached):
      // the core holds its handle only once the writer succeeded
      const i = invalidate ? -1 : this._slot();
      const h = i < 0 ? 0 : 2 * i + 2;
      if (i >= 0) {
        this._v[i] = value;
        this._k[i] = key;
      }
      const g0 = this._generation();
      const run = async () => {
        try {
          await writer(key, value);
          return 0;
        } catch (err) {
          return -this._keep([key], err);
        }
      };
      this._enter(key);
      let ver;
      try {
        ver = await B.writeThrough(this._c, key, h, w, ttl, invalidate, run, this._shared ? value : undefined);
      } catch (e) {
        if (i >= 0) this._freeSlot(i);
        throw this._loadError(e);
      } finally {
        this._leave(key);
      }
      if (i < 0) {
        this._unmirror(key);
      } else {
        // mirrored, asked of the core at its first read (the expiry it decided is not at hand)
        this._h[i] = h;
        this._ver[i] = ver;
        this._exp[i] = -Infinity;
        this._gen[i] = g0;
        this._map().set(key, i);
        if (this._pending.size !== 0 && this._pending.has(key)) this._decide(key, this._next, false);
      }
      this._drain();
      return ver;
    }

    /**
     * The values of `keys` found (a Map, in the order asked), each read as `fetch` reads it; the
     * keys no layer could answer are loaded by one `loader(keys)` call resolving to a Map (or a
     * plain object) of the keys it found; a key it leaves out is not found. At most `maxInFlight`
     * distinct keys. Options: `ttl` (ms) of the loaded values.
     */
    async getMany(keys, loader, options) {
      if (B.fetchMany === undefined) throw invalid('getMany', 'needs the Node package');
      const uniq = this._batchArgs(keys, loader);
      const ttl = ttlArg(callOptions(options, 'getMany'));
      this._flushReads();
      for (const k of uniq) this._enter(k);
      try {
        let r;
        try {
          r = await B.fetchMany(this._c, uniq, (ks) => this._runBatch(ks, loader), ttl);
        } catch (e) {
          throw this._loadError(e);
        }
        const found = new Map();
        for (let i = 0; i < uniq.length; i++) {
          const h = r[2 * i];
          if (h !== P.none) found.set(uniq[i], this._settle(uniq[i], h));
        }
        return found;
      } finally {
        for (const k of uniq) this._leave(k);
      }
    }

    /**
     * Loads `keys` before traffic: `batch` keys per `loader(keys)` call (as `getMany`'s),
     * `concurrency` calls at once. Given a string instead of keys, warms the keys the shared
     * tier holds that match it as a glob (at most `maxKeys` of them). Resolves to
     * `{ total, found, notFound, failed, error }`. `ready()` is false while it runs, and after
     * it while fewer than `minShare` of the keys were answered.
     */
    async warm(keys, loader, options) {
      if (B.warm === undefined) throw invalid('warm', 'needs the Node package');
      const pattern = typeof keys === 'string' ? keys : undefined;
      let uniq;
      if (pattern === undefined) uniq = this._batchArgs(keys, loader);
      else if (typeof loader !== 'function') throw argError('loader must be a function');
      const o = callOptions(options, 'warm') || {};
      const num = (name) => {
        const v = o[name];
        if (v !== undefined && typeof v !== 'number') throw argError(`${name} must be a number`);
        return v;
      };
      const run = (ks) => this._runBatch(ks, loader);
      return B.warm(this._c, uniq, pattern ?? '', run, num('concurrency'), num('batch'), num('minShare'), num('maxKeys'));
    }

    /**
     * For a readiness probe: no `warm` running, the last one's `minShare` of keys answered, and
     * with a shared tier L2 answering unless the `allowDegraded` option is on.
     */
    ready() {
      if (B.ready === undefined) return true;
      return B.ready(this._c);
    }

    /** `{ answered, failed, total }` keys of the warm-ups so far. */
    warmProgress() {
      if (B.warmProgress === undefined) return { answered: 0, failed: 0, total: 0 };
      const [answered, failed, total] = B.warmProgress(this._c);
      return { answered, failed, total };
    }

    // The distinct keys of a batch call, checked, and its loader.
    _batchArgs(keys, loader) {
      if (!Array.isArray(keys)) throw argError('keys must be an array of strings');
      for (const k of keys) checkKey(k);
      if (typeof loader !== 'function') throw argError('loader must be a function');
      return [...new Set(keys)];
    }

    // Called by the core once per batch: runs the user's batch loader and gives the core
    // [key, [handle, weight(, value)], ...] of the keys asked that it found, or [-loadId].
    async _runBatch(keys, loader) {
      let m;
      try {
        m = await loader(keys);
        if (m === null || typeof m !== 'object' || Array.isArray(m)) {
          const got = m === null ? 'null' : Array.isArray(m) ? 'an array' : typeof m;
          throw argError(`a batch loader resolves to a Map or an object of the keys it found (not an array), got ${got}`);
        }
      } catch (err) {
        // the text goes with the id: a warm-up's report names the first failure by it
        return [-this._keep(keys, err), errorText(err)];
      }
      const asked = new Set(keys);
      const rows = [];
      const entries = m instanceof Map ? m.entries() : Object.entries(m);
      for (const [k, v] of entries) {
        if (!asked.has(k) || v === undefined || v === NOT_FOUND) continue;
        const w = weigh(this._sizeOf, v, k);
        const h = this._onItsWay(k, true, v);
        rows.push(k, this._shared ? [h, w, v] : [h, w]);
      }
      return rows;
    }

    // Keeps a callback's rejection for the callers waiting on `keys`; returns its load id.
    _keep(keys, err) {
      const id = this._id();
      this._errors.set(id, err);
      for (const key of keys) {
        if (!this._waiting.has(key)) continue;
        const l = this._keyErrors.get(key);
        if (l === undefined) this._keyErrors.set(key, [id]);
        else l.push(id);
      }
      return id;
    }

    // One getOrLoad/fetch call through the core: resolves to [value, status].
    async _flight(key, loader, signal, call) {
      checkKey(key);
      tickets = (tickets + 1) >>> 0;
      const ticket = tickets;
      // the loads this call is nested in: [cache, key] pairs, carried by the host's async context
      const chain = als === undefined ? undefined : als.getStore();
      if (chain !== undefined && chain.some(([c, k]) => c === this && k === key)) {
        throw codeError('RecursiveLoad', 'recursive load: a loader asked for the key it is loading');
      }
      this._enter(key);
      let stopWaiting;
      // the flight's own signal, made when the core calls the loader: the core aborts it (`run(true)`)
      // once every waiter has gone or the load timed out; the abort runs in a microtask of its own
      let ctl;
      const run = (abort) => {
        if (abort !== true) {
          ctl = new AbortController();
          return this._runLoader(key, loader, chain, ctl.signal);
        }
        const c = ctl;
        if (c !== undefined) queueMicrotask(() => c.abort());
        return undefined;
      };
      try {
        let r;
        try {
          // the answer itself when the core had it at once (a hit), else a promise of it
          const p = call(ticket, run);
          if (p instanceof Promise) {
            if (signal) stopWaiting = onAbort(signal, () => B.cancel(this._c, ticket));
            r = await p;
          } else r = p;
        } catch (e) {
          // an aborted wait rejects with the signal's reason, as fetch() does
          if (signal && signal.aborted && e && e.code === 'Cancelled') throw signal.reason;
          throw this._loadError(e);
        }
        return [r.handle !== P.none ? this._settle(key, r.handle) : undefined, r.status];
      } finally {
        if (stopWaiting) stopWaiting();
        this._leave(key);
      }
    }

    // Called by the core, once per flight (also for background refreshes): runs the user's loader
    // and gives the core [handle, weight], [NOT_FOUND], or [-loadId] when it threw or rejected
    // (that value is kept for every waiter).
    async _runLoader(key, loader, chain, signal) {
      let v;
      let w = 0;
      try {
        const call = () => loader(key, { signal });
        v = await (als === undefined ? call() : als.run([...(chain || []), [this, key]], call));
        if (v !== NOT_FOUND) w = weigh(this._sizeOf, v, key);
      } catch (err) {
        const id = this._id();
        if (this._waiting.has(key)) {
          this._errors.set(id, err);
          const l = this._keyErrors.get(key);
          if (l === undefined) this._keyErrors.set(key, [id]);
          else l.push(id);
        }
        return [-id];
      }
      // the core gave this load up (it timed out, or no caller waits any more) and stores
      // nothing of it: the value is not kept on its way, where only a later read would free it
      if (signal.aborted) return [-this._id()];
      // the core may store this answer at any time from now on
      const found = v !== NOT_FOUND;
      const h = this._onItsWay(key, found, v);
      if (!found) return [P.notFound];
      return this._shared ? [h, w, v] : [h, w];
    }

    // The loader's own rejection for a core LoaderError naming its load id (any value, undefined too).
    _loadError(e) {
      if (e && e.code === 'LoaderError' && typeof e.loadId === 'number' && this._errors.has(e.loadId)) {
        return this._errors.get(e.loadId);
      }
      return e;
    }

    /**
     * Ends self-healing and, with a shared tier, waits until the L2 writes under way (with their
     * bus messages) are sent, for `timeout` ms at most (default 5000), then closes the Redis
     * connections; resolves to the writes still under way at the deadline. The cache stays usable
     * from L1 (later L2 operations are skipped). Call it before a process exits.
     */
    close(options) {
      const o = callOptions(options, 'close');
      const timeout = o === undefined ? undefined : o.timeout; // undefined: the core's default
      if (timeout !== undefined && typeof timeout !== 'number') throw invalid('timeout', `must be a number of milliseconds, got ${typeof timeout}`);
      // the core checks the timeout before it stops anything (a refused close changes nothing),
      // ends the healing loop and closes the shared tier (the WebAssembly build has none: 0)
      const left = B.closeCache(this._c, timeout);
      super.close();
      return left;
    }

    /** Closes the cache (`close()`), so a `using` declaration closes it at the end of its block. */
    [DISPOSE]() {
      this.close();
    }

    /** `close()`, awaited, so an `await using` declaration flushes the shared tier's writes. */
    async [ASYNC_DISPOSE]() {
      await this.close();
    }

    // What `util.inspect` and `console.log` show: the size and bound, never keys or values.
    [Symbol.for('nodejs.util.inspect.custom')]() {
      const bound = this._maxEntries === undefined ? '' : `, maxEntries: ${this._maxEntries}`;
      return `Cache { entries: ${B.len(this._c)}${bound} }`;
    }

    // What `JSON.stringify` writes, as `inspect` shows: never the keys and values it holds
    toJSON() {
      return this._maxEntries === undefined ? { entries: B.len(this._c) } : { entries: B.len(this._c), maxEntries: this._maxEntries };
    }

    get [Symbol.toStringTag]() {
      return 'Cache';
    }

    _leave(key) {
      const last = super._leave(key);
      if (last) {
        const errs = this._keyErrors.get(key);
        if (errs !== undefined) {
          this._keyErrors.delete(key);
          for (const id of errs) this._errors.delete(id);
        }
      }
      return last;
    }
  }

  return Cache;
}

/** What a backend module exports (the napi addon also httpSource and httpFetch). */
const BACKEND_FNS = [
  'protocol', 'settings', 'outRow', 'create', 'reportRemovals', 'set', 'setPlain', 'remove', 'removeIfVersion', 'state', 'peek', 'stored', 'version', 'keys',
  'touch', 'drain', 'len', 'clear', 'purgeExpired', 'stats', 'prometheus', 'getOrLoad', 'fetch', 'cancel', 'setWaitUntil',
  '__panicForTest', 'manualClockNew', 'clockShare', 'clockAdvanceBy', 'clockNowMs', 'registerSource', 'unregisterSource', 'verifyNow', 'healingIntervals', 'healingReset',
  'healingSet', 'healingGet', 'healingScore', 'healingScores', 'healingStats', 'driftEvents', 'closeCache',
];

/**
 * Guards a wasm-bindgen module: a Rust panic inside WebAssembly aborts (traps) and may leave the
 * instance's memory inconsistent, so after the first `WebAssembly.RuntimeError` every later call
 * throws an Error with code "Poisoned" instead of running on a broken instance. Recovery is a new
 * instance: a new worker/isolate, or re-instantiating the module. Values already in the JS mirror
 * stay readable with `get`.
 */
function guardWasm(raw, { initialized = true } = {}) {
  // what stops every call: the trap that poisoned the instance, or NOT_INITIALIZED until the
  // host instantiates the module (the web build): one check per call serves both
  let trap = initialized ? null : NOT_INITIALIZED;
  const poisoned = () =>
    trap === NOT_INITIALIZED
      ? codeError(
          'HEALCACHE_NOT_INITIALIZED',
          'healcache: the WebAssembly module is not instantiated yet: call init() or initSync() first, once per ' +
            'isolate (docs/edge.md lists the imports per runtime)',
        )
      : codeError(
          'Poisoned',
          `healcache: the WebAssembly instance trapped earlier (${trap.message}: a panic inside the module, or a ` +
            'stack overflow that unwound through an earlier call and left it half-changed); it cannot be used any ' +
            'more, load the module again (a new worker or isolate)',
        );
  const B = {
    isPoisoned: () => trap !== null && trap !== NOT_INITIALIZED,
    // the host instantiated the module
    initialized: () => {
      if (trap === NOT_INITIALIZED) trap = null;
    },
  };
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
const NOT_INITIALIZED = Object.freeze({ message: 'not instantiated' });

/**
 * `prometheusJoin(texts)`: the Prometheus expositions of several caches (each `prometheus(name)`'s
 * text) as one that strict parsers accept, each family's HELP and TYPE lines once. Two texts
 * holding the same series (two caches given one name) are refused with code InvalidConfig.
 */
function makePrometheusJoin(B) {
  return function prometheusJoin(texts) {
    if (B.prometheusJoin === undefined) throw invalid('prometheusJoin', 'needs the Node package');
    if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) throw argError('texts is an array of strings');
    return B.prometheusJoin(texts);
  };
}

export { makeCache, makeClock, makeWriteBehind, makePrometheusJoin, guardWasm, NOT_FOUND, codeError };
