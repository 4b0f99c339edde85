// The JS side of value keeping: where the values live, and the read mirror that answers
// repeated reads without a call into the core. Its rules are written here once.
//
// Design note. The core is the authority; JS keeps the values.
// - The core (`Cache<Handle>`) stores a numeric handle per entry with the value's weight; JS
//   keeps the value under that handle, so a hit returns the very value stored and nothing is
//   copied or serialised. JS keeps values in slots: per-slot arrays of value, key, handle,
//   version and expiry (typed arrays for the numbers), so a write allocates nothing per key.
//   Values `set` stores take a slot under handle 2 * slot + 2 (even); loaded values and repairs
//   get odd ids, never reused, and a slot when they enter the mirror. A slot is reused once the
//   core has dropped its handle (its removal queue says so, for every value it drops) and no
//   waiter may still settle on it. So a write is one core call, array stores and one `Map.set`
//   (a new key's is buffered: it enters the Map with the next 63 new keys', or before anything
//   reads the Map, so no read sees the Map without it; an overwrite's enters at once). A plain
//   overwrite, while nothing but the mirror may name the key's value by its handle
//   (`_keepable`), may keep that handle (the core says so in its answer): the key's slot then
//   takes the new value in place, with no new slot and no `Map.set`.
// - The mirror (key -> slot) holds what the core holds: every write enters it with the
//   version and the expiry the core decided (as time left, added to a time no later than the
//   core's: the ticking clock's, else a JS clock read taken before the call), so the first read
//   after a write is a mirror hit; past that expiry, a read asks the core when the expiry may
//   be early. A read the mirror cannot answer is a read of the core (`state`), which the core
//   counts, and its answer (handle, version, expiry) enters the mirror.
// - The mirror stays exact: writes and deletes update it with the core's answer; entries the
//   core evicts or expires come back through its removal queue (a call that may evict raises a
//   flag, then the queue is drained), and are dropped if the mirror still holds that handle.
// - The core sees every read: the mirror counts its hits and sends a sample of their keys, with
//   the count, in batches (`touch`); the core counts the hits and bumps the sampled keys'
//   access counters. So its counters are the only counters and its eviction policy sees what
//   is read.
// - Values reach the core outside any JS call too (a loader's value stored by a background
//   refresh, a repair by the healer). So a key with such a value on its way is "pending": the
//   mirror stops answering for it and its reads ask the core which handle it holds, until every
//   value on its way is decided (the core holds it or a newer one, or it never will). Values on
//   their way are kept under their handle until then, so whatever the core holds resolves to
//   its JS value. A stale value (past its TTL, within `grace`) is never a mirror hit.

import { checkKey, invalid } from './options.mjs';

const SAMPLE_MASK = 15; // one mirror hit in 16 sends its key to the core
const READ_BUFFER = 64; // keys per `touch` batch
const PENDING_SWEEP = 1024; // pending keys before a sweep asks the core about all of them
const FIRST_SLOTS = 1024; // slots before the table first grows
// Writes `_write` buffers before entering them in the mirror's Map in one run: a `Map.set` of a
// new key waits on cache misses, which a plain loop of them overlaps and a call into the core
// between any two does not (inserts of 1,000,000 fresh keys: about 15% faster). An overwrite
// enters at once: buffered, overwrites of live keys were 10-18% slower.
const WRITE_BUFFER = 64;

const now = () => performance.now();
const NO_TICK = new Float64Array([Infinity]); // no ticking clock: every hit reads `_now()`
// A mirror hit skips the clock read when the entry expires more than this many ms after the
// ticking clock's time (entries closer to their expiry are checked against `_now()`).
const TICK_SLACK = 1000;
// The ticking clock is not trusted while it is this many ms further behind `_now()` than its
// least lag seen (its thread held back), until it catches up.
const TICK_LAG = 100;
// the generation of a cache whose L1 changes only through its own calls (no shared tier)
const UNCHANGING = new Uint32Array(1);

/**
 * The value-keeping base class over backend `B`. `P` is the backend's protocol (named numbers,
 * filled before the first cache is made), `row()` its result row (a Float64Array the backend
 * fills).
 */
function makeMirror(B, P, row) {
  // read from `P` when the first cache is made (a WebAssembly module is instantiated later)
  let O_VERSION, O_EXPIRES, O_HANDLE, O_FLIGHTS, O_PENDING, O_REPLACED, O_DROPPED, NONE, L2_FIRST_ID;
  // the backend's ticking clock (a native thread stores the time every millisecond; see
  // `_tickCheck`), made with the first cache: a time in ms, and the word that asks for it
  let tick, tickAsk;
  // added to the tick, a time no later than the JS clock's (undefined: no tick): the tick's
  // first value was stored after a JS clock read, and both clocks are the host's monotonic one
  let tickBase;

  return class Mirror {
    constructor() {
      if (NONE === undefined) {
        ({ version: O_VERSION, expires: O_EXPIRES, handle: O_HANDLE, flights: O_FLIGHTS, pending: O_PENDING, replaced: O_REPLACED, dropped: O_DROPPED } = P.out);
        NONE = P.none;
        L2_FIRST_ID = P.l2FirstId; // handles of values the core read from the shared tier
      }
      this._now = now; // the cache's clock (a ManualClock's `now` in tests)
      if (tick === undefined) {
        const before = now();
        const b = typeof B.tickClock === 'function' ? B.tickClock() : null;
        tick = b === null ? NO_TICK : new Float64Array(b, 0, 1);
        tickAsk = b === null ? new Uint32Array(1) : new Uint32Array(b, 8, 1);
        if (b !== null) tickBase = before - tick[0];
      }
      this._T = tick;
      // a write's expiry starts from `_T[0] + _tickAt` where there is a tick: a plain load, where
      // a JS clock call waits for every earlier load to finish (10-12% of an insert or an
      // overwrite of 1,000,000 keys). It may lag the JS clock, so the mirror's expiry is then a
      // lower bound of the core's, and a read past it asks the core (`_lower`).
      this._tickAt = tickBase;
      this._lower = tickBase !== undefined;
      this._tickMin = Infinity; // the least `_now() - tick` seen
      this._tickOff = Infinity; // added to the tick for the hit check (Infinity: not trusted)
      this._tickCheck();
      this._shared = false; // whether values also cross to the shared tier (set by the cache)
      // key -> slot of what the core holds; read only through `_map()`, which first enters the
      // writes buffered in `_wb` (`_write`'s [key, slot, ...], in order)
      this._mm = new Map();
      this._wb = [];
      // the slots: value, key, handle, version, expiry (a JS clock time, -Infinity: ask the core)
      this._v = [];
      this._k = [];
      this._h = new Float64Array(FIRST_SLOTS);
      this._ver = new Float64Array(FIRST_SLOTS);
      this._exp = new Float64Array(FIRST_SLOTS);
      // the core's L1 generation when each slot entered the mirror (NaN: never trusted)
      this._gen = new Float64Array(FIRST_SLOTS);
      // the core's counter of L1 changes made outside this process's calls (a shared cache's
      // bus): a 4-byte view of the core's own memory, read without a call; where the
      // runtime could not share it, NaN (every entry is then asked of the core)
      this._G = UNCHANGING;
      this._cap = FIRST_SLOTS; // slots before the table grows (reclaiming dropped ones first)
      this._sn = 0; // slots ever used
      this._free = []; // free slots
      this._next = -1; // last odd id given (`_id`)
      this._hits = 0; // mirror hits not yet reported to the core
      this._reads = []; // their sampled keys
      this._missed = []; // keys read past an expiry the core gave, not yet reported
      this._loaded = new Map(); // handle -> {v}: loaded values and repairs, until decided
      this._pending = new Map(); // key -> handles on their way to the core, not yet decided
      this._kept = new Map(); // key -> decided handles kept for the key's waiters
      this._cand = new Map(); // key -> decided handles that may be its stale entry in the core
      this._sweepAt = PENDING_SWEEP;
      this._waiting = new Map(); // key -> getOrLoad/fetch calls under way
      this._odd = new Map(); // loaded handle -> its slot, kept until the core drops the handle
      this._dispose = undefined; // the user's dispose(value, key, reason), when given
      // slot -> write-behind queues that may still hold its handle: such a slot is not reused
      // when the core drops the value (a queued handle must keep naming its value), only once
      // released (`_unhold`)
      this._held = new Map();
      this._heldFree = new Set(); // held slots the core has dropped
      this._healing = 0; // 1 once a healing source was registered (set by the healing class)
    }

    // Hands every value the core lets go from now on to `dispose(value, key, reason)`: the core
    // reports each removal at once, with its cause.
    _disposeWith(dispose) {
      this._dispose = dispose;
      B.reportRemovals(this._c);
    }

    // Reads go by `now()` (ms, on the scale of `performance.now()`), with no ticking clock.
    _useClock(now) {
      this._now = now;
      this._T = NO_TICK;
      this._tickOff = Infinity;
      this._tickAt = undefined;
      this._lower = false;
    }

    // Checks the ticking clock against `_now()`: it is trusted (hits skip the clock read when
    // the entry expires over TICK_SLACK ms after its time, mapped to `_now()`'s scale by the
    // least lag seen) unless it is TICK_LAG ms further behind than that; and asks its thread to
    // keep its millisecond pace. Run with every batch of hits reported to the core.
    _tickCheck() {
      if (this._T === NO_TICK) return;
      tickAsk[0] = 1;
      const lag = this._now() - this._T[0];
      if (lag < this._tickMin) this._tickMin = lag;
      this._tickOff = lag - this._tickMin > TICK_LAG ? Infinity : this._tickMin + TICK_SLACK;
    }

    // The core's L1 generation now (NaN when it cannot be read: NaN equals nothing, so nothing
    // mirrored is trusted).
    _generation() {
      return this._G[0];
    }

    // The mirror's Map, with every buffered write entered.
    _map() {
      if (this._wb.length !== 0) this._enterWrites();
      return this._mm;
    }

    _enterWrites() {
      const wb = this._wb;
      const m = this._mm;
      for (let j = 0; j < wb.length; j += 2) m.set(wb[j], wb[j + 1]);
      wb.length = 0;
    }

    // The mirror's slot of `key`, or undefined; an entry mirrored before L1 changed outside
    // this process's calls is asked of the core again.
    _at(key) {
      const i = this._map().get(key);
      if (i !== undefined && this._G !== UNCHANGING && this._gen[i] !== this._G[0]) this._exp[i] = -Infinity;
      return i;
    }

    // The mirror's slot of `key` if fresh, counted as a hit, or -1.
    _hit(key) {
      const i = this._at(key);
      if (i !== undefined) {
        const e = this._exp[i];
        // the ticking clock first: a plain load, where a JS clock call waits for every earlier
        // load to finish
        if (e === Infinity || e > this._T[0] + this._tickOff || e > this._now()) {
          if ((++this._hits & SAMPLE_MASK) === 1) this._read(key);
          return i;
        }
      }
      return -1;
    }

    // The slot of `key`'s fresh entry, without counting a read, or -1. The core is asked when
    // the key has a value on its way; otherwise a mirror entry past its expiry is past the
    // core's, and a key the mirror lacks has nothing fresh in the core either.
    _fresh(key) {
      const i = this._at(key);
      if (i !== undefined) {
        const e = this._exp[i];
        if (e > this._now()) return i;
        return e === -Infinity || this._lower ? this._reconcile(key, true) : -1;
      }
      checkKey(key); // only checked keys enter the mirror
      return this._pending.size !== 0 && this._pending.has(key) ? this._reconcile(key, true) : -1;
    }

    // A read of `key` the mirror did not answer with a hit: the value, or undefined.
    _readMissed(key) {
      const i = this._at(key);
      // (with dispose, the core is read: it removes what expired and reports it)
      if (i !== undefined && this._exp[i] !== -Infinity && !this._lower && this._dispose === undefined) {
        this._miss(key);
        return undefined;
      }
      const f = this._reconcile(key);
      return f < 0 ? undefined : this._v[f];
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
      this._tickCheck();
      const pending = B.touch(this._c, this._reads, this._hits, this._missed);
      this._reads.length = 0;
      this._missed.length = 0;
      this._hits = 0;
      if (pending) this._drain();
    }

    // Stores `value` under `key` through the core; the mirror takes the core's answer.
    _write(key, value, w, ttl, ifVersion, tags) {
      // the sampled reads before a write reach the policy before it may evict
      if (this._reads.length !== 0) this._flushReads();
      const i = this._slot();
      const h = 2 * i + 2;
      const t0 = this._tickAt === undefined ? this._now() : this._T[0] + this._tickAt;
      const g0 = this._generation();
      let ver;
      try {
        if (tags !== undefined) {
          if (B.setTagged === undefined) throw invalid('tags', 'needs the Node package');
          ver = this._shared
            ? B.setSharedTagged(this._c, key, h, w, ttl, ifVersion, tags, value)
            : B.setTagged(this._c, key, h, w, ttl, ifVersion, tags);
        } else if (this._shared) ver = B.setShared(this._c, key, h, w, ttl, ifVersion, value);
        else
          ver =
            ttl === undefined && ifVersion === undefined
              ? B.setPlain(this._c, key, h, w, this._keepable())
              : B.set(this._c, key, h, w, ttl, ifVersion);
      } catch (e) {
        this._free.push(i);
        throw e;
      }
      const o = row();
      const held = o[O_HANDLE];
      if (held !== h) {
        // the core kept the handle of the set value this write replaced: the key keeps its slot
        // and its mirror entry, which take the new value
        this._free.push(i);
        const j = held / 2 - 1;
        this._v[j] = value;
        this._ver[j] = ver;
        this._exp[j] = t0 + o[O_EXPIRES];
        this._gen[j] = g0;
        if (o[O_PENDING] === 1) this._drain();
        return ver;
      }
      this._v[i] = value;
      this._k[i] = key;
      this._h[i] = h;
      this._ver[i] = ver;
      this._exp[i] = t0 + o[O_EXPIRES];
      this._gen[i] = g0;
      if (o[O_REPLACED] === 1) this._map().set(key, i);
      else {
        const wb = this._wb;
        wb.push(key, i);
        if (wb.length >= 2 * WRITE_BUFFER) this._enterWrites();
      }
      // the slot of the value it replaced is freed once the core reports that value dropped: in
      // the write's answer for a set value only the wrapper had to hear of (dropped here as a
      // drain would), else by the removal queue
      const d = o[O_DROPPED];
      if (d !== NONE) this._dropSet(this._k[d / 2 - 1], d, true);
      if (o[O_PENDING] === 1) this._drain();
      // a value on its way older than this write can no longer be stored (fenced, or replaced)
      if (this._pending.size !== 0 && this._pending.has(key)) this._decide(key, this._next, false);
      return ver;
    }

    // Whether nothing in the wrapper holds the handle of a key's set value but the mirror, so a
    // plain overwrite may store its value under that handle (`write_plain_keeping`): no
    // load or waiter under way, no write-behind queue, no decided value kept for a key, and no
    // healing source (a check names the value it compares by its handle).
    _keepable() {
      return (
        this._waiting.size === 0 &&
        this._pending.size === 0 &&
        this._held.size === 0 &&
        this._kept.size === 0 &&
        this._cand.size === 0 &&
        this._healing === 0
      );
    }

    _freeSlot(i) {
      this._v[i] = undefined;
      this._k[i] = undefined;
      this._h[i] = 0;
      if (this._held.size !== 0 && this._held.has(i)) this._heldFree.add(i);
      else this._free.push(i);
    }

    // A write-behind queue may hold slot `i`'s handle from now on.
    _hold(i) {
      this._held.set(i, (this._held.get(i) || 0) + 1);
    }

    // It no longer does: once no queue holds it, a slot the core dropped meanwhile is free.
    _unhold(i) {
      const n = this._held.get(i) - 1;
      if (n > 0) {
        this._held.set(i, n);
        return;
      }
      this._held.delete(i);
      if (this._heldFree.delete(i)) this._free.push(i);
    }

    // Drops the mirror entries the core evicted or expired, and frees the slots of the values it
    // dropped: [key, handle, ...], a set value's handle without its key, negated when it was
    // replaced or deleted (the mirror has moved on already, or stopped answering for the key).
    // With dispose, each handle is followed by its cause, and the values go to dispose once the
    // mirror is consistent.
    _drain() {
      const a = B.drain(this._c);
      const gone = this._dispose === undefined ? undefined : [];
      for (let i = 0; i < a.length; ) {
        let key = a[i++];
        let h;
        let quiet;
        if (typeof key === 'number') {
          quiet = key < 0;
          h = quiet ? -key : key;
          key = this._k[h / 2 - 1];
        } else {
          h = a[i++];
          quiet = h < 0;
          if (quiet) h = -h;
        }
        if (gone !== undefined) gone.push(this._valueOf(key, h), key, a[i++]);
        if (h % 2 === 0) {
          if (!quiet) {
            const j = this._map().get(key);
            if (j !== undefined && this._h[j] === h) this._map().delete(key);
          }
          this._dropSet(key, h, quiet);
        } else {
          this._dropOdd(h, quiet);
          if (!this._waiting.has(key)) this._loaded.delete(h);
        }
      }
      if (gone !== undefined && gone.length !== 0) this._disposeAll(gone);
    }

    // The core dropped loaded value `h`: the slot it has (if it entered the mirror) is freed.
    _dropOdd(h, quiet) {
      const j = this._odd.get(h);
      if (j === undefined) return;
      this._odd.delete(h);
      this._unpoint(this._k[j], j, quiet);
      this._freeSlot(j);
    }

    // Slot `i` of `key` is about to be freed: a mirror entry still on it goes. After a quiet
    // removal (a replace or a delete) the mirror has moved on already, unless the value was
    // replaced outside a JS call, which only a key with a value on its way can see.
    _unpoint(key, i, quiet) {
      if (quiet && (this._pending.size === 0 || !this._pending.has(key))) return;
      if (this._map().get(key) === i) this._map().delete(key);
    }

    // Calls dispose(value, key, reason) for [[value] or undefined, key, cause, ...]; a dispose
    // that throws does not stop the others, nor the call that removed the values.
    _disposeAll(gone) {
      const R = P.removal;
      for (let i = 0; i < gone.length; i += 3) {
        const v = gone[i];
        if (v === undefined) continue; // not a value this wrapper kept
        const c = gone[i + 2];
        // a value set again over itself is still the one the cache holds (lru-cache's rule too)
        if (c === R.replaced && this._holds(gone[i + 1], v[0])) continue;
        const reason = c === R.evicted ? 'evict' : c === R.expired ? 'expire' : c === R.replaced ? 'set' : 'delete';
        try {
          this._dispose(v[0], gone[i + 1], reason);
        } catch {
          // the user's callback failed: the removal stands
        }
      }
    }

    // Whether the mirror answers `value` for `key` now.
    _holds(key, value) {
      const i = this._map().get(key);
      return i !== undefined && this._v[i] === value;
    }

    // The core dropped set value `h` of `key`: its slot is freed, or kept until the key's waiters
    // are gone (one may yet settle on it).
    _dropSet(key, h, quiet) {
      if (this._waiting.size !== 0 && this._waiting.has(key)) this._forget(key, [h]);
      else this._release(h, quiet);
    }

    // A free slot: a freed one, else a new one (reclaiming dropped ones first when the table is
    // full, so it grows only when the live values need it).
    _slot() {
      if (this._free.length !== 0) return this._free.pop();
      if (this._sn === this._cap) {
        this._drain();
        if (this._free.length !== 0) return this._free.pop();
        this._grow();
      }
      return this._sn++;
    }

    _grow() {
      const cap = this._cap * 2;
      for (const f of ['_h', '_ver', '_exp', '_gen']) {
        const a = new Float64Array(cap);
        a.set(this[f]);
        this[f] = a;
      }
      this._cap = cap;
    }

    // Frees the slot of set value `h` (the core dropped it, and no waiter can settle on it); a
    // mirror entry still on it goes too (the core no longer holds it). `quiet`: see `_unpoint`.
    _release(h, quiet) {
      const i = h / 2 - 1;
      const key = this._k[i];
      if (key !== undefined) this._unpoint(key, i, quiet);
      this._freeSlot(i);
    }

    // The value of handle `h` the core holds for `key`, as [value], or undefined if JS no longer has it.
    _valueOf(key, h) {
      const i = this._map().get(key);
      if (i !== undefined && this._h[i] === h) return [this._v[i]];
      if (h % 2 === 0) {
        const j = h / 2 - 1;
        return this._k[j] === key && this._h[j] === h ? [this._v[j]] : undefined;
      }
      const j = this._odd.get(h);
      if (j !== undefined) return [this._v[j]];
      const l = this._loadedValue(h);
      return l === undefined ? undefined : [l.v];
    }

    // A loaded value (or a repair) on its way or decided, as {v}; one the core read from the
    // shared tier becomes a JS value here, once.
    _loadedValue(h) {
      const l = this._loaded.get(h);
      if (l !== undefined || h < L2_FIRST_ID) return l;
      const got = B.l2Value(this._c, h);
      if (got == null) return undefined;
      const m = { v: got[0] };
      this._loaded.set(h, m);
      return m;
    }

    // The slot of the value of handle `h` for `key` (that of a set value, or a new one for a
    // loaded value), pointed at by the mirror; -1 if JS no longer has the value.
    _enterMirror(key, h) {
      const i = this._map().get(key);
      if (i !== undefined && this._h[i] === h) return i;
      let j;
      if (h % 2 === 0) {
        j = h / 2 - 1;
        if (this._k[j] !== key || this._h[j] !== h) return -1;
      } else {
        j = this._odd.get(h);
        if (j === undefined) {
          const l = this._loadedValue(h);
          if (l === undefined) return -1;
          j = this._slot();
          this._v[j] = l.v;
          this._k[j] = key;
          this._h[j] = h;
          this._odd.set(h, j);
        }
      }
      this._map().set(key, j);
      return j;
    }

    // Asks the core which value `key` holds now (a read counted by the core, or a `peek`): returns its
    // slot if a fresh one (else -1), and decides the key's values on their way. The mirror
    // answers for the key again once none is left.
    _reconcile(key, peek = false) {
      const t0 = this._now();
      const g0 = this._generation(); // read before the core: a change after it is seen next time
      if (peek) B.peek(this._c, key);
      else B.state(this._c, key);
      const o = row();
      const h = o[O_HANDLE];
      const ver = o[O_VERSION];
      const expIn = o[O_EXPIRES];
      const flights = o[O_FLIGHTS];
      // what the core dropped first: the key's values decided below are past their reports
      if (o[O_PENDING] === 1) this._drain();
      let out = -1;
      if (h !== NONE) {
        out = this._enterMirror(key, h);
        if (out >= 0) {
          this._ver[out] = ver;
          this._exp[out] = t0 + expIn;
          this._gen[out] = g0;
        }
      }
      // decided when no flight is under way and no repair may land; a set value decided the
      // loads that began before it when it was written, and those that began after may yet
      // land (held 0: none by order)
      // a value read from L2 is numbered apart from this process's loads, so its number says
      // nothing of which came first: like a set value, it decides none of them by order
      const held = h !== NONE && (h % 2 === 0 || h >= L2_FIRST_ID) ? 0 : h;
      // with nothing fresh, a decided value may be the stale entry the core keeps: asked only then
      const decides = h === NONE && (this._pending.has(key) || this._cand.has(key));
      this._decide(key, held, flights === 0 && this._settled(key), decides ? B.stored(this._c, key) : NONE);
      // still pending: a value may yet land, so the mirror keeps asking the core
      if (out >= 0 && this._pending.has(key)) this._exp[out] = -Infinity;
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
    _decide(key, held, idle, stored = NONE) {
      const ids = this._pending.get(key);
      let done = [];
      if (ids !== undefined) {
        const keep = idle ? [] : ids.filter((id) => id > held);
        if (keep.length === 0) this._pending.delete(key);
        else this._pending.set(key, keep);
        done = ids.filter((id) => !keep.includes(id));
      }
      if (held < 0) {
        // nothing fresh in the core: of the decided values, only the stale entry it keeps
        // (`stored`) may still be handed back (fail-safe); the others are forgotten (a refused
        // repair, a load whose key was evicted meanwhile)
        const c = this._cand.get(key);
        if (c !== undefined) {
          this._cand.delete(key);
          done.push(...c);
        }
        if (stored !== NONE && stored % 2 !== 0 && this._loaded.has(stored) && done.includes(stored)) {
          this._cand.set(key, [stored]);
          done = done.filter((id) => id !== stored);
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
      if (this._reads.length !== 0) this._flushReads(); // the core may store it (and evict) from now on
      this._next += 2;
      const h = this._next;
      if (hasValue) this._loaded.set(h, { v });
      const ids = this._pending.get(key);
      if (ids === undefined) this._pending.set(key, [h]);
      else ids.push(h);
      const i = this._map().get(key);
      if (i !== undefined) this._exp[i] = -Infinity;
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
      for (const key of [...this._pending.keys()]) this._reconcile(key, true);
      this._sweepAt = Math.max(PENDING_SWEEP, 2 * this._pending.size);
    }

    // Removes `key` from the mirror and forgets its stale candidates.
    _unmirror(key) {
      this._map().delete(key);
      const cand = this._cand.get(key);
      if (cand !== undefined) {
        this._cand.delete(key);
        this._forget(key, cand);
      }
    }

    // Every mirrored entry is asked of the core again (after a call that changed entries the
    // mirror cannot name, such as a tag invalidation).
    _distrustMirror() {
      for (const i of this._map().values()) this._exp[i] = -Infinity;
    }

    // Clears the mirror after the core was cleared.
    _clearMirror() {
      this._drain(); // frees the set slots (kept for keys with waiters)
      this._map().clear();
      for (const [key, ids] of this._cand) this._forget(key, ids);
      this._cand.clear();
    }

    // The core answered handle `h` for `key` (a value stored by `set` or on its way: fresh, or
    // stale within grace); a loaded value enters the mirror once the core is seen to hold it.
    _settle(key, h) {
      const v = this._valueOf(key, h);
      if (v === undefined) throw Object.assign(new Error('the loaded value is gone'), { code: 'LoaderError' });
      // a value the core answered without this process loading it (an L2 hit, another
      // caller's load) enters the mirror too, so the next read of it is a mirror hit
      if (this._pending.has(key) || this._map().get(key) === undefined) this._reconcile(key, true);
      return v[0];
    }

    // A getOrLoad/fetch call of `key` starts waiting.
    _enter(key) {
      if (this._reads.length !== 0) this._flushReads(); // the call may store a value at once (from the shared tier)
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
      if (this._pending.has(key)) this._reconcile(key, true);
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
