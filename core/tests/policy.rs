//! What the eviction policy keeps on the access patterns that set policies apart (the hit-ratio
//! bench, `cargo bench -p healcache --bench hit_ratio`, measures them against moka, quick_cache,
//! an exact LRU and the optimum): a loop slightly larger than the cache, where recency keeps
//! nothing and the optimum keeps a fixed subset, and a working set that replaces it, which must
//! still get in.

use healcache::Cache;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A read-through request: a hit, or a miss that stores the key.
fn request(c: &Cache<u32>, key: &str) -> bool {
    c.get(key).is_some() || {
        c.set(key, 0).unwrap();
        false
    }
}

/// Hits among `keys`, counted over the requests from `from` on.
fn hits<'a>(c: &Cache<u32>, keys: impl Iterator<Item = &'a String>, from: usize) -> (usize, usize) {
    let (mut hit, mut counted) = (0, 0);
    for (n, k) in keys.enumerate() {
        let h = request(c, k);
        if n >= from {
            counted += 1;
            hit += usize::from(h);
        }
    }
    (hit, counted)
}

fn cache() -> Cache<u32> {
    Cache::builder().max_entries(1000).shards(2).seed(1).build().unwrap()
}

/// 1,100 keys read in turn over a cache of 1,000: an LRU never hits, the optimum keeps 1,000 of
/// them for good (10 hits in 11). Admitting every key that comes back from the ghost swaps one
/// looped key for another and kept about 0.85; refusing them keeps a fixed subset.
#[test]
fn a_loop_slightly_larger_than_the_cache_keeps_a_fixed_subset() {
    let keys: Vec<String> = (0..1100).map(|i| format!("loop:{i}")).collect();
    let c = cache();
    let (hit, n) = hits(&c, keys.iter().cycle().take(1100 * 300), 1100 * 150);
    let ratio = hit as f64 / n as f64;
    assert!(ratio >= 0.90, "hit ratio {ratio:.4} on the loop (optimum 0.9091)");
}

/// After the loop, 500 new keys read at random: they fit, and must displace the looped keys the
/// cache learnt to keep within a few samples of the policy's climber (the drop in hits tells it
/// the workload changed: without that turn it took twice as long, 0.76 of the first 50,000
/// reads).
#[test]
fn a_new_working_set_gets_in_after_a_loop() {
    let looped: Vec<String> = (0..1100).map(|i| format!("loop:{i}")).collect();
    let c = cache();
    hits(&c, looped.iter().cycle().take(1100 * 200), 0);
    let fresh: Vec<String> = (0..500).map(|i| format!("new:{i}")).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let reads: Vec<&String> = (0..150_000).map(|_| &fresh[rng.random_range(0..fresh.len())]).collect();
    let (hit, n) = hits(&c, reads[..50_000].iter().copied(), 0);
    let soon = hit as f64 / n as f64;
    assert!(soon >= 0.85, "hit ratio {soon:.4} over the first 50,000 reads of the new working set");
    let (hit, n) = hits(&c, reads[50_000..].iter().copied(), 0);
    let then = hit as f64 / n as f64;
    assert!(then >= 0.99, "hit ratio {then:.4} on the new working set, once learnt");
}
