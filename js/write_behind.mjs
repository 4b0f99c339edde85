// `WriteBehind`: the core's write-behind queue in front of a JS writer. The core decides
// everything (the bound, coalescing, batching, retries, close); this class checks arguments,
// writes the cache's tables as `cache.set` does, and keeps the value of each queued put.
//
// Values. The core queues each put's handle (the slot `set` gives the value), and the batch
// reaches the writer with each handle turned back into its value. A slot is normally reused once
// the core drops the cache entry; while a queue may still hold its handle, the slot is held
// (`_hold` in mirror.mjs), so a queued handle always names its value. The core drops a handle
// without a call (a write coalesced over, a batch delivered, an item given up and taken), so
// the values kept here are let go when their batch is delivered, and swept against the handles
// the queue still holds (`wbHeld`) once twice as many are kept as were held at the last sweep.

import { WRITE_BEHIND_COUNTS, argError, callOptions, checkKey, errorText, flagArg, invalid, shown, ttlArg, weigh } from './options.mjs';

const SWEEP_MIN = 1024; // values kept before the first sweep

// The text kept with an item the writer failed (the core keeps text, as Python's does).

/** The `WriteBehind` class over backend `B`, for caches of class `Cache`. */
function makeWriteBehind(B, Cache) {
  return class WriteBehind {
    /**
     * A queue in front of `writer(batch)` (async; `batch` an array of `{ op: 'put', key, value }`
     * and `{ op: 'delete', key }`) for `cache`. Options (unset: the core's default): `maxQueue`,
     * `batch`, `flushInterval`, `retryMin`, `retryMax` (ms), `attempts`, `onFull` ('reject' or
     * `{ block: ms }`); another name is refused (InvalidConfig).
     */
    constructor(cache, writer, options) {
      if (B.wbCreate === undefined) {
        throw invalid('WriteBehind', 'needs the Node package');
      }
      if (!(cache instanceof Cache)) throw argError('cache must be a Cache');
      if (typeof writer !== 'function') throw argError('writer must be a function');
      const o = callOptions(options, 'WriteBehind') || {};
      const nums = WRITE_BEHIND_COUNTS.map((name) => {
        const v = o[name];
        if (v !== undefined && typeof v !== 'number') throw invalid(name, `must be a number, got ${shown(v)}`);
        return v;
      });
      let block;
      const f = o.onFull;
      if (f !== undefined && f !== 'reject') {
        if (f === null || typeof f !== 'object' || typeof f.block !== 'number') {
          throw invalid('onFull', "must be 'reject' or { block: ms }");
        }
        callOptions(f, 'onFull', 'onFull.');
        block = f.block;
      }
      const vals = new Map(); // handle -> value, while the queue may hold it
      // the writer as the core calls it: no reference to this object, which may then be collected
      const run = async (batch) => {
        try {
          const ops = batch.map((b) => (b.op === 'put' ? { op: 'put', key: b.key, value: vals.get(b.handle) } : { op: 'delete', key: b.key }));
          await writer(ops);
          // a delivered put leaves the queue (a put is queued once, and none is retried once
          // written): its value and slot are let go now, not at the next sweep
          for (const b of batch) if (b.op === 'put' && vals.delete(b.handle)) cache._unhold(b.handle / 2 - 1);
          return null;
        } catch (e) {
          return errorText(e);
        }
      };
      this._wb = B.wbCreate(cache._c, run, ...nums, block);
      this._cache = cache;
      this._vals = vals;
      this._setting = new Set(); // handles of sets not settled yet (not in the queue yet)
      this._sweepAt = SWEEP_MIN;
    }

    /**
     * Writes `value` to the cache at once, as `cache.set` does, and queues it for the writer;
     * resolves to the entry's version. Options: `ttl` (ms), no other. Rejects with code "QueueFull" when
     * the queue is full (after waiting with `onFull: { block }`), "Closed" after `close()`; a
     * refused write changes nothing.
     */
    async set(key, value, options) {
      checkKey(key);
      const ttl = ttlArg(callOptions(options, 'WriteBehind.set'));
      const c = this._cache;
      const w = weigh(c._sizeOf, value, key);
      c._flushReads();
      const i = c._slot();
      const h = 2 * i + 2;
      c._v[i] = value;
      c._k[i] = key;
      c._h[i] = h;
      c._exp[i] = -Infinity; // asked of the core at its first read: the write may wait for room
      c._gen[i] = c._generation();
      c._hold(i);
      this._vals.set(h, value);
      this._setting.add(h);
      c._enter(key); // a value of the key the core drops meanwhile stays until the mirror moved on
      let p;
      try {
        p = B.wbSet(this._wb, key, h, w, ttl, c._shared ? value : undefined);
      } catch (e) {
        this._refused(key, i, h);
        c._leave(key);
        throw e;
      }
      // the mirror points at the value now: each read asks the core which one it holds
      c._map().set(key, i);
      let ver;
      try {
        ver = await p;
      } catch (e) {
        this._refused(key, i, h);
        throw e;
      } finally {
        this._setting.delete(h);
        c._leave(key);
      }
      c._ver[i] = ver;
      const j = c._map().get(key);
      if (j !== undefined) c._exp[j] = -Infinity;
      if (c._pending.size !== 0 && c._pending.has(key)) c._decide(key, c._next, false);
      c._drain();
      if (this._vals.size >= this._sweepAt) this._sweep();
      return ver;
    }

    // A set the core refused: its slot is freed and the mirror asks the core about the key.
    _refused(key, i, h) {
      const c = this._cache;
      this._vals.delete(h);
      this._setting.delete(h);
      if (c._map().get(key) === i) {
        c._map().delete(key);
        c._reconcile(key, true);
      }
      c._unhold(i);
      c._freeSlot(i);
    }

    /**
     * Removes `key` from the cache at once and queues its deletion; resolves to whether the cache
     * held a live value. Rejects as `set` does.
     */
    async delete(key) {
      checkKey(key);
      const c = this._cache;
      c._flushReads();
      const i = c._map().get(key);
      if (i !== undefined) c._exp[i] = -Infinity; // asked of the core until settled
      c._enter(key);
      try {
        return await B.wbDelete(this._wb, key);
      } finally {
        c._leave(key);
        const j = c._map().get(key);
        if (j !== undefined) c._exp[j] = -Infinity;
        c._drain();
      }
    }

    /**
     * Stops accepting writes and flushes for at most `timeoutMs` (default 5000); resolves to the
     * number of items left unflushed (kept with the failed ones).
     */
    async close(timeoutMs = 5000) {
      if (typeof timeoutMs !== 'number') throw argError('timeoutMs must be a number');
      const left = await B.wbClose(this._wb, timeoutMs);
      this._sweep();
      return left;
    }

    /** Whether `close()` was called. */
    get closed() {
      return B.wbClosed(this._wb);
    }

    /**
     * The items given up (attempts exhausted, or left at close), oldest first:
     * `{ op, key, value (puts), attempts, error }`; with `{ take: true }` they are removed.
     */
    failed(options) {
      const take = flagArg(callOptions(options, 'WriteBehind.failed'), 'take');
      const items = B.wbFailed(this._wb, take).map((f) => {
        const out = { op: f.op, key: f.key };
        if (f.op === 'put') out.value = this._vals.get(f.handle);
        out.attempts = f.attempts;
        out.error = f.error;
        return out;
      });
      if (take) this._sweep();
      return items;
    }

    /** The core's counters and gauges (`lag` in ms). */
    stats() {
      return B.wbStats(this._wb);
    }

    /** The metrics in the Prometheus text format, labelled `cache="<name>"`. */
    prometheus(name) {
      if (typeof name !== 'string') throw argError('the cache name is a string');
      return B.wbPrometheus(this._wb, name);
    }

    // Forgets the values the queue no longer holds, and releases their slots.
    _sweep() {
      const held = new Set(B.wbHeld(this._wb));
      for (const h of this._vals.keys()) {
        if (held.has(h) || this._setting.has(h)) continue;
        this._vals.delete(h);
        this._cache._unhold(h / 2 - 1);
      }
      this._sweepAt = Math.max(SWEEP_MIN, 2 * this._vals.size);
    }
  };
}

export { makeWriteBehind };
