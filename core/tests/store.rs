//! The store: operations, TTLs on a manual clock, versions and compare-and-set, bounds (every size is bounded),
//! eviction under pressure, sampling, configuration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healcache::{Cache, Config, Error, ManualClock, RemovalCause, Ttl, WriteOptions};

fn clocked(max: u64) -> (Cache<u64>, ManualClock) {
    let clock = ManualClock::new();
    let c = Cache::builder().max_entries(max).clock(clock.clone()).seed(1).build().unwrap();
    (c, clock)
}

#[test]
fn basic_operations() {
    let (c, _) = clocked(100);
    assert!(c.is_empty());
    assert_eq!(c.get("a"), None);
    c.set("a", 1).unwrap();
    c.set("b", 2).unwrap();
    assert_eq!(c.get("a"), Some(1));
    assert!(c.contains("b"));
    assert!(!c.contains("c"));
    assert_eq!(c.len(), 2);
    assert_eq!(c.remove("a"), Some(1));
    assert_eq!(c.remove("a"), None);
    assert_eq!(c.get("a"), None);
    c.clear();
    assert_eq!(c.len(), 0);
    assert_eq!(c.get("b"), None);
    // the empty key and non-ASCII keys are ordinary data
    c.set("", 7).unwrap();
    c.set("ключ/🔑", 8).unwrap();
    assert_eq!(c.get(""), Some(7));
    assert_eq!(c.get("ключ/🔑"), Some(8));
    let s = c.stats();
    assert_eq!((s.hits, s.inserts), (3, 4));
    assert_eq!(s.misses, 3);
}

#[test]
fn ttl_expiry_on_manual_clock() {
    let (c, clock) = clocked(100);
    c.set_with_ttl("short", 1, Some(Duration::from_secs(10))).unwrap();
    c.set_with_ttl("forever", 2, None).unwrap();
    clock.advance(Duration::from_secs(9));
    assert_eq!(c.get("short"), Some(1));
    let e = c.get_entry("short").unwrap();
    assert_eq!(e.expires_in, Some(Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.get("short"), None, "expires exactly at its TTL");
    assert!(!c.contains("short"));
    assert_eq!(c.get("forever"), Some(2));
    assert_eq!(c.get_entry("forever").unwrap().expires_in, None);
    assert_eq!(c.stats().expirations, 1);
}

#[test]
fn default_ttl_and_purge() {
    let clock = ManualClock::new();
    let c: Cache<u64> = Cache::builder().ttl(Duration::from_millis(100)).clock(clock.clone()).build().unwrap();
    for i in 0..10 {
        c.set(&format!("k{i}"), i).unwrap();
    }
    c.write("pinned", 99, WriteOptions { ttl: Ttl::Never, ..Default::default() }).unwrap();
    clock.advance(Duration::from_millis(100));
    assert_eq!(c.len(), 11, "expired entries stay stored until swept");
    assert_eq!(c.purge_expired(), 10);
    assert_eq!(c.len(), 1);
    assert_eq!(c.get("pinned"), Some(99));
}

#[test]
fn inserts_sweep_expired_entries() {
    let clock = ManualClock::new();
    let c: Cache<u64> = Cache::builder().max_entries(10_000).shards(1).clock(clock.clone()).build().unwrap();
    let ttl = |s| Some(Duration::from_secs(s));
    for i in 0..500 {
        c.set_with_ttl(&format!("short{i}"), i, ttl(5)).unwrap();
        c.set_with_ttl(&format!("long{i}"), i, ttl(20)).unwrap();
        c.set(&format!("pinned{i}"), i).unwrap();
    }
    for i in 0..100 {
        c.set(&format!("a{i}"), i).unwrap();
    }
    assert_eq!((c.stats().expirations, c.len()), (0, 1600), "nothing is gone yet");
    clock.advance(Duration::from_secs(6));
    // without any read or purge, inserts drop every expired entry within a round of the sweep
    for i in 0..2000 {
        c.set(&format!("b{i}"), i).unwrap();
    }
    assert_eq!((c.stats().expirations, c.len()), (500, 3100), "the short entries are swept");
    assert!((0..500).all(|i| c.contains(&format!("long{i}"))), "live entries stay");
    clock.advance(Duration::from_secs(15));
    for i in 0..4000 {
        c.set(&format!("c{i}"), i).unwrap();
    }
    assert_eq!((c.stats().expirations, c.len()), (1000, 6600), "then the long ones");
    assert!((0..500).all(|i| c.contains(&format!("pinned{i}"))), "entries without a TTL stay");
}

#[test]
fn versions_are_monotonic_and_fence_writes() {
    let (c, clock) = clocked(100);
    assert_eq!(c.version("k"), 0);
    let v1 = c.set("k", 1).unwrap();
    assert!(v1 > 0);
    assert_eq!(c.version("k"), v1);
    let v2 = c.set("k", 2).unwrap();
    assert!(v2 > v1);
    // compare-and-set
    assert!(
        matches!(c.set_if_version("k", 3, v1), Err(Error::VersionMismatch { expected, current }) if expected == v1 && current == v2)
    );
    assert_eq!(c.get("k"), Some(2), "a failed CAS changes nothing");
    let v3 = c.set_if_version("k", 3, v2).unwrap();
    assert!(v3 > v2);
    // 0 means "only if absent"
    assert!(c.set_if_version("k", 4, 0).is_err());
    let n1 = c.set_if_version("new", 1, 0).unwrap();
    assert!(n1 > v3);
    // delete + re-insert gets a higher version: a fence taken before the delete stays stale
    c.remove("new");
    let n2 = c.set("new", 2).unwrap();
    assert!(n2 > n1);
    // an expired entry counts as absent
    c.set_with_ttl("t", 1, Some(Duration::from_secs(1))).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.version("t"), 0);
    assert!(c.set_if_version("t", 2, 0).is_ok());
    // versioned removal
    let vt = c.version("t");
    assert!(matches!(c.remove_if_version("t", vt + 100), Err(Error::VersionMismatch { .. })));
    assert!(c.contains("t"));
    c.remove_if_version("t", vt).unwrap();
    assert!(!c.contains("t"));
}

#[test]
fn key_and_value_bounds_are_typed_errors_that_change_nothing() {
    let c: Cache<Vec<u8>> = Cache::builder()
        .max_key_len(8)
        .max_bytes(10_000)
        .max_entry_bytes(100)
        .weigher(|v: &Vec<u8>| v.len() as u64)
        .build()
        .unwrap();
    assert!(matches!(c.set("123456789", vec![]), Err(Error::KeyTooLong { len: 9, max: 8 })));
    c.set("k", vec![1]).unwrap();
    // weight = key length + value weight
    assert!(matches!(c.set("k", vec![0; 100]), Err(Error::ValueTooLarge { weight: 101, max: 100 })));
    assert_eq!(c.get("k"), Some(vec![1]), "the refused write changed nothing");
    assert_eq!(c.stats().weight, 2);
}

#[test]
fn entry_count_bound_holds_and_hot_keys_survive() {
    let c: Cache<u64> = Cache::builder().max_entries(1000).seed(7).build().unwrap();
    // 50 hot keys read often
    for i in 0..50 {
        c.set(&format!("hot{i}"), i).unwrap();
    }
    for _ in 0..20 {
        for i in 0..50 {
            assert!(c.get(&format!("hot{i}")).is_some());
        }
    }
    // a scan of 20,000 one-hit keys
    for i in 0..20_000u64 {
        c.set(&format!("scan{i}"), i).unwrap();
        assert!(c.len() <= 1000);
        if i % 500 == 0 {
            for h in 0..50 {
                c.get(&format!("hot{h}"));
            }
        }
    }
    assert_eq!(c.len(), 1000);
    let survivors = (0..50).filter(|i| c.contains(&format!("hot{i}"))).count();
    assert!(survivors >= 45, "only {survivors}/50 hot keys survived the scan");
    let s = c.stats();
    assert_eq!(s.entries, 1000);
    assert_eq!(s.evictions, 50 + 20_000 - 1000);
}

#[test]
fn weight_bound_holds() {
    let c: Cache<Vec<u8>> = Cache::builder()
        .max_entries(100_000)
        .max_bytes(10_000)
        .shards(4)
        .weigher(|v: &Vec<u8>| v.len() as u64)
        .build()
        .unwrap();
    for i in 0..5000 {
        c.set(&format!("{i:05}"), vec![0; (i % 200) as usize]).unwrap();
        assert!(c.stats().weight <= 10_000);
    }
    // growing an entry in place evicts others, never the entry itself
    c.set("big", vec![0; 2000]).unwrap();
    assert!(c.stats().weight <= 10_000);
    assert_eq!(c.get("big").map(|v| v.len()), Some(2000));
}

#[test]
fn removal_listener_sees_every_cause_outside_locks() {
    let clock = ManualClock::new();
    let log: Arc<Mutex<Vec<(String, u64, RemovalCause)>>> = Arc::default();
    let cache_slot: Arc<Mutex<Option<Cache<u64>>>> = Arc::default();
    let (l, slot) = (log.clone(), cache_slot.clone());
    let c: Cache<u64> = Cache::builder()
        .max_entries(2)
        .shards(1)
        .clock(clock.clone())
        .on_removal(move |k, v, cause| {
            // re-entering the cache from the listener must not deadlock (no lock is held)
            if let Some(c) = slot.lock().unwrap().as_ref() {
                let _ = c.contains(k);
            }
            l.lock().unwrap().push((k.to_string(), v, cause));
        })
        .build()
        .unwrap();
    *cache_slot.lock().unwrap() = Some(c.clone());
    c.set("a", 1).unwrap();
    c.set("a", 2).unwrap();
    c.remove("a");
    c.set_with_ttl("t", 3, Some(Duration::from_secs(1))).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.get("t"), None);
    // the read itself removed the entry it found past its TTL (no write has swept yet)
    assert_eq!(log.lock().unwrap().len(), 3);
    c.set("x", 4).unwrap();
    c.set("y", 5).unwrap();
    c.set("z", 6).unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log[0], ("a".into(), 1, RemovalCause::Replaced));
    assert_eq!(log[1], ("a".into(), 2, RemovalCause::Explicit));
    assert_eq!(log[2], ("t".into(), 3, RemovalCause::Expired));
    assert_eq!(log[3].2, RemovalCause::Evicted);
    assert_eq!(log.len(), 4);
    *cache_slot.lock().unwrap() = None;
}

/// A removal listener that panics on one entry does not cost the others their report: every entry
/// the call removed is reported, then the panic reaches the call; the cache is whole after it.
#[test]
fn a_panicking_removal_listener_loses_no_other_report() {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = log.clone();
    let c: Cache<u64> = Cache::builder()
        .max_entries(10)
        .shards(1)
        .on_removal(move |k, _, _| {
            l.lock().unwrap().push(k.to_string());
            if k == "b" {
                panic!("listener failed on b");
            }
        })
        .build()
        .unwrap();
    for k in ["a", "b", "c", "d"] {
        c.set(k, 1).unwrap();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.clear()));
    let p = r.expect_err("the listener's panic reaches the call");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"listener failed on b"));
    let mut seen = log.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["a", "b", "c", "d"]);
    assert_eq!(c.len(), 0);
    c.set("e", 2).unwrap();
    assert_eq!(c.get("e"), Some(2));
}

/// `get` and `get_entry` remove an entry they find past its TTL (and past any grace), tell the
/// listener, and count a miss; an entry replaced in the meantime stays.
#[test]
fn reads_remove_entries_past_their_ttl() {
    let clock = ManualClock::new();
    let log: Arc<Mutex<Vec<(String, u64, RemovalCause)>>> = Arc::default();
    let l = log.clone();
    let c: Cache<u64> = Cache::builder()
        .clock(clock.clone())
        .on_removal(move |k, v, cause| l.lock().unwrap().push((k.to_string(), v, cause)))
        .build()
        .unwrap();
    let ttl = Some(Duration::from_secs(1));
    c.set_with_ttl("a", 1, ttl).unwrap();
    c.set_with_ttl("b", 2, ttl).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.get("a"), None);
    assert_eq!(*log.lock().unwrap(), [("a".to_string(), 1, RemovalCause::Expired)]);
    assert!(c.get_entry("b").is_none());
    assert_eq!(log.lock().unwrap()[1], ("b".to_string(), 2, RemovalCause::Expired));
    assert_eq!(c.len(), 0);
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.expirations), (0, 2, 2));
}

#[test]
fn sampling_returns_distinct_live_keys() {
    let (c, clock) = clocked(10_000);
    for i in 0..1000 {
        let ttl = if i % 2 == 0 { Some(Duration::from_secs(1)) } else { None };
        c.set_with_ttl(&format!("k{i}"), i, ttl).unwrap();
    }
    let s = c.sample_keys(100);
    assert_eq!(s.len(), 100);
    let mut keys: Vec<&str> = s.iter().collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 100);
    clock.advance(Duration::from_secs(2));
    // half the keys are expired now: the sample keeps drawing until it has 100 live ones
    let s = c.sample_keys(100);
    assert_eq!(s.len(), 100);
    assert!(s.iter().all(|k| k[1..].parse::<u32>().unwrap() % 2 == 1));
    assert_eq!(c.sample_keys(5000).len(), 500, "never more than the live keys");
    assert_eq!(c.sample_keys(0).len(), 0);
}

/// Chi-square over whole-cache draws: each of 40 keys (spread over 4 shards) is drawn equally often.
#[test]
fn sampling_is_uniform_across_shards() {
    let c: Cache<u64> = Cache::builder().max_entries(1000).shards(4).seed(3).build().unwrap();
    for i in 0..40 {
        c.set(&format!("key-{i}"), i).unwrap();
    }
    let mut counts: HashMap<String, f64> = HashMap::new();
    let rounds = 20_000;
    for _ in 0..rounds {
        for k in c.sample_keys(4).iter() {
            *counts.entry(k.to_string()).or_default() += 1.0;
        }
    }
    assert_eq!(counts.len(), 40);
    let expected = rounds as f64 * 4.0 / 40.0;
    let chi2: f64 = counts.values().map(|c| (c - expected).powi(2) / expected).sum();
    // 39 degrees of freedom, 99.9% critical value 72.1
    assert!(chi2 < 72.1, "chi2 = {chi2}");
}

#[test]
fn sampling_is_seeded() {
    let make = || {
        let c: Cache<u64> = Cache::builder().seed(99).build().unwrap();
        for i in 0..500 {
            c.set(&format!("k{i}"), i).unwrap();
        }
        c.sample_keys(10)
    };
    assert_eq!(make(), make());
}

#[test]
fn config_validation_names_the_field() {
    let bad = |f: fn(&mut Config), field: &str| {
        let mut cfg = Config::default();
        f(&mut cfg);
        match Cache::<u8>::from_config(cfg) {
            Err(e @ Error::InvalidConfig { field: got, .. }) => {
                let msg = e.to_string();
                assert_eq!(got, field, "{msg}");
                assert!(msg.contains(field));
            }
            other => panic!("expected InvalidConfig({field}), got {other:?}"),
        }
    };
    bad(|c| c.max_entries = 0.0, "max_entries");
    bad(|c| c.max_entries = -5.0, "max_entries");
    bad(|c| c.max_entries = f64::NAN, "max_entries");
    bad(|c| c.max_entries = 1.5, "max_entries");
    bad(|c| c.max_entries = 1e15, "max_entries");
    bad(|c| c.max_bytes = Some(0.0), "max_bytes");
    bad(|c| c.max_bytes = Some(f64::INFINITY), "max_bytes");
    bad(|c| c.ttl_ms = Some(-1.0), "ttl");
    bad(|c| c.ttl_ms = Some(0.0), "ttl");
    bad(|c| c.ttl_ms = Some(f64::NAN), "ttl");
    bad(|c| c.ttl_ms = Some(1e300), "ttl");
    bad(|c| c.max_key_len = 0.0, "max_key_len");
    bad(|c| c.max_in_flight = 0.0, "max_in_flight");
    bad(|c| c.shards = Some(3.0), "shards");
    bad(|c| c.shards = Some(1024.0), "shards");
    bad(
        |c| {
            c.max_bytes = Some(100.0);
            c.max_entry_bytes = Some(200.0)
        },
        "max_entry_bytes",
    );
    bad(|c| c.load_timeout_ms = Some(-3.0), "load_timeout");
}

#[test]
fn config_from_json_with_defaults() {
    let cfg: Config = serde_json::from_str(r#"{"max_entries": 500, "ttl_ms": 1500}"#).unwrap();
    assert_eq!(cfg.max_entries, 500.0);
    assert_eq!(cfg.ttl_ms, Some(1500.0));
    assert_eq!(cfg.max_key_len, Config::default().max_key_len);
    let c = Cache::<u8>::from_config(cfg.clone()).unwrap();
    assert_eq!(c.config(), &cfg);
    assert!(serde_json::from_str::<Config>(r#"{"max_entrys": 5}"#).is_err(), "unknown fields are refused");
}

#[test]
fn concurrent_readers_and_writers() {
    let c: Cache<u64> = Cache::builder().max_entries(5000).build().unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let k = format!("k{}", (i * 7 + t) % 8000);
                    if i % 3 == 0 {
                        c.set(&k, i).unwrap();
                    } else {
                        c.get(&k);
                    }
                    if i % 1000 == 0 {
                        c.sample_keys(50);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(c.len() <= 5000);
    let s = c.stats();
    let reads = (0..20_000u64).filter(|i| i % 3 != 0).count() as u64;
    assert_eq!(s.hits + s.misses, 4 * reads);
}

/// `Stats::counters` names every counter field exactly once, with its value.
#[test]
fn stats_counters_cover_every_field() {
    let c: Cache<u64> = Cache::builder().build().unwrap();
    c.set("a", 1).unwrap();
    c.get("a");
    c.get("b");
    let s = c.stats();
    let json = serde_json::to_value(s).unwrap();
    let obj = json.as_object().unwrap();
    let names: Vec<&str> = s.counters().iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len() + 4, obj.len(), "every field but the four histograms");
    for (name, v) in s.counters() {
        assert_eq!(obj[name].as_u64(), Some(v), "{name}");
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "each counter once");
}

/// `Config::set` reaches every field the JSON form has (seed and the text `l2_prefix` and
/// `fleet_lock` aside) and
/// refuses unknown names.
#[test]
fn config_set_by_name_covers_every_field() {
    let json = serde_json::to_value(Config::default()).unwrap();
    let mut c = Config::default();
    let numeric = |k: &String| k != "seed" && k != "l2_prefix" && k != "fleet_lock";
    for name in json.as_object().unwrap().keys().filter(|k| numeric(k)) {
        c.set(name, 7.0).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let after = serde_json::to_value(&c).unwrap();
    for (name, v) in after.as_object().unwrap().iter().filter(|(k, _)| numeric(k)) {
        assert!(v == &serde_json::json!(7.0) || v == &serde_json::json!(true), "{name} = {v}");
    }
    assert!(matches!(c.set("nope", 1.0), Err(Error::InvalidConfig { field: "name", .. })));
    // values are checked when the cache is built, naming the field
    let mut c = Config::default();
    c.set("max_entries", -1.0).unwrap();
    assert!(matches!(Cache::<u8>::from_config(c), Err(Error::InvalidConfig { field: "max_entries", .. })));
}

/// A removal listener that panics while a shared load stores its value (here the value's store
/// evicts another entry) costs no waiter its value: every caller of the flight gets the loaded
/// value, the value is kept, and the key is not left with a broken flight.
#[test]
fn a_removal_listener_panicking_in_a_shared_load_costs_no_waiter_its_value() {
    let c: Cache<u64> = Cache::builder()
        .max_entries(1)
        .shards(1)
        .on_removal(|k, _, _| {
            if k == "a" {
                panic!("listener failed on a");
            }
        })
        .build()
        .unwrap();
    c.set("a", 1).unwrap();
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let rx = futures::FutureExt::shared(rx);
    let load = |rx: futures::future::Shared<futures::channel::oneshot::Receiver<()>>| async move {
        let _ = rx.await;
        Ok::<u64, std::io::Error>(2)
    };
    let first = c.get_or_load("b", {
        let rx = rx.clone();
        move || load(rx)
    });
    let second = c.get_or_load("b", move || load(rx));
    let both = futures::future::join(first, second);
    tx.send(()).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| futures::executor::block_on(both)));
    let (a, b) = r.expect("no waiter of the load panics");
    assert_eq!(a.unwrap(), 2);
    assert_eq!(b.unwrap(), 2);
    assert_eq!(c.get("b"), Some(2));
    assert_eq!(futures::executor::block_on(c.get_or_load("b", || async { Ok::<u64, std::io::Error>(3) })).unwrap(), 2);
}
