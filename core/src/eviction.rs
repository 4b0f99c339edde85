//! The eviction policy: sampled LFU with aging and ghost history.
//!
//! Sources: Redis' `allkeys-lfu` (a saturating access counter per key, eviction of the least
//! counter among a few randomly sampled keys, counters that decay over time; antirez, "Random
//! notes on improving the Redis LRU algorithm", and the Redis 4.0 LFU policy), and TinyLFU's
//! frequency history of keys not in the cache, kept in a count-min sketch (Einziger, Friedman
//! and Manes, "TinyLFU: A Highly Efficient Cache Admission Policy", ACM TOS 2017; Cormode and
//! Muthukrishnan, "An improved data stream summary: the count-min sketch", 2005).
//!
//! Each entry has an access counter (saturating at 63), bumped on reads under the shard's *read*
//! lock (a relaxed load/store, no write once saturated, so hot keys cost no cache-line traffic).
//! To make room, a shard draws 5 random entries and evicts an expired one if any, else the one
//! with the lowest counter. Every 8 x capacity inserts a shard halves its counters, so old
//! popularity fades. A small sketch remembers how often absent keys were asked for and what
//! counter evicted keys had; a new entry starts from that estimate, so a popular key that was
//! pushed out returns protected. Under a skewed (Zipf) load the frequently read keys keep high
//! counters and stay; one-hit keys leave first. Measured against moka and quick_cache by
//! `cargo bench -p healcache --bench hit_ratio` (figures in the README).
//!
//! The store ([`crate::store`]) owns the entries and calls in here; this module knows nothing
//! of slots, only positions, counters and key hashes.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

use crate::SeededRng;
use rand::Rng;

/// Highest value of an access counter.
const MAX_FREQ: u8 = 63;
/// Candidates drawn per eviction.
pub(crate) const EVICTION_SAMPLES: usize = 5;
/// Counters are halved every `AGING_PERIOD * capacity` inserts of a shard.
const AGING_PERIOD: usize = 8;

/// An entry's access counter.
#[repr(transparent)]
pub(crate) struct Freq(AtomicU8);

impl Freq {
    /// A counter starting at `f` (a new entry's ghost estimate).
    #[inline]
    pub fn new(f: u8) -> Self {
        Freq(AtomicU8::new(f))
    }

    /// Counts one read: a relaxed load and store, nothing once saturated.
    #[inline]
    pub fn touch(&self) {
        let f = self.0.load(Relaxed);
        if f < MAX_FREQ {
            self.0.store(f + 1, Relaxed);
        }
    }

    #[inline]
    pub fn get(&self) -> u8 {
        self.0.load(Relaxed)
    }

    /// Back to zero (an expired entry's slot reused by a new value).
    #[inline]
    pub fn reset(&self) {
        self.0.store(0, Relaxed);
    }

    fn halve(&self) {
        self.0.store(self.0.load(Relaxed) / 2, Relaxed);
    }
}

/// Ghost frequencies: how often keys were asked for while absent, and the counter an evicted
/// key had, in two 8-bit cells per key hash (a 2-row count-min sketch). Bumped only on misses and
/// evictions, never on the hit path. A newly inserted entry starts at its estimate, so a popular
/// key that was evicted comes back protected (the history TinyLFU keeps).
pub(crate) struct Ghost(Box<[AtomicU8]>);

impl Ghost {
    /// A sketch sized for a shard of `cap` entries.
    pub fn new(cap: u64) -> Self {
        let len = (cap.saturating_mul(2) as usize).clamp(64, 1 << 18).next_power_of_two();
        Ghost((0..len).map(|_| AtomicU8::new(0)).collect())
    }

    #[inline]
    fn cells(&self, hash: u64) -> [usize; 2] {
        let m = self.0.len() - 1;
        [(hash as usize) & m, ((hash >> 24) as usize ^ (hash >> 40) as usize) & m]
    }

    /// A miss of the key with this hash.
    #[inline]
    pub fn bump(&self, hash: u64) {
        for i in self.cells(hash) {
            let c = &self.0[i];
            let v = c.load(Relaxed);
            if v < u8::MAX {
                c.store(v + 1, Relaxed);
            }
        }
    }

    /// The counter a new entry with this hash starts from.
    pub fn estimate(&self, hash: u64) -> u8 {
        let [a, b] = self.cells(hash);
        self.0[a].load(Relaxed).min(self.0[b].load(Relaxed)).min(MAX_FREQ)
    }

    /// An entry with this hash was evicted with counter `freq`.
    pub fn remember(&self, hash: u64, freq: u8) {
        for i in self.cells(hash) {
            self.0[i].fetch_max(freq, Relaxed);
        }
    }
}

/// The aging clock of one shard.
#[derive(Default)]
pub(crate) struct Aging {
    inserts: usize,
}

impl Aging {
    /// Counts an insert into a shard of `capacity` entries; every `AGING_PERIOD * capacity`
    /// inserts halves the counters of `entries` and of the sketch.
    #[inline]
    pub fn insert<'a>(&mut self, capacity: usize, entries: impl Iterator<Item = &'a Freq>, ghost: &Ghost) {
        self.inserts += 1;
        if self.inserts >= AGING_PERIOD * capacity.max(16) {
            self.inserts = 0;
            entries.for_each(Freq::halve);
            ghost.0.iter().for_each(|c| c.store(c.load(Relaxed) / 2, Relaxed));
        }
    }
}

/// The positions of one eviction's candidates among `n` entries: `EVICTION_SAMPLES` random
/// draws (fewer when `n` is smaller). The caller prefetches them before [`victim`] reads them,
/// so their cache misses overlap.
#[inline]
pub(crate) fn candidates(rng: &mut SeededRng, n: usize) -> ([usize; EVICTION_SAMPLES], usize) {
    let mut cand = [0usize; EVICTION_SAMPLES];
    let m = EVICTION_SAMPLES.min(n);
    for c in cand.iter_mut().take(m) {
        *c = rng.random_range(0..n);
    }
    (cand, m)
}

/// The victim among `cand` (never `keep`): the first expired one, else the one with the lowest
/// counter. `entry(i)` tells whether position `i` is live and its counter.
#[inline]
pub(crate) fn victim(cand: &[usize], keep: Option<usize>, entry: impl Fn(usize) -> (bool, u8)) -> Option<usize> {
    let mut victim = None;
    let mut best = u8::MAX;
    for &i in cand {
        if Some(i) == keep {
            continue;
        }
        let (live, f) = entry(i);
        if !live {
            return Some(i);
        }
        if f < best {
            best = f;
            victim = Some(i);
        }
    }
    victim
}

/// The byte budget is one total for the whole store, not a share per shard: an entry may weigh up
/// to `max_entry_bytes` (by default the whole budget), far more than `max_bytes / shards`, and
/// per-shard shares let every shard keep one heavy entry (64 entries of 900 KiB in a 1 MiB budget
/// once stored 25 MiB). A write evicts in its own shard first; if the store is still over budget
/// it sheds from the other shards, one lock at a time, before it returns. Unbounded stores
/// (`max == u64::MAX`) touch no shared counter.
pub(crate) struct Budget {
    used: AtomicU64,
    max: u64,
}

impl Budget {
    pub fn new(max: u64) -> Self {
        Budget { used: AtomicU64::new(0), max }
    }

    #[inline]
    pub fn add(&self, w: u64) {
        if self.max != u64::MAX {
            self.used.fetch_add(w, Relaxed);
        }
    }

    #[inline]
    pub fn sub(&self, w: u64) {
        if self.max != u64::MAX {
            self.used.fetch_sub(w, Relaxed);
        }
    }

    /// Whether `extra` more bytes would take the store over its budget.
    #[inline]
    pub fn over(&self, extra: u64) -> bool {
        self.max != u64::MAX && self.used.load(Relaxed).saturating_add(extra) > self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_saturate_and_halve() {
        let f = Freq::new(61);
        for _ in 0..5 {
            f.touch();
        }
        assert_eq!(f.get(), MAX_FREQ);
        f.halve();
        assert_eq!(f.get(), MAX_FREQ / 2);
        f.reset();
        assert_eq!(f.get(), 0);
    }

    #[test]
    fn victim_is_expired_first_then_least_used() {
        let entries = [(true, 5), (true, 2), (false, 9), (true, 1)];
        let look = |i: usize| entries[i];
        assert_eq!(victim(&[0, 1, 2, 3], None, look), Some(2));
        assert_eq!(victim(&[0, 1, 3], None, look), Some(3));
        assert_eq!(victim(&[0, 1, 3], Some(3), look), Some(1));
        assert_eq!(victim(&[3], Some(3), look), None);
    }

    #[test]
    fn ghost_remembers_misses_and_evictions() {
        let g = Ghost::new(100);
        assert_eq!(g.estimate(42), 0);
        g.bump(42);
        g.bump(42);
        assert_eq!(g.estimate(42), 2);
        g.remember(7, 40);
        assert_eq!(g.estimate(7), 40);
        g.remember(8, 200);
        assert_eq!(g.estimate(8), MAX_FREQ, "an estimate is a counter value");
    }
}
