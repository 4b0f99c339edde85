#![allow(dead_code)]
//! Shared data of the benchmarks: 1,000,000 keys and access traces (uniform and Zipf 0.99).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::hint::black_box;
use std::time::{Duration, Instant};

use healcache::Cache;

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

/// Nanoseconds per get over the trace (a generic, so each cache's loop is its own code).
pub fn timed<R>(tr: &[usize], keys: &[String], get: impl Fn(&str) -> R) -> f64 {
    let t = Instant::now();
    for &i in tr {
        black_box(get(&keys[i]));
    }
    t.elapsed().as_nanos() as f64 / tr.len() as f64
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The four caches of the get-hit benchmarks, each filled with the same 1,000,000 keys (healcache and
/// moka with a 1 h TTL on every entry).
pub struct Caches {
    pub keys: Vec<String>,
    pub hc: Cache<u64>,
    pub moka: moka::sync::Cache<String, u64>,
    pub qc: quick_cache::sync::Cache<String, u64>,
    pub hb: hashbrown::HashMap<String, u64>,
}

pub fn filled() -> Caches {
    let keys = keys(N);
    let hc = Cache::builder().max_entries(N as u64).ttl(Duration::from_secs(3600)).build().unwrap();
    let moka = moka::sync::Cache::builder().max_capacity(N as u64).time_to_live(Duration::from_secs(3600)).build();
    let qc = quick_cache::sync::Cache::new(N);
    let mut hb = hashbrown::HashMap::with_capacity(N);
    for (i, k) in keys.iter().enumerate() {
        hc.set(k, i as u64).unwrap();
        moka.insert(k.clone(), i as u64);
        qc.insert(k.clone(), i as u64);
        hb.insert(k.clone(), i as u64);
    }
    moka.run_pending_tasks();
    Caches { keys, hc, moka, qc, hb }
}

/// `n` with a comma between each group of three digits, as the tables print counts.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
