//! In-cache read throughput (Mops/s, summed over threads) at 1, 2 and all available threads, on
//! 10,000 and 1,000,000 resident keys: healcache, quick_cache, moka, 64 `RwLock`-sharded hashbrown
//! maps, and one read-only hashbrown map shared by reference (the ceiling).
//! `cargo bench -p healcache --bench read_scale`; `READ_SCALE_GETS` sets the gets per thread
//! (default 2,000,000), `READ_SCALE_ROUNDS` the rounds (default 5).
//!
//! Keys are the `user:{i:08}` strings of the other get benches, the same for every cache. Each
//! cache holds every key with room for twice as many, so nothing is evicted; every read must hit,
//! and the run stops if one misses (a miss costs a different amount, so a silent miss would
//! change what is measured). healcache and moka run with a 1 h TTL on every entry, as in
//! `--bench interleaved` (the clock is read on each hit); the others keep no TTL, and so does a
//! second healcache row ("healcache, no TTL": no clock read), the like of quick_cache's setup.
//! Each thread reads its own key indices, drawn beforehand from a seeded RNG (the RNG's cost stays
//! out of the timing); every cache reads the same indices. Within a round every cache runs at
//! every thread count in turn, the caches' order rotating from round to round, so a slow phase of
//! this shared VM falls on all of them alike; the table shows medians and the range over rounds.

mod common;

use std::hash::BuildHasher;
use std::hint::black_box;
use std::sync::{Barrier, RwLock};
use std::time::{Duration, Instant};

use common::{keys, median, thousands};
use healcache::Cache;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SIZES: [usize; 2] = [10_000, 1_000_000];
const SHARDS: usize = 64;
const NAMES: [&str; 6] = ["healcache", "healcache, no TTL", "quick_cache", "moka", "64 RwLock maps", "read-only map"];

/// A positive count from the environment, or the default when unset.
fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Err(_) => default,
        Ok(s) => match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => panic!("{name} must be a whole number of at least 1, got {s:?}"),
        },
    }
}

/// The plain sharded-lock design: a hash of the key picks one of 64 `RwLock`ed maps. The shard
/// hash is its own (seeded apart from the maps' hashers), so the key is hashed twice, as it is in
/// such a map built from standard parts.
struct Sharded {
    pick: foldhash::fast::FixedState,
    maps: Vec<RwLock<hashbrown::HashMap<String, u64>>>,
}

impl Sharded {
    fn new() -> Self {
        Sharded {
            pick: foldhash::fast::FixedState::with_seed(0x5eed),
            maps: (0..SHARDS).map(|_| RwLock::new(hashbrown::HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &str) -> &RwLock<hashbrown::HashMap<String, u64>> {
        &self.maps[(self.pick.hash_one(key) % SHARDS as u64) as usize]
    }

    fn insert(&self, key: &str, value: u64) {
        self.shard(key).write().unwrap().insert(key.to_owned(), value);
    }

    fn get(&self, key: &str) -> Option<u64> {
        self.shard(key).read().unwrap().get(key).copied()
    }

    fn len(&self) -> usize {
        self.maps.iter().map(|m| m.read().unwrap().len()).sum()
    }
}

/// One working set held by every cache, with each thread's key indices.
struct Set {
    keys: Vec<String>,
    idx: Vec<Vec<u32>>,
    hc: Cache<u64>,
    hc_plain: Cache<u64>,
    qc: quick_cache::sync::Cache<String, u64>,
    moka: moka::sync::Cache<String, u64>,
    sharded: Sharded,
    ro: hashbrown::HashMap<String, u64>,
}

fn build(n: usize, max_threads: usize, gets: usize) -> Set {
    let keys = keys(n);
    let ttl = Duration::from_secs(3600);
    let cap = 2 * n;
    let hc = Cache::builder().max_entries(cap as u64).ttl(ttl).build().unwrap();
    let hc_plain = Cache::builder().max_entries(cap as u64).build().unwrap();
    let qc = quick_cache::sync::Cache::new(cap);
    let moka = moka::sync::Cache::builder().max_capacity(cap as u64).time_to_live(ttl).build();
    let sharded = Sharded::new();
    let mut ro = hashbrown::HashMap::with_capacity(n);
    for (i, k) in keys.iter().enumerate() {
        hc.set(k, i as u64).unwrap();
        hc_plain.set(k, i as u64).unwrap();
        qc.insert(k.clone(), i as u64);
        moka.insert(k.clone(), i as u64);
        sharded.insert(k, i as u64);
        ro.insert(k.clone(), i as u64);
    }
    moka.run_pending_tasks();
    // every key resident in every cache before anything is timed
    assert_eq!(hc.len(), n, "healcache holds every key");
    assert_eq!(hc.stats().evictions, 0, "healcache evicted nothing");
    assert_eq!(hc_plain.len(), n, "healcache with no TTL holds every key");
    assert_eq!(hc_plain.stats().evictions, 0, "healcache with no TTL evicted nothing");
    assert_eq!(qc.len(), n, "quick_cache holds every key");
    assert_eq!(moka.entry_count(), n as u64, "moka holds every key");
    assert_eq!(sharded.len(), n, "the sharded maps hold every key");
    assert_eq!(ro.len(), n, "the read-only map holds every key");
    let idx = (0..max_threads)
        .map(|t| {
            let mut rng = SmallRng::seed_from_u64((n as u64) << 8 | t as u64);
            (0..gets).map(|_| rng.random_range(0..n as u32)).collect()
        })
        .collect();
    Set { keys, idx, hc, hc_plain, qc, moka, sharded, ro }
}

/// Mops/s over `threads` threads, each reading its own indices, and the hits seen. The threads
/// meet at a barrier once all are spawned; the time runs from the first thread's leaving the
/// barrier to the last thread's end, each taken by the thread itself (a main thread timing the
/// barrier would share 2 cores with the readers and could wake late, shortening the time).
fn run(threads: usize, set: &Set, get: impl Fn(&str) -> Option<u64> + Sync) -> (f64, u64) {
    let barrier = Barrier::new(threads);
    let (keys, get, barrier) = (&set.keys, &get, &barrier);
    let ends: Vec<(Instant, Instant, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = set.idx[..threads]
            .iter()
            .map(|ix| {
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let mut hits = 0u64;
                    for &i in ix {
                        if black_box(get(&keys[i as usize])).is_some() {
                            hits += 1;
                        }
                    }
                    (start, Instant::now(), hits)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = ends.iter().map(|e| e.0).min().unwrap();
    let end = ends.iter().map(|e| e.1).max().unwrap();
    let hits = ends.iter().map(|e| e.2).sum();
    let gets = (threads * set.idx[0].len()) as f64;
    (gets / end.duration_since(start).as_secs_f64() / 1e6, hits)
}

fn main() {
    let gets = env_count("READ_SCALE_GETS", 2_000_000);
    let rounds = env_count("READ_SCALE_ROUNDS", 5);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = vec![1, 2, cores];
    threads.sort_unstable();
    threads.dedup();
    let max_threads = *threads.last().unwrap();
    let sets: Vec<Set> = SIZES.iter().map(|&n| build(n, max_threads, gets)).collect();

    // results[set][cache][thread count]: Mops/s per round
    let mut results = vec![vec![vec![Vec::with_capacity(rounds); threads.len()]; NAMES.len()]; SIZES.len()];
    for r in 0..rounds {
        for (si, set) in sets.iter().enumerate() {
            for j in 0..NAMES.len() {
                let c = (r + j) % NAMES.len();
                for (ti, &t) in threads.iter().enumerate() {
                    let hc = if c == 0 { &set.hc } else { &set.hc_plain };
                    let before = hc.stats();
                    let (mops, hits) = match c {
                        0 => run(t, set, |k| set.hc.get(k)),
                        1 => run(t, set, |k| set.hc_plain.get(k)),
                        2 => run(t, set, |k| set.qc.get(k)),
                        3 => run(t, set, |k| set.moka.get(k)),
                        4 => run(t, set, |k| set.sharded.get(k)),
                        _ => run(t, set, |k| set.ro.get(k).copied()),
                    };
                    assert_eq!(hits, (t * gets) as u64, "{}: every read hits", NAMES[c]);
                    if c <= 1 {
                        let after = hc.stats();
                        assert_eq!(after.hits - before.hits, (t * gets) as u64, "healcache counted every read a hit");
                        assert_eq!(after.misses, before.misses, "healcache counted no miss");
                    }
                    results[si][c][ti].push(mops);
                }
            }
        }
    }

    println!(
        "read throughput, Mops/s summed over threads: median (min-max) of {rounds} rounds, {gets} gets per thread, \
         {cores} available threads"
    );
    println!();
    println!("| keys | threads | {} |", NAMES.join(" | "));
    println!("|---:|---:|{}", "---:|".repeat(NAMES.len()));
    let mut med = vec![vec![vec![0.0; threads.len()]; NAMES.len()]; SIZES.len()];
    for (si, &n) in SIZES.iter().enumerate() {
        for (ti, &t) in threads.iter().enumerate() {
            let cells: Vec<String> = (0..NAMES.len())
                .map(|c| {
                    let v = &mut results[si][c][ti];
                    let m = median(v);
                    med[si][c][ti] = m;
                    format!("{m:.1} ({:.1}-{:.1})", v[0], v[v.len() - 1])
                })
                .collect();
            println!("| {} | {t} | {} |", thousands(n), cells.join(" | "));
        }
    }
    println!();
    let (one, two) = (threads.iter().position(|&t| t == 1).unwrap(), threads.iter().position(|&t| t == 2).unwrap());
    for (si, &n) in SIZES.iter().enumerate() {
        println!(
            "{} keys: healcache 2 threads / 1 thread {:.2}x; at 1 thread, healcache / quick_cache {:.2}x, \
             healcache with no TTL / quick_cache {:.2}x",
            thousands(n),
            med[si][0][two] / med[si][0][one],
            med[si][0][one] / med[si][2][one],
            med[si][1][one] / med[si][2][one]
        );
    }
}
