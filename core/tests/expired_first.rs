//! Promise: expired entries go first. A full cache makes room by removing an expired entry before
//! it evicts a live one, wherever the expired entry sits in the eviction queues and however many
//! there are (README feature table, eviction row). One shard throughout: the promise holds within
//! the shard a write makes room in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healcache::{Cache, ManualClock, RemovalCause};

type Log = Arc<Mutex<Vec<(String, RemovalCause)>>>;

/// A one-shard cache of `max` entries on a manual clock, logging every removal.
fn cache(max: u64) -> (Cache<u64>, ManualClock, Log) {
    let clock = ManualClock::new();
    let log: Log = Arc::default();
    let l = log.clone();
    let c = Cache::builder()
        .max_entries(max)
        .shards(1)
        .seed(1)
        .clock(clock.clone())
        .on_removal(move |k, _, cause| l.lock().unwrap().push((k.to_string(), cause)))
        .build()
        .unwrap();
    (c, clock, log)
}

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

fn evicted(log: &Log) -> Vec<String> {
    log.lock().unwrap().iter().filter(|(_, c)| *c == RemovalCause::Evicted).map(|(k, _)| k.clone()).collect()
}

/// Promise: expired entries go first. An expired entry behind live ones in its queue (written
/// last, or read so that the queue would keep it) is removed, not the live entry at the head.
#[test]
fn an_expired_entry_behind_live_ones_goes_before_them() {
    for reads in [0, 1, 5] {
        for expiring_first in [false, true] {
            let (c, clock, log) = cache(3);
            if expiring_first {
                c.set_with_ttl("a", 1, ms(1)).unwrap();
            }
            c.set("b", 2).unwrap();
            c.set("c", 3).unwrap();
            if !expiring_first {
                c.set_with_ttl("a", 1, ms(1)).unwrap();
            }
            for _ in 0..reads {
                c.get("a");
            }
            clock.advance(Duration::from_millis(2));
            c.set("d", 4).unwrap();
            let mut keys = c.keys();
            keys.sort();
            let case = format!("reads {reads}, expiring first {expiring_first}");
            assert_eq!(keys, ["b", "c", "d"], "{case}");
            assert_eq!(evicted(&log), Vec::<String>::new(), "{case}");
            assert_eq!((c.stats().evictions, c.stats().expirations), (0, 1), "{case}");
        }
    }
}

/// Promise: expired entries go first. A full cache of 1,000 holding 500 expired entries takes
/// 500 new writes without evicting a live entry, in whatever order the two kinds were written.
#[test]
fn a_full_cache_makes_room_from_every_expired_entry_before_a_live_one() {
    for order in ["interleaved", "live first", "expiring first"] {
        let (c, clock, log) = cache(1000);
        for i in 0..1000u64 {
            let expiring = match order {
                "interleaved" => i % 2 == 1,
                "live first" => i >= 500,
                _ => i < 500,
            };
            c.set_with_ttl(&format!("k{i}"), i, if expiring { ms(1) } else { None }).unwrap();
        }
        clock.advance(Duration::from_millis(2));
        for i in 0..500 {
            c.set(&format!("new{i}"), i).unwrap();
        }
        let s = c.stats();
        assert_eq!(evicted(&log), Vec::<String>::new(), "{order}");
        assert_eq!((s.evictions, s.expirations, c.len()), (0, 500, 1000), "{order}");
        // and once no expired entry is left, eviction goes on as before
        c.set("one-more", 0).unwrap();
        assert_eq!((c.stats().evictions, c.len()), (1, 1000), "{order}");
    }
}

/// Promise: expired entries go first, under the byte bound too: a heavy write that needs the room
/// of two entries takes the two expired ones, not the live entries ahead of them.
#[test]
fn the_byte_bound_takes_expired_entries_first() {
    let clock = ManualClock::new();
    let c: Cache<u64> =
        Cache::builder().max_bytes(100).shards(1).weigher(|v: &u64| *v).clock(clock.clone()).build().unwrap();
    // each entry weighs 19 + its 1-byte key: five fill the 100 bytes
    for (k, ttl) in [("a", None), ("b", None), ("c", ms(1)), ("d", None), ("e", ms(1))] {
        c.set_with_ttl(k, 19, ttl).unwrap();
    }
    clock.advance(Duration::from_millis(2));
    c.set("f", 39).unwrap();
    let mut keys = c.keys();
    keys.sort();
    assert_eq!(keys, ["a", "b", "d", "f"]);
    assert_eq!((c.stats().evictions, c.stats().expirations), (0, 2));
}

/// Promise: expired entries go first, and only expired ones: an entry whose expiry was pushed back
/// or dropped by an overwrite, after it was first written with a short TTL, is live and is not
/// taken for expired; one written without a TTL and then given a short one is.
#[test]
fn rewritten_expiries_are_followed() {
    let (c, clock, log) = cache(4);
    c.set_with_ttl("longer", 1, ms(1)).unwrap();
    c.set_with_ttl("dropped", 2, ms(1)).unwrap();
    c.set("shortened", 3).unwrap();
    c.set("live", 4).unwrap();
    c.set_with_ttl("longer", 1, ms(1000)).unwrap();
    c.set_with_ttl("dropped", 2, None).unwrap();
    c.set_with_ttl("shortened", 3, ms(1)).unwrap();
    log.lock().unwrap().clear();
    clock.advance(Duration::from_millis(2));
    c.set("new", 5).unwrap();
    assert_eq!(*log.lock().unwrap(), [("shortened".to_string(), RemovalCause::Expired)]);
    c.set("newer", 6).unwrap();
    assert_eq!(c.stats().evictions, 1, "then a live entry is evicted");
}

/// Promise: expired entries go first, with a grace window as well: an entry past its TTL but
/// still in its grace window (servable stale) is expired, and goes before a live entry.
#[test]
fn an_entry_in_its_grace_window_goes_before_a_live_one() {
    let clock = ManualClock::new();
    let c: Cache<u64> =
        Cache::builder().max_entries(3).shards(1).grace(Duration::from_secs(60)).clock(clock.clone()).build().unwrap();
    c.set("b", 2).unwrap();
    c.set("c", 3).unwrap();
    c.set_with_ttl("a", 1, ms(1)).unwrap();
    clock.advance(Duration::from_millis(2));
    c.set("d", 4).unwrap();
    let mut keys = c.keys();
    keys.sort();
    assert_eq!(keys, ["b", "c", "d"]);
    assert_eq!(c.stats().evictions, 0);
}

/// Promise: expired entries go first, under random writes, removals, reads and time: whenever a
/// write evicts a live entry, no entry of the shard was expired at that moment (checked against
/// a model of every entry's expiry, fed by the removal listener).
#[test]
fn random_writes_never_evict_a_live_entry_while_one_is_expired() {
    let (c, clock, log) = cache(64);
    // key -> expiry in ms on the manual clock (None: never)
    let mut model: HashMap<String, Option<u64>> = HashMap::new();
    let mut now = 0u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut evictions = 0;
    for step in 0..20_000 {
        let key = format!("k{}", rand(200));
        let expired_before = model.values().any(|e| e.is_some_and(|at| at <= now));
        let mut written = None;
        match rand(10) {
            0 => {
                let d = rand(5);
                clock.advance(Duration::from_millis(d));
                now += d;
            }
            1 => {
                c.remove(&key);
            }
            2 => {
                c.get(&key);
            }
            _ => {
                let ttl = if rand(3) == 0 { None } else { Some(1 + rand(40)) };
                c.set_with_ttl(&key, step, ttl.map(Duration::from_millis)).unwrap();
                written = Some(ttl.map(|t| now + t));
            }
        }
        for (k, cause) in std::mem::take(&mut *log.lock().unwrap()) {
            if cause == RemovalCause::Evicted {
                evictions += 1;
                assert!(!expired_before, "step {step}: live {k} evicted while an expired entry was held");
            }
            model.remove(&k);
        }
        if let Some(at) = written {
            model.insert(key, at);
        }
        assert_eq!(c.len(), model.len(), "step {step}: the model follows the cache");
    }
    assert!(evictions > 100, "the cache was full often enough to evict ({evictions})");
}
