//! Inserts of 1,000,000 fresh keys into an empty cache (the fill `make bench-node` times as
//! "set (insert)"), then 1,000,000 overwrites of live keys in uniform order (its "set
//! (overwrite)"), every cache timed in turn within each round: healcache (1 h TTL on every
//! entry, capacity the keys, as the Node bench configures it), quick_cache (capacity the
//! keys) and a plain hashbrown map (the floor, sized up front); medians over the rounds and the
//! ratios against quick_cache. `cargo bench -p healcache --bench insert` (an optional argument sets
//! the number of rounds, default 12; `-- healcache` times healcache alone, for a profiler).
//!
//! Interleaved rather than criterion for the reason `--bench interleaved` gives: on this
//! project's VM a cache-miss bound loop moves by up to 2x from one process to the next, so each
//! cache is timed under the same conditions, round after round, in orders that rotate (each
//! ordered pair of caches adjacent equally often), and the medians drop outliers. Building the
//! empty cache and dropping the full one are outside the timing.

mod common;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use common::{keys, median, trace, N};
use healcache::Cache;

/// Orders of healcache (0), quick_cache (1) and hashbrown (2): each ordered pair of caches is
/// adjacent in exactly two of them (a Williams design for three).
const ORDERS: [[usize; 3]; 6] = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 2, 1], [1, 0, 2]];

/// Nanoseconds per insert of every key into `cache` (made before the clock starts), then per
/// overwrite of a live key along `order` (uniform, as `make bench-node` overwrites); the full
/// cache is dropped after the clock stops.
fn fill<C>(keys: &[String], order: &[usize], cache: C, insert: impl Fn(&C, &String, u64)) -> [f64; 2] {
    let t = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        insert(&cache, k, i as u64);
    }
    let fill = t.elapsed().as_nanos() as f64 / keys.len() as f64;
    let t = Instant::now();
    for &i in order {
        insert(&cache, &keys[i], i as u64);
    }
    let over = t.elapsed().as_nanos() as f64 / order.len() as f64;
    drop(cache);
    [fill, over]
}

/// The median, least and greatest of `v`.
fn spread(mut v: Vec<f64>) -> [f64; 3] {
    if v.is_empty() {
        return [f64::NAN; 3];
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    [median(&mut v), lo, hi]
}

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments sets the rounds
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(12).max(1);
    let alone = std::env::args().any(|a| a == "healcache");
    let keys = keys(N);
    let order = trace(N, N, false, 3);
    let cap = N as u64;
    println!("ns per write, median of {rounds} rounds of {N} keys per cache, taken in turn (least-greatest)");
    let mut t: [[Vec<f64>; 2]; 3] = Default::default();
    for r in 0..rounds {
        for c in ORDERS[r % ORDERS.len()] {
            if alone && c != 0 {
                continue;
            }
            let ns = match c {
                0 => {
                    let hc = Cache::builder().max_entries(cap).ttl(Duration::from_secs(3600)).build().unwrap();
                    fill(&keys, &order, hc, |c, k, v| {
                        c.set(k, v).unwrap();
                    })
                }
                1 => fill(&keys, &order, quick_cache::sync::Cache::new(N), |c, k, v| c.insert(k.clone(), v)),
                _ => fill(&keys, &order, RefCell::new(hashbrown::HashMap::with_capacity(N)), |c, k, v| {
                    c.borrow_mut().insert(k.clone(), v);
                }),
            };
            t[c][0].push(ns[0]);
            t[c][1].push(ns[1]);
        }
    }
    let [h, q, f] = t.map(|[a, b]| [spread(a), spread(b)]);
    println!("{:<28} {:>15} {:>15} {:>15}", "", "healcache", "quick_cache", "hashbrown");
    for (j, what) in ["insert into an empty cache", "overwrite, uniform"].iter().enumerate() {
        let cell = |x: [f64; 3]| format!("{:.0} ({:.0}-{:.0})", x[0], x[1], x[2]);
        println!(
            "{what:<28} {:>15} {:>15} {:>15}   {:.2}x quick_cache, {:.2}x floor",
            cell(h[j]),
            cell(q[j]),
            cell(f[j]),
            h[j][0] / q[j][0],
            h[j][0] / f[j][0]
        );
    }
}
