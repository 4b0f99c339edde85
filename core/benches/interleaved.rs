//! Get hits on 1,000,000 keys, every cache timed in turn within each round: healcache, quick_cache,
//! moka and a plain hashbrown map (the floor), uniform and Zipf 0.99 traces; medians over the
//! rounds and the ratios against issue 3's bars. `cargo bench -p healcache --bench interleaved`
//! (an optional argument sets the number of rounds, default 30).
//!
//! Why beside the criterion bench (`--bench store`): on this project's VM the time of a cache-miss
//! bound loop moves by up to 2x from one process to the next, and criterion times each cache for
//! seconds in a row, so one slow phase can fall on one cache alone. Interleaving short timings
//! (65,536 gets each) puts every cache under the same conditions; the medians drop outliers.
//! healcache and moka run with a 1 h TTL on every entry (the clock is read on each hit);
//! quick_cache and hashbrown keep no TTL.

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{filled, trace, Caches, N, TRACE};

/// Nanoseconds per get over the trace (a generic, so each cache's loop is its own code).
fn timed<R>(tr: &[usize], keys: &[String], get: impl Fn(&str) -> R) -> f64 {
    let t = Instant::now();
    for &i in tr {
        black_box(get(&keys[i]));
    }
    t.elapsed().as_nanos() as f64 / TRACE as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments sets the rounds
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(30).max(1);
    let Caches { keys, hc, moka, qc, hb } = filled();
    println!("get hit, ns per get (median of {rounds} rounds of {TRACE} gets per cache, taken in turn)");
    println!(
        "{:<8} {:>9} {:>11} {:>7} {:>9}   bars: <= 2.5x floor, <= 1x quick_cache, >= 3x faster than moka",
        "trace", "healcache", "quick_cache", "moka", "hashbrown"
    );
    for (name, zipf) in [("uniform", false), ("zipf", true)] {
        let tr = trace(N, TRACE, zipf, 1);
        let mut t: [Vec<f64>; 4] = Default::default();
        for _ in 0..rounds {
            t[0].push(timed(&tr, &keys, |k| hc.get(k)));
            t[1].push(timed(&tr, &keys, |k| qc.get(k)));
            t[2].push(timed(&tr, &keys, |k| moka.get(k)));
            t[3].push(timed(&tr, &keys, |k| hb.get(k).copied()));
        }
        let [h, q, m, f] = t.map(|mut v| median(&mut v));
        println!(
            "{name:<8} {h:>9.0} {q:>11.0} {m:>7.0} {f:>9.0}   {:.2}x floor, {:.2}x quick_cache, {:.2}x faster than moka",
            h / f,
            h / q,
            m / h
        );
    }
}
