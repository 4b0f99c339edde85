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
