//! Rolling consistency score: the share of consistent samples among a prefix's last N verified
//! samples, in a ring of bits. O(1) per sample, `N / 8` bytes per prefix.

/// The last `capacity` verification outcomes of one prefix.
#[derive(Debug, Clone)]
pub struct ScoreWindow {
    bits: Vec<u64>,
    capacity: usize,
    head: usize,
    len: usize,
    consistent: usize,
}

impl ScoreWindow {
    /// An empty window of `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ScoreWindow { bits: vec![0; capacity.div_ceil(64)], capacity, head: 0, len: 0, consistent: 0 }
    }

    fn bit(&self, i: usize) -> bool {
        self.bits[i / 64] >> (i % 64) & 1 == 1
    }

    fn set_bit(&mut self, i: usize, v: bool) {
        if v {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Records one verified sample.
    pub fn push(&mut self, consistent: bool) {
        if self.len == self.capacity {
            if self.bit(self.head) {
                self.consistent -= 1;
            }
        } else {
            self.len += 1;
        }
        self.set_bit(self.head, consistent);
        self.consistent += usize::from(consistent);
        self.head = (self.head + 1) % self.capacity;
    }

    /// consistent / sampled over the window; 1.0 before any sample.
    pub fn score(&self) -> f64 {
        if self.len == 0 {
            1.0
        } else {
            self.consistent as f64 / self.len as f64
        }
    }

    /// Samples in the window now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The window as bytes (capacity, length and head as u32 little-endian, then the bits), so a
    /// fleet verifier's successor carries the same window on.
    #[cfg(feature = "tier")]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.bits.len() * 8);
        for n in [self.capacity, self.len, self.head] {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The window [`ScoreWindow::to_bytes`] wrote, resized to `capacity`; `None` when the bytes
    /// are not such a window (they come from Redis: untrusted, and never over the bound).
    #[cfg(feature = "tier")]
    pub fn from_bytes(b: &[u8], capacity: usize) -> Option<Self> {
        let word = |i: usize| Some(u32::from_le_bytes(b.get(i * 4..i * 4 + 4)?.try_into().ok()?) as usize);
        let (cap, len, head) = (word(0)?, word(1)?, word(2)?);
        let words = cap.div_ceil(64);
        // a window that is not full has its head just past its samples (`push` relies on it)
        let shaped = len <= cap && head < cap && (len == cap || head == len);
        if cap == 0 || cap > 1_000_000 || !shaped || b.len() != 12 + words * 8 {
            return None;
        }
        let bits: Vec<u64> =
            b[12..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())).collect();
        let mut w = ScoreWindow { bits, capacity: cap, head, len, consistent: 0 };
        // count what the window holds rather than trust a stored count
        w.consistent = (0..len).filter(|age| w.bit((head + cap - 1 - age) % cap)).count();
        Some(if cap == capacity.max(1) { w } else { w.resized(capacity) })
    }

    /// The same window with another capacity, keeping the newest samples that fit.
    pub fn resized(&self, capacity: usize) -> Self {
        let mut w = ScoreWindow::new(capacity);
        let keep = self.len.min(w.capacity);
        for age in (0..keep).rev() {
            let i = (self.head + self.capacity - 1 - age) % self.capacity;
            w.push(self.bit(i));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;
    use rand::{Rng, SeedableRng};

    /// The ring against a naive reference (a Vec of the last N outcomes).
    #[test]
    fn matches_naive_reference() {
        let mut rng = SeededRng::seed_from_u64(1);
        for cap in [1usize, 2, 63, 64, 65, 1000] {
            let mut w = ScoreWindow::new(cap);
            let mut naive: Vec<bool> = Vec::new();
            for _ in 0..5000 {
                let v = rng.random_bool(0.7);
                w.push(v);
                naive.push(v);
                let tail = &naive[naive.len().saturating_sub(cap)..];
                let expect = tail.iter().filter(|&&b| b).count() as f64 / tail.len() as f64;
                assert!((w.score() - expect).abs() < 1e-12, "cap {cap}");
                assert_eq!(w.len(), tail.len());
            }
        }
    }

    #[cfg(feature = "tier")]
    #[test]
    fn bytes_round_trip_and_refuse_garbage() {
        let mut w = ScoreWindow::new(100);
        for i in 0..130 {
            w.push(i % 3 != 0);
        }
        let b = w.to_bytes();
        let r = ScoreWindow::from_bytes(&b, 100).unwrap();
        assert_eq!((r.len(), r.score()), (w.len(), w.score()));
        let small = ScoreWindow::from_bytes(&b, 10).unwrap();
        assert_eq!(small.score(), w.resized(10).score());
        assert!(ScoreWindow::from_bytes(&b[..b.len() - 1], 100).is_none());
        assert!(ScoreWindow::from_bytes(b"garbage", 100).is_none());
        assert!(ScoreWindow::from_bytes(&[], 100).is_none());
    }

    #[test]
    fn empty_window_scores_one_and_resize_keeps_newest() {
        let mut w = ScoreWindow::new(4);
        assert_eq!(w.score(), 1.0);
        for v in [false, false, true, true] {
            w.push(v);
        }
        assert_eq!(w.score(), 0.5);
        let r = w.resized(2);
        assert_eq!((r.len(), r.score()), (2, 1.0));
        let r = w.resized(10);
        assert_eq!((r.len(), r.score()), (4, 0.5));
    }
}
