//! Two builds of healcache in one process: `bench/pair/run.sh REV_A [REV_B]` (see there).
//!
//! Both builds and quick_cache are filled with the same 1,000,000 keys (1 h TTL for healcache), then
//! timed in turn, 65,536 gets at a time, in a rotating order; it prints the medians and, per round,
//! the ratio of build b's time to build a's (its median is the figure to compare builds by: both
//! ran in the same process, under the same conditions, within milliseconds of each other).

// the benchmarks' shared keys, traces and timing loop; `healcache` there is build a
extern crate hc_a as healcache;
#[path = "../../core/benches/common/mod.rs"]
mod common;

use common::{keys, median, timed, trace, N, TRACE};
use std::time::Duration;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(42).max(1);
    let keys = keys(N);
    let ttl = Duration::from_secs(3600);
    let a: hc_a::Cache<u64> = hc_a::Cache::builder().max_entries(N as u64).ttl(ttl).build().unwrap();
    let b: hc_b::Cache<u64> = hc_b::Cache::builder().max_entries(N as u64).ttl(ttl).build().unwrap();
    let qc = quick_cache::sync::Cache::new(N);
    for (i, k) in keys.iter().enumerate() {
        a.set(k, i as u64).unwrap();
        b.set(k, i as u64).unwrap();
        qc.insert(k.clone(), i as u64);
    }
    println!("get hit, ns per get (median of {rounds} rounds of {TRACE} gets per cache, taken in turn)");
    for (name, zipf) in [("uniform", false), ("zipf", true)] {
        let tr = trace(N, TRACE, zipf, 1);
        let mut t: [Vec<f64>; 3] = Default::default();
        let mut ratio = Vec::new();
        for r in 0..rounds {
            let mut x = [0.0; 3];
            for c in (0..3).map(|j| (j + r) % 3) {
                x[c] = match c {
                    0 => timed(&tr, &keys, |k| a.get(k)),
                    1 => timed(&tr, &keys, |k| b.get(k)),
                    _ => timed(&tr, &keys, |k| qc.get(k)),
                };
                t[c].push(x[c]);
            }
            ratio.push(x[1] / x[0]);
        }
        let [ma, mb, mq] = t.map(|mut v| median(&mut v));
        println!(
            "{name:<8} a {ma:6.1}  b {mb:6.1}  quick_cache {mq:6.1}   a/qc {:.3}  b/qc {:.3}   b/a (paired) {:.3}",
            ma / mq,
            mb / mq,
            median(&mut ratio)
        );
    }
}
