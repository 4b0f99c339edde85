//! Hit ratio on a Zipf 0.99 trace over 1,000,000 keys, at cache sizes of 1% and 10% of the key
//! space, for healcache (sampled LFU), moka (TinyLFU) and quick_cache (S3-FIFO/CLOCK-Pro style),
//! in the same run: `cargo bench -p healcache --bench hit_ratio`. A miss inserts the key, as a
//! read-through cache does. Also a "scan" row: the Zipf trace with one-hit keys mixed in.

#[path = "common/mod.rs"]
mod common;

use common::{keys, trace, N};
use healcache::Cache;

const REQUESTS: usize = 4_000_000;

fn run(name: &str, cap: usize, tr: &[usize], keys: &[String], scan_every: usize) -> [f64; 3] {
    let hc: Cache<u32> = Cache::builder().max_entries(cap as u64).seed(1).build().unwrap();
    let moka: moka::sync::Cache<String, u32> = moka::sync::Cache::new(cap as u64);
    let qc: quick_cache::sync::Cache<String, u32> = quick_cache::sync::Cache::new(cap);
    let mut hits = [0usize; 3];
    let mut total = 0usize;
    let mut scan = 0usize;
    for (n, &i) in tr.iter().enumerate() {
        let owned;
        let k: &str = if scan_every > 0 && n % scan_every == 0 {
            scan += 1;
            owned = format!("scan:{scan}");
            &owned
        } else {
            &keys[i]
        };
        let warm = n >= tr.len() / 4;
        total += usize::from(warm);
        if hc.get(k).is_some() {
            hits[0] += usize::from(warm);
        } else {
            hc.set(k, 0).unwrap();
        }
        if moka.get(k).is_some() {
            hits[1] += usize::from(warm);
        } else {
            moka.insert(k.to_string(), 0);
        }
        if qc.get(k).is_some() {
            hits[2] += usize::from(warm);
        } else {
            qc.insert(k.to_string(), 0);
        }
    }
    let r = hits.map(|h| h as f64 / total as f64);
    println!("{name:<28} {:>10} {:>10.4} {:>10.4} {:>12.4}", cap, r[0], r[1], r[2]);
    r
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this file too, so keep it quick there
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let keys = keys(N);
    let tr = trace(N, REQUESTS, true, 42);
    println!("Hit ratio, Zipf 0.99 over {N} keys, {REQUESTS} requests (first quarter is warm-up)\n");
    println!("{:<28} {:>10} {:>10} {:>10} {:>12}", "trace", "capacity", "healcache", "moka", "quick_cache");
    for cap in [N / 100, N / 10] {
        run("zipf 0.99", cap, &tr, &keys, 0);
        run("zipf 0.99 + 25% one-hit scan", cap, &tr, &keys, 4);
    }
}
