//! Heap bytes per entry of healcache beside quick_cache, moka and a plain hashbrown map, each
//! holding the same N entries (N = 100,000 and 1,000,000).
//! `cargo bench -p healcache --bench memory` (also `make bench-memory`); prints one table.
//!
//! A counting global allocator (`stats_alloc` around `std::alloc::System`) keeps the bytes
//! currently allocated. For each cache and N the bench reads that count, builds the cache with room
//! for N entries and no TTL (one more healcache row gives every entry a TTL and a grace window, so
//! its shards keep their entries' cold fields), reads the count again ("built empty"), inserts N
//! distinct keys of exactly 16 bytes (`k:{i:014}`) with 64-byte `Vec<u8>` values (`vec![i as u8;
//! 64]`), looks every key up and stops if one is missing or holds another value, reads the count a
//! last time and drops the cache. Keys and values are made inside that region the same way for
//! every cache: a `String` of capacity 16 and a `Vec<u8>` of capacity 64, moved into the cache
//! where its API takes them by value (quick_cache, moka, the map); healcache's `set` takes `&str`
//! and copies the key into its slot (inline, keys of up to 24 bytes), so the `String` is freed at
//! once. Values read back by `get` are clones dropped at once; nothing the bench holds is alive
//! when the count is read, so the difference is what the cache holds. No entry may be evicted:
//! healcache holds exactly N with `max_entries(N)` and moka with `max_capacity(N)`; quick_cache
//! splits its bound over shards and evicts from a shard that gets more than its share before the
//! whole holds N, so it gets a weight bound of 2N (with `estimated_items_capacity` N); the map is
//! made `with_capacity(N)`. moka applies writes from a buffer: `run_pending_tasks()` runs before
//! every reading of the count. Each cache is first built, filled with 1,000 entries and dropped
//! once, so one-time allocations of a crate (statics, thread-locals) are not charged to a row.
//!
//! Reading the table: "bytes/entry" is (bytes after filling - bytes before building) / N, the
//! pre-allocated tables included; "beyond payload" subtracts the 80 payload bytes (16 key bytes +
//! 64 value bytes). The 24-byte `Vec` header of each value (pointer, capacity, length) is counted
//! as overhead for every cache alike, as is the 24-byte `String` header of the caches that store
//! a `String` key. "built empty" is what the cache allocated before its first insert, per entry
//! of N. The counter sees the sizes asked of the allocator, not the allocator's own bookkeeping
//! and rounding (glibc's malloc adds about 8-16 bytes to every block), which favours no design
//! but understates the real footprint of those that make more, smaller allocations per entry.

mod common;

use std::alloc::System;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::thousands;
use healcache::Cache;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SIZES: [usize; 2] = [100_000, 1_000_000];
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 64;
const PAYLOAD: usize = KEY_BYTES + VALUE_BYTES;
const WARM_UP: usize = 1_000;

/// Bytes currently allocated. `stats_alloc` adds a `realloc`'s growth to the allocated bytes and
/// its shrinking to the deallocated ones, so the difference is the live total.
fn live() -> isize {
    let s = GLOBAL.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

/// Key `i`: exactly 16 bytes in a `String` of capacity 16, the same for every cache.
fn key(i: usize) -> String {
    let mut k = String::with_capacity(KEY_BYTES);
    write!(k, "k:{i:014}").unwrap();
    debug_assert_eq!((k.len(), k.capacity()), (KEY_BYTES, KEY_BYTES));
    k
}

fn value(i: usize) -> Vec<u8> {
    vec![i as u8; VALUE_BYTES]
}

fn value_ok(i: usize, v: &[u8]) -> bool {
    v.len() == VALUE_BYTES && v.iter().all(|&b| b == i as u8)
}

/// One cache under measurement: how to build it for N entries, insert, read back, and settle.
trait Subject: Sized {
    const NAME: &'static str;
    fn build(n: usize) -> Self;
    fn put(&mut self, key: String, value: Vec<u8>);
    /// Whether `key` holds value `i` (one read; a clone of the value, dropped here).
    fn holds(&self, key: &str, i: usize) -> bool;
    /// Applies buffered work before the count is read (moka only).
    fn settle(&self) {}
}

impl Subject for Cache<Vec<u8>> {
    const NAME: &'static str = "healcache";
    fn build(n: usize) -> Self {
        Cache::builder().max_entries(n as u64).build().unwrap()
    }
    fn put(&mut self, key: String, value: Vec<u8>) {
        self.set(&key, value).unwrap();
    }
    fn holds(&self, key: &str, i: usize) -> bool {
        self.get(key).is_some_and(|v| value_ok(i, &v))
    }
}

/// healcache with a TTL and a grace window on every entry: each shard then keeps its entries'
/// cold fields (when to remove, a load's duration, the write time), 24 bytes more per entry.
struct Graced(Cache<Vec<u8>>);

impl Subject for Graced {
    const NAME: &'static str = "healcache, TTL and grace window";
    fn build(n: usize) -> Self {
        let hour = Duration::from_secs(3600);
        Graced(Cache::builder().max_entries(n as u64).ttl(hour).grace(hour).build().unwrap())
    }
    fn put(&mut self, key: String, value: Vec<u8>) {
        self.0.set(&key, value).unwrap();
    }
    fn holds(&self, key: &str, i: usize) -> bool {
        self.0.get(key).is_some_and(|v| value_ok(i, &v))
    }
}

impl Subject for quick_cache::sync::Cache<String, Vec<u8>> {
    const NAME: &'static str = "quick_cache";
    fn build(n: usize) -> Self {
        // room for N in every shard: a weight bound of N evicts from the shards above their share
        quick_cache::sync::Cache::with(n, 2 * n as u64, Default::default(), Default::default(), Default::default())
    }
    fn put(&mut self, key: String, value: Vec<u8>) {
        self.insert(key, value);
    }
    fn holds(&self, key: &str, i: usize) -> bool {
        self.get(key).is_some_and(|v| value_ok(i, &v))
    }
}

impl Subject for moka::sync::Cache<String, Vec<u8>> {
    const NAME: &'static str = "moka";
    fn build(n: usize) -> Self {
        moka::sync::Cache::builder().max_capacity(n as u64).build()
    }
    fn put(&mut self, key: String, value: Vec<u8>) {
        self.insert(key, value);
    }
    fn holds(&self, key: &str, i: usize) -> bool {
        self.get(key).is_some_and(|v| value_ok(i, &v))
    }
    fn settle(&self) {
        self.run_pending_tasks();
    }
}

impl Subject for hashbrown::HashMap<String, Vec<u8>> {
    const NAME: &'static str = "hashbrown map";
    fn build(n: usize) -> Self {
        hashbrown::HashMap::with_capacity(n)
    }
    fn put(&mut self, key: String, value: Vec<u8>) {
        self.insert(key, value);
    }
    fn holds(&self, key: &str, i: usize) -> bool {
        self.get(key).is_some_and(|v| value_ok(i, v))
    }
}

struct Row {
    name: &'static str,
    n: usize,
    /// Live bytes the built, empty cache added.
    empty: isize,
    /// Live bytes the filled cache added.
    full: isize,
    /// Live bytes left once the cache was dropped (0 unless something outlives it).
    left: isize,
}

impl Row {
    fn per_entry(&self) -> f64 {
        self.full as f64 / self.n as f64
    }

    fn overhead(&self) -> f64 {
        self.per_entry() - PAYLOAD as f64
    }
}

/// Builds, fills, checks and measures one cache of `n` entries, then drops it.
fn measure<C: Subject>(n: usize) -> Row {
    let base = live();
    let mut cache = C::build(n);
    cache.settle();
    let empty = live() - base;
    for i in 0..n {
        cache.put(key(i), value(i));
    }
    cache.settle();
    let present = (0..n).filter(|&i| cache.holds(&key(i), i)).count();
    assert!(
        present == n,
        "{}: only {present} of {n} keys hold their value after {n} inserts (an entry was evicted or lost), \
         so bytes per held entry cannot be measured",
        C::NAME
    );
    // the reads may have queued work (moka's read buffer): apply it before counting
    cache.settle();
    let full = live() - base;
    drop(cache);
    Row { name: C::NAME, n, empty, full, left: live() - base }
}

fn rows_for(n: usize, rows: &mut Vec<Row>) {
    rows.push(measure::<Cache<Vec<u8>>>(n));
    rows.push(measure::<Graced>(n));
    rows.push(measure::<quick_cache::sync::Cache<String, Vec<u8>>>(n));
    rows.push(measure::<moka::sync::Cache<String, Vec<u8>>>(n));
    rows.push(measure::<hashbrown::HashMap<String, Vec<u8>>>(n));
}

fn main() {
    let start = Instant::now();
    // one-time allocations of each crate land here, not in a measured row
    rows_for(WARM_UP, &mut Vec::new());
    let mut rows = Vec::with_capacity(SIZES.len() * 5);
    for n in SIZES {
        rows_for(n, &mut rows);
    }
    let secs = start.elapsed().as_secs_f64();

    println!(
        "heap bytes per entry: {KEY_BYTES}-byte keys, {VALUE_BYTES}-byte Vec<u8> values, payload {PAYLOAD} bytes \
         (the 24-byte Vec header counts as overhead); no TTL unless named, nothing evicted"
    );
    println!();
    println!("| cache | N | bytes/entry | beyond payload | built empty (bytes/entry) |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            r.name,
            thousands(r.n),
            r.per_entry(),
            r.overhead(),
            r.empty as f64 / r.n as f64
        );
    }
    println!();
    for n in SIZES {
        let find = |name: &str| rows.iter().find(|r| r.n == n && r.name == name).unwrap();
        let (hc, qc) = (find("healcache"), find("quick_cache"));
        println!(
            "N = {}: healcache overhead / quick_cache overhead {:.2}x ({:.1} / {:.1} bytes per entry)",
            thousands(n),
            hc.overhead() / qc.overhead(),
            hc.overhead(),
            qc.overhead()
        );
    }
    for r in rows.iter().filter(|r| r.left != 0) {
        println!("note: {} at N = {} left {} bytes allocated after it was dropped", r.name, thousands(r.n), r.left);
    }
    println!("ran in {secs:.1} s");
}
