// The JS side of value keeping: where the values live, and the read mirror that answers
// repeated reads without a call into the core. Its rules are written here once.
//
// Design note. The core is the authority; JS keeps the values.
// - The core (`Cache<Handle>`) stores a numeric handle per entry with the value's weight; JS
//   keeps the value under that handle, so a hit returns the very value stored and nothing is
//   copied or serialised. Values `set` stores live in a slot table (value and key) under handle
//   2 * slot + 2 (even); loaded values and repairs get odd ids, never reused. A slot is reused
//   once the core has dropped its handle (its removal queue says so) and no waiter may still
//   settle on it.
// - The mirror (`_m`: key -> {v, h, ver, exp, sure}) holds what the core holds: every write enters
//   it with the version the core gave and the time the core keeps it fresh at least (the TTL the
//   core applied; its jitter only stretches it), so the first read after a write is a mirror
//   hit. A read the mirror cannot answer is a read of the core (`state`), which the core counts,
//   and its answer (handle, version, exact expiry) enters the mirror.
// - The mirror stays exact: writes and deletes update it with the core's answer; entries the
//   core evicts or expires come back through its removal queue (a call that may evict raises a
//   flag, then the queue is drained), and are dropped if the mirror still holds that handle.
// - The core sees every read: the mirror counts its hits and sends a sample of their keys, with
//   the count, in batches (`touch`), which the core counts as reads of those keys. So its
//   counters are the only counters and its eviction policy sees what is read.
// - Values reach the core outside any JS call too (a loader's value stored by a background
//   refresh, a repair by the healer). So a key with such a value on its way is "pending": the
//   mirror stops answering for it and its reads ask the core which handle it holds, until every
//   value on its way is decided (the core holds it or a newer one, or it never will). Values on
//   their way are kept under their handle until then, so whatever the core holds resolves to
//   its JS value. A stale value (past its TTL, within `grace`) is never a mirror hit.

import { checkKey } from './options.mjs';

const SAMPLE_MASK = 15; // one mirror hit in 16 sends its key to the core
const READ_BUFFER = 64; // keys per `touch` batch
const PENDING_SWEEP = 1024; // pending keys before a sweep asks the core about all of them

const now = () => performance.now();

/**
 * The value-keeping base class over backend `B`. `P` is the backend's protocol (named numbers,
 * filled before the first cache is made), `row()` its current result row (a Float64Array the
 * backend fills).
 */
function makeMirror(B, P, row) {
  // read from `P` when the first cache is made (a WebAssembly module is instantiated later)
  let O_VERSION, O_EXPIRES, O_HANDLE, O_FLIGHTS, O_PENDING, O_EXACT, NONE;

  return class Mirror {
    constructor() {
      if (NONE === undefined) {
        ({ version: O_VERSION, expires: O_EXPIRES, handle: O_HANDLE, flights: O_FLIGHTS, pending: O_PENDING, exact: O_EXACT } =
          P.out);
        NONE = P.none;
      }
      this._now = now; // the cache's clock (a ManualClock's `now` in tests)
      this._m = new Map(); // key -> {v, h, ver, exp, sure}: what the core holds (sure: exp is the core's own)
      this._next = -1; // last odd id given (`_id`)
      this._s = []; // set values by slot: value at 2i, key at 2i + 1 (one cache line for both)
      this._cap = 1024; // slots before the table grows (reclaiming dropped ones first)
      this._sn = 0; // slots ever used
      this._free = []; // slots the core dropped
      this._hits = 0; // mirror hits not yet reported to the core
      this._reads = []; // their sampled keys
      this._missed = []; // keys read past an expiry the core gave, not yet reported
      this._loaded = new Map(); // handle -> {v}: loaded values and repairs, until decided
      this._pending = new Map(); // key -> handles on their way to the core, not yet decided
      this._kept = new Map(); // key -> decided handles kept for the key's waiters
      this._cand = new Map(); // key -> decided handles that may be its stale entry in the core
      this._sweepAt = PENDING_SWEEP;
      this._waiting = new Map(); // key -> getOrLoad/fetch calls under way
    }

    // The mirror's fresh entry of `key`, counted as a hit, or undefined.
    _hit(key) {
      const s = this._m.get(key);
      if (s !== undefined && (s.exp === Infinity || s.exp > this._now())) {
        if ((++this._hits & SAMPLE_MASK) === 1) this._read(key);
        return s;
      }
      return undefined;
    }

    // Whether mirror entry `s`, not fresh, is past the expiry the core gave it: then the key is a
    // miss without asking the core (-Infinity: a value is on its way, ask).
    _expired(s) {
      return s.sure && s.exp !== -Infinity;
    }

    // The fresh entry of `key` as [slot, expiry], without counting a read. The core is asked
    // when the mirror holds an entry whose expiry is only a lower bound or whose key has a value
    // on its way; otherwise the core has nothing fresh either.
    _fresh(key) {
      const s = this._m.get(key);
      if (s !== undefined) {
        if (s.exp > this._now()) return [s, s.exp];
        if (this._expired(s)) return undefined;
        return this._reconcile(key);
      }
      checkKey(key); // only checked keys enter the mirror
      return this._pending.size !== 0 && this._pending.has(key) ? this._reconcile(key) : undefined;
    }

    // A read of `key` the mirror did not answer with a hit: the value, or undefined.
    _readMissed(key) {
      const s = this._m.get(key);
      if (s !== undefined && this._expired(s)) {
        this._miss(key);
        return undefined;
      }
      const f = this._reconcile(key);
      return f === undefined ? undefined : f[0].v;
    }

    // A read of `key` the mirror answered "expired": reported to the core with the hits.
    _miss(key) {
      const m = this._missed;
      m.push(key);
      if (m.length >= READ_BUFFER) this._flushReads();
    }

    _read(key) {
      const r = this._reads;
      r.push(key);
      if (r.length >= READ_BUFFER) this._flushReads();
    }

    // Reports the reads the mirror answered to the core (the hits' sampled keys and count, the misses).
    _flushReads() {
      if (this._hits === 0 && this._missed.length === 0) return;
      const pending = B.touch(this._c, this._reads, this._hits, this._missed);
      this._reads.length = 0;
      this._missed.length = 0;
      this._hits = 0;
      if (pending) this._drain();
    }

    // Stores `value` under `key` through the core; the mirror takes the core's answer.
    _write(key, value, w, ttl, ifVersion) {
      const i = this._slot();
      const h = 2 * i + 2;
      this._s[2 * i] = value;
      this._s[2 * i + 1] = key;
      const t0 = this._now();
      let ver;
      let exp;
      let sure;
      let pending;
      try {
        if (ttl === undefined && ifVersion === undefined) {
          // the common case: the cache's TTL, whose freshness the core gave once (`_fresh0`)
          ver = B.setPlain(this._c, key, h, w);
          pending = ver < 0;
          if (pending) ver = -ver;
          exp = t0 + this._fresh0.ms;
          sure = this._fresh0.exact;
        } else {
          ver = B.set(this._c, key, h, w, ttl, ifVersion, row());
          const o = row();
          exp = t0 + o[O_EXPIRES];
          sure = o[O_EXACT] === 1;
          pending = o[O_PENDING] === 1;
        }
      } catch (e) {
        this._s[2 * i] = undefined;
        this._s[2 * i + 1] = undefined;
        this._free.push(i);
        throw e;
      }
      const s = this._m.get(key);
      if (s === undefined) this._m.set(key, { v: value, h, ver, exp, sure });
      else {
        s.v = value;
        s.h = h;
        s.ver = ver;
        s.exp = exp;
        s.sure = sure;
      }
      if (pending) this._drain();
      // a value on its way older than this write can no longer be stored (fenced, or replaced)
      if (this._pending.size !== 0 && this._pending.has(key)) this._decide(key, this._next, false);
      return ver;
    }

    // Drops the mirror entries the core evicted or expired, and frees the slots of set values
    // it dropped: [key, handle, ...], a set value's handle without its key, negated when it was
    // replaced or deleted (the mirror knows of those already).
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

    // The value of handle `h` the core holds for `key`, as [value], or undefined if JS no longer has it.
    _valueOf(key, h) {
      const s = this._m.get(key);
      if (s !== undefined && s.h === h) return [s.v];
      if (h % 2 === 0) {
        const i = h / 2 - 1;
        return this._s[2 * i + 1] === key ? [this._s[2 * i]] : undefined;
      }
      const l = this._loaded.get(h);
      return l === undefined ? undefined : [l.v];
    }

    // Asks the core which value `key` holds now (a read, counted by the core): returns [slot,
    // expiry] if a fresh one, and decides the key's values on their way. The mirror answers for
    // the key again once none is left.
    _reconcile(key) {
      const t0 = this._now();
      B.state(this._c, key, row());
      const o = row();
      const h = o[O_HANDLE];
      const [ver, expIn, flights, pending] = [o[O_VERSION], o[O_EXPIRES], o[O_FLIGHTS], o[O_PENDING]];
      let out;
      if (h !== NONE) {
        let s = this._m.get(key);
        if (s === undefined || s.h !== h) {
          const v = this._valueOf(key, h);
          s = v === undefined ? undefined : { v: v[0], h, ver: 0, exp: 0, sure: true };
          if (s !== undefined) this._m.set(key, s);
        }
        if (s !== undefined) {
          s.ver = ver;
          s.exp = t0 + expIn;
          s.sure = true;
          out = [s, s.exp];
        }
      }
      // decided when no flight is under way and no repair may land; a set value decided the
      // loads that began before it when it was written, and those that began after may yet
      // land (held 0: none by order)
      const held = h !== NONE && h % 2 === 0 ? 0 : h;
      this._decide(key, held, flights === 0 && this._settled(key));
      // still pending: a value may yet land, so the mirror keeps asking the core
      if (out !== undefined && this._pending.has(key)) out[0].exp = -Infinity;
      if (pending === 1) this._drain();
      return out;
    }

    // Whether no repair of `key` may still land (see the healing class).
    _settled() {
      return true;
    }

    // Values on their way for `key` up to handle `held` (a fresh value the core holds now, or a
    // write that superseded them) are decided; with `idle` (nothing more may land) all of them
    // are. With nothing fresh in the core, a decided value may still be its stale entry (within
    // grace): those stay resolvable as the key's candidates until the key is written, deleted,
    // holds a fresh value, or the core reports them gone. Values are kept while the key has waiters.
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

    // Forgets values on their way, or keeps them until the key's waiters have settled.
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

    // A value (or a "not found" when `hasValue` is false) is on its way to the core for `key`:
    // kept under a new odd id until decided, and the key is pending. Returns the id.
    _onItsWay(key, hasValue, v) {
      this._next += 2;
      const h = this._next;
      if (hasValue) this._loaded.set(h, { v });
      const ids = this._pending.get(key);
      if (ids === undefined) this._pending.set(key, [h]);
      else ids.push(h);
      const s = this._m.get(key);
      if (s !== undefined) s.exp = -Infinity;
      if (this._pending.size > this._sweepAt) this._sweep();
      return h;
    }

    // A new odd id for a loader's rejection (never a handle the core stores).
    _id() {
      this._next += 2;
      return this._next;
    }

    // Asks the core about every pending key (bounds what the pending values keep alive).
    _sweep() {
      for (const key of [...this._pending.keys()]) this._reconcile(key);
      this._sweepAt = Math.max(PENDING_SWEEP, 2 * this._pending.size);
    }

    // Removes `key` from the mirror and forgets its stale candidates.
    _unmirror(key) {
      this._m.delete(key);
      const cand = this._cand.get(key);
      if (cand !== undefined) {
        this._cand.delete(key);
        this._forget(key, cand);
      }
    }

    // Clears the mirror after the core was cleared.
    _clearMirror() {
      this._drain(); // frees the set slots (kept for keys with waiters)
      this._m.clear();
      for (const [key, ids] of this._cand) this._forget(key, ids);
      this._cand.clear();
    }

    // The core answered handle `h` for `key` (a value stored by `set` or on its way: fresh, or
    // stale within grace); a loaded value enters the mirror once the core is seen to hold it.
    _settle(key, h) {
      const v = this._valueOf(key, h);
      if (v === undefined) throw Object.assign(new Error('the loaded value is gone'), { code: 'LoaderError' });
      if (this._pending.has(key)) this._reconcile(key);
      return v[0];
    }

    // A getOrLoad/fetch call of `key` starts waiting.
    _enter(key) {
      this._waiting.set(key, (this._waiting.get(key) || 0) + 1);
    }

    // It ended: once the key has no waiter, the values kept for its waiters are freed.
    _leave(key) {
      const n = this._waiting.get(key) - 1;
      if (n > 0) {
        this._waiting.set(key, n);
        return false;
      }
      this._waiting.delete(key);
      if (this._pending.has(key)) this._reconcile(key);
      const kept = this._kept.get(key);
      if (kept !== undefined) {
        this._kept.delete(key);
        for (const id of kept) {
          if (id % 2 === 0) this._release(id);
          else this._loaded.delete(id);
        }
      }
      return true;
    }
  };
}

export { makeMirror };
