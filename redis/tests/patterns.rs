//! The microservice patterns over a real redis-server, two instances sharing it: write-through
//! reaches the other instance when the call returns, a failed writer leaves L2 as it was,
//! warming takes what L2 already holds without asking the source, and readiness follows the
//! tier.
//!
//! Promises checked: the shared tier promises only what it can (L2 written before the call
//! returns, within its deadline; readiness says when L2 is not answering); nothing is lost or
//! hidden silently.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::{block, cache_with_grace, server, wait_for};
use healcache::tier::MsgPack;
use healcache::{Cache, FetchOptions, Loaded, Status, Warm, WriteThrough};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use serde_json::{json, Value};

fn ok() -> futures::future::Ready<Result<(), std::io::Error>> {
    futures::future::ready(Ok(()))
}

#[test]
fn write_through_is_in_l2_and_on_the_bus_when_it_returns() {
    let r = server();
    let (a, b) = (cache_with_grace(&r.url(), Duration::ZERO), cache_with_grace(&r.url(), Duration::ZERO));
    b.set("user:1", json!("old")).unwrap();
    wait_for("the old value in A through L2", Duration::from_secs(5), || {
        block(a.fetch("user:1", FetchOptions::default(), || async { Ok::<_, std::io::Error>(Loaded::NotFound) }))
            .is_ok_and(|f| f.value == Some(json!("old")))
    });
    // and B's bus message about it: arriving after A's write-through, it would drop A's new copy
    wait_for("B's message at A", Duration::from_secs(5), || a.stats().l2_bus_received >= 1);
    block(a.write_through("user:1", json!({"name": "Ada"}), WriteThrough::default(), ok)).unwrap();
    // B's copy is dropped by the bus; its next read finds the new value in L2, no load
    wait_for("B's L1 copy dropped", Duration::from_secs(5), || b.get("user:1").is_none());
    let never = || async { Err::<Loaded<Value>, _>(std::io::Error::other("the source must not be asked")) };
    let f = block(b.fetch("user:1", FetchOptions::default(), never)).unwrap();
    assert_eq!((f.value, f.status), (Some(json!({"name": "Ada"})), Status::L2Hit));
    // a failing writer changes neither L1 nor L2
    let failing = || async { Err::<(), _>(std::io::Error::other("database down")) };
    assert!(block(a.write_through("user:1", json!("lost"), WriteThrough::default(), failing)).is_err());
    let fresh = cache_with_grace(&r.url(), Duration::ZERO);
    let f = block(fresh.fetch("user:1", FetchOptions::default(), never)).unwrap();
    assert_eq!(f.value, Some(json!({"name": "Ada"})));
    assert_eq!(a.get("user:1"), Some(json!({"name": "Ada"})));
    // invalidate instead of writing: a tombstone in L2, B's copy dropped, the next read loads
    let opts = WriteThrough { invalidate: true, ..WriteThrough::default() };
    assert_eq!(block(a.write_through("user:1", json!("unused"), opts, ok)).unwrap(), 0);
    // the bus reaches every other instance: `fresh` read the value above and holds a copy too
    wait_for("B's and fresh's copies dropped again", Duration::from_secs(5), || {
        b.get("user:1").is_none() && fresh.get("user:1").is_none()
    });
    let load = || async { Ok::<_, std::io::Error>(Loaded::Value(json!("from the source"))) };
    let f = block(fresh.fetch("user:1", FetchOptions::default(), load)).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("from the source")), Status::Loaded));
}

#[test]
fn a_second_instance_warms_from_l2_without_asking_the_source() {
    let r = server();
    let (a, b) = (cache_with_grace(&r.url(), Duration::ZERO), cache_with_grace(&r.url(), Duration::ZERO));
    let keys: Vec<String> = (0..500).map(|i| format!("item:{i}")).collect();
    let asked = Arc::new(AtomicUsize::new(0));
    let loader = |asked: &Arc<AtomicUsize>| {
        let asked = asked.clone();
        move |keys: Vec<String>| {
            asked.fetch_add(keys.len(), SeqCst);
            async move {
                Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k.clone(), json!(k))).collect::<HashMap<_, _>>())
            }
        }
    };
    let report = block(a.warm(&keys, Warm::default(), loader(&asked))).unwrap();
    assert_eq!((report.found, report.failed), (500, 0));
    assert_eq!(asked.load(SeqCst), 500);
    assert!(a.ready());
    // the writes of A's loads land in L2 in the background: B waits for the last one
    let last = keys.last().unwrap().clone();
    let never = || async { Err::<Loaded<Value>, _>(std::io::Error::other("not yet")) };
    let probe = cache_with_grace(&r.url(), Duration::ZERO);
    wait_for("A's values in L2", Duration::from_secs(5), || {
        block(probe.fetch(&last, FetchOptions::default(), never)).is_ok()
    });
    let report =
        block(b.warm(&keys, Warm { batch: Some(50), concurrency: 4, ..Warm::default() }, loader(&asked))).unwrap();
    assert_eq!((report.found, report.failed), (500, 0));
    assert_eq!(asked.load(SeqCst), 500, "B's warm-up asked the source nothing");
    assert!(b.stats().l2_hits >= 500, "{}", b.stats().l2_hits);
    assert_eq!(b.warm_progress(), (500, 0, 500));
    assert!(b.ready());
}

#[test]
fn readiness_follows_the_tier_unless_degraded_is_allowed() {
    let mut r = server();
    let strict = cache_with_grace(&r.url(), Duration::ZERO);
    let lenient = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .allow_degraded(true)
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
        .build()
        .unwrap();
    strict.set("k", json!(1)).unwrap();
    assert!(strict.ready() && lenient.ready());
    assert!(strict.prometheus("s").contains("healcache_ready{cache=\"s\"} 1\n"));
    r.kill();
    // reads fail over to L1 and the loader; a few failures open the breaker
    let load = || async { Ok::<_, std::io::Error>(Loaded::Value(json!(2))) };
    for c in [&strict, &lenient] {
        wait_for("the breaker open", Duration::from_secs(10), || {
            let _ = block(c.fetch("other", FetchOptions::default(), load));
            c.remove("other");
            c.stats().l2_breaker_state != 0
        });
    }
    assert!(!strict.ready(), "L2 is not answering");
    assert!(strict.prometheus("s").contains("healcache_ready{cache=\"s\"} 0\n"));
    assert!(lenient.ready(), "degraded allowed: L1 and the loader still serve");
    // and a pattern cannot be listed while L2 is away: a typed error, nothing warmed
    let none = |_k: Vec<String>| async { Ok::<_, std::io::Error>(HashMap::<String, Value>::new()) };
    let e = block(strict.warm_matching("*", Warm::default(), none)).unwrap_err();
    assert_eq!(e.code(), "L2Unavailable", "{e}");
    assert_eq!(strict.warm_progress(), (0, 0, 0));
}

#[test]
fn a_new_instance_warms_a_key_pattern_from_l2() {
    let r = server();
    let a = cache_with_grace(&r.url(), Duration::ZERO);
    for i in 0..300 {
        a.set(&format!("user:{i}"), json!({ "id": i })).unwrap();
        a.set(&format!("order:{i}"), json!(i)).unwrap();
    }
    // a key whose L2 copy expired, kept through a writer's grace window, is listed and loaded
    let graceful = cache_with_grace(&r.url(), Duration::from_secs(30));
    graceful.set_with_ttl("user:short", json!("old"), Some(Duration::from_millis(300))).unwrap();
    let probe = cache_with_grace(&r.url(), Duration::ZERO);
    let never = || async { Err::<Loaded<Value>, _>(std::io::Error::other("not yet")) };
    wait_for("A's writes in L2", Duration::from_secs(5), || {
        ["user:299", "order:299", "user:short"]
            .iter()
            .all(|k| block(probe.fetch(k, FetchOptions::default(), never)).is_ok())
    });
    let b = cache_with_grace(&r.url(), Duration::ZERO);
    let asked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let loader = {
        let asked = asked.clone();
        move |keys: Vec<String>| {
            asked.lock().unwrap().extend(keys.iter().cloned());
            async move { Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, json!("loaded"))).collect::<HashMap<_, _>>()) }
        }
    };
    // the bound is checked before anything is loaded: 301 keys match, 300 are allowed
    let e = block(b.warm_matching("user:*", Warm { max_keys: 300, ..Warm::default() }, loader.clone())).unwrap_err();
    assert!(matches!(e, healcache::Error::InvalidConfig { field: "max_keys", .. }), "{e}");
    assert_eq!((b.len(), b.warm_progress()), (0, (0, 0, 0)));
    for bad in [0, healcache::MAX_PATTERN_KEYS + 1] {
        let e =
            block(b.warm_matching("user:*", Warm { max_keys: bad, ..Warm::default() }, loader.clone())).unwrap_err();
        assert!(matches!(e, healcache::Error::InvalidConfig { field: "max_keys", .. }), "{e}");
    }
    std::thread::sleep(Duration::from_millis(350)); // user:short's copy expires in L2
    let report = block(b.warm_matching("user:*", Warm { max_keys: 301, ..Warm::default() }, loader)).unwrap();
    assert_eq!((report.total, report.found, report.failed), (301, 301, 0));
    assert_eq!(*asked.lock().unwrap(), ["user:short"], "only the expired copy was loaded");
    assert_eq!(b.get("user:7"), Some(json!({ "id": 7 })));
    assert_eq!(b.get("user:short"), Some(json!("loaded")));
    assert!(b.get("order:7").is_none(), "outside the pattern");
    assert!(b.ready());
    let text = b.prometheus("b");
    assert!(text.contains("healcache_warm_keys_total{cache=\"b\",outcome=\"answered\"} 301\n"), "{text}");
    assert!(text.contains("healcache_warm_running{cache=\"b\"} 0\n"));
    let took = text.lines().find_map(|l| l.strip_prefix("healcache_warm_seconds{cache=\"b\"} ")).unwrap();
    assert!(took.parse::<f64>().unwrap() > 0.0, "{took}");
}

/// Refresh-ahead across the fleet: a refresh reads L2 first, so the value one instance's refresh
/// wrote serves the others, whose own refresh asks the source nothing.
#[test]
fn one_instance_refreshing_ahead_serves_the_fleet() {
    let r = server();
    let make = || {
        healcache::Cache::builder()
            .timer(healcache_rt::IoTimer)
            .spawner(healcache_rt::IoSpawner)
            .ttl(Duration::from_secs(60))
            .refresh_after(Duration::from_millis(100))
            .shared_tier(healcache_redis::RedisTransport::connect(&r.url()).unwrap(), healcache::tier::MsgPack::new())
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |calls: &Arc<AtomicUsize>| {
        let calls = calls.clone();
        move || async move { Ok::<_, std::io::Error>(Loaded::Value(json!(calls.fetch_add(1, SeqCst) + 1))) }
    };
    assert_eq!(block(a.fetch("k", FetchOptions::default(), load(&calls))).unwrap().value, Some(json!(1)));
    wait_for("a's value in L2", Duration::from_secs(5), || a.stats().l2_writes == 1);
    assert_eq!(block(b.fetch("k", FetchOptions::default(), load(&calls))).unwrap().status, Status::L2Hit);
    std::thread::sleep(Duration::from_millis(150));
    // a's read past refresh_after refreshes in the background; its value reaches L2
    let f = block(a.fetch("k", FetchOptions::default(), load(&calls))).unwrap();
    assert_eq!((f.value, f.status), (Some(json!(1)), Status::RefreshAhead));
    wait_for("a's refresh in L2", Duration::from_secs(5), || a.stats().l2_writes == 2);
    assert_eq!(calls.load(SeqCst), 2);
    // b's copy is as old: its refresh (or its read of a copy the bus made stale) finds a's value
    wait_for("b has a's refreshed value", Duration::from_secs(5), || {
        block(b.fetch("k", FetchOptions::default(), load(&calls))).unwrap().value == Some(json!(2))
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(calls.load(SeqCst), 2, "one refresh for the fleet");
}
