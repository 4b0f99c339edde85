//! Uniform sampling of live keys in O(k) ([`Store::sample_keys`]), built on uniform sampling
//! without replacement in O(k): a partial Fisher-Yates shuffle over a virtual
//! array `0..n`, remembering only the positions it has swapped (a sparse map), so drawing k of n
//! costs O(k) time and memory whatever n is. Written here because `rand::seq::index::sample`
//! returns a fixed k up front, while the store needs to keep drawing past expired entries until k
//! live keys are found (still uniform over the live ones), and because its general-purpose set
//! is several times slower than the dense front and single-probe table below.

use crate::SeededRng;
use rand::Rng;

use crate::store::{prefetch, Store};
use crate::sync::read;

const EMPTY: u32 = u32::MAX;

/// Draws distinct indices of `0..n` uniformly at random, one at a time.
///
/// Draw `t` swaps position `t` of the virtual array with a random position `j >= t` and returns
/// what stood at `j`. Positions below the planned number of draws (the "front", read in order,
/// one each) live in a dense array; the positions `j` beyond it live in a small open-addressing
/// table of u32 pairs (linear probing, multiplicative hash, no deletion), read and written by a
/// single probe per draw. Since `j` falls in the front with probability k/n only, a draw costs one
/// random access to an L2-resident table, which is what keeps 10,000 draws well under the 200 us
/// budget of a healing interval.
pub struct PartialShuffle {
    n: usize,
    drawn: usize,
    /// Values of positions `0..front.len()` (identity until swapped).
    front: Vec<u32>,
    table: Vec<(u32, u32)>,
    len: usize,
    shift: u32,
}

impl PartialShuffle {
    /// A shuffle of `0..n`; `expected` sizes the front and the table (the number of draws planned).
    ///
    /// `n` is below `u32::MAX`: the store holds at most 2^31 entries (checked in debug builds
    /// only, as a check with a message costs the WebAssembly module bytes).
    pub fn new(n: usize, expected: usize) -> Self {
        debug_assert!(n < EMPTY as usize);
        let front_len = expected.min(n);
        let cap = (front_len.max(8) * 2).next_power_of_two();
        PartialShuffle {
            n,
            drawn: 0,
            front: (0..front_len as u32).collect(),
            table: vec![(EMPTY, 0); cap],
            len: 0,
            shift: 64 - cap.trailing_zeros(),
        }
    }

    #[inline]
    fn slot(&self, p: u32) -> usize {
        ((p as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// The value at back position `p` (not in the front), replaced by `v`.
    #[inline]
    fn swap_back(&mut self, p: u32, v: u32) -> u32 {
        if (self.len + 1) * 2 > self.table.len() {
            self.grow();
        }
        let mask = self.table.len() - 1;
        let mut i = self.slot(p);
        loop {
            let e = &mut self.table[i];
            if e.0 == p {
                return std::mem::replace(&mut e.1, v);
            }
            if e.0 == EMPTY {
                *e = (p, v);
                self.len += 1;
                return p;
            }
            i = (i + 1) & mask;
        }
    }

    /// The value at position `p`, replaced by `v`.
    #[inline]
    fn swap(&mut self, p: usize, v: u32) -> u32 {
        match self.front.get_mut(p) {
            Some(f) => std::mem::replace(f, v),
            None => self.swap_back(p as u32, v),
        }
    }

    /// The value at position `p`, which is never read again.
    #[inline]
    fn take(&mut self, p: usize) -> u32 {
        match self.front.get(p) {
            Some(&f) => f,
            None => self.swap_back(p as u32, p as u32),
        }
    }

    fn grow(&mut self) {
        let cap = self.table.len() * 2;
        let old = std::mem::replace(&mut self.table, vec![(EMPTY, 0); cap]);
        self.shift -= 1;
        self.len = 0;
        for (k, v) in old {
            if k != EMPTY {
                self.swap_back(k, v);
            }
        }
    }

    /// Positions remembered beyond the front (at most the number of draws).
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.len
    }

    /// The next index, or `None` once all `n` are drawn.
    #[inline]
    pub fn next_index<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<usize> {
        if self.drawn >= self.n {
            return None;
        }
        let i = self.drawn;
        let j = rng.random_range(i..self.n);
        self.drawn += 1;
        // position i is never read again: its value moves to j, j's value is the draw
        let vi = self.take(i);
        if j == i {
            return Some(vi as usize);
        }
        Some(self.swap(j, vi) as usize)
    }
}

/// `k` distinct indices of `0..n` (all of them if `k >= n`), uniformly, in O(k).
#[cfg(test)]
fn sample_indices<R: Rng + ?Sized>(rng: &mut R, n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    let mut s = PartialShuffle::new(n, k);
    (0..k).map(|_| s.next_index(rng).expect("k <= n")).collect()
}

impl<V: Clone> Store<V> {
    /// Up to `k` live keys drawn uniformly without replacement, in O(k) (expected, while few
    /// stored entries are expired). Holds every shard's read lock for the draw, so the key set
    /// does not move under it; readers are not blocked.
    pub fn sample_keys(&self, k: usize, rng: &mut SeededRng) -> KeySample {
        let guards: Vec<_> = self.shards.iter().map(|s| read(&s.inner)).collect();
        let mut ends = Vec::with_capacity(guards.len());
        let mut n = 0usize;
        for g in &guards {
            n += g.slots.len();
            ends.push(n);
        }
        let mut out = KeySample::with_capacity(k.min(n));
        if k == 0 || n == 0 {
            return out;
        }
        let now = self.now();
        let shards = guards.len();
        let mut shuffle = PartialShuffle::new(n, k);
        let mut batch: Vec<(u32, u32)> = Vec::with_capacity(k.min(n));
        // (i * recip) >> 32 == i * shards / n, give or take one, without a division per draw
        let recip = ((shards as u64) << 32) / n as u64;
        // Draw first, then gather: the gather loop is short and prefetches ahead, so the cache
        // misses of many slots overlap instead of being paid one after another.
        while out.len() < k {
            batch.clear();
            for _ in 0..(k - out.len()) {
                let Some(i) = shuffle.next_index(rng) else { break };
                // shards are about equal in size: guess, then walk to the right one
                let mut s = ((i as u64 * recip) >> 32) as usize;
                while ends[s] <= i {
                    s += 1;
                }
                while s > 0 && ends[s - 1] > i {
                    s -= 1;
                }
                let start = if s == 0 { 0 } else { ends[s - 1] };
                batch.push((s as u32, (i - start) as u32));
            }
            if batch.is_empty() {
                break;
            }
            // How far ahead to prefetch: 64 slots keep enough misses in flight to hide DRAM and
            // page-walk latency (`cargo bench --bench store -- sample_10k`: AHEAD 8 262 µs,
            // 16 203, 32 158, 64 149, 512 169 per 10,000 of 1,000,000).
            const AHEAD: usize = 64;
            for t in 0..batch.len() {
                if let Some(&(s, l)) = batch.get(t + AHEAD) {
                    // the key and the expiry (the slot's first 32 bytes) may straddle two lines
                    let slot = &guards[s as usize].slots[l as usize];
                    prefetch(slot);
                    prefetch(&slot.expires_at);
                }
                let (s, l) = batch[t];
                let slot = &guards[s as usize].slots[l as usize];
                if slot.live(now) {
                    out.push(&slot.key);
                }
            }
        }
        out
    }
}

/// Keys drawn by a sample, packed in one buffer (one allocation, no reference-count traffic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySample {
    buf: String,
    ends: Vec<usize>,
}

impl KeySample {
    fn with_capacity(k: usize) -> Self {
        KeySample { buf: String::with_capacity(k * 16), ends: Vec::with_capacity(k) }
    }

    fn push(&mut self, key: &str) {
        self.buf.push_str(key);
        self.ends.push(self.buf.len());
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no key was drawn.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The keys, in draw order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&e| {
            // every end is a key's end, so a char boundary: `get` never misses, and unlike
            // indexing it links no str-slicing panic (with its Unicode tables) into the
            // WebAssembly module
            let k = self.buf.get(start..e).unwrap_or_default();
            start = e;
            k
        })
    }
}

/// A sample of a stream of unknown length, drawn as it goes past: each item is kept with
/// probability `rate`, independently of its neighbours and of where the stream was cut, and at
/// most `max` are kept (a reservoir, algorithm R, over the items kept: still uniform). A walk cut
/// into pieces (the fleet verifier's SCAN, an interval at a time) so gives every item the same
/// chance, however few items the piece it fell in held.
#[cfg(feature = "tier")]
pub struct StreamSample<T> {
    rate: f64,
    max: usize,
    kept: Vec<T>,
    accepted: usize,
}

#[cfg(feature = "tier")]
impl<T> StreamSample<T> {
    /// An empty sample; `rate` is clamped to 0..=1.
    pub fn new(rate: f64, max: usize) -> Self {
        StreamSample { rate: rate.clamp(0.0, 1.0), max, kept: Vec::new(), accepted: 0 }
    }

    /// Offers the next item of the stream.
    pub fn offer<R: Rng + ?Sized>(&mut self, rng: &mut R, item: T) {
        if self.rate < 1.0 && !rng.random_bool(self.rate) {
            return;
        }
        self.accepted += 1;
        if self.kept.len() < self.max {
            self.kept.push(item);
        } else {
            let j = rng.random_range(0..self.accepted);
            if j < self.max {
                self.kept[j] = item;
            }
        }
    }

    /// The items drawn.
    pub fn finish(self) -> Vec<T> {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;
    use rand::SeedableRng;

    #[test]
    fn draws_are_distinct_and_in_range() {
        let mut rng = SeededRng::seed_from_u64(7);
        for n in [0usize, 1, 2, 10, 1000] {
            for k in [0usize, 1, 5, 10, 2000] {
                let v = sample_indices(&mut rng, n, k);
                assert_eq!(v.len(), k.min(n));
                let mut s = v.clone();
                s.sort_unstable();
                s.dedup();
                assert_eq!(s.len(), v.len(), "duplicates in {v:?}");
                assert!(v.iter().all(|&i| i < n));
            }
        }
    }

    #[test]
    fn full_draw_is_a_permutation() {
        let mut rng = SeededRng::seed_from_u64(1);
        let mut v = sample_indices(&mut rng, 500, 500);
        v.sort_unstable();
        assert_eq!(v, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn drawing_past_the_planned_count_grows_the_table() {
        let mut rng = SeededRng::seed_from_u64(9);
        let mut s = PartialShuffle::new(3000, 4);
        let mut v: Vec<usize> = std::iter::from_fn(|| s.next_index(&mut rng)).collect();
        assert_eq!(v.len(), 3000);
        v.sort_unstable();
        assert_eq!(v, (0..3000).collect::<Vec<_>>());
    }

    #[test]
    fn memory_is_bounded_by_draws() {
        let mut rng = SeededRng::seed_from_u64(3);
        let mut s = PartialShuffle::new(1_000_000_000, 100);
        for _ in 0..100 {
            s.next_index(&mut rng).unwrap();
        }
        assert!(s.remembered() <= 100);
    }

    /// Chi-square test of uniformity: each index of 0..20 must be drawn equally often when
    /// drawing 5 of 20 many times. 19 degrees of freedom: the 99.9% critical value is 43.8.
    #[test]
    fn uniform_chi_square() {
        let mut rng = SeededRng::seed_from_u64(42);
        let (n, k, rounds) = (20usize, 5usize, 40_000usize);
        let mut counts = vec![0f64; n];
        for _ in 0..rounds {
            for i in sample_indices(&mut rng, n, k) {
                counts[i] += 1.0;
            }
        }
        let expected = (rounds * k) as f64 / n as f64;
        let chi2: f64 = counts.iter().map(|c| (c - expected).powi(2) / expected).sum();
        assert!(chi2 < 43.8, "chi2 = {chi2}, counts = {counts:?}");
    }

    /// Every item of a stream cut into pieces has the same chance, whatever the size of its
    /// piece: here a walk cut into a piece of 998 items and one of 2, drawn at 10%, 4,000 times.
    #[cfg(feature = "tier")]
    #[test]
    fn a_stream_cut_in_pieces_gives_every_item_the_same_chance() {
        let mut rng = SeededRng::seed_from_u64(11);
        let mut counts = vec![0u32; 1000];
        const WALKS: u32 = 4000;
        for _ in 0..WALKS {
            for piece in [0..998usize, 998..1000] {
                let mut s = StreamSample::new(0.1, 1000);
                for i in piece {
                    s.offer(&mut rng, i);
                }
                for i in s.finish() {
                    counts[i] += 1;
                }
            }
        }
        // 400 expected each, standard deviation 19: 500 is more than 5 of them
        for (i, &c) in counts.iter().enumerate() {
            assert!((300..=500).contains(&c), "item {i} drawn {c} times in {WALKS} walks");
        }
        let total: u32 = counts.iter().sum();
        assert!((390_000..=410_000).contains(&total), "{total}");
    }

    /// At most `max` are kept, each item alike when the bound binds.
    #[cfg(feature = "tier")]
    #[test]
    fn a_stream_sample_keeps_at_most_max_uniformly() {
        let mut rng = SeededRng::seed_from_u64(12);
        let mut counts = vec![0u32; 100];
        for _ in 0..10_000 {
            let mut s = StreamSample::new(1.0, 10);
            for i in 0..100usize {
                s.offer(&mut rng, i);
            }
            let got = s.finish();
            assert_eq!(got.len(), 10);
            for i in got {
                counts[i] += 1;
            }
        }
        // 1,000 expected each, standard deviation 30
        assert!(counts.iter().all(|&c| (850..=1150).contains(&c)), "{counts:?}");
        let mut none = StreamSample::new(0.0, 10);
        none.offer(&mut rng, 1);
        assert!(none.finish().is_empty());
    }
}
