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
//   version, expiresAt}), so a repeated `get` is a Map lookup in JS (a call into Rust costs 75-420
//   ns against about 12 ns for lru-cache's `get`, TOOLCHAIN.md).
// - Values `set` stores live in a slot table (value and key), under handle 2 * slot + 2 (even; loads
//   and repairs get odd ids, never reused). The core reports every set value it drops (bindings'
//   `Removals`), and its slot is reused after the wrapper drains that report (or once the key's
//   waiters are gone). So a write costs one hash insert, the core's, plus an array store: the mirror
//   is filled by reads. A `set` updates the key's mirror slot when it has one; a read the mirror
//   cannot answer asks the core which handle the key holds (`_reconcile`) and mirrors it. Mirror
//   slots are never shared with other maps, so a write may update one in place. The WebAssembly
//   package mirrors writes at once (`mirrorWrites`), so values already cached stay readable after a
//   trap.
// - The mirror stays exact: writes and deletes go through the core and update it with the core's
//   answer; entries the core evicts or expires are queued by the core's removal listener as
//   (key, handle) pairs, and a call that may evict returns a flag (a negative version from
//   `set`, `true` from `touch`), after which the wrapper drains the queue and drops those entries
//   (only if the mirror still holds that very handle).
// - The mirror's expiry is computed from a JS clock read taken before the core's, so it expires an
//   entry no later than the core does.
// - The eviction policy still sees the reads: one mirror hit in 16 is recorded in a read buffer,
//   sent to the core in batches of 64 keys (`touch`, a core `get` per key), as Caffeine's read
//   buffer does; the core's LFU counters saturate at 63 and are halved with age, so sampling reads keeps
//   their order.
// - `getOrLoad`: a mirror hit answers at once; otherwise the core's `get_or_load` runs the flight
//   (one per key per cache) and calls back the JS loader once. The loader's value gets an odd id
//   (kept under it until decided); its rejection (or synchronous throw) is kept here under a load id,
//   and every waiter receives that very value. An AbortSignal cancels only its caller's wait (core
//   `Cancelled`). A loaded value enters the mirror once the core is seen to hold it (`state` at
//   settle time).
// - `fetch`: the same flight through core `fetch`, with the core's status string; a loader may
//   answer `NOT_FOUND` (core `Loaded::NotFound`). Every stampede layer (stale-while-revalidate,
//   fail-safe, soft timeout, XFetch, refresh-ahead, jitter, negative entries) is the core's.
// - Background refreshes store values outside any JS call. So when a loader resolves (the only
//   way a value reaches the core besides `set`), its key becomes "pending": the mirror stops
//   answering for it and its reads ask the core (`state`: which handle it holds, with its
//   expiry) until every value loaded for the key is decided: the core holds it or a newer
//   value, or no flight is under way any more (then it never will). Values loaded for a key are
//   kept under their handle until then, so whatever the core holds resolves to its JS value. A
//   stale value (past its TTL, within `grace`) is never a mirror hit: it comes from the core's
//   answer to `fetch`/`getOrLoad` only.
// - Self-healing (issue 7): sampling, scoring, fenced repair, backoff, timeouts and settings are
//   the core's `Healer`. Values live here, so comparing is done here: the core asks a registered
//   source through the backend, which calls `_verify(key, handle)` with the handle the core holds;
//   the user's source answers, the answer is compared with that handle's value (`compare`, by
//   default strings and bytes byte for byte, other values by JSON text), and the core gets the
//   same handle (consistent), a fresh handle with the new value's weight (drift: the core repairs
//   with a compare-and-set on the version it sampled), 0 ("not found": a fenced removal), or a
//   failure/skip code. A repair lands outside any JS call, so a drifted answer follows the
//   "pending" rule above: the fresh value is kept under its handle and the key is pending (reads
//   ask the core) until the interval is over (`_verifying` is 0: a pending key is never decided
//   while an interval runs); then the backend's removal queue, which also carries the handles
//   the healer found drifted once they are replaced or removed, is drained and the interval's
//   drifted keys are reconciled. A `set` racing with the interval wins: the core's repair is
//   fenced, and the set decides the key's older pending handles as for loaders.

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
  ['grace', 'grace_ms'],
  ['staleWhileRevalidate', 'stale_while_revalidate'],
  ['loadSoftTimeout', 'load_soft_timeout_ms'],
  ['xfetch', 'xfetch'],
  ['xfetchBeta', 'xfetch_beta'],
  ['refreshAfter', 'refresh_after_ms'],
  ['ttlJitter', 'ttl_jitter'],
  ['negativeTtl', 'negative_ttl_ms'],
  ['maxNegativeShare', 'max_negative_share'],
];
/** Options of `fetch(key, loader, options)`: [JS name, core `FetchOptions` field], in backend order. */
const FETCH_OPTIONS = [
  ['ttl', 'ttl'],
  ['negativeTtl', 'negative_ttl'],
  ['staleWhileRevalidate', 'stale_while_revalidate'],
  ['xfetch', 'xfetch'],
  ['softTimeout', 'soft_timeout'],
];
const BOOLEAN_OPTIONS = new Set(['staleWhileRevalidate', 'xfetch']);
const JS_NAME = new Map([...OPTIONS, ...FETCH_OPTIONS].map(([js, core]) => [core, js]));
const FETCH_KNOWN = new Map(FETCH_OPTIONS.map(([js], i) => [js, i]));

/**
 * What a loader returns for a key that does not exist at the source (core `Loaded::NotFound`):
 * `fetch` gives `{ value: undefined, status: "negative-loaded" }`, `getOrLoad` rejects with code
 * "NotFound", and with `negativeTtl` the answer is cached. A registered symbol, so the Node and
 * WASM packages (and their CommonJS and ES copies) share it.
 */
const NOT_FOUND = Symbol.for('healcache.NOT_FOUND');
// JS-only option: `sizeOf(value, key)`, the weight of a value in bytes for maxBytes/maxEntryBytes.
const SIZE_OF = 'sizeOf';
const KNOWN = new Map(OPTIONS.map(([js], i) => [js, i]));

/** Counters of `healcache::Stats`, in the order backends return them. */
const STATS = [
  'hits', 'misses', 'inserts', 'updates', 'evictions', 'expirations', 'entries', 'weight', 'loads',
  'coalesced', 'loadErrors', 'loadPanics', 'loadTimeouts', 'fencedWrites', 'oversizeRejections',
  'inFlight', 'staleServedSwr', 'staleServedFailSafe', 'staleServedSoftTimeout', 'earlyRefreshes',
  'refreshAhead', 'negativeHits', 'negativeEntries', 'negativeRefused',
];
const LATENCY_BUCKETS = 14;
/** `fetch` statuses that answered with a fresh value (counted as hits). */
const HIT_STATUS = new Set(['hit', 'early-refresh', 'refresh-ahead']);

/**
 * Self-healing settings: [JS name (the `healing` option, `setHealing`), core name (`configSet`)].
 * Values are checked by the core (`HealingConfig::set`), which the backends get by name as numbers
 * (flags 1/0: no text parsing in the WebAssembly module).
 */
const HEALING = [
  ['enabled', 'healing.enabled'],
  ['sampleRate', 'healing.sample_rate'],
  ['verifyIntervalMs', 'healing.verify_interval_ms'],
  ['autoRepair', 'healing.auto_repair'],
  ['scoreWindow', 'healing.score_window'],
  ['sourceTimeoutMs', 'healing.source_timeout_ms'],
  ['sourceConcurrency', 'healing.source_concurrency'],
  ['maxPrefixes', 'healing.max_prefixes'],
  ['maxDriftEvents', 'healing.max_drift_events'],
  ['maxSamples', 'healing.max_samples'],
];
const HEALING_BOOLEAN = new Set(['enabled', 'autoRepair']);
const HEALING_FLAGS = new Set(['healing.enabled', 'healing.auto_repair']);
const HEALING_CORE = new Map(HEALING);
const HEALING_JS = new Map(HEALING.map(([js, core]) => [core, js]));
/** Fields of core `IntervalReport`, in the order backends return them. */
const REPORT = ['drawn', 'verified', 'consistent', 'drift', 'repaired', 'skipped', 'failures', 'durationMs', 'overlapped'];
/** Fields of core `HealingStats` (the interval-duration histogram follows), in backend order. */
const HEALING_STATS = ['totalSampled', 'totalRepaired', 'avgScore', 'sourceFailures', 'lastIntervalMs', 'totalDrift'];
const SOURCE_OPTIONS = ['compare', 'decode', 'stripPrefix', 'maxBodyBytes'];
const DECODE = ['buffer', 'text', 'json'];
// `_verify`'s answers to the core besides handles (see bindings-node/src/healing.rs)
const SOURCE_FAILED = [-1, 0];
const SOURCE_SKIP = [-2, 0];
// what an internal (URL-template) source returns for a key the template cannot carry
const REFUSED = Symbol('healcache.REFUSED');

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
    if (name === 'healing') continue; // checked by healingArgs
    const i = KNOWN.get(name);
    if (i === undefined) throw invalid(name, `is not an option (known: ${[...KNOWN.keys(), SIZE_OF, 'healing'].join(', ')})`);
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
    } else if (BOOLEAN_OPTIONS.has(name)) {
      if (typeof v !== 'boolean') throw invalid(name, `must be a boolean, got ${typeof v}`);
      args[i] = v;
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

/** The backends' `fetch` option arguments; names and types checked here, values by the core. */
function fetchArgs(options) {
  const args = new Array(FETCH_OPTIONS.length).fill(undefined);
  if (options === undefined || options === null) return args;
  if (typeof options !== 'object') throw invalid('options', 'must be an object');
  for (const name of Object.keys(options)) {
    if (name === 'signal') continue;
    const i = FETCH_KNOWN.get(name);
    if (i === undefined) throw invalid(name, `is not a fetch option (known: ${[...FETCH_KNOWN.keys(), 'signal'].join(', ')})`);
    const v = options[name];
    if (v === undefined) continue;
    if (BOOLEAN_OPTIONS.has(name)) {
      if (typeof v !== 'boolean') throw invalid(name, `must be a boolean, got ${typeof v}`);
    } else if (typeof v !== 'number') {
      throw invalid(name, `must be a number of milliseconds, got ${typeof v}`);
    }
    args[i] = v;
  }
  return args;
}

function ttlArg(ttl) {
  if (ttl === undefined || typeof ttl === 'number') return ttl;
  throw invalid('ttl', `must be a number of milliseconds, got ${typeof ttl}`);
}

/** Core names and values (as text) of healing settings given by JS name; names and types checked here. */
function healingArgs(settings) {
  const names = [];
  const values = [];
  if (settings === undefined || settings === null) return [names, values];
  if (typeof settings !== 'object') throw invalid('healing', 'must be an object');
  for (const name of Object.keys(settings)) {
    const core = HEALING_CORE.get(name);
    if (core === undefined) {
      throw invalid(`healing.${name}`, `is not a healing setting (known: ${[...HEALING_CORE.keys()].join(', ')})`);
    }
    const v = settings[name];
    if (v === undefined) continue;
    if (HEALING_BOOLEAN.has(name) ? typeof v !== 'boolean' : typeof v !== 'number') {
      throw invalid(`healing.${name}`, `must be a ${HEALING_BOOLEAN.has(name) ? 'boolean' : 'number'}, got ${typeof v}`);
    }
    names.push(core);
    values.push(typeof v === 'boolean' ? Number(v) : v);
  }
  return [names, values];
}

/** The number a `configSet` value stands for (flags: 1/0, from true/false, 1/0, on/off). */
function settingNumber(core, value) {
  if (typeof value === 'boolean') return Number(value);
  if (typeof value === 'number') return value;
  const t = value.trim();
  let n = NaN;
  if (!HEALING_FLAGS.has(core)) n = t === '' ? NaN : Number(t);
  else if (t === 'true' || t === '1' || t === 'on') n = 1;
  else if (t === 'false' || t === '0' || t === 'off') n = 0;
  if (Number.isNaN(n) && HEALING_JS.has(core)) {
    throw invalid(core, `not a ${HEALING_FLAGS.has(core) ? 'boolean' : 'number'}: ${JSON.stringify(value)}`);
  }
  return n;
}

/** A setting's number as `configGet` text (flags: "true"/"false"). */
function settingText(core, n) {
  return HEALING_FLAGS.has(core) ? String(n === 1) : String(n);
}

/** A core error naming a healing setting (`healing.sample_rate`) names its JS spelling instead (`healing.sampleRate`). */
function healingField(e) {
  if (e && e.code === 'InvalidConfig' && typeof e.field === 'string') {
    const js = HEALING_JS.get(e.field);
    if (js !== undefined) {
      e.message = e.message.split(`\`${e.field}\``).join(`\`healing.${js}\``);
      e.field = `healing.${js}`;
    }
  }
  return e;
}

/** A core "unknown setting" error says which name it was given and which exist. */
function settingError(e, name) {
  if (e && e.code === 'InvalidConfig' && e.field === 'name') {
    e.message = `invalid config: unknown setting ${JSON.stringify(name)} (known: ${[...HEALING_JS.keys()].join(', ')})`;
  }
  return e;
}

const UTF8 = new TextEncoder();

/** The bytes of a string (UTF-8), an ArrayBuffer or a view (Buffer, Uint8Array...); undefined for other values. */
function bytesOf(v) {
  if (typeof v === 'string') return UTF8.encode(v);
  if (typeof v !== 'object' || v === null) return undefined;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  return undefined;
}

/**
 * The default comparison of a cached value with a source's: the same value, strings and bytes
 * (Buffer, typed arrays, ArrayBuffer) byte for byte, other objects by `JSON.stringify` text (so
 * key order counts: give `compare` for canonical JSON, Maps, Sets or class instances).
 */
function sameValue(a, b) {
  if (a === b || Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const x = bytesOf(a);
  const y = bytesOf(b);
  if (x !== undefined || y !== undefined) {
    if (x === undefined || y === undefined || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

/** A short digest of a value for drift events: FNV-1a (32 bits) of its bytes or its JSON text. */
function digest(v) {
  let b = bytesOf(v);
  if (b === undefined) {
    let text;
    try {
      text = JSON.stringify(v);
      if (text === undefined) text = String(v);
    } catch {
      text = '';
    }
    b = UTF8.encode(text);
  }
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}

/** The options of `registerSource`, checked. */
function sourceOptions(options, isUrl) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw invalid('options', 'must be an object');
  for (const name of Object.keys(options)) {
    if (!SOURCE_OPTIONS.includes(name)) throw invalid(name, `is not a source option (known: ${SOURCE_OPTIONS.join(', ')})`);
    const v = options[name];
    if (v === undefined) continue;
    if (name === 'compare') {
      if (typeof v !== 'function') throw invalid(name, 'must be a function (cached, fresh, key) => boolean');
    } else if (!isUrl) {
      throw invalid(name, 'applies to URL-template sources only');
    } else if (name === 'decode' && !DECODE.includes(v)) {
      throw invalid(name, `must be one of ${DECODE.join(', ')}`);
    } else if (name === 'stripPrefix' && typeof v !== 'boolean') {
      throw invalid(name, 'must be a boolean');
    } else if (name === 'maxBodyBytes' && !(Number.isSafeInteger(v) && v > 0)) {
      throw invalid(name, 'must be a positive whole number of bytes');
    }
  }
  return options;
}

/** The body of an HTTP answer as the source's value; a body that does not decode is a failed answer. */
function decodeBody(decode, body) {
  if (decode === 'buffer') return body;
  const text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  return decode === 'text' ? text : JSON.parse(text);
}

/**
 * The `Cache` class over one backend module (napi addon or wasm-bindgen module), which exports
 * create, set, remove, removeIfVersion, peek, state, touch, drain, len, clear, purgeExpired,
 * stats, prometheus, getOrLoad, fetch and cancel (see bindings-node/src/cache.rs), and for
 * self-healing registerSource, unregisterSource, verifyNow, healingSet, healingGet, healingScore,
 * healingScores, healingStats, driftEvents, healingPrometheus, healingReset
 * (bindings-node/src/healing.rs; the napi addon also httpSource and httpFetch, for URL-template
 * sources).
 * `asyncLocalStorage` (Node's, when the host has one) lets a loader that asks for a key it is
 * loading get `RecursiveLoad` instead of waiting on itself: JS loaders run outside the core's
 * poll, where the core detects it for Rust. With `backgroundHealing` (Node), a cache whose
 * `healing.enabled` is on runs an interval every `healing.verifyIntervalMs` on an unref'd timer
 * (the next one is scheduled when the last has ended, so they never pile up) until `close()`.
 */
function makeCache(B, { asyncLocalStorage: als, backgroundHealing = false, mirrorWrites = false } = {}) {
  let tickets = 0;
  const SEED = KNOWN.get('seed');
  const TTL = KNOWN.get('ttl');
  const JITTER = KNOWN.get('ttlJitter');
  const XFETCH = KNOWN.get('xfetch');
  const REFRESH_AFTER = KNOWN.get('refreshAfter');
  const PENDING_SWEEP = 1024; // pending keys before a sweep asks the core about all of them

  class Cache {
    constructor(options) {
      const args = coreArgs(options);
      // On wasm32 std's RandomState is not random: the seed always comes from the host.
      if (args[SEED] === undefined) args[SEED] = randomSeed();
      // core field names and values (booleans as 0/1); the core maps them with `Config::set`
      const names = [];
      const values = [];
      OPTIONS.forEach(([, core], i) => {
        if (i === SEED || args[i] === undefined) return;
        names.push(core);
        values.push(typeof args[i] === 'boolean' ? Number(args[i]) : args[i]);
      });
      try {
        this._c = B.create(names.join(','), values, args[SEED]);
      } catch (e) {
        throw jsField(e);
      }
      this._ttl = args[TTL] === undefined ? Infinity : args[TTL];
      // TTLs stretched by the core: the mirror takes each entry's expiry from the core
      this._jitter = args[JITTER] !== undefined && args[JITTER] > 0;
      // layers that decide on reads of fresh values: getOrLoad/fetch always ask the core
      this._readRefresh = args[XFETCH] === true || args[REFRESH_AFTER] !== undefined;
      this._sizeOf = (options && options.sizeOf) || defaultSizeOf;
      this._m = new Map(); // key -> slot {k, v, h, ver, exp}: what the core holds (exp: mirror freshness)
      this._next = -1; // last load id given: odd, never reused (`_id`)
      // values `set` stored, by slot: handle 2 * slot + 2 (even), reused once drained (see top)
      this._s = []; // slot i -> value at 2i, key at 2i + 1 (one cache line for both)
      this._cap = 1024; // slots before the table grows (reclaiming dropped ones first)
      this._sn = 0; // slots ever used
      this._free = []; // slots the core dropped
      this._hits = 0;
      this._misses = 0;
      this._reads = [];
      this._loaded = new Map(); // handle -> slot, for values loaders returned, until decided
      this._pending = new Map(); // key -> handles loaded for it and not yet decided
      this._kept = new Map(); // key -> decided handles (loaded values, set slots) kept for waiters
      this._cand = new Map(); // key -> decided handles that may be its stale entry in the core
      this._sweepAt = PENDING_SWEEP;
      this._errors = new Map(); // load id -> a loader's rejection, while its key has waiters
      this._keyErrors = new Map(); // key -> load ids of rejections
      this._waiting = new Map(); // key -> getOrLoad/fetch calls under way
      // self-healing
      this._sources = new Set(); // registered prefixes
      this._verifying = 0; // verifyNow calls under way
      this._healEpoch = 0; // counts runs of intervals (a source answer from an earlier one is dropped)
      this._healKeys = new Set(); // keys made pending by drifted answers during the current interval
      this._healTimer = undefined;
      this._healTicking = false;
      this._closed = false;
      if (options && options.healing !== undefined) {
        const [hn, hv] = healingArgs(options.healing);
        try {
          B.healingSet(this._c, hn, hv);
        } catch (e) {
          throw healingField(e);
        }
        this._healSchedule();
      }
    }

    /** The value of `key`, or undefined. A hit returns the very value stored. */
    get(key) {
      const s = this._m.get(key);
      if (s !== undefined && (s.exp === Infinity || s.exp > now())) {
        if ((++this._hits & SAMPLE_MASK) === 0) this._read(key);
        return s.v;
      }
      if (this._askCore(key)) {
        const f = this._reconcile(key);
        if (f !== undefined) {
          this._hits++;
          return f[0].v;
        }
      }
      this._misses++;
      return undefined;
    }

    /** `{ value, version, expiresIn }` of `key` (expiresIn in ms, undefined: never), or undefined. */
    getEntry(key) {
      const f = this._fresh(key);
      if (f === undefined) {
        this._misses++;
        return undefined;
      }
      if ((++this._hits & SAMPLE_MASK) === 0) this._read(key);
      const [s, exp] = f;
      return { value: s.v, version: s.ver, expiresIn: exp === Infinity ? undefined : exp - now() };
    }

    /** Whether `key` has a live entry (not counted as a read). */
    has(key) {
      return this._fresh(key) !== undefined;
    }

    /** The version of `key`'s live entry, 0 if it has none. */
    version(key) {
      const f = this._fresh(key);
      return f === undefined ? 0 : f[0].ver;
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
      // The mirror is filled by reads: a write updates the key's mirror slot if it has one
      // (mirror slots are never shared), else the next read asks the core (`_reconcile`). The
      // slot's expiry comes from a clock read taken before the core's.
      let s = this._m.size === 0 ? undefined : this._m.get(key);
      const t0 = s === undefined && !mirrorWrites ? 0 : now();
      const i = this._slot();
      const h = 2 * i + 2;
      this._s[2 * i] = value;
      this._s[2 * i + 1] = key;
      let ver;
      try {
        ver = B.set(this._c, key, h, w, ttl, ifVersion);
      } catch (e) {
        this._s[2 * i] = undefined;
        this._s[2 * i + 1] = undefined;
        this._free.push(i);
        throw e;
      }
      if (ver < 0) {
        ver = -ver;
        this._drain();
      }
      if (s !== undefined || mirrorWrites) {
        if (s === undefined) {
          s = { k: key, v: value, h, ver, exp: 0 };
          this._m.set(key, s);
        }
        const ttlMs = ttl === undefined ? this._ttl : ttl;
        let exp = ttlMs === Infinity ? Infinity : t0 + ttlMs;
        if (this._jitter && exp !== Infinity) {
          const e = B.peek(this._c, key);
          if (e.length === 3 && e[0] === h) exp = e[2] < 0 ? Infinity : t0 + e[2];
        }
        s.v = value;
        s.h = h;
        s.ver = ver;
        s.exp = exp;
      }
      // a loaded value older than this write can no longer be stored (fenced, or replaced)
      if (this._pending.size !== 0 && this._pending.has(key)) this._decide(key, this._next, false);
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
      const cand = this._cand.get(key);
      if (cand !== undefined) {
        this._cand.delete(key);
        this._forget(key, cand);
      }
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
      this._drain(); // frees the set slots (kept for keys with waiters)
      this._m.clear();
      for (const [key, ids] of this._cand) this._forget(key, ids);
      this._cand.clear();
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

    /** Every counter, as a plain object. hits/misses count the reads this cache answered. */
    stats() {
      const a = B.stats(this._c);
      const out = {};
      for (let i = 0; i < STATS.length; i++) out[STATS[i]] = a[i];
      out.hits = this._hits;
      out.misses = this._misses;
      out.loadLatency = {
        counts: Array.from(a.slice(STATS.length, STATS.length + LATENCY_BUCKETS)), // a plain array on WASM too
        sumNanos: a[STATS.length + LATENCY_BUCKETS],
      };
      return out;
    }

    /**
     * Every counter in the Prometheus text format (core `Cache::prometheus`), then the healing
     * metrics (core `Healer::prometheus`), labelled `cache="<name>"`.
     */
    prometheus(name) {
      if (typeof name !== 'string') throw codeError('ERR_INVALID_ARG_TYPE', 'the cache name is a string');
      return B.prometheus(this._c, name, this._hits, this._misses) + B.healingPrometheus(this._c, name);
    }

    // ---- self-healing ----

    /**
     * Registers (or replaces) the source of truth of keys starting with `prefix` (the longest
     * registered prefix of a key wins). `source(key)` returns or resolves to the key's current
     * value, or `NOT_FOUND`; throwing, rejecting or returning `undefined` is a failed answer
     * (skipped, counted in `sourceFailures`, never drift). Options: `compare(cached, fresh, key)`
     * (default: strings and bytes byte for byte, other values by JSON text). In Node `source` may
     * also be a URL template (`http://host/users/{key}`), with `decode` ("buffer", default,
     * "text" or "json"), `stripPrefix` (the URL gets the key without `prefix`) and `maxBodyBytes`.
     */
    registerSource(prefix, source, options) {
      if (typeof prefix !== 'string') throw codeError('ERR_INVALID_ARG_TYPE', 'a source prefix is a string');
      const url = typeof source === 'string';
      if (!url && typeof source !== 'function') {
        throw codeError('ERR_INVALID_ARG_TYPE', 'a source is a function (key) => value, or a URL template string');
      }
      const o = sourceOptions(options, url);
      const fn = url ? this._httpSource(prefix, source, o) : source;
      const compare = o.compare || sameValue;
      // the backend holds this callback for as long as the source is registered: a weak
      // reference lets an unused cache be collected (with its healer and its sources)
      const ref = new WeakRef(this);
      const verify = (key, handle) => {
        const c = ref.deref();
        return c === undefined ? Promise.resolve(SOURCE_SKIP) : c._verify(fn, compare, key, handle);
      };
      try {
        B.registerSource(this._c, prefix, verify);
      } catch (e) {
        throw healingField(e);
      }
      this._sources.add(prefix);
    }

    /** Removes the source of `prefix` and its score; returns whether one was registered. */
    unregisterSource(prefix) {
      if (typeof prefix !== 'string') throw codeError('ERR_INVALID_ARG_TYPE', 'a source prefix is a string');
      this._sources.delete(prefix);
      return B.unregisterSource(this._c, prefix);
    }

    /**
     * Runs one healing interval now (core `Healer::run_interval`): samples `healing.sampleRate`
     * of the keys, asks their sources, repairs drift, updates the scores. Resolves to the
     * interval's report; a call while another interval runs resolves at once with
     * `overlapped: true`. Reads after it resolves see every repair.
     */
    async verifyNow() {
      if (this._verifying++ === 0) this._healEpoch++;
      let a;
      try {
        a = await B.verifyNow(this._c);
      } finally {
        if (--this._verifying === 0) this._healSettle();
      }
      const out = {};
      for (let i = 0; i < REPORT.length; i++) out[REPORT[i]] = a[i];
      out.overlapped = a[REPORT.length - 1] === 1;
      return out;
    }

    /** `verifyNow` under the name a host scheduler calls (a cron trigger, an alarm). */
    runHealingInterval() {
      return this.verifyNow();
    }

    /** `{ prefix, score, sampled, repaired }` of a registered prefix, or undefined. */
    score(prefix) {
      if (typeof prefix !== 'string') throw codeError('ERR_INVALID_ARG_TYPE', 'a source prefix is a string');
      const a = B.healingScore(this._c, prefix);
      return a.length === 0 ? undefined : { prefix, score: a[0], sampled: a[1], repaired: a[2] };
    }

    /** `[{ prefix, score, sampled, repaired }]` of every registered prefix, sorted by prefix. */
    scores() {
      const a = B.healingScores(this._c);
      const out = [];
      for (let i = 0; i < a.length; i += 4) out.push({ prefix: a[i], score: a[i + 1], sampled: a[i + 2], repaired: a[i + 3] });
      return out;
    }

    /**
     * Healing totals: `{ totalSampled, totalRepaired, avgScore, sourceFailures, lastIntervalMs,
     * totalDrift, intervalDuration: { counts, sumNanos } }`.
     */
    healingStats() {
      const a = B.healingStats(this._c);
      const out = {};
      for (let i = 0; i < HEALING_STATS.length; i++) out[HEALING_STATS[i]] = a[i];
      const n = HEALING_STATS.length;
      out.intervalDuration = { counts: Array.from(a.slice(n, n + LATENCY_BUCKETS)), sumNanos: a[n + LATENCY_BUCKETS] };
      return out;
    }

    /**
     * The most recent drift events, oldest first (at most `healing.maxDriftEvents`):
     * `{ key, prefix, atMs, oldDigest, newDigest, repaired }`; digests are 8 hex digits of FNV-1a
     * over the value's bytes or JSON text, `"absent"` for "not found".
     */
    driftEvents() {
      const a = B.driftEvents(this._c);
      const out = [];
      for (let i = 0; i < a.length; i += 6) {
        out.push({ key: a[i], prefix: a[i + 1], atMs: a[i + 2], oldDigest: a[i + 3], newDigest: a[i + 4], repaired: a[i + 5] === 1 });
      }
      return out;
    }

    /** Changes healing settings (`{ sampleRate: 0.02, ... }`), validated by the core: all or none. */
    setHealing(settings) {
      if (settings === undefined || settings === null || typeof settings !== 'object') {
        throw invalid('healing', 'must be an object');
      }
      const [names, values] = healingArgs(settings);
      try {
        B.healingSet(this._c, names, values);
      } catch (e) {
        throw healingField(e);
      }
      this._healSchedule();
    }

    /** The healing settings now, by JS name. */
    healingConfig() {
      const out = {};
      for (const [js, core] of HEALING) {
        const v = B.healingGet(this._c, core);
        out[js] = HEALING_BOOLEAN.has(js) ? v === 1 : v;
      }
      return out;
    }

    /**
     * Sets one runtime setting by its core name from text (`configSet("healing.sample_rate",
     * "0.02")`; numbers and booleans are turned to text), validated: nothing changes on error.
     */
    configSet(name, value) {
      if (typeof name !== 'string') throw codeError('ERR_INVALID_ARG_TYPE', 'a setting name is a string');
      if (!['string', 'number', 'boolean'].includes(typeof value)) {
        throw codeError('ERR_INVALID_ARG_TYPE', 'a setting value is a string, number or boolean');
      }
      try {
        B.healingSet(this._c, [name], [settingNumber(name, value)]);
      } catch (e) {
        throw settingError(e, name);
      }
      this._healSchedule();
    }

    /** One runtime setting by its core name, as text (`configGet("healing.sample_rate")` is "0.01"). */
    configGet(name) {
      if (typeof name !== 'string') throw codeError('ERR_INVALID_ARG_TYPE', 'a setting name is a string');
      try {
        return settingText(name, B.healingGet(this._c, name));
      } catch (e) {
        throw settingError(e, name);
      }
    }

    /**
     * Stops self-healing: the background loop ends (an interval under way finishes) and every
     * source is unregistered. The entries stay readable and writable.
     */
    close() {
      this._closed = true;
      if (this._healTimer !== undefined) {
        clearTimeout(this._healTimer);
        this._healTimer = undefined;
      }
      for (const prefix of this._sources) B.unregisterSource(this._c, prefix);
      this._sources.clear();
    }

    /**
     * The value of `key`, or the value `loader(key)` returns or resolves to, stored in the cache.
     * Concurrent callers of one key share one loader call (the core's flight table) and its
     * result: a rejection reaches every waiter as the same value. `signal` stops this caller's
     * wait (it rejects with code "Cancelled"); the load goes on for the others. A loader
     * answering `NOT_FOUND` (or a cached "not found") rejects with code "NotFound".
     */
    async getOrLoad(key, loader, options) {
      if (!this._readRefresh) {
        const s = this._m.get(key);
        if (s !== undefined && (s.exp === Infinity || s.exp > now())) {
          if ((++this._hits & SAMPLE_MASK) === 0) this._read(key);
          return s.v;
        }
      }
      const signal = options === undefined ? undefined : options.signal;
      const [h] = await this._flight(key, loader, signal, (ticket, run) => B.getOrLoad(this._c, key, run, ticket));
      return h;
    }

    /**
     * `getOrLoad` with the core's status: resolves to `{ value, status }`, `status` one of "hit",
     * "loaded", "coalesced", "stale", "stale-fail-safe", "stale-soft-timeout", "early-refresh",
     * "refresh-ahead", "negative-hit", "negative-loaded" (value undefined for the last two). The
     * loader may return `NOT_FOUND`. Options: `ttl`, `negativeTtl`, `softTimeout` (ms),
     * `staleWhileRevalidate`, `xfetch` (booleans), `signal`; unset ones take the cache's.
     */
    async fetch(key, loader, options) {
      const args = fetchArgs(options);
      if (!this._readRefresh) {
        const s = this._m.get(key);
        if (s !== undefined && (s.exp === Infinity || s.exp > now())) {
          if ((++this._hits & SAMPLE_MASK) === 0) this._read(key);
          return { value: s.v, status: 'hit' };
        }
      }
      const signal = options == null ? undefined : options.signal;
      const [value, status] = await this._flight(key, loader, signal, (ticket, run) => {
        try {
          return B.fetch(this._c, key, run, ticket, ...args);
        } catch (e) {
          throw jsField(e);
        }
      });
      return { value, status };
    }

    // ---- internals ----

    // One getOrLoad/fetch call through the core: resolves to [value, status].
    async _flight(key, loader, signal, call) {
      checkKey(key);
      if (typeof loader !== 'function') throw codeError('ERR_INVALID_ARG_TYPE', 'loader must be a function');
      if (signal && signal.aborted) throw codeError('Cancelled', 'cancelled');
      tickets = (tickets + 1) >>> 0;
      const ticket = tickets;
      // the loads this call is nested in: [cache, key] pairs, carried by the host's async context
      const chain = als === undefined ? undefined : als.getStore();
      if (chain !== undefined && chain.some(([c, k]) => c === this && k === key)) {
        throw codeError('RecursiveLoad', 'recursive load: a loader asked for the key it is loading');
      }
      this._waiting.set(key, (this._waiting.get(key) || 0) + 1);
      let onAbort;
      try {
        const p = call(ticket, () => this._runLoader(key, loader, chain));
        if (signal) {
          onAbort = () => B.cancel(this._c, ticket);
          signal.addEventListener('abort', onAbort, { once: true });
        }
        let r;
        try {
          r = await p;
        } catch (e) {
          this._misses++;
          throw this._loadError(e);
        }
        const [h, status] = r;
        if (HIT_STATUS.has(status)) this._hits++;
        else this._misses++;
        return [h < 0 ? undefined : this._settle(key, h), status];
      } finally {
        if (onAbort) signal.removeEventListener('abort', onAbort);
        this._leave(key);
      }
    }

    _read(key) {
      const r = this._reads;
      r.push(key);
      if (r.length >= READ_BUFFER) {
        const pending = B.touch(this._c, r);
        r.length = 0;
        if (pending) this._drain();
      }
    }

    // Drops the mirror entries the core evicted or expired, and frees the slots of set values
    // it dropped: [key, handle, ...], a set value's handle without its key, negated when it was
    // replaced or deleted (the mirror knows of those already) (bindings' `Removals`).
    _drain() {
      const a = B.drain(this._c);
      for (let i = 0; i < a.length; ) {
        let key = a[i++];
        let h;
        if (typeof key === 'number') {
          h = key < 0 ? -key : key;
          const k = this._s[h - 1];
          if (key < 0) {
            this._dropSet(k, h);
            continue;
          }
          key = k;
        } else h = a[i++];
        const s = this._m.get(key);
        if (s !== undefined && s.h === h) this._m.delete(key);
        if (h % 2 === 0) this._dropSet(key, h);
        else if (!this._waiting.has(key)) this._loaded.delete(h);
      }
    }

    // The core dropped set value `h` of `key`: its slot is freed, or kept until the key's waiters
    // are gone (one may yet settle on it).
    _dropSet(key, h) {
      if (this._waiting.size !== 0 && this._waiting.has(key)) this._forget(key, [h]);
      else this._release(h);
    }

    // A slot for a set value: a freed one, else a new one (reclaiming dropped ones first when
    // the table is full, so it grows only when the live values need it).
    _slot() {
      if (this._free.length !== 0) return this._free.pop();
      if (this._sn === this._cap) {
        this._drain();
        if (this._free.length !== 0) return this._free.pop();
        this._cap *= 2;
      }
      return this._sn++;
    }

    // Frees the slot of set value `h` (the core dropped it, and no waiter can settle on it).
    _release(h) {
      const i = h / 2 - 1;
      this._s[2 * i] = undefined;
      this._s[2 * i + 1] = undefined;
      this._free.push(i);
    }

    // The value of handle `h` the core holds for `key`, as [value], or undefined if this
    // wrapper no longer has it.
    _valueOf(key, h) {
      if (h % 2 === 0) {
        const i = h / 2 - 1;
        return this._s[2 * i + 1] === key ? [this._s[2 * i]] : undefined;
      }
      const l = this._loaded.get(h);
      return l === undefined ? undefined : [l.v];
    }

    // Whether a read the mirror did not answer must ask the core: the key is pending, or the
    // core may hold a set value the mirror has not seen yet.
    _askCore(key) {
      return (!mirrorWrites && this._sn !== this._free.length) || (this._pending.size !== 0 && this._pending.has(key));
    }

    // The fresh slot of `key` and its expiry, asking the core when it must (`_askCore`).
    _fresh(key) {
      const s = this._m.get(key);
      if (s !== undefined && s.exp > now()) return [s, s.exp];
      if (this._askCore(key)) return this._reconcile(key);
      return undefined;
    }

    // Asks the core which value `key` holds now: returns [slot, expiry] if a fresh one, and
    // decides the key's pending loaded values. The mirror answers for the key again once none
    // is left.
    _reconcile(key) {
      const t0 = now();
      const e = B.state(this._c, key); // [flights, handle (-1: none), version, expiresInMs (-1: never)]
      const h = e[1];
      let out;
      if (h >= 0) {
        let s = this._m.get(key);
        if (s === undefined || s.h !== h) {
          const v = this._valueOf(key, h);
          // a mirror slot of its own (never a loaded slot: `set` updates mirror slots in place)
          s = v === undefined ? undefined : { k: key, v: v[0], h, ver: 0, exp: 0 };
          if (s !== undefined) this._m.set(key, s);
        }
        if (s !== undefined) {
          s.ver = e[2];
          out = [s, e[3] < 0 ? Infinity : t0 + e[3]];
          s.exp = out[1];
        }
      }
      // decided when no flight is under way, and no healing interval (a repair may yet land);
      // a set value decided the loads that began before it when it was written, and those that
      // began after may yet land (held 0: none by order)
      const held = h >= 0 && h % 2 === 0 ? 0 : h;
      this._decide(key, held, e[0] === 0 && this._verifying === 0);
      // still pending: a value may yet land, so the mirror keeps asking the core
      if (out !== undefined && this._pending.has(key)) out[0].exp = -Infinity;
      return out;
    }

    // Values loaded for `key` up to handle `held` (a fresh value the core holds now, or a write
    // that superseded them) are decided; with `idle` (no flight under way) all of them are.
    // With nothing fresh in the core, a decided value may still be its stale entry (within
    // grace): those stay resolvable as the key's candidates until the key is written, deleted,
    // holds a fresh value, or the core reports them gone. Values are kept while the key has
    // waiters.
    _decide(key, held, idle) {
      const ids = this._pending.get(key);
      let done = [];
      if (ids !== undefined) {
        const keep = idle ? [] : ids.filter((id) => id > held);
        if (keep.length === 0) this._pending.delete(key);
        else this._pending.set(key, keep);
        done = ids.filter((id) => !keep.includes(id));
      }
      if (held < 0) {
        const cand = done.filter((id) => this._loaded.has(id));
        if (cand.length !== 0) {
          const c = this._cand.get(key);
          if (c === undefined) this._cand.set(key, cand);
          else c.push(...cand);
          done = done.filter((id) => !this._loaded.has(id));
        }
      } else {
        const c = this._cand.get(key);
        if (c !== undefined) {
          this._cand.delete(key);
          done.push(...c);
        }
      }
      this._forget(key, done);
    }

    // Forgets loaded values, or keeps them until the key's waiters have settled.
    _forget(key, ids) {
      if (ids.length === 0) return;
      if (this._waiting.has(key)) {
        const k = this._kept.get(key);
        if (k === undefined) this._kept.set(key, ids);
        else k.push(...ids);
        return;
      }
      for (const id of ids) this._loaded.delete(id);
    }

    // A new load id: odd, never reused (set values have even handles).
    _id() {
      this._next += 2;
      return this._next;
    }

    // Asks the core about every pending key (bounds what the pending values keep alive).
    _sweep() {
      for (const key of [...this._pending.keys()]) this._reconcile(key);
      this._sweepAt = Math.max(PENDING_SWEEP, 2 * this._pending.size);
    }

    // Called by the core, once per flight (also for background refreshes): runs the user's loader
    // and gives the core [handle, weight], [0, 0] for NOT_FOUND, or [-loadId, 0] when it threw
    // or rejected (that value is kept for every waiter).
    async _runLoader(key, loader, chain) {
      let v;
      let w = 0;
      try {
        const call = () => loader(key);
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
        return [-id, 0];
      }
      // The core may store this answer at any time from now on: the key is pending.
      const h = this._id();
      if (v !== NOT_FOUND) this._loaded.set(h, { k: key, v, h, ver: 0, exp: -Infinity });
      const ids = this._pending.get(key);
      if (ids === undefined) this._pending.set(key, [h]);
      else ids.push(h);
      const s = this._m.get(key);
      if (s !== undefined) s.exp = -Infinity;
      if (this._pending.size > this._sweepAt) this._sweep();
      return v === NOT_FOUND ? [0, 0] : [h, w];
    }

    _loadError(e) {
      if (e && e.code === 'LoaderError' && typeof e.loadId === 'number') {
        const r = this._errors.get(e.loadId);
        if (r !== undefined) return r;
      }
      return e;
    }

    // The core answered handle `h` for `key`: a value stored by `set` or by a loader (fresh, or
    // stale within grace); a loaded value enters the mirror once the core is seen to hold it.
    _settle(key, h) {
      const s = this._m.get(key);
      const v = s !== undefined && s.h === h ? [s.v] : this._valueOf(key, h);
      if (v === undefined) throw codeError('LoaderError', 'the loaded value is gone');
      if (this._pending.has(key)) this._reconcile(key);
      return v[0];
    }

    // (Re)arms the background healing timer when enabled (backgroundHealing hosts only). The
    // timer holds the cache weakly and does not keep the process alive.
    _healSchedule() {
      if (!backgroundHealing || this._closed || this._healTicking) return;
      if (this._healTimer !== undefined) {
        clearTimeout(this._healTimer);
        this._healTimer = undefined;
      }
      if (B.healingGet(this._c, 'healing.enabled') !== 1) return;
      const ms = B.healingGet(this._c, 'healing.verify_interval_ms');
      const ref = new WeakRef(this);
      const t = setTimeout(() => {
        const c = ref.deref();
        if (c !== undefined) c._healTick();
      }, ms);
      if (typeof t === 'object' && t !== null && typeof t.unref === 'function') t.unref();
      this._healTimer = t;
    }

    async _healTick() {
      this._healTimer = undefined;
      if (this._closed) return;
      this._healTicking = true;
      try {
        await this.verifyNow();
      } catch {
        // nothing to report to: source failures are counted by the core
      } finally {
        this._healTicking = false;
      }
      this._healSchedule();
    }

    // Called by the core (through the backend) for a sampled key whose entry holds handle `h`
    // (0: a cached "not found"): asks `source` and answers the core (bindings-node/src/healing.rs).
    async _verify(source, compare, key, h) {
      const epoch = this._healEpoch;
      let cur;
      if (h !== 0) {
        const s = this._m.get(key);
        const v = s !== undefined && s.h === h ? [s.v] : this._valueOf(key, h);
        if (v === undefined) return SOURCE_SKIP; // not a value this wrapper knows: cannot compare
        cur = { v: v[0] };
      }
      await undefined; // the user's source runs outside the backend's call
      let v;
      try {
        v = await source(key);
      } catch {
        return SOURCE_FAILED;
      }
      if (v === REFUSED) return SOURCE_SKIP;
      if (v === undefined) return SOURCE_FAILED; // a source that forgot to return never wipes the cache
      // the interval that asked is over (the core stopped waiting): nothing may land now
      if (this._verifying === 0 || epoch !== this._healEpoch) return SOURCE_SKIP;
      if (v === NOT_FOUND) {
        if (h === 0) return [0, 0];
        this._healPending(key, false);
        return [0, 0, digest(cur.v)];
      }
      if (h !== 0) {
        try {
          if (compare(cur.v, v, key)) return [h, 0];
        } catch {
          return SOURCE_FAILED;
        }
      }
      let w;
      try {
        w = weigh(this._sizeOf, v, key);
      } catch {
        return SOURCE_FAILED;
      }
      const nh = this._healPending(key, true, v);
      return [nh, w, h === 0 ? 0 : digest(cur.v), digest(v)];
    }

    // A drifted answer for `key`: the core may repair (store the new value under a fresh handle,
    // or remove the entry) at any time until the interval ends, so the key is pending, as for a
    // loaded value. Returns the fresh handle.
    _healPending(key, hasValue, v) {
      const h = this._id();
      if (hasValue) this._loaded.set(h, { k: key, v, h, ver: 0, exp: -Infinity });
      const ids = this._pending.get(key);
      if (ids === undefined) this._pending.set(key, [h]);
      else ids.push(h);
      const s = this._m.get(key);
      if (s !== undefined) s.exp = -Infinity;
      this._healKeys.add(key);
      if (this._pending.size > this._sweepAt) this._sweep();
      return h;
    }

    // After the last interval under way: every repair has landed. Drops the values the healer
    // replaced or removed (queued by the backend) and settles the keys it found drifted.
    _healSettle() {
      this._drain();
      B.healingReset(this._c);
      if (this._healKeys.size === 0) return;
      const keys = this._healKeys;
      this._healKeys = new Set();
      for (const key of keys) if (this._pending.has(key)) this._reconcile(key);
    }

    // A URL-template source (napi addon only): fetched by healcache-http, decoded here.
    _httpSource(prefix, template, o) {
      if (typeof B.httpSource !== 'function') {
        throw invalid(
          'source',
          'URL-template sources need the native package (healcache); in WebAssembly, register a function that calls fetch()',
        );
      }
      const timeout = B.healingGet(this._c, 'healing.source_timeout_ms');
      let src;
      try {
        src = B.httpSource(template, timeout, o.maxBodyBytes === undefined ? 1 << 20 : o.maxBodyBytes);
      } catch (e) {
        throw healingField(e);
      }
      const decode = o.decode === undefined ? 'buffer' : o.decode;
      const strip = o.stripPrefix === true;
      return async (key) => {
        const [status, body] = await B.httpFetch(src, strip ? key.slice(prefix.length) : key);
        if (status === 0) return decodeBody(decode, body);
        if (status === 1) return NOT_FOUND;
        if (status === 4) return REFUSED;
        throw codeError(status === 3 ? 'SourceTimeout' : 'SourceUnavailable', 'the source did not answer');
      };
    }

    _leave(key) {
      const n = this._waiting.get(key) - 1;
      if (n > 0) {
        this._waiting.set(key, n);
        return;
      }
      this._waiting.delete(key);
      const errs = this._keyErrors.get(key);
      if (errs !== undefined) {
        this._keyErrors.delete(key);
        for (const id of errs) this._errors.delete(id);
      }
      if (this._pending.has(key)) this._reconcile(key);
      // decided values kept for the waiters (the mirror holds the one the core kept)
      const kept = this._kept.get(key);
      if (kept !== undefined) {
        this._kept.delete(key);
        for (const id of kept) {
          if (id % 2 === 0) this._release(id);
          else this._loaded.delete(id);
        }
      }
    }
  }

  return Cache;
}

const BACKEND_FNS = [
  'create', 'set', 'remove', 'removeIfVersion', 'peek', 'state', 'touch', 'drain', 'len', 'clear',
  'purgeExpired', 'stats', 'prometheus', 'getOrLoad', 'fetch', 'cancel', '__panicForTest',
  'registerSource', 'unregisterSource', 'verifyNow', 'healingSet', 'healingGet', 'healingScore',
  'healingScores', 'healingStats', 'driftEvents', 'healingPrometheus', 'healingReset',
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

export { makeCache, guardWasm, NOT_FOUND, OPTIONS, FETCH_OPTIONS, STATS, HEALING, codeError };
