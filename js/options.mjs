// Options of the JS `Cache`: their names, the checks of names and types, and the conversion to
// what the backends take. Values are checked by the core (it names the setting at fault); this
// file only refuses what cannot be passed on (unknown names, wrong types).

/** Options of `fetch(key, loader, options)`, in the order the backends take them. */
const FETCH_OPTIONS = ['ttl', 'negativeTtl', 'staleWhileRevalidate', 'xfetch', 'softTimeout'];
const FETCH_BOOLEAN = new Set(['staleWhileRevalidate', 'xfetch']);
/** Settings of `new WriteBehind(cache, writer, options)` that are numbers, in the order the backend takes them. */
const WRITE_BEHIND_COUNTS = ['maxQueue', 'batch', 'flushInterval', 'retryMin', 'retryMax', 'attempts'];
// JS-only options of `new Cache`: `sizeOf(value, key)`, the weight of a value in bytes for
// maxBytes/maxEntryBytes, `healing`, the healing settings, and `dispose(value, key, reason)`.
const SIZE_OF = 'sizeOf';
const DISPOSE_OPTION = 'dispose';
const HEALING_OPTION = 'healing';
// `clock`, a `ManualClock` of the same package: the time the core and the read mirror read.
const CLOCK_OPTION = 'clock';
const CLOCK = Symbol('healcache.clock');
// the host's hook for background work (edge runtimes: `ctx.waitUntil`), a cache option and a per-call one
const WAIT_UNTIL = 'waitUntil';
// the shared tier's text options: `redis`, a redis:// URL, `l2Prefix`, the first part of every L2 key,
// and `fleetLock`, which loads take the fleet rebuild lock ('off', 'refresh', 'all'; the core checks it)
const TEXT_OPTIONS = ['redis', 'l2Prefix', 'fleetLock'];
/** Healing settings that JS spelt with their unit before the core's table named them: still accepted, and shown. */
const FORMER = new Map([
  ['verifyIntervalMs', 'verifyInterval'],
  ['sourceTimeoutMs', 'sourceTimeout'],
]);
const SHOWN = new Map([...FORMER].map(([former, js]) => [js, former]));
/** The options of `new Cache` the core's table does not list (the JS-only and text ones). */
const CACHE_JS_OPTIONS = [SIZE_OF, DISPOSE_OPTION, WAIT_UNTIL, HEALING_OPTION, CLOCK_OPTION, ...TEXT_OPTIONS];

/*
 * The names each method's options object may hold, read by `callOptions`. A name not listed is
 * refused rather than dropped: a misspelt `ttl` would otherwise store an entry that never expires.
 * `getOrLoad` takes `fetch`'s options, as it is `fetch` without the status.
 */
const FETCH_CALL = new Set([...FETCH_OPTIONS, 'signal', 'tags', WAIT_UNTIL]);
const CALL_OPTIONS = {
  set: new Set(['ttl', 'ifVersion', 'tags']),
  setIfVersion: new Set(['ttl', 'tags']),
  delete: new Set(['ifVersion']),
  getOrLoad: FETCH_CALL,
  fetch: FETCH_CALL,
  invalidateTag: new Set(['hard']),
  close: new Set(['timeout']),
  writeThrough: new Set(['ttl', 'invalidate']),
  getMany: new Set(['ttl']),
  warm: new Set(['concurrency', 'batch', 'minShare', 'maxKeys']),
  WriteBehind: new Set([...WRITE_BEHIND_COUNTS, 'onFull']),
  onFull: new Set(['block']),
  'WriteBehind.set': new Set(['ttl']),
  'WriteBehind.failed': new Set(['take']),
};

/*
 * The core's table of settings (`settings()` of the backend): every cache option and healing
 * setting with its names, scope and whether it is a flag, by the names each use looks them up
 * with. One per backend: the native and the WebAssembly builds loaded in one process each keep
 * their own core's table.
 */
function settingsOf(table) {
  const cache = new Map(); // JS name -> setting, for `new Cache(options)`
  const healing = new Map(); // JS name (and former JS name) -> setting, for `healing` and `setHealing`
  const any = new Map(); // any name the core takes (snake, camelCase, former) -> setting, for `configSet`
  for (const s of table) {
    (s.scope === 'healing' ? healing : cache).set(s.jsName, s);
    for (const n of [s.name, s.jsName, ...s.aliases]) any.set(n, s);
  }
  for (const [former, js] of FORMER) healing.set(former, healing.get(js));
  return { cache, healing, any };
}

/** The healing settings as `healingConfig()` shows them: [shown name, setting]. */
function healingSettings(S) {
  return [...S.healing].filter(([js]) => !FORMER.has(js)).map(([js, s]) => [SHOWN.get(js) || js, s]);
}

function codeError(code, message, props) {
  const e = new Error(message);
  e.code = code;
  return props ? Object.assign(e, props) : e;
}

function invalid(field, reason) {
  return codeError('InvalidConfig', `invalid config: \`${field}\` ${reason}`, { field, reason });
}

// a TypeError, as Node's own errors of this code are
function argError(message) {
  const e = new TypeError(message);
  e.code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

/** A rejection as text for the core's reports: `Error: message` for an Error, as Python's `Type: message`. */
const errorText = (e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

/**
 * A value as a message shows it, as JS writes it: a number (`Infinity`, `-0`), a string with its
 * text, anything else by its type.
 */
function shown(v) {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'string') return `a string ${JSON.stringify(v)}`;
  if (typeof v === 'bigint') return `a bigint ${v}n`;
  if (v === null || v === undefined) return String(v);
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Renames the field of a core error with `rename` (the core's JS name -> the name the user wrote). */
function renamed(e, rename) {
  if (e && e.code === 'InvalidConfig' && typeof e.field === 'string') {
    const name = rename(e.field);
    if (name !== undefined) {
      e.message = e.message.split(`\`${e.field}\``).join(`\`${name}\``);
      e.field = name;
    }
  }
  return e;
}

/**
 * A core error naming a healing setting names it as the user wrote it, under `healing.`
 * (`sampleRate` -> `healing.sampleRate`); `wrote` maps JS names to the names given.
 */
const healingField = (S, e, wrote) =>
  renamed(e, (f) => {
    const s = S.any.get(f);
    if (s === undefined || s.scope !== 'healing') return undefined;
    return `healing.${(wrote && wrote.get(s.jsName)) || SHOWN.get(s.jsName) || s.jsName}`;
  });

// `reason`: the message after its prefix, as the core's errors and Python's carry it
function keyError(reason) {
  const e = new TypeError(`invalid key: ${reason}`);
  e.code = 'InvalidKey';
  e.reason = reason;
  return e;
}

// A lone surrogate is not text: the hosts' string conversion turns each into U+FFFD, which would
// make distinct JS keys one key in the core. `isWellFormed` where the host has it (Node 20,
// current browsers and workers), else the same test as a pattern.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed =
  typeof String.prototype.isWellFormed === 'function' ? (s) => s.isWellFormed() : (s) => !LONE_SURROGATE.test(s);

/**
 * Refuses what cannot be a key (TypeError, code "InvalidKey"): a non-string, or a string that is
 * not well-formed UTF-16. Called where a key enters the mirror or crosses into the backend, so a
 * key found in the mirror was checked when it entered.
 */
function checkKey(key) {
  if (typeof key !== 'string') throw keyError(`cache keys are strings, got ${typeof key}`);
  if (!wellFormed(key)) throw keyError('cache keys are well-formed UTF-16 strings (this one has a lone surrogate)');
}

/** Refuses what cannot be a source prefix, as `checkKey` refuses keys (a prefix is the start of keys). */
function checkPrefix(prefix) {
  if (typeof prefix !== 'string') throw keyError(`source prefixes are strings, got ${prefix === null ? 'null' : typeof prefix}`);
  if (!wellFormed(prefix)) throw keyError('source prefixes are well-formed UTF-16 strings (this one has a lone surrogate)');
}

function checkSeed(v) {
  if (typeof v === 'bigint') {
    if (v < 0n || v >= 1n << 64n) throw invalid('seed', 'must fit in 64 bits');
    return v;
  }
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) {
    // past 2^53 - 1 a number no longer holds every integer: the seed given may not be the one meant
    throw invalid('seed', `past 2**53-1 must be a bigint (a number above it is not exact), got ${shown(v)}`);
  }
  throw invalid('seed', `must be a non-negative integer or bigint, got ${shown(v)}`);
}

/**
 * The `ManualClock` class over backend `B`: the core's manual clock, for deterministic tests.
 * `new Cache({ clock })` reads its time from it (TTLs, grace, refresh-ahead, XFetch, and the read
 * mirror's expiry checks); `now()` is its time in ms, `advance(ms)` moves it. A plain
 * `{ now() }` object is refused: the core reads its clock on any thread, under its locks, where
 * it cannot call JS. Load timeouts still sleep on the host's timer (wall time).
 */
function makeClock(B) {
  return class ManualClock {
    constructor() {
      this[CLOCK] = B.manualClockNew();
    }

    /** Moves the clock forward by `ms` milliseconds (finite, not negative). */
    advance(ms) {
      if (typeof ms !== 'number') throw argError('ManualClock.advance(ms) takes a number of milliseconds');
      B.clockAdvanceBy(this[CLOCK], ms);
    }

    /** The clock's time in milliseconds (it starts near 0), as `performance.now()`. */
    now() {
      return B.clockNowMs(this[CLOCK]);
    }
  };
}

/** The backend handle of a `clock` option (a share of it), or undefined. */
function clockArg(B, clock) {
  if (clock === undefined) return undefined;
  if (clock === null || typeof clock !== 'object' || clock[CLOCK] === undefined) {
    throw invalid(CLOCK_OPTION, 'must be a ManualClock of this package');
  }
  return B.clockShare(clock[CLOCK]);
}

/**
 * The names of an options object (`new Cache`'s, `healing`) to read, each as `options[name]`,
 * which sees own, inherited and getter values, as destructuring does: every enumerable name, own
 * or inherited (for...in: the own ones first, in `Object.keys` order), so an unknown one is refused
 * wherever it comes from, then each `known` name not among them (a getter of a class, a
 * non-enumerable property). A getter of a class's prototype is not enumerable: nothing lists it,
 * so it is read when known and not checked when unknown.
 */
function optionNames(options, known) {
  const names = [];
  for (const name in options) names.push(name);
  const listed = new Set(names);
  for (const name of known) if (!listed.has(name)) names.push(name);
  return names;
}

/**
 * The backends' `create` arguments from the options object: setting names (comma-separated) and
 * values (booleans as 0/1), and the seed (undefined when none is given: the backend draws one from
 * the host's randomness at the cache's first use, as edge runtimes refuse it in global scope).
 */
function createArgs(S, options) {
  const names = [];
  const values = [];
  let seed;
  const text = TEXT_OPTIONS.map(() => undefined);
  if (options !== undefined && options !== null) {
    if (typeof options !== 'object') throw invalid('options', 'must be an object');
    for (const name of optionNames(options, [...S.cache.keys(), ...CACHE_JS_OPTIONS])) {
      const v = options[name];
      if (name === SIZE_OF || name === DISPOSE_OPTION || name === WAIT_UNTIL) {
        if (v !== undefined && typeof v !== 'function') throw invalid(name, 'must be a function');
        continue;
      }
      if (name === HEALING_OPTION || name === CLOCK_OPTION) continue; // checked by healingArgs, clockArg
      const t = TEXT_OPTIONS.indexOf(name);
      if (t >= 0) {
        if (v !== undefined && typeof v !== 'string') throw invalid(name, `must be a string, got ${shown(v)}`);
        text[t] = v;
        continue;
      }
      const s = S.cache.get(name);
      if (s === undefined) throw invalid(name, `is not an option (known: ${[...S.cache.keys(), ...CACHE_JS_OPTIONS].join(', ')})`);
      if (v === undefined) continue;
      if (name === 'seed') {
        seed = checkSeed(v); // a u64: passed on its own, as a bigint
        continue;
      }
      if (s.flag) {
        if (typeof v !== 'boolean') throw invalid(name, `must be a boolean, got ${shown(v)}`);
      } else if (typeof v !== 'number') {
        throw invalid(name, `must be a number, got ${shown(v)}`);
      }
      names.push(name);
      values.push(Number(v)); // NaN, negative, fractional: the core refuses them and names the field
    }
  }
  return [names.join(','), values, seed, ...text];
}

/**
 * The options object of a call to `method` (a key of CALL_OPTIONS), or undefined for none
 * (undefined or null). Anything but an object, or a name the method does not take, is refused with
 * InvalidConfig naming it (`prefix` + name: `onFull.blok`), before the call changes anything.
 * The names checked are every enumerable one, own or inherited (for...in), so an inherited
 * misspelling is refused as an own one is; the callers read each known option as `o[name]`, which
 * sees own, inherited and getter values, as destructuring does. A getter of a class's prototype is
 * not enumerable: nothing lists it, so it is read when known and not checked when unknown.
 */
function callOptions(options, method, prefix = '') {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object') {
    throw invalid(prefix === '' ? 'options' : prefix.slice(0, -1), `of ${method} must be an object, got ${typeof options}`);
  }
  const known = CALL_OPTIONS[method];
  for (const name in options) {
    if (!known.has(name)) throw invalid(prefix + name, `is not an option of ${method} (known: ${[...known].join(', ')})`);
  }
  return options;
}

/** The backends' `fetch` option arguments of `getOrLoad` or `fetch`; names and types checked here, values by the core. */
function fetchArgs(options, method) {
  const args = new Array(FETCH_OPTIONS.length).fill(undefined);
  const o = callOptions(options, method);
  if (o === undefined) return args;
  for (let i = 0; i < FETCH_OPTIONS.length; i++) {
    const name = FETCH_OPTIONS[i];
    const v = o[name];
    if (v === undefined) continue;
    if (FETCH_BOOLEAN.has(name)) {
      if (typeof v !== 'boolean') throw invalid(name, `must be a boolean, got ${shown(v)}`);
    } else if (typeof v !== 'number') {
      throw invalid(name, `must be a number of milliseconds, got ${shown(v)}`);
    }
    args[i] = v;
  }
  waitUntilArg(o);
  return args;
}

/**
 * The `signal` of a call's options (undefined: none, null too). Checked by shape, not with
 * `instanceof AbortSignal`: a signal of another realm (a vm context, an iframe) or of a polyfill
 * fails that test and is still one. Refused before a load starts: the wait would otherwise throw
 * a TypeError once the load is under way.
 */
function signalArg(options) {
  const s = options == null ? undefined : options.signal;
  if (s === undefined || s === null) return undefined;
  if (
    typeof s !== 'object' ||
    typeof s.aborted !== 'boolean' ||
    typeof s.addEventListener !== 'function' ||
    typeof s.removeEventListener !== 'function'
  ) {
    throw invalid('signal', 'must be an AbortSignal');
  }
  return s;
}

/** A boolean option of a call's options (undefined: false), type checked. */
function flagArg(options, name) {
  const v = options == null ? undefined : options[name];
  if (v !== undefined && typeof v !== 'boolean') throw invalid(name, `must be a boolean, got ${shown(v)}`);
  return v === true;
}

/** The `ttl` of a call's options (undefined: the cache's), type checked (its value by the core). */
function ttlArg(options) {
  const ttl = options == null ? undefined : options.ttl;
  if (ttl !== undefined && typeof ttl !== 'number') throw invalid('ttl', `must be a number of milliseconds, got ${typeof ttl}`);
  return ttl;
}

/**
 * The `tags` of a call's options (undefined: none), type checked (their bounds by the core): each
 * a well-formed UTF-16 string, as keys are (a lone surrogate would cross as U+FFFD, making
 * distinct tags one).
 */
function tagsArg(options) {
  const tags = options == null ? undefined : options.tags;
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((t) => typeof t === 'string'))) {
    throw invalid('tags', 'must be an array of strings');
  }
  if (tags !== undefined && !tags.every(wellFormed)) {
    throw invalid('tags', 'must be well-formed UTF-16 strings (one has a lone surrogate)');
  }
  return tags;
}

/** The `waitUntil` of a cache's or a call's options (undefined: none), type checked. */
function waitUntilArg(options) {
  const v = options == null ? undefined : options[WAIT_UNTIL];
  if (v !== undefined && typeof v !== 'function') throw invalid(WAIT_UNTIL, 'must be a function (the host\'s waitUntil)');
  return v;
}

/** `set`'s options (not undefined or null): [ttl, ifVersion, tags], names and types checked (the tags' bounds by the core). */
function setArgs(options) {
  callOptions(options, 'set');
  const { ifVersion } = options;
  return [ttlArg(options), ifVersion === undefined ? undefined : checkVersion(ifVersion), tagsArg(options)];
}

/** An expected version (`ifVersion`): a non-negative integer (0: absent). */
function checkVersion(v) {
  if (typeof v !== 'number') throw argError('ifVersion must be a number');
  if (!Number.isSafeInteger(v) || v < 0) throw invalid('ifVersion', `must be a non-negative integer, got ${String(v)}`);
  return v;
}

/**
 * Names and values of healing settings given by JS name (today's or a former one), and which
 * name the user wrote for each; names and types checked here, values by the core.
 */
function healingArgs(S, settings) {
  const names = [];
  const values = [];
  const wrote = new Map();
  if (settings === undefined || settings === null) return [names, values, wrote];
  if (typeof settings !== 'object') throw invalid('healing', 'must be an object');
  for (const name of optionNames(settings, S.healing.keys())) {
    const s = S.healing.get(name);
    if (s === undefined) {
      throw invalid(`healing.${name}`, `is not a healing setting (known: ${healingSettings(S).map(([n]) => n).join(', ')})`);
    }
    const v = settings[name];
    if (v === undefined) continue;
    if (s.flag ? typeof v !== 'boolean' : typeof v !== 'number') {
      throw invalid(`healing.${name}`, `must be a ${s.flag ? 'boolean' : 'number'}, got ${shown(v)}`);
    }
    // a setting under its name and its former name: one would silently win over the other
    const twice = wrote.get(s.jsName);
    if (twice !== undefined) {
      const former = FORMER.has(name) ? name : twice;
      throw invalid(`healing.${former}`, `is the former name of \`healing.${s.jsName}\`: give one of them, not both`);
    }
    names.push(s.jsName);
    values.push(Number(v));
    wrote.set(s.jsName, name);
  }
  return [names, values, wrote];
}

/** The number a `configSet` value stands for (flags: 1/0, from true/false, 1/0, on/off). */
function settingNumber(S, name, value) {
  if (typeof value === 'boolean') return Number(value);
  if (typeof value === 'number') return value;
  const s = S.any.get(name);
  const t = value.trim();
  let n = NaN;
  if (s === undefined || !s.flag) n = t === '' ? NaN : Number(t);
  else if (t === 'true' || t === '1' || t === 'on') n = 1;
  else if (t === 'false' || t === '0' || t === 'off') n = 0;
  if (Number.isNaN(n) && s !== undefined) throw invalid(name, `not a ${s.flag ? 'boolean' : 'number'}: ${JSON.stringify(value)}`);
  return n;
}

/** A setting's number as `configGet` text (flags: "true"/"false"). */
function settingText(S, name, n) {
  const s = S.any.get(name);
  return s !== undefined && s.flag ? String(n === 1) : String(n);
}

/**
 * A core error of `configSet(name)` / `configGet(name)` names the setting as given; an unknown
 * setting says which names exist.
 */
function settingError(S, e, name) {
  if (e && e.code === 'InvalidConfig' && e.field === 'name') {
    const known = [...S.any].filter(([, s]) => s.scope === 'healing').map(([n]) => n);
    e.reason = `unknown setting ${JSON.stringify(name)} (known: ${known.join(', ')})`;
    e.message = `invalid config: ${e.reason}`;
    return e;
  }
  return renamed(e, (f) => (S.any.get(f) === S.any.get(name) ? name : undefined));
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
  // a whole number of bytes, as Python's weigher returns an int (past 2^53 - 1 a JS number is
  // no longer exact)
  if (!Number.isSafeInteger(w) || w < 0) {
    throw invalid(SIZE_OF, `must return a whole number of bytes between 0 and 2**53-1, got ${shown(w)}`);
  }
  return w;
}

export {
  shown,
  FETCH_OPTIONS, WRITE_BEHIND_COUNTS, settingsOf, healingSettings, codeError, invalid, argError, errorText, healingField, checkKey, checkPrefix,
  makeClock, clockArg, createArgs, callOptions, optionNames, fetchArgs, signalArg, flagArg, ttlArg, tagsArg, waitUntilArg, setArgs, checkVersion,
  healingArgs, settingNumber, settingText, settingError, defaultSizeOf, weigh,
};
