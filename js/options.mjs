// Options of the JS `Cache`: their names, the checks of names and types, and the conversion to
// what the backends take. Values are checked by the core (it names the setting at fault); this
// file only refuses what cannot be passed on (unknown names, wrong types).

/** Options of `new Cache(options)`: [JS name, core `Config` field]. */
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
const KNOWN = new Map(OPTIONS);
const FETCH_KNOWN = new Map(FETCH_OPTIONS.map(([js], i) => [js, i]));
// JS-only option: `sizeOf(value, key)`, the weight of a value in bytes for maxBytes/maxEntryBytes.
const SIZE_OF = 'sizeOf';

/**
 * Self-healing settings: [JS name (the `healing` option, `setHealing`), core name (`configSet`)].
 * The core checks the values (`HealingConfig::set`); the backends take them by name as numbers
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

function codeError(code, message, props) {
  const e = new Error(message);
  e.code = code;
  return props ? Object.assign(e, props) : e;
}

function invalid(field, reason) {
  return codeError('InvalidConfig', `invalid config: \`${field}\` ${reason}`, { field });
}

function argError(message) {
  return codeError('ERR_INVALID_ARG_TYPE', message);
}

/** Renames the field of a core error with `rename` (core name -> the name the user wrote). */
function renamed(e, rename) {
  if (e && e.code === 'InvalidConfig' && typeof e.field === 'string') {
    const js = rename(e.field);
    if (js !== undefined) {
      e.message = e.message.split(`\`${e.field}\``).join(`\`${js}\``);
      e.field = js;
    }
  }
  return e;
}

/** A core error naming a core field gets the JS option name instead (`max_entries` -> `maxEntries`). */
const jsField = (e) => renamed(e, (f) => JS_NAME.get(f));
/** A core error naming a healing setting (`healing.sample_rate`) names its JS spelling (`healing.sampleRate`). */
const healingField = (e) => renamed(e, (f) => (HEALING_JS.has(f) ? `healing.${HEALING_JS.get(f)}` : undefined));

function checkKey(key) {
  if (typeof key !== 'string') throw argError(`cache keys are strings, got ${typeof key}`);
}

function checkPrefix(prefix) {
  if (typeof prefix !== 'string') throw argError('a source prefix is a string');
}

function randomSeed() {
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === 'function') {
    const w = c.getRandomValues(new Uint32Array(2));
    return (BigInt(w[0]) << 32n) | BigInt(w[1]);
  }
  return BigInt(Math.floor(Math.random() * 2 ** 32)) << 32n | BigInt(Math.floor(Math.random() * 2 ** 32));
}

function checkSeed(v) {
  if (typeof v === 'bigint') {
    if (v < 0n || v >= 1n << 64n) throw invalid('seed', 'must fit in 64 bits');
    return v;
  }
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw invalid('seed', `must be a non-negative integer or bigint, got ${String(v)}`);
}

/**
 * The backends' `create` arguments from the options object: core names (comma-separated) and
 * values (booleans as 0/1), and the seed (the host's when none is given: on wasm32 std's
 * RandomState is not random).
 */
function createArgs(options) {
  const names = [];
  const values = [];
  let seed;
  if (options !== undefined && options !== null) {
    if (typeof options !== 'object') throw invalid('options', 'must be an object');
    for (const name of Object.keys(options)) {
      const v = options[name];
      if (name === SIZE_OF) {
        if (v !== undefined && typeof v !== 'function') throw invalid(name, 'must be a function');
        continue;
      }
      if (name === 'healing') continue; // checked by healingArgs
      const core = KNOWN.get(name);
      if (core === undefined) throw invalid(name, `is not an option (known: ${[...KNOWN.keys(), SIZE_OF, 'healing'].join(', ')})`);
      if (v === undefined) continue;
      if (name === 'seed') {
        seed = checkSeed(v);
        continue;
      }
      if (BOOLEAN_OPTIONS.has(name)) {
        if (typeof v !== 'boolean') throw invalid(name, `must be a boolean, got ${typeof v}`);
      } else if (typeof v !== 'number') {
        throw invalid(name, `must be a number, got ${typeof v}`);
      }
      names.push(core);
      values.push(Number(v)); // NaN, negative, fractional: the core refuses them and names the field
    }
  }
  return [names.join(','), values, seed === undefined ? randomSeed() : seed];
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

/** `set`'s options: [ttl, ifVersion], types checked. */
function setArgs(options) {
  const { ttl, ifVersion } = options;
  if (ttl !== undefined && typeof ttl !== 'number') throw invalid('ttl', `must be a number of milliseconds, got ${typeof ttl}`);
  if (ifVersion !== undefined && typeof ifVersion !== 'number') throw argError('ifVersion must be a number');
  return [ttl, ifVersion];
}

/** Core names and values of healing settings given by JS name; names and types checked here. */
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
    const flag = HEALING_BOOLEAN.has(name);
    if (flag ? typeof v !== 'boolean' : typeof v !== 'number') {
      throw invalid(`healing.${name}`, `must be a ${flag ? 'boolean' : 'number'}, got ${typeof v}`);
    }
    names.push(core);
    values.push(Number(v));
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

/** A core "unknown setting" error says which name it was given and which exist. */
function settingError(e, name) {
  if (e && e.code === 'InvalidConfig' && e.field === 'name') {
    e.message = `invalid config: unknown setting ${JSON.stringify(name)} (known: ${[...HEALING_JS.keys()].join(', ')})`;
  }
  return e;
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

export {
  OPTIONS, FETCH_OPTIONS, HEALING, HEALING_BOOLEAN, codeError, invalid, argError, jsField, healingField, checkKey,
  checkPrefix, createArgs, fetchArgs, setArgs, healingArgs, settingNumber, settingText, settingError,
  defaultSizeOf, weigh,
};
