//! The count and weight bounds hold under the eviction policy whatever the operations (P5):
//! random inserts (light and heavy, with and without a TTL), reads (which move entries between
//! the policy's queues), removals, overwrites that grow or shrink an entry, expiry on a manual
//! clock and purges, over one or several shards.

use std::time::Duration;

use healcache::{Cache, ManualClock};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Key, value length, TTL in ms.
    Set(u16, u16, Option<u16>),
    Get(u16),
    Remove(u16),
    Advance(u16),
    Purge,
}

fn op(keys: u16, heaviest: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..keys, 0..heaviest, proptest::option::of(1u16..500)).prop_map(|(k, w, t)| Op::Set(k, w, t)),
        // light entries mostly: heavy ones alone would keep every shard nearly empty
        3 => (0..keys, 0u16..8, proptest::option::of(1u16..500)).prop_map(|(k, w, t)| Op::Set(k, w, t)),
        6 => (0..keys).prop_map(Op::Get),
        1 => (0..keys).prop_map(Op::Remove),
        1 => (0u16..300).prop_map(Op::Advance),
        1 => Just(Op::Purge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn count_and_weight_bounds_hold(
        shards in prop_oneof![Just(1usize), Just(2), Just(4)],
        max_entries in 4u64..64,
        max_bytes in 64u64..2_000,
        ops in proptest::collection::vec(op(200, 600), 1..600),
    ) {
        let clock = ManualClock::new();
        let c: Cache<Vec<u8>> = Cache::builder()
            .max_entries(max_entries.max(shards as u64))
            .max_bytes(max_bytes)
            .shards(shards)
            .weigher(|v: &Vec<u8>| v.len() as u64)
            .clock(clock.clone())
            .seed(9)
            .build()
            .unwrap();
        let max_entries = max_entries.max(shards as u64);
        for op in ops {
            match op {
                Op::Set(k, w, ttl) => {
                    let ttl = ttl.map(|t| Duration::from_millis(t as u64));
                    let key = format!("k{k}");
                    // only an entry heavier than the whole budget (key included) is refused
                    let fits = c.set_with_ttl(&key, vec![0; w as usize], ttl).is_ok();
                    prop_assert_eq!(fits, w as u64 + key.len() as u64 <= max_bytes);
                }
                Op::Get(k) => {
                    c.get(&format!("k{k}"));
                }
                Op::Remove(k) => {
                    c.remove(&format!("k{k}"));
                }
                Op::Advance(ms) => clock.advance(Duration::from_millis(ms as u64)),
                Op::Purge => {
                    c.purge_expired();
                }
            }
            let s = c.stats();
            prop_assert!(s.entries <= max_entries, "{} entries over the bound {}", s.entries, max_entries);
            prop_assert!(s.weight <= max_bytes, "weight {} over the budget {}", s.weight, max_bytes);
            prop_assert_eq!(s.entries as usize, c.len());
        }
    }
}

/// A cache sized for N entries holds N, over any number of shards (P5: the bound is the one the
/// user set, not a share per shard): N distinct keys written into a cache of N all stay, and more
/// keys keep it at exactly N.
#[test]
fn a_cache_of_n_entries_holds_n() {
    for (n, shards) in [(100_000u64, None), (10_000, Some(64)), (1_000, Some(8)), (64, Some(64))] {
        let mut b = Cache::<u64>::builder().max_entries(n).seed(3);
        if let Some(s) = shards {
            b = b.shards(s);
        }
        let c = b.build().unwrap();
        for i in 0..n {
            c.set(&format!("key:{i}"), i).unwrap();
        }
        let s = c.stats();
        assert_eq!((s.entries, s.evictions), (n, 0), "{n} keys into a cache of {n} ({shards:?} shards)");
        for i in n..3 * n {
            c.set(&format!("key:{i}"), i).unwrap();
            assert!(c.len() as u64 <= n);
        }
        let s = c.stats();
        assert_eq!((s.entries, s.evictions), (n, 2 * n), "{n} more keys than a cache of {n} holds");
    }
}

/// A host whose calls hand back an awaitable checks their arguments when called, through the
/// core's own checks: `check_fetch` and `check_warm` refuse what the calls would, and accept what
/// they would.
#[test]
fn the_read_through_and_warm_checks_refuse_what_the_calls_refuse() {
    use healcache::{FetchOptions, Timer, Warm};
    struct Never;
    impl Timer for Never {
        fn sleep(&self, _: Duration) -> futures::future::BoxFuture<'static, ()> {
            Box::pin(futures::future::pending())
        }
    }
    let c = Cache::<u64>::builder().timer(Never).load_timeout(Duration::from_secs(1)).build().unwrap();
    let field = |r: healcache::Result<()>| match r {
        Err(healcache::Error::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let over = FetchOptions { negative_ttl: Some(Duration::from_secs(61)), ..FetchOptions::default() };
    assert_eq!(field(c.check_fetch("k", &over, &[])), "negative_ttl");
    let at = FetchOptions { negative_ttl: Some(Duration::from_secs(60)), ..FetchOptions::default() };
    assert!(c.check_fetch("k", &at, &[]).is_ok(), "at max_negative_ttl");
    let soft = FetchOptions { soft_timeout: Some(Duration::from_secs(1)), ..FetchOptions::default() };
    assert_eq!(field(c.check_fetch("k", &soft, &[])), "soft_timeout");
    assert_eq!(field(c.check_fetch("k", &FetchOptions::default(), &[""])), "tags");
    assert!(c.check_fetch("k", &FetchOptions::default(), &["t"; 16]).is_ok(), "16 tags");
    assert_eq!(field(c.check_fetch("k", &FetchOptions::default(), &["t"; 17])), "tags");
    assert_eq!(c.check_fetch(&"k".repeat(4097), &FetchOptions::default(), &[]).unwrap_err().code(), "KeyTooLong");
    let warm = |w: Warm| c.check_warm(&w).map(|_| ());
    assert_eq!(field(warm(Warm { concurrency: 0, ..Warm::default() })), "concurrency");
    assert_eq!(field(warm(Warm { min_share: 2.0, ..Warm::default() })), "min_share");
    assert_eq!(field(warm(Warm { max_keys: 0, ..Warm::default() })), "max_keys");
    assert_eq!(c.check_warm(&Warm::default()).unwrap(), 100, "the default batch");
    assert_eq!(c.stats().loads, 0);
}

/// `reserved_bytes` is the room a cache makes up front: its capacity's slots (at least a byte
/// each), the same before and after a write, and more for a larger capacity.
#[test]
fn reserved_bytes_grow_with_the_capacity_made_up_front() {
    let small = Cache::<u64>::builder().max_entries(1_000).build().unwrap();
    let large = Cache::<u64>::builder().max_entries(100_000).build().unwrap();
    let before = large.reserved_bytes();
    assert!(small.reserved_bytes() >= 1_000, "{}", small.reserved_bytes());
    assert!(before >= 100_000 && before > 50 * small.reserved_bytes(), "{before}");
    large.set("k", 1).unwrap();
    assert_eq!(large.reserved_bytes(), before, "a write within the room moves nothing");
}

/// A weigher must answer the same for a value as long as it is stored; one whose answer grew (a
/// shared, mutable value weighed by its length) made the removal take more off the byte total
/// than the write put on, which wrapped it: the store then counted as over its budget for good
/// and held one entry. The total now stops at zero, so the store keeps filling to its bound.
#[test]
fn a_weigher_whose_answer_grew_does_not_leave_the_store_over_budget_for_good() {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    let c: Cache<Arc<AtomicU64>> =
        Cache::builder().max_bytes(100_000).weigher(|v: &Arc<AtomicU64>| v.load(Relaxed)).build().unwrap();
    let shared = Arc::new(AtomicU64::new(0));
    c.set("grows", Arc::clone(&shared)).unwrap();
    for i in 0..10 {
        c.set(&format!("k{i}"), Arc::new(AtomicU64::new(100))).unwrap();
    }
    shared.store(5_000, Relaxed); // the breach: its weight changes while stored
    c.remove("grows");
    for i in 10..500 {
        c.set(&format!("k{i}"), Arc::new(AtomicU64::new(100))).unwrap();
    }
    // 500 entries of about 104 bytes fit in 100,000: none was evicted
    assert_eq!((c.len(), c.stats().evictions), (500, 0));
}
