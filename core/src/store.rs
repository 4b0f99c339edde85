//! The bounded store: sharded hash tables over dense slot vectors.
//!
//! Each shard keeps its entries in a dense `Vec` (removal is a swap-remove that re-points the moved
//! entry's index bucket) and a [`SlotIndex`] of positions into it (hash tag and position in one
//! word, so a lookup costs one miss in the index, then the slot). The dense vector makes the
//! live key set indexable, so uniform sampling of k keys is O(k) ([`crate::sampler`]), and it is the
//! position space of the eviction policy's queues ([`crate::eviction`]: S3-FIFO, expired entries
//! taken first).
//!
//! Values removed from a shard (evicted, expired, replaced) are dropped only after its lock is
//! released: dropping a host object may run host code, and no lock is held across host code.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use compact_str::CompactString;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::eviction::Budget;
use crate::stats::{ReadCounts, StoreStats};
use crate::sync::{read, write};

mod loads;
mod shard;
pub(crate) use shard::{prefetch, Entry, Shard, Slot, Weigh};
use shard::{ShardSetup, Written};

/// `expires_at` of an entry that never expires.
pub(crate) const NEVER: u64 = u64::MAX;

/// Entries a new store makes room for up front (its slot vectors and indexes, spread over the
/// shards), at most `max_entries`: filling it then never grows or rehashes a table, as
/// quick_cache and lru-cache allocate for their capacity. Above it the tables grow as entries
/// arrive. On native targets the reservation is address space: the allocator hands out untouched
/// pages, and memory is taken as entries fill them. A WebAssembly module's memory is committed
/// when it grows, so there it is small.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const RESERVED_ENTRIES: u64 = 1 << 21;
/// Entries a new store makes room for up front (see the native value): 128 on wasm32.
#[cfg(target_arch = "wasm32")]
pub(crate) const RESERVED_ENTRIES: u64 = 1 << 7;

/// Why an entry left the cache, as told to an eviction listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Made room for another entry (count or weight bound).
    Evicted,
    /// Its TTL passed, or it was made stale (`invalidate_tag`), whatever found it so: a sweep, a
    /// read, or a write or removal of its key. A write or a background refresh over an entry
    /// already past its TTL reports this, not `Replaced`; a removal of one reports this and
    /// answers `None` (it held no fresh value), where moka says `Replaced` and `Explicit`.
    Expired,
    /// Overwritten, while fresh, by a write to the same key.
    Replaced,
    /// Removed by `remove`, `clear` or a versioned removal.
    Explicit,
}

/// When a written entry stops being fresh and when it is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub expires_at: u64,
    pub grace_until: u64,
    pub load_nanos: u64,
}

/// The condition of a versioned write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The live version must be this (0: absent or expired). Public compare-and-set.
    Live(u64),
    /// A load's store: only a write or an explicit removal of its key since the load began makes
    /// it lose, not expiry or eviction (see [`Store::begin_load`]).
    Load(LoadFence),
}

/// What a load's store is checked against: the flight whose mark a removal of its key sets, and
/// the version of the entry stored when it began (0: none). An entry stored now under another
/// version was written since; no entry at all was removed since (the mark tells) or expired or
/// evicted (no write, so the load stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoadFence {
    pub id: u64,
    pub version: u64,
}

/// Which loads of its key a removal makes lose their store (see [`Store::begin_load`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Supersede {
    /// None: expiry, like eviction, is no write.
    No,
    /// Those under way when it removes an entry (a compare-and-delete).
    IfRemoved,
    /// Those under way, whether there was an entry or not (a delete, an invalidation): a load
    /// may have read what the delete invalidates before the key was ever stored.
    Always,
}

/// What a plain read found (see [`Store::get_with`]).
pub(crate) enum Read<T> {
    /// Fresh: `f(slot)`, counted as a hit.
    Hit(T),
    /// Absent, or past its TTL within its grace window: counted as a miss.
    Miss,
    /// Past its grace window too, at this version: counted as a miss. The caller removes it with
    /// [`Store::remove_gone`] (after the read lock is released).
    Gone(u64),
}

/// The time of one read (see [`Store::read_time`]).
#[derive(Clone, Copy)]
struct ReadTime(Option<u64>);

/// An entry read with its metadata, by [`Store::lookup`].
#[derive(Debug, Clone)]
pub(crate) struct Raw<V> {
    pub value: V,
    pub expires_at: u64,
    pub load_nanos: u64,
    pub written_at: u64,
}

pub(crate) enum Lookup<V> {
    Fresh(Raw<V>),
    /// Past its TTL, within its grace window.
    Stale(Raw<V>),
    Absent,
}

/// Values taken out of a shard under its lock, dropped (or handed to the listener) after it.
pub(crate) type Removed<V> = Vec<(CompactString, V, RemovalCause)>;

/// What a write may store in place of its value when it replaces a live entry: see [`Store::put`].
pub(crate) type Adopt<'a, V> = &'a mut dyn FnMut(&V) -> Option<V>;

pub(crate) struct Store<V> {
    pub shards: Box<[Shard<V>]>,
    mask: usize,
    /// Seeded from the cache's seed: reproducible when the host fixes it, random otherwise.
    hasher: foldhash::fast::FixedState,
    pub clock: Arc<dyn Clock>,
    /// `clock` itself when it is the system clock, called without the trait object.
    system: Option<SystemClock>,
    next_version: AtomicU64,
    /// Set by the first write of an entry that expires: from then on reads take the time first.
    expiry_seen: AtomicBool,
    max_key_len: usize,
    max_entry_bytes: u64,
    /// The value's weight (the key's length is added to it).
    weigh: Weigh<V>,
}

/// Room a shard of `share` entries makes up front: a full store holds what its keys bring to
/// each shard, binomially spread around the share (standard deviation at most `sqrt(share)`), so
/// five deviations more make growing a table past it a rare event.
fn headroom(share: u64) -> u64 {
    share + 5 * (share as f64).sqrt() as u64 + 8
}

/// What a store is made with.
pub(crate) struct StoreConfig<V> {
    pub shards: usize,
    pub max_entries: u64,
    pub max_bytes: u64,
    pub max_key_len: usize,
    pub max_entry_bytes: u64,
    pub seed: u64,
    /// Weighs a value (the store adds its key's length). Called on every write and again when
    /// the entry leaves: the weight is not kept, so it must be the same each time.
    pub weigh: Weigh<V>,
    /// Every entry keeps its write time (refresh-ahead and a shared tier read it); else only
    /// shards whose entries have a grace window or a load's duration keep cold fields.
    pub keep_written: bool,
}

impl<V: Clone> Store<V> {
    pub fn new(config: StoreConfig<V>, clock: Arc<dyn Clock>) -> Self {
        let StoreConfig { shards, max_entries, max_bytes, max_key_len, max_entry_bytes, seed, weigh, keep_written } =
            config;
        let hasher = foldhash::fast::FixedState::with_seed(seed);
        let budget = Arc::new(Budget::new(max_bytes));
        let entries = Arc::new(Budget::new(max_entries));
        let n = shards as u64;
        let reserve = RESERVED_ENTRIES / n;
        let shards: Box<[Shard<V>]> = (0..n)
            .map(|i| {
                // each shard's share of the bound; the bound itself is the store's
                let cap = max_entries / n + u64::from(i < max_entries % n);
                let setup = ShardSetup { hasher: hasher.clone(), weigh: weigh.clone(), keep_cold: keep_written };
                Shard::new(cap, headroom(cap).min(reserve) as usize, entries.clone(), budget.clone(), setup)
            })
            .collect();
        Store {
            mask: shards.len() - 1,
            shards,
            hasher,
            system: clock.as_system(),
            clock,
            next_version: AtomicU64::new(1),
            expiry_seen: AtomicBool::new(false),
            max_key_len,
            max_entry_bytes,
            weigh,
        }
    }

    /// The next write's version. The last one an entry can hold is 2^62 - 1 (its access counter
    /// has the top bits): a century of writes at a billion a second. A write past it panics
    /// before it changes anything rather than give a version that an older one would equal.
    #[inline]
    fn new_version(&self) -> u64 {
        let version = self.next_version.fetch_add(1, Relaxed);
        assert!(version <= crate::eviction::VERSION_BITS, "a cache's writes exhausted its 2^62 - 1 versions");
        version
    }

    /// The weight of `value` (without its key).
    pub fn weigh(&self, value: &V) -> u64 {
        (self.weigh)(value)
    }

    #[inline]
    fn locate(&self, key: &str) -> (u64, &Shard<V>) {
        let hash = self.hasher.hash_one(key);
        (hash, &self.shards[(hash >> 48) as usize & self.mask])
    }

    /// The index of `key`'s shard.
    #[cfg(test)]
    pub fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) >> 48) as usize & self.mask
    }

    /// The clock at full resolution, for timing durations ([`Clock::precise_nanos`]).
    pub fn precise_now(&self) -> u64 {
        self.clock.precise_nanos()
    }

    #[inline]
    pub fn now(&self) -> u64 {
        match &self.system {
            Some(c) => c.now_nanos(),
            None => self.clock.now_nanos(),
        }
    }

    /// Whether a read takes the time before its lookup rather than after finding an entry that
    /// expires. Before: the clock call (a vDSO call on Linux) runs while the lookup's cache misses
    /// are still to come; after them, its instructions delay the next lookup's misses instead of
    /// overlapping them (a get hit with TTLs on 1M keys, uniform: 330-350 ns one way, 240-280
    /// the other, in alternating runs of a scratch probe). A store whose entries never expire
    /// reads no clock at all. The flag only moves the clock read: a read that does not see it
    /// yet still reads the clock when it finds an entry that expires.
    ///
    /// Reads hash the key first, then take the time, then the lock. Taking the time before
    /// hashing gave a Zipf get hit 0.87-0.94x quick_cache's time, against 0.82-0.87x this way
    /// (eleven alternating runs each of `cargo bench -p healcache --bench interleaved`,
    /// 2026-11-30); the uniform hit moved within the noise (1.05-1.08x against 1.02-1.08x).
    #[inline]
    fn clock_early(&self) -> bool {
        self.expiry_seen.load(Relaxed)
    }

    /// The time of one read: taken now, before its lookup, if entries expire (`clock_early`);
    /// else left for [`Store::at`] to take if the entry found expires.
    #[inline]
    fn read_time(&self) -> ReadTime {
        ReadTime(if self.clock_early() { Some(self.now()) } else { None })
    }

    /// Whether `slot` is fresh at the read time `t`. An entry that never expires needs no clock
    /// (`t` may not hold the time yet).
    #[inline]
    fn fresh(&self, slot: &Slot<V>, t: ReadTime) -> bool {
        slot.expires_at == NEVER || slot.live(self.at(t))
    }

    #[inline]
    fn at(&self, t: ReadTime) -> u64 {
        match t.0 {
            Some(now) => now,
            None => self.now(),
        }
    }

    pub fn check_key(&self, key: &str) -> Result<()> {
        if key.len() > self.max_key_len {
            return Err(Error::KeyTooLong { len: key.len(), max: self.max_key_len });
        }
        Ok(())
    }

    pub fn check_weight(&self, weight: u64) -> Result<()> {
        if weight > self.max_entry_bytes {
            return Err(Error::ValueTooLarge { weight, max: self.max_entry_bytes });
        }
        Ok(())
    }

    /// The live value of `key`, counting a hit or a miss and bumping its access counter.
    #[cfg(test)]
    pub fn get(&self, key: &str, removed: &mut Removed<V>) -> Option<V> {
        match self.get_with(key, |s| s.value.clone()) {
            Read::Hit(v) => Some(v),
            Read::Miss => None,
            Read::Gone(version) => {
                self.remove_gone(key, version, removed);
                None
            }
        }
    }

    /// Removes, as expired, the entry a read found past its grace window at `version`
    /// ([`Read::Gone`], or `lookup`'s), unless a write replaced it since.
    #[cold]
    #[inline(never)]
    pub fn remove_gone(&self, key: &str, version: u64, removed: &mut Removed<V>) {
        self.remove_where(key, removed, RemovalCause::Expired, Supersede::No, &mut |s| s.version() == version);
    }

    /// `f` of the fresh entry of `key`, counting a hit or a miss and bumping the entry's access
    /// counter. An entry past its grace window is reported, not removed, so the hit path carries
    /// no list of removed values (and its caller no drop of one): returning `Gone` and removing
    /// in a cold call made a uniform get hit on 1,000,000 keys 4-6% faster than passing a
    /// `Removed` list in (paired runs of both builds in one process, 2026-11-30).
    #[inline]
    pub fn get_with<T>(&self, key: &str, f: impl FnOnce(&Slot<V>) -> T) -> Read<T> {
        self.read_slot(key, Read::Miss, |reads, t, slot| {
            if self.fresh(&slot, t) {
                slot.touch();
                reads.hits.fetch_add(1, Relaxed);
                return Read::Hit(f(&slot));
            }
            reads.misses.fetch_add(1, Relaxed);
            if !slot.gone(self.at(t)) {
                return Read::Miss;
            }
            Read::Gone(slot.version())
        })
    }

    /// The start of every counted read: takes the read time, read-locks the shard of `key` and
    /// finds its slot, then answers `found(reads, time, slot)` under the lock; when the key is
    /// absent, counts the miss and answers `absent`. Counts go to the read counters of the lock
    /// stripe held.
    #[inline(always)]
    fn read_slot<R>(&self, key: &str, absent: R, found: impl FnOnce(&ReadCounts, ReadTime, Entry<'_, V>) -> R) -> R {
        let (hash, shard) = self.locate(key);
        let t = self.read_time();
        let g = read(&shard.inner);
        let Some(i) = g.find(hash, key) else {
            g.local().misses.fetch_add(1, Relaxed);
            return absent;
        };
        found(g.local(), t, g.entry(i as usize))
    }

    /// The fresh value's `f(slot)`, counted as a hit; on anything else `None`, counting nothing
    /// (the caller's slower path counts it).
    #[inline]
    pub fn try_hit<T>(&self, key: &str, f: impl FnOnce(&Slot<V>) -> Option<T>) -> Option<T> {
        let (hash, shard) = self.locate(key);
        let t = self.read_time();
        let g = read(&shard.inner);
        let i = g.find(hash, key)?;
        let slot = &g.slots[i as usize];
        if !self.fresh(slot, t) {
            return None;
        }
        let t = f(slot)?;
        slot.touch();
        g.local().hits.fetch_add(1, Relaxed);
        Some(t)
    }

    /// A read for loads: fresh entries count as hits; stale ones (within grace) are returned too.
    pub fn lookup(&self, key: &str, removed: &mut Removed<V>) -> Lookup<V> {
        // Err: past its grace window at this version, removed below (after the read lock)
        let read = self.read_slot(key, Ok(Lookup::Absent), |reads, t, slot| {
            let now = self.at(t);
            let raw = || Raw {
                value: slot.value.clone(),
                expires_at: slot.expires_at,
                load_nanos: slot.load_nanos(),
                written_at: slot.written_at(),
            };
            let fresh = slot.live(now);
            if fresh || !slot.gone(now) {
                slot.touch();
                let counts = if fresh { &reads.hits } else { &reads.misses };
                counts.fetch_add(1, Relaxed);
                return Ok(if fresh { Lookup::Fresh(raw()) } else { Lookup::Stale(raw()) });
            }
            reads.misses.fetch_add(1, Relaxed);
            Err(slot.version())
        });
        read.unwrap_or_else(|version| {
            self.remove_gone(key, version, removed);
            Lookup::Absent
        })
    }

    /// Counts `n` hits answered outside the store whose keys are unknown (see
    /// `Cache::record_hits`).
    pub fn count_hits(&self, n: u64) {
        self.shards[0].inner.local_here().hits.fetch_add(n, Relaxed);
    }

    /// Counts `times` hits answered outside the store on `key`'s shard (whose eviction policy
    /// steers by that shard's hit ratio), and as many reads on the key's access counter if it is
    /// fresh (at most [`MAX_FREQ`](crate::eviction::MAX_FREQ): the counter saturates there).
    pub fn hit_key(&self, key: &str, times: u64) {
        let (hash, shard) = self.locate(key);
        let t = self.read_time();
        let g = read(&shard.inner);
        g.local().hits.fetch_add(times, Relaxed);
        if let Some(i) = g.find(hash, key) {
            let slot = &g.slots[i as usize];
            if self.fresh(slot, t) {
                for _ in 0..times.min(crate::eviction::MAX_FREQ.into()) {
                    slot.touch();
                }
            }
        }
    }

    /// Like `get` but without touching counters or access frequency.
    pub fn peek_with<T>(&self, key: &str, f: impl FnOnce(&Entry<'_, V>, u64) -> T) -> Option<T> {
        let mut f = Some(f);
        let mut out = None;
        self.peek_entry(key, false, &mut |entry, now| out = f.take().map(|f| f(entry, now)));
        out
    }

    /// Like `peek_with`, but a stale entry within its grace window answers too.
    pub fn peek_stored<T>(&self, key: &str, f: impl FnOnce(&Entry<'_, V>) -> T) -> Option<T> {
        let mut f = Some(f);
        let mut out = None;
        self.peek_entry(key, true, &mut |entry, _| out = f.take().map(|f| f(entry)));
        out
    }

    /// Calls `f` with `key`'s fresh entry (or a stale one within its grace window, if `stale`)
    /// and the time, counting nothing. The callers' closures come through `dyn`: each peek's
    /// own copy of this body cost the WebAssembly module more than the indirect call costs.
    fn peek_entry(&self, key: &str, stale: bool, f: &mut dyn FnMut(&Entry<'_, V>, u64)) {
        let (hash, shard) = self.locate(key);
        let g = read(&shard.inner);
        let Some(i) = g.find(hash, key) else { return };
        let now = self.now();
        let entry = g.entry(i as usize);
        if entry.live(now) || stale && !entry.gone(now) {
            f(&entry, now);
        }
    }

    /// Makes `key`'s fresh entry stale now (kept within its grace window as a fallback; without
    /// one it is gone; one that never expired is kept `grace` nanoseconds); true if it was fresh.
    pub fn make_stale(&self, key: &str, grace: u64) -> bool {
        let (hash, shard) = self.locate(key);
        let mut g = write(&shard.inner);
        let now = self.now();
        let Some(i) = g.find(hash, key) else { return false };
        if !g.slots[i as usize].live(now) {
            return false;
        }
        g.make_stale(i as usize, now, grace);
        true
    }

    /// The stored entry's version, fresh or stale, 0 if there is none.
    pub fn stored_version(&self, key: &str) -> u64 {
        let (hash, shard) = self.locate(key);
        let g = read(&shard.inner);
        g.find(hash, key).map_or(0, |i| g.slots[i as usize].version())
    }

    /// A load of `key` begins, as flight `id`: its fence. The version it records and the mark a
    /// removal of `key` sets are taken under one lock, so every removal is either before the
    /// load began (the fence sees what it left) or marks it. An absent key is no proof that
    /// nothing happened: a set then a delete leave it absent again, and so does a delete of a
    /// key the load may have read before the delete's change. Until [`Store::end_load`].
    pub fn begin_load(&self, key: &Arc<str>, id: u64) -> LoadFence {
        let (hash, shard) = self.locate(key);
        let mut g = write(&shard.inner);
        g.loads.begin(id, hash, key);
        let version = g.find(hash, key).map_or(0, |i| g.slots[i as usize].version());
        LoadFence { id, version }
    }

    /// The load of `fence` reads its value again, from now on: a fence of this moment (what was
    /// removed before the new read cannot be in what it reads).
    pub fn refence(&self, key: &str, fence: LoadFence) -> LoadFence {
        let (hash, shard) = self.locate(key);
        let mut g = write(&shard.inner);
        g.loads.refence(hash, fence.id);
        let version = g.find(hash, key).map_or(0, |i| g.slots[i as usize].version());
        LoadFence { id: fence.id, version }
    }

    /// The load of flight `id` ended (or was dropped): its mark goes.
    pub fn end_load(&self, key: &str, id: u64) {
        let (hash, shard) = self.locate(key);
        write(&shard.inner).loads.end(hash, id);
    }

    /// The version of the live entry, 0 if there is none.
    pub fn version(&self, key: &str) -> u64 {
        self.peek_with(key, |s, _| s.version()).unwrap_or(0)
    }

    /// Writes `value` if the live version of `key` equals `expected` (0: absent), or always when
    /// `expected` is `None`. Returns the new version; entries evicted to make room go to
    /// `removed`, and the value the write replaced, if any, to the list as well.
    #[cfg(test)]
    pub fn write(
        &self,
        key: &str,
        value: V,
        meta: Meta,
        expected: Option<Expect>,
        removed: &mut Removed<V>,
    ) -> Result<u64> {
        let (version, replaced) = self.put(key, value, meta, expected, None, removed)?;
        if let Some((old, cause)) = replaced {
            // first, as the store reported it before the entries its write evicted
            removed.insert(0, (CompactString::from(key), old, cause));
        }
        Ok(version)
    }

    /// [`Store::write`], handing back the value the write replaced, if any, and why it left
    /// (replaced while live, or expired) rather than in `removed`: an overwrite then makes no
    /// list, copies no key and allocates nothing for it. On overwrites of 1,000,000 live keys the
    /// list's work after the write made each take about 300 ns more (792-828 ns against 496-508),
    /// far beyond its own instructions: it seems to keep the next write's cache misses from
    /// overlapping this one's.
    ///
    /// `adopt`, when the write replaces a live entry, may answer the value to store in place of
    /// `value`, made from the one it replaces under the same lock (so no write comes between the
    /// look and the write); it answers a value of `value`'s weight, or `None` to store `value`.
    pub fn put(
        &self,
        key: &str,
        value: V,
        meta: Meta,
        expected: Option<Expect>,
        adopt: Option<Adopt<'_, V>>,
        removed: &mut Removed<V>,
    ) -> Result<(u64, Option<(V, RemovalCause)>)> {
        self.check_key(key)?;
        let weight = self.weigh(&value).saturating_add(key.len() as u64);
        self.check_weight(weight)?;
        if meta.grace_until != NEVER && !self.expiry_seen.load(Relaxed) {
            self.expiry_seen.store(true, Relaxed);
        }
        let (hash, shard) = self.locate(key);
        let mut g = write(&shard.inner);
        g.prefetch_write(hash);
        let now = self.now();
        let (version, replaced) = if let Some(i) = g.find(hash, key) {
            let slot = &g.slots[i as usize];
            let current = if slot.live(now) { slot.version() } else { 0 };
            match expected {
                Some(Expect::Live(exp)) if exp != current => {
                    return Err(Error::VersionMismatch { expected: exp, current });
                }
                Some(Expect::Load(f)) if f.version != slot.version() || g.loads.superseded(hash, f.id) => {
                    return Err(Error::VersionMismatch { expected: f.version, current: slot.version() });
                }
                _ => {}
            }
            let value = match adopt {
                Some(adopt) if slot.live(now) => adopt(&slot.value).unwrap_or(value),
                _ => value,
            };
            debug_assert_eq!(
                self.weigh(&value).saturating_add(key.len() as u64),
                weight,
                "an adopted value weighs as the one given"
            );
            let version = self.new_version();
            let old = g.replace(i as usize, value, Written { weight, meta, now, version }, &shard.stats, removed);
            (version, Some(old))
        } else {
            match expected {
                Some(Expect::Live(exp)) if exp != 0 => {
                    return Err(Error::VersionMismatch { expected: exp, current: 0 });
                }
                // an entry the load saw and that expired or was evicted since is no newer write
                Some(Expect::Load(f)) if g.loads.superseded(hash, f.id) => {
                    return Err(Error::VersionMismatch { expected: f.version, current: 0 });
                }
                _ => {}
            }
            // taken before room is made, so a write past the last version evicts nothing
            let version = self.new_version();
            g.admit(weight, now, &shard.stats, || shard.reads(), removed);
            g.push(key, hash, value, Written { weight, meta, now, version }, &shard.stats);
            (version, None)
        };
        // a write since a load began makes it lose, whatever becomes of the entry after (an
        // eviction leaves no version to compare); a load's own store spares only itself
        if !g.loads.is_empty() {
            let own = match expected {
                Some(Expect::Load(f)) => Some(f.id),
                _ => None,
            };
            g.loads.supersede(hash, key, own);
        }
        let over = g.over();
        drop(g);
        if over {
            self.shed(shard, now, removed);
        }
        Ok((version, replaced))
    }

    /// Renews `key`'s entry if its stored version (fresh or stale) is `expected`: a new expiry
    /// from `meta` and a new version, the same value, nothing removed or reported. Returns the
    /// new version; `None` when the entry changed or is gone.
    pub fn renew(&self, key: &str, expected: u64, meta: Meta) -> Option<u64> {
        if meta.grace_until != NEVER && !self.expiry_seen.load(Relaxed) {
            self.expiry_seen.store(true, Relaxed);
        }
        let (hash, shard) = self.locate(key);
        let mut g = write(&shard.inner);
        let i = g.find(hash, key)? as usize;
        let now = self.now();
        if g.slots[i].version() != expected || g.entry(i).gone(now) {
            return None;
        }
        let version = self.new_version();
        g.renew(i, meta, now, version);
        Some(version)
    }

    /// Evicts from the shards other than `own` (whose writer already evicted all it could there)
    /// until the store is within its count bound and its byte budget ([`Budget`]). One shard lock at a time, never
    /// two, so writers shedding at once cannot deadlock; the first shard rotates with the version
    /// counter, so no shard always pays first.
    #[cold]
    fn shed(&self, own: &Shard<V>, now: u64, removed: &mut Removed<V>) {
        let n = self.shards.len();
        let start = self.next_version.load(Relaxed) as usize;
        for j in 0..n {
            let shard = &self.shards[(start + j) & self.mask];
            if std::ptr::eq(shard, own) {
                continue;
            }
            let mut g = write(&shard.inner);
            if !g.over() {
                return;
            }
            g.shed(now, &shard.stats, removed);
        }
    }

    /// Removes `key` if `pred` holds for its entry; returns whether it was live. The loads of
    /// `key` under way lose their store as `supersede` says. (`pred` comes through `dyn`, as the
    /// peeks' closures do: see [`Store::peek_entry`].)
    pub fn remove_where(
        &self,
        key: &str,
        removed: &mut Removed<V>,
        cause: RemovalCause,
        supersede: Supersede,
        pred: &mut dyn FnMut(&Slot<V>) -> bool,
    ) -> Option<bool> {
        let (hash, shard) = self.locate(key);
        let mut g = write(&shard.inner);
        if supersede == Supersede::Always {
            g.loads.supersede(hash, key, None);
        }
        let now = self.now();
        let i = g.find(hash, key)?;
        if !pred(&g.slots[i as usize]) {
            return None;
        }
        if supersede == Supersede::IfRemoved {
            g.loads.supersede(hash, key, None);
        }
        let (slot, _) = g.remove_at(i as usize);
        let live = slot.live(now);
        let cause = if live { cause } else { RemovalCause::Expired };
        if cause == RemovalCause::Expired {
            shard::count(&shard.stats.expirations);
        }
        removed.push((slot.key, slot.value, cause));
        Some(live)
    }

    /// Removes every entry; every load under way loses its store.
    pub fn clear(&self, removed: &mut Removed<V>) {
        for shard in self.shards.iter() {
            write(&shard.inner).clear(removed);
        }
    }

    /// Removes every expired entry; returns how many.
    pub fn purge_expired(&self, removed: &mut Removed<V>) -> usize {
        let mut n = 0;
        for shard in self.shards.iter() {
            let mut g = write(&shard.inner);
            let now = self.now();
            n += g.purge_expired(now, &shard.stats, removed);
        }
        n
    }

    /// Calls `f` with every stored value (expired ones included), holding one shard's read
    /// lock at a time; stops at `f`'s first error.
    pub fn for_each_value<E>(&self, mut f: impl FnMut(&V) -> Result<(), E>) -> Result<(), E> {
        self.shards.iter().try_for_each(|shard| read(&shard.inner).slots.iter().try_for_each(|s| f(&s.value)))
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(&s.inner).slots.len()).sum()
    }

    /// Bytes the slot vectors hold room for (most of a store's memory once it fills).
    pub fn reserved_bytes(&self) -> u64 {
        let slot = std::mem::size_of::<shard::Slot<V>>() as u64;
        self.shards.iter().map(|s| read(&s.inner).slots.capacity() as u64 * slot).sum()
    }

    pub fn stats(&self) -> StoreStats {
        let mut t = StoreStats::default();
        for s in self.shards.iter() {
            let (hits, misses) = s.reads();
            t.hits += hits;
            t.misses += misses;
            t.inserts += s.stats.inserts.load(Relaxed);
            t.updates += s.stats.updates.load(Relaxed);
            t.evictions += s.stats.evictions.load(Relaxed);
            t.expirations += s.stats.expirations.load(Relaxed);
            let g = read(&s.inner);
            t.entries += g.slots.len() as u64;
            t.weight += g.weight;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    //! The write-path sweep's bound: `next_gone` never passes an entry that may be gone, whatever
    //! writes, removals, reads of expired entries, entries made stale and evictions move slots
    //! around the hand.

    use super::*;
    use crate::clock::ManualClock;
    use proptest::prelude::*;
    use std::time::Duration;

    /// Memory per entry (`--bench memory`): a slot is its key (inline), its value, and two words
    /// of metadata (the expiry; the version with the access counter). The cold fields, where a
    /// shard keeps them, are three words more.
    #[test]
    fn a_slot_holds_its_metadata_in_two_words() {
        assert_eq!(std::mem::size_of::<shard::Slot<Vec<u8>>>(), 24 + 24 + 2 * 8);
        assert_eq!(std::mem::size_of::<shard::Slot<u64>>(), 24 + 8 + 2 * 8);
        assert_eq!(std::mem::size_of::<shard::Cold>(), 3 * 8);
    }

    /// Several loads of one key under way: the store of one makes the others lose and keeps its
    /// own, also once its entry is evicted (no write); a load of another key keeps its store.
    #[test]
    fn a_load_store_makes_the_other_loads_of_its_key_lose() {
        let s = new_store(1, 1, u64::MAX, 64, u64::MAX, 7, Arc::new(ManualClock::new()));
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        let key: Arc<str> = Arc::from("k");
        let fences: Vec<LoadFence> = (1..=5).map(|id| s.begin_load(&key, id)).collect();
        let other = s.begin_load(&Arc::from("j"), 6);
        let store = |k: &str, f: LoadFence| s.write(k, 1, forever, Some(Expect::Load(f)), &mut Vec::new());
        store("k", fences[2]).unwrap();
        s.write("x", 1, forever, None, &mut Vec::new()).unwrap();
        assert_eq!(s.version("k"), 0, "k was evicted");
        for (i, &f) in fences.iter().enumerate().filter(|&(i, _)| i != 2) {
            assert!(store("k", f).is_err(), "load {i} lost to the store of another");
        }
        store("k", fences[2]).unwrap();
        store("j", other).unwrap();
        for id in 1..=5 {
            s.end_load("k", id);
        }
        assert!(store("k", fences[2]).is_err(), "a load that ended stores nothing");
    }

    /// `for_each_value` sees every stored value, expired ones too, and stops at the first error.
    #[test]
    fn for_each_value_sees_every_value() {
        let clock = Arc::new(ManualClock::new());
        let s = new_store(4, 1_000, u64::MAX, 64, u64::MAX, 7, clock.clone());
        let short = Meta { expires_at: MS, grace_until: MS, load_nanos: 0 };
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        for v in 1..=40u32 {
            s.write(&format!("k{v}"), v, if v % 2 == 0 { short } else { forever }, None, &mut Vec::new()).unwrap();
        }
        clock.advance(Duration::from_millis(5));
        let mut seen = Vec::new();
        s.for_each_value(|v| {
            seen.push(*v);
            Ok::<_, ()>(())
        })
        .unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
        let (mut failed, mut after) = (false, 0);
        let stop = s.for_each_value(|v| {
            after += usize::from(failed);
            failed |= *v == 7;
            if *v == 7 {
                Err(*v)
            } else {
                Ok(())
            }
        });
        assert_eq!((stop, after), (Err(7), 0), "no value after the error");
    }

    /// Versions go up to 2^62 - 1, where the access counter's bits begin; a write past that
    /// panics before it changes anything.
    #[test]
    fn versions_end_where_the_counter_bits_begin() {
        let s = new_store(1, 100, u64::MAX, 64, u64::MAX, 7, Arc::new(ManualClock::new()));
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        let last = crate::eviction::VERSION_BITS;
        s.next_version.store(last, Relaxed);
        assert_eq!(s.write("a", 1, forever, None, &mut Vec::new()).unwrap(), last);
        assert_eq!(s.version("a"), last);
        s.get("a", &mut Vec::new());
        assert_eq!(s.version("a"), last, "a read's count stays out of the version");
        let past = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.write("a", 2, forever, None, &mut Vec::new()).unwrap();
        }));
        assert!(past.is_err());
        assert_eq!((s.get("a", &mut Vec::new()), s.version("a")), (Some(1), last));
        // an insert into a full store panics before it makes room: nothing is evicted
        let full = new_store(1, 1, u64::MAX, 64, u64::MAX, 7, Arc::new(ManualClock::new()));
        full.write("a", 1, forever, None, &mut Vec::new()).unwrap();
        full.next_version.store(last + 1, Relaxed);
        let mut removed = Vec::new();
        let past = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            full.write("b", 2, forever, None, &mut removed).unwrap();
        }));
        assert!(past.is_err());
        assert!(removed.is_empty(), "nothing was evicted");
        assert_eq!((full.get("a", &mut Vec::new()), full.get("b", &mut Vec::new())), (Some(1), None));
    }

    /// Plain writes keep no cold column. The first write with a grace window makes it, and the
    /// entries written before keep what its absence meant: gone at their expiry, written by no
    /// load. A store that keeps write times keeps them from its first write.
    #[test]
    fn the_cold_column_is_made_by_the_first_write_that_needs_it() {
        let clock = Arc::new(ManualClock::new());
        let s = new_store(1, 100, u64::MAX, 64, u64::MAX, 7, clock.clone());
        let at = clock.now_nanos() + 10 * MS;
        let plain = Meta { expires_at: at, grace_until: at, load_nanos: 0 };
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        s.write("a", 1, plain, None, &mut Vec::new()).unwrap();
        s.write("b", 2, forever, None, &mut Vec::new()).unwrap();
        assert!(!read(&s.shards[0].inner).has_cold());
        let graced = Meta { expires_at: at, grace_until: at + 100 * MS, load_nanos: 5 };
        s.write("c", 3, graced, None, &mut Vec::new()).unwrap();
        {
            let g = read(&s.shards[0].inner);
            assert!(g.has_cold());
            let grace = |key: &str| g.grace_until(g.find(s.hasher.hash_one(key), key).unwrap() as usize);
            assert_eq!((grace("a"), grace("b"), grace("c")), (at, NEVER, at + 100 * MS));
        }
        let load = |key: &str| match s.lookup(key, &mut Vec::new()) {
            Lookup::Fresh(r) | Lookup::Stale(r) => Some(r.load_nanos),
            Lookup::Absent => None,
        };
        assert_eq!((load("a"), load("b"), load("c")), (Some(0), Some(0), Some(5)));
        // past the expiry: "a" is gone, "c" is stale within its grace window
        clock.advance(Duration::from_millis(20));
        assert_eq!((load("a"), load("c")), (None, Some(5)));
        assert!(matches!(s.lookup("c", &mut Vec::new()), Lookup::Stale(_)));

        let weigh: Weigh<u32> = Arc::new(|v: &u32| u64::from(*v));
        let config = StoreConfig {
            shards: 1,
            max_entries: 100,
            max_bytes: u64::MAX,
            max_key_len: 64,
            max_entry_bytes: u64::MAX,
            seed: 7,
            weigh,
            keep_written: true,
        };
        let s = Store::new(config, clock.clone());
        clock.advance(Duration::from_millis(5));
        let now = clock.now_nanos();
        s.write("a", 1, forever, None, &mut Vec::new()).unwrap();
        assert!(read(&s.shards[0].inner).has_cold());
        assert!(matches!(s.lookup("a", &mut Vec::new()), Lookup::Fresh(Raw { written_at, .. }) if written_at == now));
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A key, its TTL, a grace window after it.
        Write(u8, Option<u16>, Option<u16>),
        Remove(u8),
        Get(u8),
        Advance(u16),
        /// A key, the grace window it gets if it never expired.
        MakeStale(u8, u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u8..40, proptest::option::of(1u16..400), proptest::option::weighted(0.05, 1u16..100))
                .prop_map(|(k, t, g)| Op::Write(k, t, g)),
            1 => (0u8..40).prop_map(Op::Remove),
            2 => (0u8..40).prop_map(Op::Get),
            2 => (0u16..200).prop_map(Op::Advance),
            1 => (0u8..40, prop_oneof![Just(0u16), 1u16..100]).prop_map(|(k, g)| Op::MakeStale(k, g)),
        ]
    }

    const MS: u64 = 1_000_000;

    /// A store whose values weigh what they hold, keeping no write times.
    fn new_store(
        shards: usize,
        max_entries: u64,
        max_bytes: u64,
        max_key_len: usize,
        max_entry_bytes: u64,
        seed: u64,
        clock: Arc<dyn Clock>,
    ) -> Store<u32> {
        let weigh: Weigh<u32> = Arc::new(|v: &u32| u64::from(*v));
        let config = StoreConfig {
            shards,
            max_entries,
            max_bytes,
            max_key_len,
            max_entry_bytes,
            seed,
            weigh,
            keep_written: false,
        };
        Store::new(config, clock)
    }

    fn write(s: &Store<u32>, clock: &ManualClock, key: &str, ttl_ms: Option<u16>) {
        write_graced(s, clock, key, ttl_ms, None, 0);
    }

    /// Writes `value` (which weighs itself) for `ttl_ms` and `grace_ms` after it; an entry with a
    /// grace window has a load's duration too.
    fn write_graced(
        s: &Store<u32>,
        clock: &ManualClock,
        key: &str,
        ttl_ms: Option<u16>,
        grace_ms: Option<u16>,
        value: u32,
    ) {
        let at = ttl_ms.map_or(NEVER, |t| clock.now_nanos() + t as u64 * MS);
        let grace_until = grace_ms.filter(|_| at != NEVER).map_or(at, |g| at + g as u64 * MS);
        let meta = Meta { expires_at: at, grace_until, load_nanos: u64::from(grace_until != at) };
        s.write(key, value, meta, None, &mut Vec::new()).unwrap();
    }

    /// `next_gone` bounds every entry's removal time, and `round_min` every entry behind the hand.
    fn check_bounds(s: &Store<u32>) -> std::result::Result<(), TestCaseError> {
        let g = read(&s.shards[0].inner);
        let grace: Vec<u64> = (0..g.slots.len()).map(|i| g.grace_until(i)).collect();
        let all = grace.iter().copied().min().unwrap_or(NEVER);
        let behind = grace.iter().take(g.sweep_at).copied().min().unwrap_or(NEVER);
        prop_assert!(g.next_gone <= all, "next_gone {} passes an entry gone at {}", g.next_gone, all);
        prop_assert!(g.round_min <= behind, "round_min {} passes an entry behind the hand at {}", g.round_min, behind);
        let expiring = grace.iter().filter(|&&g| g != NEVER).count();
        prop_assert_eq!(g.expiring(), expiring, "the count of entries with an expiry");
        // weights are weighed again on removal, not kept: the total is still every entry's sum
        let weight: u64 = g.slots.iter().map(|slot| g.weight_of(slot)).sum();
        prop_assert_eq!(g.weight, weight, "the shard's weight");
        Ok(())
    }

    /// A clock that counts its reads.
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicU64);

    impl Clock for Counting {
        fn now_nanos(&self) -> u64 {
            self.0.fetch_add(1, Relaxed);
            1
        }
    }

    #[test]
    fn reads_take_the_time_only_when_entries_expire() {
        let clock = Arc::new(Counting::default());
        let s: Store<u32> = new_store(4, 100, u64::MAX, 64, u64::MAX, 7, clock.clone());
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        s.write("a", 1, forever, None, &mut Vec::new()).unwrap();
        let reads = |s: &Store<u32>, key: &str| {
            let before = clock.0.load(Relaxed);
            assert!(s.get(key, &mut Vec::new()).is_some());
            clock.0.load(Relaxed) - before
        };
        // no entry expires: a hit reads no clock
        assert_eq!(reads(&s, "a"), 0);
        // once one does, every read takes the time once, before its lookup
        let soon = Meta { expires_at: 10, grace_until: 10, load_nanos: 0 };
        s.write("b", 2, soon, None, &mut Vec::new()).unwrap();
        assert_eq!(reads(&s, "a"), 1);
        assert_eq!(reads(&s, "b"), 1);
    }

    /// An entry that never expired, made stale with no grace window, is gone: the write-path
    /// sweep removes it as it removes an entry whose TTL passed, and the removal keeps the
    /// shard's count of expiring entries whole (it underflowed).
    #[test]
    fn an_entry_made_stale_is_swept_like_an_expired_one() {
        let s: Store<u32> = new_store(1, 100, u64::MAX, 64, u64::MAX, 7, Arc::new(Counting::default()));
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        s.write("a", 1, forever, None, &mut Vec::new()).unwrap();
        assert!(s.make_stale("a", 0));
        let mut removed = Vec::new();
        s.write("b", 2, forever, None, &mut removed).unwrap();
        assert_eq!(removed.len(), 1, "the sweep took the gone entry");
        assert_eq!((removed[0].0.as_str(), removed[0].2), ("a", RemovalCause::Expired));
        assert_eq!((s.stats().expirations, s.len()), (1, 1));
        // the count of expiring entries is back to zero, not below: the sweep stops looking
        assert_eq!(read(&s.shards[0].inner).expiring(), 0);
    }

    /// An entry that never expired, made stale with a grace window, is kept for that window
    /// from now: stale within it (the shard makes its cold column for it, as none had one),
    /// then gone and swept, with the count of expiring entries whole. Entries with an expiry
    /// keep their own window, whatever the one given.
    #[test]
    fn an_entry_without_expiry_made_stale_is_kept_for_the_grace_given() {
        let clock = Arc::new(ManualClock::new());
        let s = new_store(1, 100, u64::MAX, 64, u64::MAX, 7, clock.clone());
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        s.write("a", 1, forever, None, &mut Vec::new()).unwrap();
        let at = clock.now_nanos() + 10 * MS;
        s.write("b", 2, Meta { expires_at: at, grace_until: at, load_nanos: 0 }, None, &mut Vec::new()).unwrap();
        assert!(!read(&s.shards[0].inner).has_cold());
        assert!(s.make_stale("a", 50 * MS) && s.make_stale("b", 50 * MS));
        assert!(!s.make_stale("a", 50 * MS), "stale already");
        assert_eq!(read(&s.shards[0].inner).expiring(), 2);
        assert!(matches!(s.lookup("a", &mut Vec::new()), Lookup::Stale(_)));
        assert!(matches!(s.lookup("b", &mut Vec::new()), Lookup::Absent), "no window of its own: gone");
        clock.advance(Duration::from_millis(49));
        assert!(matches!(s.lookup("a", &mut Vec::new()), Lookup::Stale(_)));
        clock.advance(Duration::from_millis(1));
        assert!(matches!(s.lookup("a", &mut Vec::new()), Lookup::Absent));
        let mut removed = Vec::new();
        s.write("c", 3, forever, None, &mut removed).unwrap();
        assert!(s.peek_stored("a", |_| ()).is_none());
        assert_eq!(read(&s.shards[0].inner).expiring(), 0, "{} removed", removed.len());
    }

    /// Reads from many threads count on the stripes of the shard locks they hold; the store's
    /// counters sum every hit and miss of every path exactly once (gets, lookups, hits answered
    /// outside the store), and the climber sees the same sums.
    #[test]
    fn reads_from_many_threads_are_each_counted_once() {
        // enough for threads sharing a stripe to race on its counters
        const READS: usize = 100_000;
        let s: Arc<Store<u32>> = Arc::new(new_store(4, 1000, u64::MAX, 64, u64::MAX, 7, Arc::new(Counting::default())));
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        for i in 0..100 {
            s.write(&format!("k{i}"), i, forever, None, &mut Vec::new()).unwrap();
        }
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for n in 0..READS {
                        let key = format!("k{}", (n * 7 + t) % 150); // a third absent
                        if n % 2 == 0 {
                            s.get(&key, &mut Vec::new());
                        } else {
                            s.lookup(&key, &mut Vec::new());
                        }
                    }
                    s.hit_key("k1", 3);
                    s.count_hits(2);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let st = s.stats();
        // keys k0..k99 are present: of the reads of each thread, those with (n*7+t) % 150 < 100
        let hits: u64 = (0..6u64).map(|t| (0..READS as u64).filter(|n| (n * 7 + t) % 150 < 100).count() as u64).sum();
        assert_eq!(st.hits, hits + 6 * 5);
        assert_eq!(st.misses, 6 * READS as u64 - hits);
        let by_shard = s.shards.iter().map(|sh| sh.reads()).fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
        assert_eq!(by_shard, (st.hits, st.misses));
    }

    /// Every read path bumps the access counter of the entry it found (a get, a flight's hit, a
    /// load's lookup), a peek does not, and an entry moved by a swap-remove keeps its counter.
    #[test]
    fn reads_bump_their_entrys_counter() {
        let clock = Arc::new(ManualClock::new());
        let s: Store<u32> = new_store(1, 100, u64::MAX, 64, u64::MAX, 7, clock.clone());
        for k in ["a", "b", "c"] {
            write(&s, &clock, k, None);
        }
        let counter = |key: &str| {
            let g = read(&s.shards[0].inner);
            let i = g.table.find(s.hasher.hash_one(key), |i| &*g.slots[i as usize].key == key).unwrap();
            (i, g.slots[i as usize].stamp.freq())
        };
        let base = [counter("a").1, counter("b").1, counter("c").1];
        // one read by each path: up to MAX_FREQ, where counters saturate
        assert_eq!(base, [0; 3]);
        assert!(s.get("c", &mut Vec::new()).is_some());
        assert_eq!(s.try_hit("c", |_| Some(())), Some(()));
        assert!(matches!(s.lookup("c", &mut Vec::new()), Lookup::Fresh(_)));
        assert!(s.get("b", &mut Vec::new()).is_some());
        assert_eq!(counter("c"), (2, 3));
        assert!(s.get("c", &mut Vec::new()).is_some());
        assert_eq!(counter("c"), (2, crate::eviction::MAX_FREQ));
        assert_eq!(counter("b"), (1, base[1] + 1));
        // removing "a" moves "c", the last slot, into position 0 with its counter
        s.remove_where("a", &mut Vec::new(), RemovalCause::Explicit, Supersede::Always, &mut |_| true);
        assert_eq!(counter("c"), (0, 3));
        // a stale read (past the TTL, within grace) counts too; a peek does not
        let at = clock.now_nanos() + 10 * MS;
        s.write("d", 4, Meta { expires_at: at, grace_until: at + 100 * MS, load_nanos: 0 }, None, &mut Vec::new())
            .unwrap();
        let d = counter("d").1;
        clock.advance(Duration::from_millis(20));
        assert!(matches!(s.lookup("d", &mut Vec::new()), Lookup::Stale(_)));
        assert_eq!(counter("d").1, d + 1);
        s.peek_with("c", |_, _| ());
        assert_eq!(counter("c").1, 3);
    }

    /// A replace that takes an entry to the whole byte budget (the entry bound, key included)
    /// evicts every other entry, from every shard, and keeps itself; one byte more is refused and
    /// changes nothing.
    #[test]
    fn a_replace_up_to_the_whole_byte_budget_keeps_the_entry() {
        let clock = Arc::new(ManualClock::new());
        let s: Store<u32> = new_store(4, 1000, 1000, 64, 1000, 7, clock);
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        for i in 0..20 {
            s.write(&format!("k{i:02}"), 40, forever, None, &mut Vec::new()).unwrap();
        }
        assert_eq!((s.len(), s.stats().weight), (20, 20 * 43));
        let mut removed = Vec::new();
        let v = s.write("k00", 997, forever, None, &mut removed).unwrap();
        assert_eq!((s.len(), s.stats().weight, s.version("k00")), (1, 1000, v));
        assert_eq!(removed.iter().filter(|r| r.2 == RemovalCause::Evicted).count(), 19);
        assert!(removed.iter().any(|r| r.0 == "k00" && r.2 == RemovalCause::Replaced));
        let over = s.write("k00", 998, forever, None, &mut Vec::new());
        assert!(matches!(over, Err(Error::ValueTooLarge { weight: 1001, max: 1000 })));
        assert_eq!((s.len(), s.stats().weight, s.version("k00")), (1, 1000, v));
        assert_eq!(s.get("k00", &mut Vec::new()), Some(997));
    }

    /// Each shard's slot vector and index hold (its share of) `RESERVED_ENTRIES` before they grow.
    fn reserved(s: &Store<u32>) -> Vec<(usize, usize)> {
        s.shards.iter().map(|sh| read(&sh.inner)).map(|g| (g.slots.capacity(), g.table.capacity())).collect()
    }

    /// A store makes room up front for its capacity, up to `RESERVED_ENTRIES`, in its slot
    /// vectors (address space, touched only as slots fill): filling it to its capacity moves no
    /// slot vector; above the bound each shard reserves its share of the bound, and its vector
    /// grows past it. The key indexes start at their least and grow as keys arrive (their
    /// zeroed buckets would be touched up front).
    #[test]
    fn a_store_reserves_its_capacity_up_to_the_bound() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        let s: Store<u32> = new_store(4, 1000, u64::MAX, 64, u64::MAX, 7, clock.clone());
        assert!(reserved(&s).iter().all(|&(v, ix)| v >= 250 && ix < 8), "{:?}", reserved(&s));
        let at: Vec<_> = s.shards.iter().map(|sh| read(&sh.inner).slots.as_ptr() as usize).collect();
        let before = reserved(&s);
        for i in 0..1000 {
            s.write(&format!("k{i}"), i, forever, None, &mut Vec::new()).unwrap();
        }
        // the store holds all 1000, the shards as many as their keys brought; no slot vector
        // grew, and each index grew to hold its keys
        assert_eq!(s.len(), 1000);
        let after = reserved(&s);
        assert!(after.iter().zip(&before).all(|(a, b)| a.0 == b.0 && a.1 >= 200), "{after:?}");
        assert_eq!(s.shards.iter().map(|sh| read(&sh.inner).slots.as_ptr() as usize).collect::<Vec<_>>(), at);

        // at the bound: every shard reserves its whole capacity
        let share = (RESERVED_ENTRIES / 64) as usize;
        let s: Store<u32> = new_store(64, RESERVED_ENTRIES, u64::MAX, 64, u64::MAX, 7, clock.clone());
        assert!(reserved(&s).iter().all(|&(v, ix)| v >= share && ix < 8));
        // above it: the bound's share, not the capacity (the vectors grow past it)
        let s: Store<u32> = new_store(64, 1 << 30, u64::MAX, 64, u64::MAX, 7, clock.clone());
        let r = reserved(&s);
        assert!(r.iter().all(|&(v, ix)| v == share && ix < 8), "{:?}", &r[..2]);
        let s: Store<u32> = new_store(1, 1 << 30, u64::MAX, 64, u64::MAX, 7, clock);
        assert_eq!(reserved(&s)[0].0, RESERVED_ENTRIES as usize);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn sweep_bound_holds(ops in proptest::collection::vec(op(), 1..300), cap in 8u64..48) {
            let clock = ManualClock::new();
            // one shard, small enough that writes also evict
            let s: Store<u32> = new_store(1, cap, u64::MAX, 64, u64::MAX, 7, Arc::new(clock.clone()));
            for op in ops {
                match op {
                    Op::Write(k, t, grace) => write_graced(&s, &clock, &format!("k{k}"), t, grace, k.into()),
                    Op::Remove(k) => {
                        s.remove_where(&format!("k{k}"), &mut Vec::new(), RemovalCause::Explicit, Supersede::Always, &mut |_| true);
                    }
                    Op::Get(k) => {
                        s.get(&format!("k{k}"), &mut Vec::new());
                    }
                    Op::Advance(ms) => clock.advance(Duration::from_millis(ms as u64)),
                    Op::MakeStale(k, grace_ms) => {
                        s.make_stale(&format!("k{k}"), grace_ms as u64 * MS);
                    }
                }
                check_bounds(&s)?;
            }
            // once everything is expired, inserts sweep every old entry away within a round of
            // the hand (inserting and removing one key: the shard stays below capacity, where
            // inserts sweep rather than evict)
            clock.advance(Duration::from_millis(500));
            let before = s.len();
            for _ in 0..before + 2 {
                write(&s, &clock, "probe", None);
                s.remove_where("probe", &mut Vec::new(), RemovalCause::Explicit, Supersede::Always, &mut |_| true);
            }
            let g = read(&s.shards[0].inner);
            prop_assert!((0..g.slots.len()).all(|i| g.grace_until(i) == NEVER), "an expired entry outlived {} writes", before);
        }
    }
}
