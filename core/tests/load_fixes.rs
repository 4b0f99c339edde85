//! The load path's answers agree across its variants: a load past `load_timeout` (also a
//! synchronous one, which no timer can cut short), the counting of a cached "not found", a
//! per-call XFetch, and a compare-and-delete that holds.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Boom, QueueSpawner, TokioTimer};
use futures::executor::block_on;
use healcache::{Cache, CacheBuilder, Config, Error, FetchOptions, Loaded, ManualClock, Status};

const MS: Duration = Duration::from_millis(1);

fn timed_cache(rt: &tokio::runtime::Runtime) -> Cache<&'static str> {
    Cache::builder().load_timeout(100 * MS).timer(TokioTimer(rt.handle().clone())).build().unwrap()
}

/// P1/P2: a blocking load whose synchronous loader answers only after `load_timeout` is a
/// timeout for the flight: the thread running the loader and a thread waiting on it both get
/// `LoadTimeout` (the waiter at its deadline), the late value is not stored, and it is counted.
#[test]
fn p1_p2_a_blocking_loader_past_load_timeout_is_a_timeout_for_every_caller() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let c = timed_cache(&rt);
    let waiter = {
        let c = c.clone();
        std::thread::spawn(move || {
            std::thread::sleep(30 * MS);
            let t = Instant::now();
            let r = c.get_or_load_blocking("k", || Ok::<_, Boom>("joined"));
            (r, t.elapsed())
        })
    };
    let r = c.get_or_load_blocking("k", || {
        std::thread::sleep(400 * MS);
        Ok::<_, Boom>("late")
    });
    let (w, waited) = waiter.join().unwrap();
    assert!(matches!(r, Err(Error::LoadTimeout { after_ms: 100 })), "the leader: {r:?}");
    assert!(matches!(w, Err(Error::LoadTimeout { .. })), "the waiter: {w:?}");
    assert!(waited < 300 * MS, "the waiter stops waiting at its deadline: {waited:?}");
    let s = c.stats();
    assert_eq!((s.loads, s.load_timeouts, s.inserts), (1, 1, 0));
    assert_eq!(c.get("k"), None, "the late value is not stored");
}

/// P1/P2: an async caller that joins a load a blocking thread runs stops waiting at its own
/// deadline, as a blocking waiter does: the thread is inside its loader, where no timer of the
/// flight can end it, so the caller's wait has a timer of its own.
#[test]
fn p1_p2_an_async_waiter_on_a_blocking_load_gets_load_timeout_at_its_deadline() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let c = timed_cache(&rt);
    let leader = {
        let c = c.clone();
        std::thread::spawn(move || {
            c.get_or_load_blocking("k", || {
                std::thread::sleep(600 * MS);
                Ok::<_, Boom>("late")
            })
        })
    };
    std::thread::sleep(30 * MS);
    let t = Instant::now();
    let w = rt.block_on(c.get_or_load("k", || async { Ok::<_, Boom>("joined") }));
    let waited = t.elapsed();
    assert!(matches!(w, Err(Error::LoadTimeout { after_ms: 100 })), "the async waiter: {w:?}");
    assert!(waited < 400 * MS, "the async waiter stops waiting at its deadline: {waited:?}");
    let r = leader.join().unwrap();
    assert!(matches!(r, Err(Error::LoadTimeout { .. })), "the leader: {r:?}");
    assert_eq!(c.get("k"), None, "the late value is not stored");
}

/// P2: the async twin with a loader that blocks its thread past `load_timeout` (the timer cannot
/// fire while it runs) answers as the timer would have: `LoadTimeout`, not stored, counted.
#[test]
fn p2_an_async_load_that_blocks_past_load_timeout_is_a_timeout() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let c = timed_cache(&rt);
    let r = block_on(c.get_or_load("k", || async {
        std::thread::sleep(300 * MS);
        Ok::<_, Boom>("late")
    }));
    assert!(matches!(r, Err(Error::LoadTimeout { after_ms: 100 })), "{r:?}");
    let s = c.stats();
    assert_eq!((s.load_timeouts, s.inserts), (1, 0));
    assert_eq!(c.get("k"), None);
    // a load that answers in time is kept
    assert_eq!(block_on(c.get_or_load("k", || async { Ok::<_, Boom>("v") })).unwrap(), "v");
    assert_eq!(c.get("k"), Some("v"));
}

fn negative_cache() -> (Cache<u64>, QueueSpawner) {
    let sp = QueueSpawner::default();
    let c = Cache::builder().negative_ttl(Duration::from_secs(5)).spawner(sp.clone()).build().unwrap();
    block_on(c.fetch("x", FetchOptions::default(), || async { Ok::<_, Boom>(Loaded::NotFound) })).unwrap();
    (c, sp)
}

/// One set of counters: every read of a cached "not found" counts as a negative hit and never as
/// a hit, whichever call reads it (`get`, `get_entry`, the blocking and async loads, `fetch`).
#[test]
fn a_cached_not_found_counts_as_a_negative_hit_on_every_read() {
    let (c, _) = negative_cache();
    let counts = |c: &Cache<u64>| {
        let s = c.stats();
        (s.hits, s.misses, s.negative_hits)
    };
    type Read = Box<dyn Fn(&Cache<u64>)>;
    let reads: Vec<(&str, Read)> = vec![
        ("get", Box::new(|c| assert_eq!(c.get("x"), None))),
        ("get_entry", Box::new(|c| assert!(c.get_entry("x").is_none()))),
        (
            "get_or_load_blocking",
            Box::new(|c| assert!(matches!(c.get_or_load_blocking("x", || Ok::<_, Boom>(1)), Err(Error::NotFound)))),
        ),
        (
            "get_or_load",
            Box::new(|c| {
                assert!(matches!(block_on(c.get_or_load("x", || async { Ok::<_, Boom>(1) })), Err(Error::NotFound)))
            }),
        ),
        (
            "fetch",
            Box::new(|c| {
                let f = block_on(c.fetch("x", FetchOptions::default(), || async { Ok::<_, Boom>(Loaded::Value(1)) }));
                assert_eq!(f.unwrap().status, Status::NegativeHit);
            }),
        ),
    ];
    for (name, read) in reads {
        let (h, m, n) = counts(&c);
        read(&c);
        let (h2, m2, n2) = counts(&c);
        assert_eq!((h2 - h, m2 - m, n2 - n), (0, 0, 1), "{name}: (hits, misses, negative_hits) added");
    }
}

/// The per-call `xfetch: Some(true)` turns XFetch on for that read on a cache built without it,
/// with the cache's configured beta: with beta 1000 and a 100 ms load, a read 900 ms into a
/// 1 s TTL refreshes early.
#[test]
fn a_per_call_xfetch_turns_early_refresh_on_with_the_cache_beta() {
    let clock = ManualClock::new();
    let sp = QueueSpawner::default();
    let mut config = Config::default();
    config.set("xfetch_beta", 1000.0).unwrap();
    let b: CacheBuilder<u64> = CacheBuilder::from_config(config);
    let c = b.ttl(1000 * MS).clock(clock.clone()).spawner(sp.clone()).seed(11).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let loader = |delta: Duration| {
        let (clock, calls) = (clock.clone(), calls.clone());
        move || async move {
            clock.advance(delta);
            Ok::<_, Boom>(Loaded::Value(calls.fetch_add(1, SeqCst) as u64 + 1))
        }
    };
    let on = FetchOptions { xfetch: Some(true), ..Default::default() };
    assert_eq!(block_on(c.fetch("k", on, loader(100 * MS))).unwrap().status, Status::Loaded);
    clock.advance(800 * MS);
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(MS))).unwrap();
    assert_eq!(f.status, Status::Hit, "the cache's own setting: off");
    let f = block_on(c.fetch("k", on, loader(MS))).unwrap();
    assert_eq!(f.status, Status::EarlyRefresh);
    assert_eq!(sp.drain(), 1);
    assert_eq!(c.stats().early_refreshes, 1);
}

/// A compare-and-delete that removes nothing live changes nothing: `remove_if_version(key, 0)`
/// on a stale key (past its TTL, within grace) answers false and keeps the stale copy, which a
/// failing load still serves (fail-safe), as a version mismatch does.
#[test]
fn a_compare_and_delete_of_version_0_keeps_a_stale_copy() {
    let clock = ManualClock::new();
    let c: Cache<&'static str> =
        Cache::builder().clock(clock.clone()).ttl(1000 * MS).grace(Duration::from_secs(100)).build().unwrap();
    let v = c.set("m", "old").unwrap();
    clock.advance(2000 * MS);
    assert!(matches!(c.remove_if_version("m", v), Err(Error::VersionMismatch { .. })));
    assert!(!c.remove_if_version("m", 0).unwrap(), "nothing live to remove");
    assert_eq!(c.len(), 1, "the stale copy stays");
    let bad = || async { Err::<Loaded<&'static str>, _>(Boom("origin down")) };
    let f = block_on(c.fetch("m", FetchOptions::default(), bad)).unwrap();
    assert_eq!((f.value, f.status), (Some("old"), Status::StaleFailSafe));
}
