//! One shard of the store: a dense vector of entries, the index of their positions, and the
//! shard's own eviction and expiry (S3-FIFO queues, the write-path sweep). The store routes keys to
//! shards and shares one byte budget between them; everything here runs under the shard's lock.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use compact_str::CompactString;
use foldhash::fast::FixedState;

use super::loads::Loads;
use super::{Meta, RemovalCause, Removed, NEVER};
use crate::eviction::{Budget, Queues, Stamp};
use crate::index::SlotIndex;
use crate::stats::{ReadCounts, ShardStats};
use crate::sync::Striped;

const SWEEP_PROBES: usize = 2;

/// The expiry heap is compacted when it holds this many elements more than twice the valid ones
/// it kept at its last compaction.
const DUES_SLACK: usize = 64;

/// A time and a position, as the expiry heap keeps them: 12 bytes, ordered by the time. Lazy: the
/// heap holds, for every entry with an expiry, an element of its position at a time no later than
/// its expiry, and may hold stale ones besides (of entries moved, removed or renewed since). So an
/// overwrite that pushes the expiry back changes nothing here; a move or an earlier expiry notes
/// the entry again, rather than looking for its old element.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(test, derive(Debug))]
struct Due {
    at_hi: u32,
    at_lo: u32,
    pos: u32,
}

impl Due {
    #[inline]
    fn new(at: u64, pos: usize) -> Self {
        Due { at_hi: (at >> 32) as u32, at_lo: at as u32, pos: pos as u32 }
    }

    #[inline]
    fn at(self) -> u64 {
        (u64::from(self.at_hi) << 32) | u64::from(self.at_lo)
    }
}

/// The expiry heap: a binary min-heap of [`Due`]s, least time on top. By hand rather than
/// `BinaryHeap<Reverse<Due>>`: the standard heap's pop (sift to the bottom, then up) and rebuild
/// (a range sift) add about 1 KB to the WebAssembly module, where one sift each way serves here.
#[derive(Default)]
struct Dues(Vec<Due>);

impl Dues {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    fn peek(&self) -> Option<Due> {
        self.0.first().copied()
    }

    fn push(&mut self, d: Due) {
        let h = &mut self.0;
        h.push(d);
        let mut i = h.len() - 1;
        while i > 0 {
            let up = (i - 1) / 2;
            if h[up] <= h[i] {
                break;
            }
            h.swap(up, i);
            i = up;
        }
    }

    fn pop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        self.0.swap_remove(0);
        self.sift_down(0);
    }

    /// Keeps, in place, what `keep` maps each element to (`None`: dropped), then restores the
    /// heap order bottom up (linear).
    fn rebuild(&mut self, mut keep: impl FnMut(Due) -> Option<Due>) {
        let mut n = 0;
        for i in 0..self.0.len() {
            if let Some(d) = keep(self.0[i]) {
                self.0[n] = d;
                n += 1;
            }
        }
        self.0.truncate(n);
        for i in (0..n / 2).rev() {
            self.sift_down(i);
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let h = &mut self.0;
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < h.len() && h[l] < h[least] {
                least = l;
            }
            if r < h.len() && h[r] < h[least] {
                least = r;
            }
            if least == i {
                return;
            }
            h.swap(i, least);
            i = least;
        }
    }
}

/// A slot holds what every entry needs and every read touches: 40 bytes besides the value. What
/// only some caches use (a grace window, a load's duration, the write time) lives in the shard's
/// [`Cold`] column, made only when a write first needs it, as Caffeine generates entry classes
/// with only the fields a configuration uses. Nor does a slot keep its weight or its key's hash:
/// removals compute them again (the weigher must give a value the same weight each time, as
/// quick_cache's weighter must). So an entry costs 16 bytes of metadata here, where it took 56.
// Field order is fixed: what a read touches comes first, the value last.
#[repr(C)]
pub(crate) struct Slot<V> {
    /// Keys of up to 24 bytes are stored inline: a lookup compares them without another
    /// dependent cache miss, and sampling copies them from the slot itself.
    pub key: CompactString,
    /// Fresh until then: reads after it are misses (or stale, within the grace window).
    pub expires_at: u64,
    /// The entry's version and its access counter.
    pub(super) stamp: Stamp,
    pub value: V,
}

impl<V> Slot<V> {
    /// Fresh: within its TTL.
    #[inline]
    pub fn live(&self, now: u64) -> bool {
        self.expires_at > now
    }

    #[inline]
    pub fn version(&self) -> u64 {
        self.stamp.version()
    }

    #[inline]
    pub(super) fn touch(&self) {
        self.stamp.touch();
    }
}

/// What an entry keeps beside its slot only once its shard needs it: the column is made by the
/// first write whose entry has a grace window or a load's duration, or by the first write at all
/// when the cache reads write times (refresh-ahead, a shared tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cold {
    /// Physically removed after then (`expires_at` plus the grace window).
    pub grace_until: u64,
    /// How long the load that wrote this value took (XFetch's delta); 0 for plain writes.
    pub load_nanos: u64,
    /// When the value was written (refresh-ahead, a shared tier's suspicion).
    pub written_at: u64,
}

impl Cold {
    /// What a shard without the column knows of an entry expiring at `expires_at`: removed then,
    /// written by no load, at no known time (0, before any other; only caches that keep the
    /// column from their first write read it).
    #[inline]
    fn plain(expires_at: u64) -> Self {
        Cold { grace_until: expires_at, load_nanos: 0, written_at: 0 }
    }
}

/// An entry as read under its shard's lock: its slot, and its cold fields if the shard keeps them.
pub(crate) struct Entry<'a, V> {
    slot: &'a Slot<V>,
    cold: Option<&'a Cold>,
}

impl<V> std::ops::Deref for Entry<'_, V> {
    type Target = Slot<V>;

    #[inline(always)]
    fn deref(&self) -> &Slot<V> {
        self.slot
    }
}

impl<V> Entry<'_, V> {
    /// Past its grace window too: to be removed (without cold fields, at its expiry).
    #[inline]
    pub fn gone(&self, now: u64) -> bool {
        self.cold.map_or(self.slot.expires_at, |c| c.grace_until) <= now
    }

    /// How long its load took (0 without cold fields: see [`Cold::plain`]).
    pub fn load_nanos(&self) -> u64 {
        self.cold.map_or(0, |c| c.load_nanos)
    }

    /// When it was written (0 without cold fields: see [`Cold::plain`]).
    pub fn written_at(&self) -> u64 {
        self.cold.map_or(0, |c| c.written_at)
    }
}

/// Gives an entry's weight (its value's; the shard adds the key's length).
pub(crate) type Weigh<V> = Arc<dyn Fn(&V) -> u64 + Send + Sync>;

pub(crate) struct ShardInner<V> {
    pub(super) table: SlotIndex,
    pub slots: Vec<Slot<V>>,
    /// The slots' cold fields, position for position: empty, or as long as `slots`.
    cold: Vec<Cold>,
    /// Every entry gets its cold fields, from the first write (the cache reads write times).
    keep_cold: bool,
    /// The store's hasher: removals hash the key again rather than keep its hash in the slot.
    hasher: FixedState,
    weigh: Weigh<V>,
    pub(super) weight: u64,
    /// The whole store's entry count and its bound, shared by every shard: a shard holds what
    /// its keys bring, so a store of N holds N however they hash.
    pub(super) entries: Arc<Budget>,
    /// The whole store's byte budget, shared by every shard.
    pub(super) budget: Arc<Budget>,
    /// Entries with an expiry: the write-path sweep runs only when some exist.
    expiring: usize,
    /// The write-path sweep's hand: the next slot it looks at.
    pub(super) sweep_at: usize,
    /// No entry is gone before this time: a lower bound of every entry's `grace_until`, so the
    /// sweep costs nothing while nothing can have expired. Tightened each time the hand wraps.
    pub(super) next_gone: u64,
    /// The least `grace_until` of the entries the hand passed in its current round, and of those
    /// written or moved behind it meanwhile: the next `next_gone`.
    pub(super) round_min: u64,
    /// The eviction queues and ghost ([`Queues`]), position for position beside `slots`.
    pub(super) queues: Queues,
    /// The entries with an expiry, least time on top ([`Due`]), so making room finds an expired
    /// entry wherever the queues hold it, without walking the shard (the sweep's hand covers the
    /// shard only in `len / SWEEP_PROBES` writes, and a full shard evicts on every one of them).
    dues: Dues,
    /// `dues` is compacted when it grows to this length (stale elements dropped): twice the
    /// elements the last compaction left, plus [`DUES_SLACK`]. So it holds at most about twice the
    /// shard's entries, and the pushes since pay for each compaction.
    dues_limit: usize,
    /// Loads of this shard's keys under way ([`super::Store::begin_load`]).
    pub(super) loads: Loads,
}

/// What a shard is made with besides its bounds.
pub(crate) struct ShardSetup<V> {
    pub hasher: FixedState,
    pub weigh: Weigh<V>,
    pub keep_cold: bool,
}

#[repr(align(128))]
pub(crate) struct Shard<V> {
    /// Striped by thread; each stripe carries the read counters of the readers holding it.
    pub inner: Striped<ShardInner<V>, ReadCounts>,
    pub(crate) stats: ShardStats,
}

/// Hints the CPU to fetch `t`'s cache line (a no-op off x86_64).
#[inline(always)]
pub(crate) fn prefetch<T>(t: &T) {
    prefetch_at((t as *const T).cast());
}

/// Hints the CPU to fetch the cache line of address `p` (a no-op off x86_64).
#[inline(always)]
fn prefetch_at(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults, whatever the address, and SSE is part of
    // the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Hints the CPU to fetch every cache line of `t` (a no-op off x86_64).
#[inline(always)]
fn prefetch_lines<T>(t: &T) {
    let p = (t as *const T).cast::<u8>();
    let size = std::mem::size_of::<T>();
    let mut off = 0;
    while off < size {
        prefetch_at(p.wrapping_add(off));
        off += 64;
    }
    // the line of the last byte, when `t` does not start a line
    prefetch_at(p.wrapping_add(size.saturating_sub(1)));
}

/// Counts one event on a shard counter that only a holder of the shard's write lock changes
/// (inserts, updates, evictions, expirations): a relaxed load and store, not a locked add. A
/// locked add waits for every earlier store of the write (the new slot's, the index bucket's) to
/// drain first; on an insert into 1,000,000 keys that wait was a fifth of the core's time (perf).
/// Readers of `stats` see each counter whole, as atomics give.
#[inline(always)]
pub(super) fn count(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Relaxed);
}

/// What a write stores besides the key and the value.
#[derive(Clone, Copy)]
pub(super) struct Written {
    /// The entry's weight, key included.
    pub weight: u64,
    pub meta: Meta,
    pub now: u64,
    pub version: u64,
}

impl<V> Shard<V> {
    /// An empty shard expecting about `cap` entries (its share of the store's bound, which sizes
    /// its ghost and its climber's sample), with room for `reserve` of them before its slot
    /// table first grows.
    pub(super) fn new(
        cap: u64,
        reserve: usize,
        entries: Arc<Budget>,
        budget: Arc<Budget>,
        setup: ShardSetup<V>,
    ) -> Self {
        let ShardSetup { hasher, weigh, keep_cold } = setup;
        Shard {
            inner: Striped::new(
                ShardInner {
                    // grown as entries arrive, unlike the slots: zeroed buckets are memory the
                    // allocator touches (it clears them) unless the block is large enough to be
                    // mapped fresh, so sizing them up front made a cache of 10,000 entries take
                    // about 130 KB before its first write
                    table: SlotIndex::with_capacity(0),
                    slots: Vec::with_capacity(reserve),
                    // made by the first write that needs it, with room for the slots
                    cold: Vec::new(),
                    keep_cold,
                    hasher,
                    weigh,
                    weight: 0,
                    entries,
                    budget,
                    expiring: 0,
                    sweep_at: 0,
                    next_gone: NEVER,
                    round_min: NEVER,
                    queues: Queues::new(cap, reserve),
                    dues: Dues::default(),
                    dues_limit: DUES_SLACK,
                    loads: Loads::new(),
                },
                ReadCounts::default,
            ),
            stats: ShardStats::default(),
        }
    }

    /// The shard's hits and misses, summed over its lock's stripes.
    pub fn reads(&self) -> (u64, u64) {
        self.inner.locals().fold((0, 0), |(h, m), r| (h + r.hits.load(Relaxed), m + r.misses.load(Relaxed)))
    }
}

impl<V> ShardInner<V> {
    /// The position of `key`'s slot (`hash` is the key's hash).
    #[inline(always)]
    pub(super) fn find(&self, hash: u64, key: &str) -> Option<u32> {
        self.table.find(hash, |i| &*self.slots[i as usize].key == key)
    }

    /// The entry at position `i`.
    #[inline(always)]
    pub(crate) fn entry(&self, i: usize) -> Entry<'_, V> {
        Entry { slot: &self.slots[i], cold: self.cold.get(i) }
    }

    /// When the entry at `i` is removed (past its grace window).
    #[inline]
    pub(crate) fn grace_until(&self, i: usize) -> u64 {
        self.cold.get(i).map_or(self.slots[i].expires_at, |c| c.grace_until)
    }

    #[inline]
    fn gone(&self, i: usize, now: u64) -> bool {
        self.grace_until(i) <= now
    }

    /// An entry's weight: its value's, and its key's length.
    #[inline]
    pub(super) fn weight_of(&self, slot: &Slot<V>) -> u64 {
        (self.weigh)(&slot.value).saturating_add(slot.key.len() as u64)
    }

    /// Whether an entry with these cold fields needs the column: the shard keeps write times,
    /// or what a shard without it would assume of them (see [`Cold::plain`]) is not so.
    #[inline]
    fn needs_cold(&self, c: Cold, expires_at: u64) -> bool {
        self.keep_cold || c.grace_until != expires_at || c.load_nanos != 0
    }

    /// Makes the cold column for the slots there are, with what its absence meant of each.
    #[cold]
    fn make_cold(&mut self) {
        debug_assert!(self.cold.is_empty());
        self.cold.reserve(self.slots.capacity());
        // a plain loop: less code in the WebAssembly module than `extend` over a `map`
        for s in &self.slots {
            self.cold.push(Cold::plain(s.expires_at));
        }
    }

    /// Sets the cold fields of the entry at `i` (whose `expires_at` is already set).
    #[inline]
    fn set_cold(&mut self, i: usize, c: Cold) {
        if self.cold.is_empty() {
            if !self.needs_cold(c, self.slots[i].expires_at) {
                return;
            }
            self.make_cold();
        }
        self.cold[i] = c;
    }

    /// Hints the CPU to fetch the index bucket where a write's lookup of `hash` starts, so its
    /// cache miss overlaps the clock read and the checks before it. (Fetching the ghost cells an
    /// insert reads as well made no difference beyond the noise to inserts, and costs an
    /// overwrite two lines for nothing; the next slot is fetched by the insert before, see
    /// [`ShardInner::push`].)
    #[inline(always)]
    pub(super) fn prefetch_write(&self, hash: u64) {
        self.table.prefetch(hash);
    }

    /// Gives slot `i` a new expiry and version, keeping its value: nothing is removed, so a host
    /// that holds the value under the slot's handle keeps it.
    pub(super) fn renew(&mut self, i: usize, meta: Meta, now: u64, version: u64) {
        let Meta { expires_at, grace_until, load_nanos } = meta;
        let was = self.grace_until(i);
        self.expiring = self.expiring + usize::from(grace_until != NEVER) - usize::from(was != NEVER);
        let slot = &mut self.slots[i];
        let before = std::mem::replace(&mut slot.expires_at, expires_at);
        slot.stamp.set_version(version);
        if expires_at < before {
            self.note_due(i);
        }
        self.note_expiry(grace_until);
        self.set_cold(i, Cold { grace_until, load_nanos, written_at: now });
    }

    /// Overwrites the entry at `i` (whose version the caller checked), then evicts others if the
    /// heavier value took the store over its byte budget. Returns the value it replaced and why
    /// it left (replaced while live, or expired).
    pub(super) fn replace(
        &mut self,
        i: usize,
        value: V,
        w: Written,
        stats: &ShardStats,
        removed: &mut Removed<V>,
    ) -> (V, RemovalCause) {
        let Written { weight, meta, now, version } = w;
        // weighed before anything changes: a weigher that panics leaves the shard whole
        let was = self.weight_of(&self.slots[i]);
        let slot = &mut self.slots[i];
        let cause = if slot.live(now) { RemovalCause::Replaced } else { RemovalCause::Expired };
        let old = std::mem::replace(&mut slot.value, value);
        self.weight = self.weight.saturating_sub(was) + weight;
        self.budget.sub(was);
        self.budget.add(weight);
        self.renew(i, meta, now, version);
        if cause == RemovalCause::Expired {
            self.slots[i].stamp.reset();
            count(&stats.expirations);
            count(&stats.inserts);
        } else {
            count(&stats.updates);
        }
        // A heavier value may push the store over its byte budget.
        if self.budget.over(0) {
            self.make_room(0, now, Some(i), stats, removed);
        }
        (old, cause)
    }

    /// Makes room for a new entry of `weight`: sweeps for expired entries, then at capacity (or
    /// over the byte budget) evicts, expired entries first (see [`ShardInner::evict_one`]). At
    /// the count bound the climber is fed the shard's read counts first (`reads`: hits and misses,
    /// summed over the lock's stripes only then).
    pub(super) fn admit(
        &mut self,
        weight: u64,
        now: u64,
        stats: &ShardStats,
        reads: impl FnOnce() -> (u64, u64),
        removed: &mut Removed<V>,
    ) {
        self.sweep(now, stats, removed);
        if self.entries.over(1) {
            let (hits, misses) = reads();
            self.queues.adapt(hits, misses);
        }
        self.make_room(weight, now, None, stats, removed);
    }

    /// Stores a new entry for `key` (absent here, room made by [`ShardInner::admit`]).
    pub(super) fn push(&mut self, key: &str, hash: u64, value: V, w: Written, stats: &ShardStats) {
        let Written { weight, meta: Meta { expires_at, grace_until, load_nanos }, now, version } = w;
        let cold = Cold { grace_until, load_nanos, written_at: now };
        let needs = self.needs_cold(cold, expires_at);
        if needs && self.cold.is_empty() {
            self.make_cold();
        }
        if needs || !self.cold.is_empty() {
            self.cold.push(cold);
        }
        let idx = self.slots.len() as u32;
        self.slots.push(Slot { key: CompactString::from(key), expires_at, stamp: Stamp::new(version), value });
        self.note_due(idx as usize);
        self.weight += weight;
        self.entries.add(1);
        self.budget.add(weight);
        self.expiring += usize::from(grace_until != NEVER);
        self.note_expiry(grace_until);
        self.table.insert(hash, idx);
        self.queues.push(hash);
        count(&stats.inserts);
        // The next insert into this shard writes the next slot. Inserts spread over the shards
        // at random, too many streams for the hardware prefetcher, so each new slot was a cache
        // miss that the write's unlock waited for; fetched now, it is in cache by then.
        if let Some(next) = self.slots.spare_capacity_mut().first() {
            prefetch_lines(next);
        }
    }

    /// Takes every entry out, as explicit removals; every load under way loses its store.
    pub(super) fn clear(&mut self, removed: &mut Removed<V>) {
        self.table.clear();
        self.entries.sub(self.slots.len() as u64);
        self.budget.sub(self.weight);
        self.weight = 0;
        self.expiring = 0;
        self.sweep_at = 0;
        self.next_gone = NEVER;
        self.round_min = NEVER;
        self.queues.clear();
        self.dues.clear();
        self.dues_limit = DUES_SLACK;
        self.cold.clear();
        self.loads.supersede_all();
        removed.extend(self.slots.drain(..).map(|s| (s.key, s.value, RemovalCause::Explicit)));
    }

    /// Removes every entry past its grace window; returns how many.
    pub(super) fn purge_expired(&mut self, now: u64, stats: &ShardStats, removed: &mut Removed<V>) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.slots.len() {
            if !self.gone(i, now) {
                i += 1;
            } else {
                let (s, _) = self.remove_at(i);
                removed.push((s.key, s.value, RemovalCause::Expired));
                count(&stats.expirations);
                n += 1;
            }
        }
        n
    }

    /// Takes the entry at `idx` out; returns it and its key's hash.
    pub(super) fn remove_at(&mut self, idx: usize) -> (Slot<V>, u64) {
        // weighed before anything changes: a weigher that panics leaves the shard whole
        let weight = self.weight_of(&self.slots[idx]);
        let hash = self.hasher.hash_one(&*self.slots[idx].key);
        let indexed = self.table.remove(hash, idx as u32);
        debug_assert!(indexed, "slot {idx} has no index entry");
        let last = self.slots.len() - 1;
        if idx != last {
            let moved = self.hasher.hash_one(&*self.slots[last].key);
            if idx < self.sweep_at {
                // moved behind the sweep's hand: it counts for this round without being passed
                self.round_min = self.round_min.min(self.grace_until(last));
            }
            self.table.relocate(moved, last as u32, idx as u32);
        }
        let grace_until = self.grace_until(idx);
        let s = self.slots.swap_remove(idx);
        if idx != last {
            self.note_due(idx);
        }
        if !self.cold.is_empty() {
            // (`swap_remove` carries a panic of its own, in every build; the bounds are those of
            // `slots`, checked above)
            self.cold.swap(idx, last);
            self.cold.pop();
        }
        self.queues.remove(idx);
        self.weight = self.weight.saturating_sub(weight);
        self.entries.sub(1);
        self.budget.sub(weight);
        self.expiring -= usize::from(grace_until != NEVER);
        (s, hash)
    }

    /// Makes the fresh entry at `i` stale at `now`, keeping its grace window if it has one (one
    /// without is gone now), and tells the sweep: it may now be an entry that expires. An entry
    /// that never expired has no grace window of its own: it gets `grace` from `now`.
    pub(super) fn make_stale(&mut self, i: usize, now: u64, grace: u64) {
        let was = self.grace_until(i);
        let grace_until = if was == NEVER {
            now.saturating_add(grace).min(NEVER - 1)
        } else if was == self.slots[i].expires_at {
            now
        } else {
            was
        };
        self.expiring += usize::from(was == NEVER && grace_until != NEVER);
        let before = std::mem::replace(&mut self.slots[i].expires_at, now);
        if now < before {
            self.note_due(i);
        }
        // without the column, an entry's grace ends at its expiry: now, right when none is
        // given; a window past it needs the column
        if self.cold.is_empty() && grace_until != now {
            self.make_cold();
        }
        if let Some(c) = self.cold.get_mut(i) {
            c.grace_until = grace_until;
        }
        self.note_expiry(grace_until);
    }

    /// Entries with an expiry (what the sweep looks for).
    #[cfg(test)]
    pub(crate) fn expiring(&self) -> usize {
        self.expiring
    }

    /// Whether the shard keeps the cold column.
    #[cfg(test)]
    pub(crate) fn has_cold(&self) -> bool {
        !self.cold.is_empty()
    }

    /// Notes the expiry of the entry now at `i` in the expiry heap (nothing for one that never
    /// expires).
    #[inline]
    fn note_due(&mut self, i: usize) {
        let at = self.slots[i].expires_at;
        if at == NEVER {
            return;
        }
        if self.dues.len() >= self.dues_limit {
            self.compact_dues();
        }
        self.dues.push(Due::new(at, i));
    }

    /// Leaves one element per entry with an expiry in the expiry heap, at its expiry: the
    /// positions of the elements there are (every such entry has one) less those repeated or
    /// holding no expiring entry.
    #[cold]
    fn compact_dues(&mut self) {
        let slots = &self.slots;
        let mut seen = vec![0u64; slots.len().div_ceil(64)];
        self.dues.rebuild(|d| {
            let p = d.pos as usize;
            let at = slots.get(p).map(|s| s.expires_at).filter(|&at| at != NEVER)?;
            let bit = 1 << (p % 64);
            if seen[p / 64] & bit != 0 {
                return None;
            }
            seen[p / 64] |= bit;
            Some(Due::new(at, p))
        });
        self.dues_limit = 2 * self.dues.len() + DUES_SLACK;
    }

    /// The position of an expired entry other than `keep`, if the shard holds one (the caller
    /// removes it). Elements due by `now` are taken out: a stale one is dropped, one whose entry's
    /// expiry was pushed back goes back in at that expiry, so each renewal costs one move here at
    /// most, and only once its first expiry has passed.
    fn expired(&mut self, now: u64, keep: Option<usize>) -> Option<usize> {
        let mut kept = None;
        while let Some(d) = self.dues.peek() {
            if d.at() > now {
                break;
            }
            self.dues.pop();
            let p = d.pos as usize;
            let Some(at) = self.slots.get(p).map(|s| s.expires_at) else {
                continue;
            };
            if at > now {
                if at != NEVER {
                    self.dues.push(Due::new(at, p));
                }
            } else if Some(p) == keep {
                // never the entry being written: its element goes back once the search is over
                kept = Some(Due::new(at, p));
            } else {
                if let Some(d) = kept {
                    self.dues.push(d);
                }
                return Some(p);
            }
        }
        if let Some(d) = kept {
            self.dues.push(d);
        }
        None
    }

    /// The length of the expiry heap.
    #[cfg(test)]
    pub(crate) fn dues(&self) -> usize {
        self.dues.len()
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
            if self.gone(i, now) {
                // the last entry moves into slot `i`: the hand looks at it next
                let (s, _) = self.remove_at(i);
                count(&stats.expirations);
                removed.push((s.key, s.value, RemovalCause::Expired));
            } else {
                self.round_min = self.round_min.min(self.grace_until(i));
                self.sweep_at = i + 1;
            }
        }
    }

    /// Evicts until a new entry of `weight` fits (`keep` is `None`), or until the store is within
    /// its byte budget, never evicting `keep` (taken out of its queue meanwhile, and put back at
    /// its tail: it was just written).
    fn make_room(&mut self, weight: u64, now: u64, keep: Option<usize>, stats: &ShardStats, removed: &mut Removed<V>) {
        let mut keep = keep;
        let entry = keep.is_none();
        if let Some(k) = keep {
            self.queues.detach(k);
        }
        // at the count bound a new entry evicts here, in its own shard; a shard with nothing to
        // evict stores it anyway, and the store then sheds from the others (`Store::shed`)
        while !self.slots.is_empty() && (entry && self.entries.over(1) || self.budget.over(weight)) {
            if keep.is_some() && self.slots.len() == 1 {
                break;
            }
            keep = self.evict_one(now, keep, stats, removed);
        }
        if let Some(k) = keep {
            self.queues.attach(k);
        }
    }

    /// Whether the store is over its count bound or its byte budget.
    #[inline]
    pub(super) fn over(&self) -> bool {
        self.entries.over(0) || self.budget.over(0)
    }

    /// Evicts from this shard while the store is over its count bound or its byte budget.
    pub(super) fn shed(&mut self, now: u64, stats: &ShardStats, removed: &mut Removed<V>) {
        while !self.slots.is_empty() && self.over() {
            self.evict_one(now, None, stats, removed);
        }
    }

    /// Evicts one entry, never `keep` (detached from the queues by the caller): an expired one
    /// while the shard holds any, the queues' victim otherwise. Returns where `keep` is afterwards
    /// (the last slot moves into the victim's place). Evicts nothing only when `keep` is the last
    /// entry.
    fn evict_one(
        &mut self,
        now: u64,
        keep: Option<usize>,
        stats: &ShardStats,
        removed: &mut Removed<V>,
    ) -> Option<usize> {
        let n = self.slots.len();
        // an expired entry goes first, wherever it sits in the queues
        let (victim, cold) = match self.expired(now, keep) {
            Some(i) => (i, false),
            None => {
                let slots = &self.slots;
                let Some(v) = self.queues.victim(|i| (slots[i].live(now), &slots[i].stamp)) else {
                    return keep;
                };
                v
            }
        };
        let last = n - 1;
        let (s, hash) = self.remove_at(victim);
        let cause = if s.live(now) { RemovalCause::Evicted } else { RemovalCause::Expired };
        if cold && cause == RemovalCause::Evicted {
            self.queues.evicted(hash);
        }
        match cause {
            RemovalCause::Expired => count(&stats.expirations),
            _ => count(&stats.evictions),
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
    use std::sync::Arc;

    use super::super::{Meta, RemovalCause, Store, StoreConfig, Supersede, NEVER};
    use super::Weigh;
    use crate::clock::{Clock, ManualClock};
    use crate::sync::read;

    /// Promise: everything is bounded. The expiry heap keeps stale elements until they come due or
    /// a compaction drops them: under writes that shorten TTLs (each a new element), removals and
    /// evictions it stays within twice the shard's entries, plus its slack.
    /// The expiry heap gives its elements least first, through pushes, pops and rebuilds that
    /// drop some and change others (checked against a sorted list).
    #[test]
    fn the_expiry_heap_pops_least_first() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut heap = super::Dues::default();
        let mut model: Vec<super::Due> = Vec::new();
        for round in 0..2_000 {
            match next(10) {
                0..=5 => {
                    let d = super::Due::new(next(1 << 40), next(1000) as usize);
                    heap.push(d);
                    model.push(d);
                }
                6..=8 => {
                    model.sort();
                    assert_eq!(heap.peek(), model.first().copied(), "round {round}");
                    heap.pop();
                    if !model.is_empty() {
                        model.remove(0);
                    }
                }
                _ => {
                    // drop the odd positions, move the others' times later
                    let keep =
                        |d: super::Due| d.pos.is_multiple_of(2).then(|| super::Due::new(d.at() + 5, d.pos as usize));
                    heap.rebuild(keep);
                    model = model.into_iter().filter_map(keep).collect();
                }
            }
            assert_eq!(heap.len(), model.len());
        }
        model.sort();
        for d in model {
            assert_eq!(heap.peek(), Some(d));
            heap.pop();
        }
        assert_eq!(heap.peek(), None);
    }

    #[test]
    fn the_expiry_heap_stays_within_twice_the_entries() {
        const MAX: u64 = 100;
        let clock = ManualClock::new();
        let weigh: Weigh<u32> = Arc::new(|_| 0);
        let config = StoreConfig {
            shards: 1,
            max_entries: MAX,
            max_bytes: u64::MAX,
            max_key_len: 64,
            max_entry_bytes: u64::MAX,
            seed: 7,
            weigh,
            keep_written: false,
        };
        let s: Store<u32> = Store::new(config, Arc::new(clock.clone()));
        let mut most = 0;
        for n in 0..100_000u64 {
            let key = format!("k{}", n * 7919 % 150);
            let now = clock.now_nanos();
            // expiries that come earlier as `n` grows, so an overwrite notes a new element; some
            // come due within a few writes, and some entries never expire
            let at = match n % 13 {
                0 => NEVER,
                1 => now + 1_000_000,
                _ => 1_000_000_000_000 - n,
            };
            let meta = Meta { expires_at: at, grace_until: at, load_nanos: 0 };
            s.write(&key, 1, meta, None, &mut Vec::new()).unwrap();
            if n % 11 == 0 {
                s.remove_where(&key, &mut Vec::new(), RemovalCause::Explicit, Supersede::Always, &mut |_| true);
            }
            if n % 97 == 0 {
                clock.advance(std::time::Duration::from_millis(3));
            }
            most = most.max(read(&s.shards[0].inner).dues());
        }
        assert!(most <= 2 * MAX as usize + super::DUES_SLACK + 1, "the heap grew to {most}");
        assert!(most > MAX as usize, "the heap was compacted ({most})");
    }
}
