//! Uniform sampling without replacement in O(k): a partial Fisher-Yates shuffle over a virtual
//! array `0..n`, remembering only the positions it has swapped (a sparse map), so drawing k of n
//! costs O(k) time and memory whatever n is. Written here because `rand::seq::index::sample`
//! returns a fixed k up front, while the store needs to keep drawing past expired entries until k
//! live keys are found (still uniform over the live ones).

use hashbrown::HashMap;
use rand::Rng;

/// Draws distinct indices of `0..n` uniformly at random, one at a time.
pub struct PartialShuffle {
    n: usize,
    drawn: usize,
    swapped: HashMap<usize, usize>,
}

impl PartialShuffle {
    /// A shuffle of `0..n`; `expected` sizes the sparse map (the number of draws planned).
    pub fn new(n: usize, expected: usize) -> Self {
        PartialShuffle { n, drawn: 0, swapped: HashMap::with_capacity(expected.min(n)) }
    }

    /// The next index, or `None` once all `n` are drawn.
    #[inline]
    pub fn next_index<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<usize> {
        if self.drawn >= self.n {
            return None;
        }
        let i = self.drawn;
        let j = rng.random_range(i..self.n);
        // value at position p of the virtual array: swapped[p], or p itself
        let vj = *self.swapped.get(&j).unwrap_or(&j);
        if j != i {
            let vi = self.swapped.remove(&i).unwrap_or(i);
            self.swapped.insert(j, vi);
        } else {
            self.swapped.remove(&i);
        }
        self.drawn += 1;
        Some(vj)
    }
}

/// `k` distinct indices of `0..n` (all of them if `k >= n`), uniformly, in O(k).
pub fn sample_indices<R: Rng + ?Sized>(rng: &mut R, n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    let mut s = PartialShuffle::new(n, k);
    (0..k).map(|_| s.next_index(rng).expect("k <= n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn draws_are_distinct_and_in_range() {
        let mut rng = SmallRng::seed_from_u64(7);
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
        let mut rng = SmallRng::seed_from_u64(1);
        let mut v = sample_indices(&mut rng, 500, 500);
        v.sort_unstable();
        assert_eq!(v, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn memory_is_bounded_by_draws() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut s = PartialShuffle::new(1_000_000_000, 100);
        for _ in 0..100 {
            s.next_index(&mut rng).unwrap();
        }
        assert!(s.swapped.len() <= 100);
    }

    /// Chi-square test of uniformity: each index of 0..20 must be drawn equally often when
    /// drawing 5 of 20 many times. 19 degrees of freedom: the 99.9% critical value is 43.8.
    #[test]
    fn uniform_chi_square() {
        let mut rng = SmallRng::seed_from_u64(42);
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
}
