//! Get hits on 1,000,000 keys, every cache timed in turn within each round: healcache, quick_cache,
//! moka and a plain hashbrown map (the floor), uniform and Zipf 0.99 traces; medians over the
//! rounds and the ratios against quick_cache. `cargo bench -p healcache --bench interleaved`
//! (an optional argument sets the number of rounds, default 32).
//!
//! Why beside the criterion bench (`--bench store`): on this project's VM the time of a cache-miss
//! bound loop moves by up to 2x from one process to the next, and criterion times each cache for
//! seconds in a row, so one slow phase can fall on one cache alone. Interleaving short timings
//! (65,536 gets each) puts every cache under the same conditions; the medians drop outliers.
//! What one cache leaves in the CPU caches changes the time of the cache timed next: in a fixed
//! order with quick_cache right after hashbrown (whose keys were allocated beside quick_cache's),
//! quick_cache measured up to 10% faster than in the order healcache, quick_cache, moka,
//! hashbrown. So the rounds cycle through four orders (a Williams square) in which, within a
//! round, each cache follows each other cache exactly once every four rounds.
//! healcache and moka run with a 1 h TTL on every entry (the clock is read on each hit);
//! quick_cache and hashbrown keep no TTL.

mod common;

use common::{filled, median, timed, trace, Caches, N, TRACE};

/// Orders of healcache (0), quick_cache (1), moka (2) and hashbrown (3): each ordered pair of
/// caches is adjacent in exactly one of them.
const ORDERS: [[usize; 4]; 4] = [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]];

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments sets the rounds
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(32).max(1);
    let Caches { keys, hc, moka, qc, hb } = filled();
    println!("get hit, ns per get (median of {rounds} rounds of {TRACE} gets per cache, taken in turn)");
    println!(
        "{:<8} {:>9} {:>11} {:>7} {:>9}   bars: <= 2.5x floor, <= 1x quick_cache, >= 3x faster than moka",
        "trace", "healcache", "quick_cache", "moka", "hashbrown"
    );
    for (name, zipf) in [("uniform", false), ("zipf", true)] {
        let tr = trace(N, TRACE, zipf, 1);
        let mut t: [Vec<f64>; 4] = Default::default();
        for r in 0..rounds {
            for c in ORDERS[r % 4] {
                let ns = match c {
                    0 => timed(&tr, &keys, |k| hc.get(k)),
                    1 => timed(&tr, &keys, |k| qc.get(k)),
                    2 => timed(&tr, &keys, |k| moka.get(k)),
                    _ => timed(&tr, &keys, |k| hb.get(k).copied()),
                };
                t[c].push(ns);
            }
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
