// Self-healing through the JS `Cache`: sampling, scoring, fenced repair, backoff, timeouts,
// settings and the background loop are the core's (`Healer`). Values live in JS, so comparing
// them is done here: the core asks a registered source through the backend, which calls
// `_verify(key, handle)` with the handle the core holds; the user's source answers, the answer is
// compared with that handle's value (`compare`, by default strings and bytes byte for byte, other
// values by JSON text), and the core gets back the same handle (consistent), a fresh handle with
// the new value's weight (drift: the core repairs with a compare-and-set on the version it
// sampled), "not found" (a fenced removal), or a failure or skip. A repair lands outside any JS
// call, so a drifted answer puts its value on its way (see mirror.mjs): the key is pending until
// the repair has landed, or the interval that asked is over.

import {
  healingSettings, codeError, invalid, argError, healingField, checkPrefix, healingArgs, settingNumber, settingText,
  settingError, weigh, optionNames,
} from './options.mjs';

const SOURCE_OPTIONS = ['compare', 'decode', 'stripPrefix', 'maxBodyBytes', 'allowPrivate'];
const DECODE = ['buffer', 'text', 'json'];
// what a URL-template source returns for a key the template cannot carry
const REFUSED = Symbol('healcache.REFUSED');
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
  for (const name of optionNames(options, SOURCE_OPTIONS)) {
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
    } else if (name === 'maxBodyBytes' && !(Number.isSafeInteger(v) && v >= 0)) {
      // 0 is the core's to refuse (a size past 2^53 - 1, or negative, is no exact count of bytes)
      throw invalid(name, 'must be a whole number of bytes');
    } else if (
      name === 'allowPrivate' &&
      typeof v !== 'boolean' &&
      !(Array.isArray(v) && v.every((h) => typeof h === 'string'))
    ) {
      throw invalid(name, 'must be a boolean or an array of host names');
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
 * The healing methods of the `Cache`, over the value-keeping class `Base` and backend `B` with
 * protocol `P`. `notFound` is the wrapper's NOT_FOUND symbol.
 */
function makeHealing(Base, B, P, notFound) {
  // the answers besides handles, from `P` once the first cache is made
  let FAILED, SKIP, ABSENT, H;

  return class Healing extends Base {
    constructor() {
      super();
      if (H === undefined) [FAILED, SKIP, ABSENT, H] = [[P.sourceFailed], [P.sourceSkip], [P.notFound], P.http];
      this._sources = new Set(); // registered prefixes
      this._verifying = 0; // verifyNow calls under way
      this._healKeys = new Map(); // key -> intervals ended before the drifted answer that made it pending
    }

    /**
     * Registers (or replaces) the source of truth of keys starting with `prefix` (the longest
     * registered prefix of a key wins). `source(key)` returns or resolves to the key's current
     * value, or `NOT_FOUND`; throwing, rejecting or returning `undefined` is a failed answer
     * (skipped, counted in `sourceFailures`, never drift). Options: `compare(cached, fresh, key)`
     * (default: strings and bytes byte for byte, other values by JSON text; a `compare` that
     * throws counts the pair as drift, so the source's value is written). In Node `source` may
     * also be a URL template (`http://host/users/{key}`), with `decode` ("buffer", default,
     * "text" or "json"), `stripPrefix` (the URL gets the key without `prefix`), `maxBodyBytes`
     * and `allowPrivate` (`true`, or the hosts that may resolve to loopback, private or
     * link-local addresses; refused by default).
     */
    registerSource(prefix, source, options) {
      checkPrefix(prefix);
      const url = typeof source === 'string';
      if (!url && typeof source !== 'function') {
        throw argError('a source is a function (key) => value, or a URL template string');
      }
      const o = sourceOptions(options, url);
      const fn = url ? this._httpSource(prefix, source, o) : source;
      const compare = o.compare || sameValue;
      // the backend holds this callback for as long as the source is registered: a weak
      // reference lets an unused cache be collected (with its healer and its sources)
      const ref = new WeakRef(this);
      const verify = (key, handle) => {
        const c = ref.deref();
        return c === undefined ? Promise.resolve(SKIP) : c._verify(fn, compare, key, handle);
      };
      try {
        B.registerSource(this._c, prefix, verify);
      } catch (e) {
        throw healingField(P.settings, e);
      }
      this._sources.add(prefix);
      this._healing = 1; // for good: a check may still be under way after its source goes
    }

    /** Removes the source of `prefix` and its score; returns whether one was registered. */
    unregisterSource(prefix) {
      checkPrefix(prefix);
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
      this._verifying++;
      try {
        return await B.verifyNow(this._c);
      } finally {
        if (--this._verifying === 0) this._healSettle();
      }
    }

    /** `verifyNow` under the name a host scheduler calls (a cron trigger, an alarm). */
    runHealingInterval() {
      return this.verifyNow();
    }

    /** `{ prefix, score, sampled, repaired }` of a registered prefix, or undefined. */
    score(prefix) {
      checkPrefix(prefix);
      return B.healingScore(this._c, prefix);
    }

    /** `[{ prefix, score, sampled, repaired }]` of every registered prefix, sorted by prefix. */
    scores() {
      return B.healingScores(this._c);
    }

    /**
     * Healing totals: `{ totalSampled, totalRepaired, avgScore, sourceFailures, lastIntervalMs,
     * totalDrift, intervalDuration: { counts, sumNanos } }`.
     */
    healingStats() {
      return B.healingStats(this._c);
    }

    /**
     * The most recent drift events, oldest first (at most `healing.maxDriftEvents`):
     * `{ key, prefix, atMs, oldDigest, newDigest, repaired }`; digests are 8 hex digits of FNV-1a
     * over the value's bytes or JSON text, `"absent"` for "not found".
     */
    driftEvents() {
      return B.driftEvents(this._c);
    }

    /** Changes healing settings (`{ sampleRate: 0.02, ... }`), validated by the core: all or none. */
    setHealing(settings) {
      if (settings === undefined || settings === null || typeof settings !== 'object') {
        throw invalid('healing', 'must be an object');
      }
      this._healingSet(settings);
    }

    _healingSet(settings) {
      const [names, values, wrote] = healingArgs(P.settings, settings);
      try {
        B.healingSet(this._c, names, values);
      } catch (e) {
        throw healingField(P.settings, e, wrote);
      }
    }

    /** The healing settings now, by JS name. */
    healingConfig() {
      const out = {};
      for (const [shown, s] of healingSettings(P.settings)) {
        const v = B.healingGet(this._c, s.jsName);
        out[shown] = s.flag ? v === 1 : v;
      }
      return out;
    }

    /**
     * Sets one runtime setting by any of its names from text (`configSet("sample_rate", "0.02")`,
     * or `sampleRate`, or the former `healing.sample_rate`; numbers and booleans as they are),
     * validated by the core: nothing changes on error.
     */
    configSet(name, value) {
      if (typeof name !== 'string') throw argError('a setting name is a string');
      if (!['string', 'number', 'boolean'].includes(typeof value)) {
        throw argError('a setting value is a string, number or boolean');
      }
      try {
        B.healingSet(this._c, [name], [settingNumber(P.settings, name, value)]);
      } catch (e) {
        throw settingError(P.settings, e, name);
      }
    }

    /** One runtime setting by any of its names, as text (`configGet("sample_rate")` is "0.01"). */
    configGet(name) {
      if (typeof name !== 'string') throw argError('a setting name is a string');
      try {
        return settingText(P.settings, name, B.healingGet(this._c, name));
      } catch (e) {
        throw settingError(P.settings, e, name);
      }
    }

    /**
     * Unregisters every source, once the cache's `close()` has ended the background loop (an
     * interval under way finishes). The entries stay readable and writable.
     */
    close() {
      for (const prefix of this._sources) B.unregisterSource(this._c, prefix);
      this._sources.clear();
    }

    // Whether no repair of `key` may still land: it has no drifted answer, or the interval that
    // got it has ended.
    _settled(key) {
      if (this._healKeys.size === 0) return true;
      const gen = this._healKeys.get(key);
      if (gen === undefined) return true;
      if (B.healingIntervals(this._c) <= gen) return false;
      this._healKeys.delete(key);
      return true;
    }

    // A key's healing state lasts only while the key is pending: once nothing of it is on its way,
    // no repair of it can land, and under the background loop no verifyNow would settle it.
    _decide(key, held, idle, stored) {
      super._decide(key, held, idle, stored);
      if (this._healKeys.size !== 0 && !this._pending.has(key)) this._healKeys.delete(key);
    }

    // Called by the core (through the backend) for a sampled key whose entry holds handle `h`
    // (0: a cached "not found"): asks `source` and answers the core.
    async _verify(source, compare, key, h) {
      const gen = B.healingIntervals(this._c);
      let cur;
      if (h !== P.notFound) {
        const v = this._valueOf(key, h);
        if (v === undefined) return SKIP; // not a value this wrapper knows: cannot compare
        cur = v[0];
      }
      await undefined; // the user's source runs outside the backend's call
      let v;
      try {
        v = await source(key);
      } catch {
        return FAILED;
      }
      if (v === REFUSED) return SKIP;
      if (v === undefined) return FAILED; // a source that forgot to return never wipes the cache
      // the interval that asked is over (the core stopped waiting): nothing may land now
      if (B.healingIntervals(this._c) !== gen) return SKIP;
      if (v === notFound) {
        if (h === P.notFound) return ABSENT;
        this._healPending(key, gen, false);
        return [P.notFound, 0, digest(cur)];
      }
      if (h !== P.notFound) {
        let same = false;
        try {
          same = compare(cur, v, key);
        } catch {
          // the check failed, not the source: the source of truth wins (drift), as in Python
        }
        if (same) return [h, 0];
      }
      let w;
      try {
        w = weigh(this._sizeOf, v, key);
      } catch {
        return FAILED;
      }
      const nh = this._healPending(key, gen, true, v);
      return [nh, w, h === P.notFound ? 0 : digest(cur), digest(v)];
    }

    // A drifted answer for `key`: the core may repair (store the new value under a fresh handle,
    // or remove the entry) until the interval ends, so the value is on its way. Returns its handle.
    _healPending(key, gen, hasValue, v) {
      this._healKeys.set(key, gen);
      return this._onItsWay(key, hasValue, v);
    }

    // After the last verifyNow under way: its repairs have landed. Drops the values the healer
    // replaced or removed (queued by the backend) and settles the keys it found drifted.
    _healSettle() {
      this._drain();
      B.healingReset(this._c);
      for (const key of [...this._healKeys.keys()]) if (this._pending.has(key)) this._reconcile(key, true);
    }

    // A URL-template source (napi addon only): fetched by healcache-http, decoded here.
    _httpSource(prefix, template, o) {
      if (typeof B.httpSource !== 'function') {
        throw invalid(
          'source',
          'URL-template sources need the native package (healcache); in WebAssembly, register a function that calls fetch()',
        );
      }
      let src;
      try {
        const allow = o.allowPrivate;
        src = B.httpSource(
          template,
          o.maxBodyBytes === undefined ? 1 << 20 : o.maxBodyBytes,
          allow === true,
          Array.isArray(allow) ? allow : [],
        );
      } catch (e) {
        throw healingField(P.settings, e);
      }
      const decode = o.decode === undefined ? 'buffer' : o.decode;
      const strip = o.stripPrefix === true;
      return async (key) => {
        const [status, body] = await B.httpFetch(src, strip ? key.slice(prefix.length) : key);
        if (status === H.value) return decodeBody(decode, body);
        if (status === H.notFound) return notFound;
        if (status === H.refused) return REFUSED;
        throw codeError(status === H.timeout ? 'SourceTimeout' : 'SourceUnavailable', 'the source did not answer');
      };
    }
  };
}

export { makeHealing };
