//! Self-healing under load: a healing interval over 1,000,000 keys at the default sample rate
//! (1%: 10,000 keys) against an in-process source, run back to back on one thread, while another
//! thread reads (Zipf 0.99) and times each get. Prints get latency percentiles with healing off
//! and on, and the interval's duration: `cargo bench -p healcache --bench healing`.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{keys, trace, N};
use futures::executor::block_on;
use healcache::{Cache, FnSource, Healer, HealingConfig, SourceAnswer, SourceError};

const READS: usize = 3_000_000;

fn percentiles(mut v: Vec<u32>) -> (u32, u32, u32) {
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    (p(0.5), p(0.99), p(0.999))
}

fn reads(cache: &Cache<u64>, keys: &[String], tr: &[usize]) -> Vec<u32> {
    let mut lat = Vec::with_capacity(READS);
    for n in 0..READS {
        let k = &keys[tr[n % tr.len()]];
        let t = Instant::now();
        std::hint::black_box(cache.get(k));
        lat.push(t.elapsed().as_nanos() as u32);
    }
    lat
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let keys = keys(N);
    let cache: Cache<u64> = Cache::builder().max_entries(2 * N as u64).ttl(Duration::from_secs(3600)).build().unwrap();
    let db: Arc<HashMap<String, u64>> = Arc::new(keys.iter().enumerate().map(|(i, k)| (k.clone(), i as u64)).collect());
    for (i, k) in keys.iter().enumerate() {
        cache.set(k, i as u64).unwrap();
    }
    let tr = trace(N, 1 << 20, true, 3);

    // warm up, then healing off
    reads(&cache, &keys, &tr);
    let off = percentiles(reads(&cache, &keys, &tr));

    let healer = Healer::new(cache.clone(), HealingConfig { enabled: true, ..HealingConfig::default() }).unwrap();
    let src = db.clone();
    healer
        .register_source(
            "user:",
            FnSource(move |k: &str| {
                let a = src.get(k).map_or(SourceAnswer::NotFound, |v| SourceAnswer::Value(*v));
                futures::future::ready(Ok::<_, SourceError>(a))
            }),
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let bg = {
        let (healer, stop) = (healer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut durations = Vec::new();
            while !stop.load(Relaxed) {
                let t = Instant::now();
                let r = block_on(healer.run_interval());
                assert_eq!(r.verified, 10_000);
                durations.push(t.elapsed());
            }
            durations
        })
    };
    let on = percentiles(reads(&cache, &keys, &tr));
    stop.store(true, Relaxed);
    let mut durations = bg.join().unwrap();
    durations.sort();
    let med = durations[durations.len() / 2];

    println!("get latency on 1,000,000 keys (Zipf 0.99), {READS} timed reads per row, ns (timer overhead included)\n");
    println!("{:<40} {:>8} {:>8} {:>8}", "", "p50", "p99", "p99.9");
    println!("{:<40} {:>8} {:>8} {:>8}", "healing off", off.0, off.1, off.2);
    println!(
        "{:<40} {:>8} {:>8} {:>8}",
        format!("healing on ({} intervals back to back)", durations.len()),
        on.0,
        on.1,
        on.2
    );
    println!("\np99 with healing / p99 without: {:.2}x (bar: at most 1.2x)", on.1 as f64 / off.1 as f64);
    println!("one healing interval (10,000 of 1,000,000 keys verified): median {med:.2?}");
    println!("samples verified during the run: {}", healer.stats().total_sampled);
}
