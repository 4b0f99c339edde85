//! The bounded store: sharded hash tables over dense slot vectors.
//!
//! Each shard keeps its entries in a dense `Vec` (removal is a swap-remove that re-points the moved
//! entry's index bucket) and a [`SlotIndex`] of positions into it (hash tag and position in one
//! word, so a lookup costs one miss in the index, then the slot). The dense vector makes the
//! live key set indexable, so uniform sampling of k keys is O(k) ([`crate::sampler`]), and it is the
//! candidate pool of the eviction policy ([`crate::eviction`]: sampled LFU with aging and ghost
//! history, expired entries taken first).
//!
//! Values removed from a shard (evicted, expired, replaced) are dropped only after its lock is
//! released: dropping a host object may run host code, and no lock is held across host code.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::SeededRng;
use compact_str::CompactString;
use rand::{Rng, SeedableRng};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::eviction::{self, Aging, Budget, Freq, Ghost};
use crate::index::SlotIndex;
use crate::stats::{ShardStats, StoreStats};
use crate::sync::{read, write, RwLock};

/// `expires_at` of an entry that never expires.
pub(crate) const NEVER: u64 = u64::MAX;
const SWEEP_PROBES: usize = 2;

/// Why an entry left the cache, as told to an eviction listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Made room for another entry (count or weight bound).
    Evicted,
    /// Its TTL passed.
    Expired,
    /// Overwritten by a write to the same key.
    Replaced,
    /// Removed by `remove`, `clear` or a versioned removal.
    Explicit,
}

// Field order is fixed so that what a read touches (key, expiry, value, counter) comes first.
#[repr(C)]
pub(crate) struct Slot<V> {
    /// Keys of up to 24 bytes are stored inline: a lookup compares them without another
    /// dependent cache miss, and sampling copies them from the slot itself.
    pub key: CompactString,
    /// Fresh until then: reads after it are misses (or stale, within the grace window).
    pub expires_at: u64,
    pub value: V,
    freq: Freq,
    /// Physically removed after then (`expires_at` plus the grace window).
    pub grace_until: u64,
    pub version: u64,
    hash: u64,
    /// How long the load that wrote this value took (XFetch's delta); 0 for plain writes.
    pub load_nanos: u64,
    /// When the value was written (for refresh-ahead).
    pub written_at: u64,
    weight: u64,
}

impl<V> Slot<V> {
    /// Fresh: within its TTL.
    #[inline]
    pub fn live(&self, now: u64) -> bool {
        self.expires_at > now
    }

    /// Past its grace window too: to be removed.
    #[inline]
    fn gone(&self, now: u64) -> bool {
        self.grace_until <= now
    }

    #[inline]
    fn touch(&self) {
        self.freq.touch();
    }
}

pub(crate) struct ShardInner<V> {
    table: SlotIndex,
    pub slots: Vec<Slot<V>>,
    weight: u64,
    max_entries: usize,
    /// The whole store's byte budget, shared by every shard.
    budget: Arc<Budget>,
    rng: SeededRng,
    aging: Aging,
    /// Entries with an expiry: the write-path sweep runs only when some exist.
    expiring: usize,
    /// The write-path sweep's hand: the next slot it looks at.
    sweep_at: usize,
    /// No entry is gone before this time: a lower bound of every entry's `grace_until`, so the
    /// sweep costs nothing while nothing can have expired. Tightened each time the hand wraps.
    next_gone: u64,
    /// The least `grace_until` of the entries the hand passed in its current round, and of those
    /// written or moved behind it meanwhile: the next `next_gone`.
    round_min: u64,
    /// How often absent and evicted keys were asked for ([`Ghost`]).
    ghost: Ghost,
}

#[repr(align(128))]
pub(crate) struct Shard<V> {
    pub inner: RwLock<ShardInner<V>>,
    stats: ShardStats,
}

/// Hints the CPU to fetch `t`'s cache line (a no-op off x86_64).
#[inline(always)]
pub(crate) fn prefetch<T>(t: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults, and SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch(t as *const T as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = t;
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
    /// The stored entry's own version must be this, fresh or stale (0: no entry at all). A load's
    /// fence: only a write or a removal since the load began makes it lose, not mere expiry.
    Stored(u64),
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
}

impl<V: Clone> Store<V> {
    pub fn new(
        shards: usize,
        max_entries: u64,
        max_bytes: u64,
        max_key_len: usize,
        max_entry_bytes: u64,
        seed: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut seeder = SeededRng::seed_from_u64(seed);
        let budget = Arc::new(Budget::new(max_bytes));
        let n = shards as u64;
        let shards: Box<[Shard<V>]> = (0..n)
            .map(|i| {
                // Spread the bounds exactly: the shards' capacities sum to max_entries.
                let cap = max_entries / n + u64::from(i < max_entries % n);
                Shard {
                    inner: RwLock::new(ShardInner {
                        table: SlotIndex::new(),
                        slots: Vec::new(),
                        weight: 0,
                        max_entries: cap as usize,
                        budget: budget.clone(),
                        rng: SeededRng::seed_from_u64(seeder.random()),
                        aging: Aging::default(),
                        expiring: 0,
                        sweep_at: 0,
                        next_gone: NEVER,
                        round_min: NEVER,
                        ghost: Ghost::new(cap),
                    }),
                    stats: ShardStats::default(),
                }
            })
            .collect();
        Store {
            mask: shards.len() - 1,
            shards,
            hasher: foldhash::fast::FixedState::with_seed(seed),
            system: clock.as_system(),
            clock,
            next_version: AtomicU64::new(1),
            expiry_seen: AtomicBool::new(false),
            max_key_len,
            max_entry_bytes,
        }
    }

    #[inline]
    fn locate(&self, key: &str) -> (u64, &Shard<V>) {
        let hash = self.hasher.hash_one(key);
        (hash, &self.shards[(hash >> 48) as usize & self.mask])
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
        self.remove_where(key, removed, RemovalCause::Expired, |s| s.version == version);
    }

    /// `f` of the fresh entry of `key`, counting a hit or a miss and bumping the entry's access
    /// counter. An entry past its grace window is reported, not removed, so the hit path carries
    /// no list of removed values (and its caller no drop of one): returning `Gone` and removing
    /// in a cold call made a uniform get hit on 1,000,000 keys 4-6% faster than passing a
    /// `Removed` list in (paired runs of both builds in one process, 2026-11-30).
    #[inline]
    pub fn get_with<T>(&self, key: &str, f: impl FnOnce(&Slot<V>) -> T) -> Read<T> {
        self.read_slot(key, Read::Miss, |stats, t, slot| {
            if self.fresh(slot, t) {
                slot.touch();
                stats.hits.fetch_add(1, Relaxed);
                return Read::Hit(f(slot));
            }
            stats.misses.fetch_add(1, Relaxed);
            if !slot.gone(self.at(t)) {
                return Read::Miss;
            }
            Read::Gone(slot.version)
        })
    }

    /// The start of every counted read: takes the read time, read-locks the shard of `key` and
    /// finds its slot, then answers `found(stats, time, slot)` under the lock; when the key is
    /// absent, counts the miss, remembers it in the ghost sketch and answers `absent`.
    #[inline(always)]
    fn read_slot<R>(&self, key: &str, absent: R, found: impl FnOnce(&ShardStats, ReadTime, &Slot<V>) -> R) -> R {
        let (hash, shard) = self.locate(key);
        let t = self.read_time();
        let g = read(&shard.inner);
        let Some(i) = g.table.find(hash, |i| &*g.slots[i as usize].key == key) else {
            shard.stats.misses.fetch_add(1, Relaxed);
            g.ghost.bump(hash);
            return absent;
        };
        found(&shard.stats, t, &g.slots[i as usize])
    }

    /// The fresh value's `f(slot)`, counted as a hit; on anything else `None`, counting nothing
    /// (the caller's slower path counts it).
    #[inline]
    pub fn try_hit<T>(&self, key: &str, f: impl FnOnce(&Slot<V>) -> Option<T>) -> Option<T> {
        let (hash, shard) = self.locate(key);
        let t = self.read_time();
        let g = read(&shard.inner);
        let i = g.table.find(hash, |i| &*g.slots[i as usize].key == key)?;
        let slot = &g.slots[i as usize];
        if !self.fresh(slot, t) {
            return None;
        }
        let t = f(slot)?;
        slot.touch();
        shard.stats.hits.fetch_add(1, Relaxed);
        Some(t)
    }

    /// A read for loads: fresh entries count as hits; stale ones (within grace) are returned too.
    pub fn lookup(&self, key: &str, removed: &mut Removed<V>) -> Lookup<V> {
        // Err: past its grace window at this version, removed below (after the read lock)
        let read = self.read_slot(key, Ok(Lookup::Absent), |stats, t, slot| {
            let now = self.at(t);
            let raw = || Raw {
                value: slot.value.clone(),
                expires_at: slot.expires_at,
                load_nanos: slot.load_nanos,
                written_at: slot.written_at,
            };
            let fresh = slot.live(now);
            if fresh || !slot.gone(now) {
                slot.touch();
                let counts = if fresh { &stats.hits } else { &stats.misses };
                counts.fetch_add(1, Relaxed);
                return Ok(if fresh { Lookup::Fresh(raw()) } else { Lookup::Stale(raw()) });
            }
            stats.misses.fetch_add(1, Relaxed);
            Err(slot.version)
        });
        read.unwrap_or_else(|version| {
            self.remove_gone(key, version, removed);
            Lookup::Absent
        })
    }

    /// Counts `n` hits answered outside the store (see `Cache::record_hits`).
    pub fn count_hits(&self, n: u64) {
        if n != 0 {
            self.shards[0].stats.hits.fetch_add(n, Relaxed);
        }
    }

    /// Counts `times` reads of `key` on its access counter if it is fresh (at most 255: the
    /// counter saturates below that), without counting hits.
    pub fn touch_key(&self, key: &str, times: u64) {
        let (hash, shard) = self.locate(key);
        let t = self.read_time();
        let g = read(&shard.inner);
        if let Some(i) = g.table.find(hash, |i| &*g.slots[i as usize].key == key) {
            let slot = &g.slots[i as usize];
            if self.fresh(slot, t) {
                for _ in 0..times.min(255) {
                    slot.touch();
                }
            }
        }
    }

    /// Like `get` but without touching counters or access frequency.
    pub fn peek_with<T>(&self, key: &str, f: impl FnOnce(&Slot<V>, u64) -> T) -> Option<T> {
        let (hash, shard) = self.locate(key);
        let g = read(&shard.inner);
        let i = g.table.find(hash, |i| &*g.slots[i as usize].key == key)?;
        let now = self.now();
        let slot = &g.slots[i as usize];
        slot.live(now).then(|| f(slot, now))
    }

    /// The stored entry's version, fresh or stale, 0 if there is none (a load's fence).
    pub fn stored_version(&self, key: &str) -> u64 {
        let (hash, shard) = self.locate(key);
        let g = read(&shard.inner);
        g.table.find(hash, |i| &*g.slots[i as usize].key == key).map_or(0, |i| g.slots[i as usize].version)
    }

    /// The version of the live entry, 0 if there is none.
    pub fn version(&self, key: &str) -> u64 {
        self.peek_with(key, |s, _| s.version).unwrap_or(0)
    }

    /// Writes `value` if the live version of `key` equals `expected` (0: absent), or always when
    /// `expected` is `None`. Returns the new version.
    pub fn write(
        &self,
        key: &str,
        value: V,
        weight: u64,
        meta: Meta,
        expected: Option<Expect>,
        removed: &mut Removed<V>,
    ) -> Result<u64> {
        let Meta { expires_at, grace_until, load_nanos } = meta;
        self.check_key(key)?;
        let weight = weight.saturating_add(key.len() as u64);
        self.check_weight(weight)?;
        if grace_until != NEVER && !self.expiry_seen.load(Relaxed) {
            self.expiry_seen.store(true, Relaxed);
        }
        let (hash, shard) = self.locate(key);
        let mut g = write(&shard.inner);
        let now = self.now();
        let inner = &mut *g;
        if let Some(i) = inner.table.find(hash, |i| &*inner.slots[i as usize].key == key) {
            let slot = &mut inner.slots[i as usize];
            let current = if slot.live(now) { slot.version } else { 0 };
            match expected {
                Some(Expect::Live(exp)) if exp != current => {
                    return Err(Error::VersionMismatch { expected: exp, current });
                }
                Some(Expect::Stored(exp)) if exp != slot.version => {
                    return Err(Error::VersionMismatch { expected: exp, current: slot.version });
                }
                _ => {}
            }
            let version = self.next_version.fetch_add(1, Relaxed);
            let cause = if current == 0 { RemovalCause::Expired } else { RemovalCause::Replaced };
            let old = std::mem::replace(&mut slot.value, value);
            removed.push((slot.key.clone(), old, cause));
            inner.weight = inner.weight - slot.weight + weight;
            inner.budget.sub(slot.weight);
            inner.budget.add(weight);
            slot.weight = weight;
            inner.expiring =
                inner.expiring + usize::from(grace_until != NEVER) - usize::from(slot.grace_until != NEVER);
            slot.expires_at = expires_at;
            slot.grace_until = grace_until;
            // (`note_expiry`, by field: `slot` borrows `inner.slots`)
            inner.next_gone = inner.next_gone.min(grace_until);
            inner.round_min = inner.round_min.min(grace_until);
            slot.load_nanos = load_nanos;
            slot.written_at = now;
            slot.version = version;
            if cause == RemovalCause::Expired {
                slot.freq.reset();
                shard.stats.expirations.fetch_add(1, Relaxed);
                shard.stats.inserts.fetch_add(1, Relaxed);
            } else {
                shard.stats.updates.fetch_add(1, Relaxed);
            }
            // A heavier value may push the store over its byte budget.
            if inner.budget.over(0) {
                let keep = i as usize;
                inner.make_room(0, now, Some(keep), &shard.stats, removed);
            }
            let over = inner.budget.over(0);
            drop(g);
            if over {
                self.shed(shard, now, removed);
            }
            return Ok(version);
        }
        if let Some(Expect::Live(exp) | Expect::Stored(exp)) = expected {
            if exp != 0 {
                return Err(Error::VersionMismatch { expected: exp, current: 0 });
            }
        }
        // Below capacity, probe for expired entries; at capacity eviction takes expired ones first.
        if inner.slots.len() < inner.max_entries {
            inner.sweep(now, &shard.stats, removed);
        }
        inner.make_room(weight, now, None, &shard.stats, removed);
        let version = self.next_version.fetch_add(1, Relaxed);
        let idx = inner.slots.len() as u32;
        inner.slots.push(Slot {
            key: CompactString::from(key),
            hash,
            value,
            expires_at,
            grace_until,
            version,
            load_nanos,
            written_at: now,
            weight,
            freq: Freq::new(inner.ghost.estimate(hash)),
        });
        inner.weight += weight;
        inner.budget.add(weight);
        inner.expiring += usize::from(grace_until != NEVER);
        inner.note_expiry(grace_until);
        inner.table.insert(hash, idx);
        shard.stats.inserts.fetch_add(1, Relaxed);
        inner.aging.insert(inner.max_entries, inner.slots.iter().map(|s| &s.freq), &inner.ghost);
        let over = inner.budget.over(0);
        drop(g);
        if over {
            self.shed(shard, now, removed);
        }
        Ok(version)
    }

    /// Evicts from the shards other than `own` (whose writer already evicted all it could there)
    /// until the store is within its byte budget ([`Budget`]). One shard lock at a time, never
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
            if !g.budget.over(0) {
                return;
            }
            g.shed_bytes(now, &shard.stats, removed);
        }
    }

    /// Removes `key` if `pred` holds for its entry; returns whether it was live.
    pub fn remove_where(
        &self,
        key: &str,
        removed: &mut Removed<V>,
        cause: RemovalCause,
        pred: impl FnOnce(&Slot<V>) -> bool,
    ) -> Option<bool> {
        let (hash, shard) = self.locate(key);
        let mut g = write(&shard.inner);
        let now = self.now();
        let i = g.table.find(hash, |i| &*g.slots[i as usize].key == key)?;
        if !pred(&g.slots[i as usize]) {
            return None;
        }
        let slot = g.remove_at(i as usize);
        let live = slot.live(now);
        let cause = if live { cause } else { RemovalCause::Expired };
        if cause == RemovalCause::Expired {
            shard.stats.expirations.fetch_add(1, Relaxed);
        }
        removed.push((slot.key, slot.value, cause));
        Some(live)
    }

    pub fn clear(&self, removed: &mut Removed<V>) {
        for shard in self.shards.iter() {
            let mut g = write(&shard.inner);
            g.table.clear();
            let w = g.weight;
            g.budget.sub(w);
            g.weight = 0;
            g.expiring = 0;
            g.sweep_at = 0;
            g.next_gone = NEVER;
            g.round_min = NEVER;
            removed.extend(g.slots.drain(..).map(|s| (s.key, s.value, RemovalCause::Explicit)));
        }
    }

    /// Removes every expired entry; returns how many.
    pub fn purge_expired(&self, removed: &mut Removed<V>) -> usize {
        let mut n = 0;
        for shard in self.shards.iter() {
            let mut g = write(&shard.inner);
            let now = self.now();
            let mut i = 0;
            while i < g.slots.len() {
                if !g.slots[i].gone(now) {
                    i += 1;
                } else {
                    let s = g.remove_at(i);
                    removed.push((s.key, s.value, RemovalCause::Expired));
                    shard.stats.expirations.fetch_add(1, Relaxed);
                    n += 1;
                }
            }
        }
        n
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(&s.inner).slots.len()).sum()
    }

    pub fn stats(&self) -> StoreStats {
        let mut t = StoreStats::default();
        for s in self.shards.iter() {
            t.hits += s.stats.hits.load(Relaxed);
            t.misses += s.stats.misses.load(Relaxed);
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

impl<V> ShardInner<V> {
    fn remove_at(&mut self, idx: usize) -> Slot<V> {
        let hash = self.slots[idx].hash;
        let indexed = self.table.remove(hash, idx as u32);
        debug_assert!(indexed, "slot {idx} has no index entry");
        let last = self.slots.len() - 1;
        if idx != last {
            let moved = self.slots[last].hash;
            if idx < self.sweep_at {
                // moved behind the sweep's hand: it counts for this round without being passed
                self.round_min = self.round_min.min(self.slots[last].grace_until);
            }
            self.table.relocate(moved, last as u32, idx as u32);
        }
        let s = self.slots.swap_remove(idx);
        self.weight -= s.weight;
        self.budget.sub(s.weight);
        self.expiring -= usize::from(s.grace_until != NEVER);
        s
    }

    /// A write stored an entry gone at `grace_until`.
    #[inline]
    fn note_expiry(&mut self, grace_until: u64) {
        self.next_gone = self.next_gone.min(grace_until);
        self.round_min = self.round_min.min(grace_until);
    }

    /// Looks at the next few entries under a rotating hand and drops the expired ones, so expired
    /// entries do not linger until they are read or sampled for eviction (Redis' active expiry, on
    /// the write path). A hand rather than random probes: it reaches every entry within
    /// `len / SWEEP_PROBES` writes, and it keeps the least expiry it saw in a round, so while no
    /// entry can be gone (`now < next_gone`) the sweep reads no slot at all (a probe of a large
    /// shard is a cache miss: a quarter of an insert's time).
    fn sweep(&mut self, now: u64, stats: &ShardStats, removed: &mut Removed<V>) {
        for _ in 0..SWEEP_PROBES {
            if self.expiring == 0 || now < self.next_gone {
                return;
            }
            let mut i = self.sweep_at;
            if i >= self.slots.len() {
                // a round is over: every entry was passed, written or moved behind the hand
                self.next_gone = self.round_min;
                self.round_min = NEVER;
                self.sweep_at = 0;
                if now < self.next_gone || self.slots.is_empty() {
                    return;
                }
                i = 0;
            }
            if self.slots[i].gone(now) {
                // the last entry moves into slot `i`: the hand looks at it next
                let s = self.remove_at(i);
                stats.expirations.fetch_add(1, Relaxed);
                removed.push((s.key, s.value, RemovalCause::Expired));
            } else {
                self.round_min = self.round_min.min(self.slots[i].grace_until);
                self.sweep_at = i + 1;
            }
        }
    }

    fn make_room(&mut self, weight: u64, now: u64, keep: Option<usize>, stats: &ShardStats, removed: &mut Removed<V>) {
        let mut keep = keep;
        while !self.slots.is_empty()
            && (keep.is_none() && self.slots.len() >= self.max_entries || self.budget.over(weight))
        {
            if keep.is_some() && self.slots.len() == 1 {
                break;
            }
            keep = self.evict_one(now, keep, stats, removed);
        }
    }

    /// Evicts from this shard while the store is over its byte budget (the count bound is this
    /// shard's own business and is not applied here).
    fn shed_bytes(&mut self, now: u64, stats: &ShardStats, removed: &mut Removed<V>) {
        while !self.slots.is_empty() && self.budget.over(0) {
            self.evict_one(now, None, stats, removed);
        }
    }

    /// One round of sampled eviction, never of `keep`; returns where `keep` is afterwards (the
    /// last slot moves into the victim's place). A round whose samples were all `keep` evicts
    /// nothing.
    fn evict_one(
        &mut self,
        now: u64,
        keep: Option<usize>,
        stats: &ShardStats,
        removed: &mut Removed<V>,
    ) -> Option<usize> {
        let n = self.slots.len();
        // Draw and prefetch every candidate first, so their cache misses overlap.
        let (cand, m) = eviction::candidates(&mut self.rng, n);
        for &c in &cand[..m] {
            prefetch(&self.slots[c]);
        }
        let slots = &self.slots;
        let Some(victim) = eviction::victim(&cand[..m], keep, |i| (slots[i].live(now), slots[i].freq.get())) else {
            return keep;
        };
        let last = n - 1;
        let s = self.remove_at(victim);
        let cause = if s.live(now) { RemovalCause::Evicted } else { RemovalCause::Expired };
        if cause == RemovalCause::Evicted {
            self.ghost.remember(s.hash, s.freq.get());
        }
        match cause {
            RemovalCause::Expired => stats.expirations.fetch_add(1, Relaxed),
            _ => stats.evictions.fetch_add(1, Relaxed),
        };
        removed.push((s.key, s.value, cause));
        // the kept entry may have been the last slot, moved into the victim's place
        if keep == Some(last) {
            Some(victim)
        } else {
            keep
        }
    }
}

#[cfg(test)]
mod tests {
    //! The write-path sweep's bound: `next_gone` never passes an entry that may be gone, whatever
    //! writes, removals, reads of expired entries and evictions move slots around the hand.

    use super::*;
    use crate::clock::ManualClock;
    use proptest::prelude::*;
    use std::time::Duration;

    #[derive(Debug, Clone)]
    enum Op {
        Write(u8, Option<u16>),
        Remove(u8),
        Get(u8),
        Advance(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u8..40, proptest::option::of(1u16..400)).prop_map(|(k, t)| Op::Write(k, t)),
            1 => (0u8..40).prop_map(Op::Remove),
            2 => (0u8..40).prop_map(Op::Get),
            2 => (0u16..200).prop_map(Op::Advance),
        ]
    }

    const MS: u64 = 1_000_000;

    fn write(s: &Store<u32>, clock: &ManualClock, key: &str, ttl_ms: Option<u16>) {
        let at = ttl_ms.map_or(NEVER, |t| clock.now_nanos() + t as u64 * MS);
        let meta = Meta { expires_at: at, grace_until: at, load_nanos: 0 };
        s.write(key, 0, 0, meta, None, &mut Vec::new()).unwrap();
    }

    /// `next_gone` bounds every entry's removal time, and `round_min` every entry behind the hand.
    fn check_bounds(s: &Store<u32>) -> std::result::Result<(), TestCaseError> {
        let g = read(&s.shards[0].inner);
        let all = g.slots.iter().map(|s| s.grace_until).min().unwrap_or(NEVER);
        let behind = g.slots.iter().take(g.sweep_at).map(|s| s.grace_until).min().unwrap_or(NEVER);
        prop_assert!(g.next_gone <= all, "next_gone {} passes an entry gone at {}", g.next_gone, all);
        prop_assert!(g.round_min <= behind, "round_min {} passes an entry behind the hand at {}", g.round_min, behind);
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
        let s: Store<u32> = Store::new(4, 100, u64::MAX, 64, u64::MAX, 7, clock.clone());
        let forever = Meta { expires_at: NEVER, grace_until: NEVER, load_nanos: 0 };
        s.write("a", 1, 0, forever, None, &mut Vec::new()).unwrap();
        let reads = |s: &Store<u32>, key: &str| {
            let before = clock.0.load(Relaxed);
            assert!(s.get(key, &mut Vec::new()).is_some());
            clock.0.load(Relaxed) - before
        };
        // no entry expires: a hit reads no clock
        assert_eq!(reads(&s, "a"), 0);
        // once one does, every read takes the time once, before its lookup
        let soon = Meta { expires_at: 10, grace_until: 10, load_nanos: 0 };
        s.write("b", 2, 0, soon, None, &mut Vec::new()).unwrap();
        assert_eq!(reads(&s, "a"), 1);
        assert_eq!(reads(&s, "b"), 1);
    }

    /// Every read path bumps the access counter of the entry it found (a get, a flight's hit, a
    /// load's lookup), a peek does not, and an entry moved by a swap-remove keeps its counter.
    #[test]
    fn reads_bump_their_entrys_counter() {
        let clock = Arc::new(ManualClock::new());
        let s: Store<u32> = Store::new(1, 100, u64::MAX, 64, u64::MAX, 7, clock.clone());
        for k in ["a", "b", "c"] {
            write(&s, &clock, k, None);
        }
        let counter = |key: &str| {
            let g = read(&s.shards[0].inner);
            let i = g.table.find(s.hasher.hash_one(key), |i| &*g.slots[i as usize].key == key).unwrap();
            (i, g.slots[i as usize].freq.get())
        };
        let base = [counter("a").1, counter("b").1, counter("c").1];
        for _ in 0..3 {
            assert!(s.get("c", &mut Vec::new()).is_some());
        }
        assert_eq!(s.try_hit("c", |_| Some(())), Some(()));
        assert!(matches!(s.lookup("c", &mut Vec::new()), Lookup::Fresh(_)));
        assert!(s.get("b", &mut Vec::new()).is_some());
        assert_eq!(counter("c"), (2, base[2] + 5));
        assert_eq!(counter("b"), (1, base[1] + 1));
        // removing "a" moves "c", the last slot, into position 0 with its counter
        s.remove_where("a", &mut Vec::new(), RemovalCause::Explicit, |_| true);
        assert_eq!(counter("c"), (0, base[2] + 5));
        // a stale read (past the TTL, within grace) counts too; a peek does not
        let at = clock.now_nanos() + 10 * MS;
        s.write("d", 4, 0, Meta { expires_at: at, grace_until: at + 100 * MS, load_nanos: 0 }, None, &mut Vec::new())
            .unwrap();
        let d = counter("d").1;
        clock.advance(Duration::from_millis(20));
        assert!(matches!(s.lookup("d", &mut Vec::new()), Lookup::Stale(_)));
        assert_eq!(counter("d").1, d + 1);
        s.peek_with("c", |_, _| ());
        assert_eq!(counter("c").1, base[2] + 5);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn sweep_bound_holds(ops in proptest::collection::vec(op(), 1..300), cap in 8u64..48) {
            let clock = ManualClock::new();
            // one shard, small enough that writes also evict
            let s: Store<u32> = Store::new(1, cap, u64::MAX, 64, u64::MAX, 7, Arc::new(clock.clone()));
            for op in ops {
                match op {
                    Op::Write(k, t) => write(&s, &clock, &format!("k{k}"), t),
                    Op::Remove(k) => {
                        s.remove_where(&format!("k{k}"), &mut Vec::new(), RemovalCause::Explicit, |_| true);
                    }
                    Op::Get(k) => {
                        s.get(&format!("k{k}"), &mut Vec::new());
                    }
                    Op::Advance(ms) => clock.advance(Duration::from_millis(ms as u64)),
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
                s.remove_where("probe", &mut Vec::new(), RemovalCause::Explicit, |_| true);
            }
            let g = read(&s.shards[0].inner);
            prop_assert!(g.slots.iter().all(|s| s.grace_until == NEVER), "an expired entry outlived {} writes", before);
        }
    }
}
