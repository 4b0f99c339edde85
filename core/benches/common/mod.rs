#![allow(dead_code)]
//! Shared data of the benchmarks: 1,000,000 keys and access traces (uniform and Zipf 0.99).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

pub const N: usize = 1_000_000;
pub const TRACE: usize = 1 << 16;

pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user:{i:08}")).collect()
}

/// Indices into the key set: uniform, or Zipf(0.99) with a random rank-to-key mapping.
pub fn trace(n: usize, len: usize, zipf: bool, seed: u64) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(seed);
    if !zipf {
        return (0..len).map(|_| rng.random_range(0..n)).collect();
    }
    let z = Zipf::new(n as f64, 0.99).unwrap();
    // scatter ranks over the key space so hot keys are not neighbours
    let mult = 2_654_435_761usize;
    (0..len).map(|_| ((z.sample(&mut rng) as usize - 1).wrapping_mul(mult)) % n).collect()
}
