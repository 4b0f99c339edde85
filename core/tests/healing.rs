//! Self-healing: convergence of the score under injected drift, repairs fenced against newer
//! writes, skipped failures and backoff, longest-prefix sources, runtime settings, bounds.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::TokioTimer;
use futures::executor::block_on;
use healcache::{Cache, Error, FnSource, Healer, HealingConfig, ManualClock, SourceAnswer, SourceError};

type Db = Arc<RwLock<HashMap<String, u64>>>;

fn db_source(
    db: &Db,
) -> FnSource<impl Fn(&str) -> futures::future::Ready<Result<SourceAnswer<u64>, SourceError>> + Send + Sync> {
    let db = db.clone();
    FnSource(move |k: &str| {
        futures::future::ready(Ok(match db.read().unwrap().get(k) {
            Some(v) => SourceAnswer::Value(*v),
            None => SourceAnswer::NotFound,
        }))
    })
}

fn config(rate: f64) -> HealingConfig {
    HealingConfig { enabled: true, sample_rate: rate, ..HealingConfig::default() }
}

/// P5: an interval draws `ceil(live_keys * sample_rate)` keys, at most `max_samples`: a fraction
/// of a key rounds up (7 keys at 0.1 draw one, 101 at 0.05 draw six), a product at a whole number
/// does not (100 at 0.05 draw five), and `max_samples` caps the draw exactly at its value.
#[test]
fn an_interval_draws_the_rate_rounded_up_at_most_max_samples() {
    for (keys, rate, max_samples, drawn) in [
        (7u64, 0.1, 100_000.0, 1u64),
        (101, 0.05, 100_000.0, 6),
        (100, 0.05, 100_000.0, 5),
        (1000, 1.0, 10.0, 10),
        (1000, 1.0, 1000.0, 1000),
        (1000, 1.0, 999.0, 999),
    ] {
        let cache: Cache<u64> = Cache::builder().max_entries(2 * keys).seed(5).build().unwrap();
        let db: Db = Arc::default();
        for i in 0..keys {
            cache.set(&format!("k{i}"), i).unwrap();
            db.write().unwrap().insert(format!("k{i}"), i);
        }
        let h = Healer::new(cache.clone(), HealingConfig { max_samples, ..config(rate) }).unwrap();
        h.register_source("k", db_source(&db)).unwrap();
        let r = block_on(h.run_interval());
        assert_eq!((r.drawn, r.verified), (drawn, drawn), "{keys} keys at {rate}, max_samples {max_samples}");
    }
}

/// 100,000 keys, 10% of them changed at the source behind the cache's back. Without repair the
/// score settles at 0.9 (within 0.04: three standard deviations of a 1,000-sample window are
/// 0.028); with repair it climbs to 1.0 as repairs land, and cache and source then agree.
#[test]
fn score_converges_to_one_minus_drift_then_to_one() {
    let n = 100_000u64;
    let cache: Cache<u64> = Cache::builder().max_entries(2 * n).seed(5).build().unwrap();
    let db: Db = Arc::default();
    for i in 0..n {
        cache.set(&format!("user:{i}"), i).unwrap();
        db.write().unwrap().insert(format!("user:{i}"), if i % 10 == 0 { i + 1_000_000 } else { i });
    }
    let h = Healer::new(cache.clone(), HealingConfig { auto_repair: false, ..config(0.05) }).unwrap();
    h.register_source("user:", db_source(&db)).unwrap();
    for _ in 0..4 {
        let r = block_on(h.run_interval());
        assert_eq!(r.drawn, 5000);
        assert_eq!(r.verified, 5000);
        assert_eq!(r.repaired, 0);
    }
    let s = h.score("user:").unwrap();
    assert!((s.score - 0.9).abs() < 0.04, "score {} with 10% drift", s.score);
    assert_eq!(s.sampled, 20_000);

    h.config_set("auto_repair", "true").unwrap();
    h.config_set("sample_rate", "0.2").unwrap();
    let mut last = s.score;
    let mut rounds = 0;
    while h.score("user:").unwrap().score < 1.0 {
        rounds += 1;
        assert!(rounds <= 60, "score stuck at {}", h.score("user:").unwrap().score);
        let r = block_on(h.run_interval());
        assert_eq!(r.repaired, r.drift, "every drift found is repaired");
        let now = h.score("user:").unwrap().score;
        assert!(now >= last - 0.05, "score fell from {last} to {now}");
        last = now;
    }
    let st = h.stats();
    assert!(st.total_repaired > 5000, "repaired {}", st.total_repaired);
    assert_eq!(st.source_failures, 0);
    // A full score means drift below ~0.1% in the window; 20 more intervals sampling 20% each
    // leave about 0.8^20 of what was left (expected: a handful of keys out of 100,000).
    for _ in 0..20 {
        block_on(h.run_interval());
    }
    let wrong = (0..n)
        .filter(|i| {
            cache.peek_versioned(&format!("user:{i}")).unwrap().0 != Some(db.read().unwrap()[&format!("user:{i}")])
        })
        .count();
    assert!(wrong <= 20, "{wrong} keys still drifted");
    let events = h.drift_events();
    assert_eq!(events.len(), 1000, "history bounded by max_drift_events");
    assert!(events.iter().all(|e| e.prefix == "user:" && e.old_digest.len() == 8));
}

/// A failing source: its samples are skipped, not scored; after 3 failing intervals it is left
/// alone (backoff) until the backoff passes; a success resets it.
#[test]
fn failures_are_skipped_and_backed_off() {
    let clock = ManualClock::new();
    let cache: Cache<u64> = Cache::builder().clock(clock.clone()).build().unwrap();
    for i in 0..100 {
        cache.set(&format!("k{i}"), i).unwrap();
    }
    let down = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let src = common::flaky_source(&down, &calls);
    let h = Healer::new(cache.clone(), config(1.0)).unwrap();
    h.register_source("k", src).unwrap();
    for _ in 0..3 {
        let r = block_on(h.run_interval());
        assert_eq!((r.verified, r.failures, r.skipped), (0, 100, 100));
    }
    assert_eq!(calls.load(SeqCst), 300);
    let s = h.score("k").unwrap();
    assert_eq!((s.score, s.sampled), (1.0, 0), "failures never count in the score");
    // backed off: the next interval does not call the source
    let r = block_on(h.run_interval());
    assert_eq!((r.skipped, r.failures), (100, 0));
    assert_eq!(calls.load(SeqCst), 300);
    // after the backoff (one interval of 5 s) it is asked again
    down.store(false, SeqCst);
    clock.advance(Duration::from_millis(5001));
    let r = block_on(h.run_interval());
    assert_eq!((r.verified, r.consistent), (100, 100));
    assert_eq!(h.stats().source_failures, 300);
}

/// The repair is a compare-and-set on the version read when the key was sampled: a write that
/// lands while the source is asked wins over the repair.
/// P7: a write landing while the source is asked wins over the fenced repair, and makes that
/// check moot: skipped, neither drift nor a drift event (see `IntervalReport::skipped`).
#[test]
fn repair_never_overwrites_a_newer_write() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    cache.set("k", 1).unwrap();
    let (asked_tx, asked_rx) = futures::channel::oneshot::channel::<()>();
    let (go_tx, go_rx) = futures::channel::oneshot::channel::<()>();
    let slot = Arc::new(std::sync::Mutex::new(Some((asked_tx, go_rx))));
    let src = FnSource(move |_: &str| {
        let (asked, go) = slot.lock().unwrap().take().expect("asked once");
        async move {
            asked.send(()).unwrap();
            go.await.unwrap();
            Ok(SourceAnswer::Value(2u64))
        }
    });
    let h = Healer::new(cache.clone(), config(1.0)).unwrap();
    h.register_source("", src).unwrap();
    let writer = async {
        asked_rx.await.unwrap();
        cache.set("k", 3).unwrap();
        go_tx.send(()).unwrap();
    };
    let (r, ()) = block_on(futures::future::join(h.run_interval(), writer));
    assert_eq!((r.drift, r.repaired, r.skipped), (0, 0, 1));
    assert_eq!(cache.get("k"), Some(3), "the newer write is kept");
    assert!(h.drift_events().is_empty());
}

#[test]
fn not_found_at_the_source_removes_the_entry() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    cache.set("gone", 1).unwrap();
    cache.set("here", 2).unwrap();
    let db: Db = Arc::default();
    db.write().unwrap().insert("here".into(), 2);
    let h = Healer::new(cache.clone(), config(1.0)).unwrap();
    h.register_source("", db_source(&db)).unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.consistent, r.drift, r.repaired), (1, 1, 1));
    assert!(!cache.contains("gone"));
    assert_eq!(h.drift_events()[0].new_digest, "absent");
}

#[test]
fn longest_prefix_wins_and_keys_without_source_are_skipped() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    for k in ["user:1", "user:vip:1", "order:1"] {
        cache.set(k, 1).unwrap();
    }
    let hits = |name: &'static str, log: &Arc<std::sync::Mutex<Vec<String>>>| {
        let log = log.clone();
        FnSource(move |k: &str| {
            log.lock().unwrap().push(format!("{name}:{k}"));
            futures::future::ready(Ok(SourceAnswer::Value(1u64)))
        })
    };
    let log = Arc::default();
    let h = Healer::new(cache.clone(), config(1.0)).unwrap();
    h.register_source("user:", hits("users", &log)).unwrap();
    h.register_source("user:vip:", hits("vips", &log)).unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.verified, r.skipped), (2, 1));
    let mut l = log.lock().unwrap().clone();
    l.sort();
    assert_eq!(l, ["users:user:1", "vips:user:vip:1"]);
    assert_eq!(h.scores().iter().map(|s| s.prefix.as_str()).collect::<Vec<_>>(), ["user:", "user:vip:"]);
    assert!(h.unregister_source("user:vip:"));
    assert!(h.score("user:vip:").is_none());
}

/// A pluggable comparator: canonical JSON, so key order is not reported as drift.
#[test]
fn canonical_json_comparator() {
    let cache: Cache<String> = Cache::builder().build().unwrap();
    cache.set("u:1", r#"{"a":1,"b":2}"#.into()).unwrap();
    cache.set("u:2", r#"{"a":1}"#.into()).unwrap();
    let canon = |a: &String, b: &String| {
        serde_json::from_str::<serde_json::Value>(a).ok() == serde_json::from_str::<serde_json::Value>(b).ok()
    };
    let h = Healer::with_comparator(cache.clone(), config(1.0), Arc::new(canon), Arc::new(|v: &String| v.len() as u64))
        .unwrap();
    h.register_source(
        "u:",
        FnSource(|k: &str| {
            futures::future::ready(Ok(SourceAnswer::Value(if k == "u:1" {
                r#"{"b":2,"a":1}"#.to_string()
            } else {
                r#"{"a":2}"#.to_string()
            })))
        }),
    )
    .unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.consistent, r.drift), (1, 1));
    assert_eq!(cache.get("u:2").as_deref(), Some(r#"{"a":2}"#));
}

#[test]
fn settings_by_name_and_validation() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    let h = Healer::new(cache, HealingConfig::default()).unwrap();
    assert_eq!(h.config_get("sample_rate").unwrap(), "0.01");
    h.config_set("sample_rate", "0.02").unwrap();
    assert_eq!(h.config().sample_rate, 0.02);
    for (name, value, field) in [
        ("sample_rate", "1.5", "sample_rate"),
        ("sample_rate", "abc", "sample_rate"),
        ("verify_interval", "-1", "verify_interval"),
        ("score_window", "0", "score_window"),
        ("enabled", "maybe", "enabled"),
        ("nope", "1", "name"),
        // the former names still reach the same settings
        ("healing.verify_interval_ms", "-1", "verify_interval"),
        ("healing.nope", "1", "name"),
    ] {
        match h.config_set(name, value) {
            Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field, "{name}={value}"),
            other => panic!("{name}={value}: {other:?}"),
        }
    }
    assert_eq!(h.config().sample_rate, 0.02, "a refused change changes nothing");
    assert!(h.config_get("nope").is_err());
    // the same settings as numbers (flags 1/0), as the JS wrapper passes them
    h.config_set_number("enabled", 1.0).unwrap();
    h.config_set_number("score_window", 50.0).unwrap();
    assert_eq!((h.config_get("enabled").unwrap().as_str(), h.config().score_window), ("true", 50.0));
    assert_eq!(h.config_get_number("auto_repair").unwrap(), 1.0);
    for (name, value, field) in [
        ("enabled", 0.5, "enabled"),
        ("sample_rate", f64::NAN, "sample_rate"),
        ("max_samples", 0.0, "max_samples"),
        ("nope", 1.0, "name"),
    ] {
        match h.config_set_number(name, value) {
            Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field, "{name}={value}"),
            other => panic!("{name}={value}: {other:?}"),
        }
    }
    assert_eq!((h.config().sample_rate, h.config().enabled), (0.02, true), "nothing changed");
    assert!(Healer::new(
        Cache::<u64>::builder().build().unwrap(),
        HealingConfig { sample_rate: f64::NAN, ..Default::default() }
    )
    .is_err());
    // the documented defaults
    let d = HealingConfig::default();
    assert_eq!(
        (d.enabled, d.sample_rate, d.verify_interval_ms, d.auto_repair, d.score_window, d.source_timeout_ms),
        (false, 0.01, 5000.0, true, 1000.0, 2000.0)
    );
}

#[test]
fn prefixes_are_bounded() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    let h = Healer::new(cache, HealingConfig { max_prefixes: 2.0, ..Default::default() }).unwrap();
    let src = || FnSource(|_: &str| futures::future::ready(Ok(SourceAnswer::Value(1u64))));
    h.register_source("a", src()).unwrap();
    h.register_source("b", src()).unwrap();
    h.register_source("a", src()).unwrap();
    assert!(matches!(h.register_source("c", src()), Err(Error::InvalidConfig { field: "max_prefixes", .. })));
}

#[test]
fn healing_metrics_in_prometheus_text() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    cache.set("p:1", 1).unwrap();
    let db: Db = Arc::default();
    db.write().unwrap().insert("p:1".into(), 9);
    let h = Healer::new(cache, config(1.0)).unwrap();
    h.register_source("p:", db_source(&db)).unwrap();
    block_on(h.run_interval());
    let t = h.prometheus("c1");
    assert!(t.contains("healcache_healing_samples_total{cache=\"c1\"} 1"), "{t}");
    assert!(t.contains("healcache_healing_repairs_total{cache=\"c1\"} 1"));
    assert!(t.contains("healcache_healing_score{cache=\"c1\",prefix=\"p:\"} 0"));
    assert!(t.contains("healcache_healing_interval_duration_ms_count{cache=\"c1\"} 1"));
}

/// A hanging source times out (skipped, a failure); the background loop runs intervals while
/// enabled and stops on `stop`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_timeout_and_background_loop() {
    let cache: Cache<u64> = Cache::builder().timer(TokioTimer(tokio::runtime::Handle::current())).build().unwrap();
    cache.set("slow:1", 1).unwrap();
    cache.set("fast:1", 1).unwrap();
    let h =
        Healer::new(cache.clone(), HealingConfig { source_timeout_ms: 50.0, verify_interval_ms: 20.0, ..config(1.0) })
            .unwrap();
    h.register_source(
        "slow:",
        FnSource(|_: &str| async {
            futures::future::pending::<()>().await;
            Ok(SourceAnswer::Value(1u64))
        }),
    )
    .unwrap();
    h.register_source("fast:", FnSource(|_: &str| futures::future::ready(Ok(SourceAnswer::Value(1u64))))).unwrap();
    let t0 = std::time::Instant::now();
    let r = h.run_interval().await;
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!((r.verified, r.failures), (1, 1));
    let bg = tokio::spawn({
        let h = h.clone();
        async move { h.run().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.stop();
    tokio::time::timeout(Duration::from_secs(2), bg).await.expect("loop stopped").unwrap();
    assert!(h.score("fast:").unwrap().sampled >= 3, "the loop ran intervals");
}

/// A key the source refuses (a URL template that cannot carry it) is skipped: no drift, no
/// failure, no backoff, and the source is asked again for the other keys.
#[test]
fn refused_keys_are_skipped_not_failures() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    for i in 0..10 {
        cache.set(&format!("k{i}"), i).unwrap();
    }
    let src = FnSource(|k: &str| {
        let v: u64 = k[1..].parse().unwrap();
        futures::future::ready(if v < 5 { Err(SourceError::Refused) } else { Ok(SourceAnswer::Value(v)) })
    });
    let h = Healer::new(cache.clone(), config(1.0)).unwrap();
    h.register_source("k", src).unwrap();
    for _ in 0..4 {
        let r = block_on(h.run_interval());
        assert_eq!((r.verified, r.consistent, r.skipped, r.failures), (5, 5, 5, 0));
    }
    assert_eq!(h.stats().source_failures, 0);
    assert_eq!(h.score("k").unwrap().sampled, 20);
}

/// Host code (comparator, digest, value drops) runs with no healer lock held (no lock across host code): a
/// digest that reads the healer's reports from another thread finishes. Under a held lock that
/// thread would block and the wait below would time out.
#[test]
fn digest_runs_with_no_healer_lock_held() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    for i in 0..20 {
        cache.set(&format!("k{i}"), i).unwrap();
    }
    let cell: Arc<std::sync::OnceLock<Healer<u64>>> = Arc::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let (c, n) = (cell.clone(), seen.clone());
    let digest = Arc::new(move |v: &u64| {
        if let Some(h) = c.get() {
            let h = h.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send((h.scores().len(), h.stats().total_sampled, h.drift_events().len()));
            });
            rx.recv_timeout(Duration::from_secs(10)).expect("reports blocked: digest called under a healer lock");
            n.fetch_add(1, SeqCst);
        }
        *v
    });
    let h = Healer::with_comparator(cache.clone(), config(1.0), Arc::new(|a: &u64, b: &u64| a == b), digest).unwrap();
    cell.set(h.clone()).ok().unwrap();
    let db: Db = Arc::new(RwLock::new((0..20).map(|i| (format!("k{i}"), i + 1)).collect()));
    h.register_source("k", db_source(&db)).unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.drift, r.repaired), (20, 20));
    assert_eq!(seen.load(SeqCst), 40, "two digests per drift event");
}

/// P5, a failing source (3 failed intervals, then a wait that doubles up to 32 intervals): after
/// its 3rd, 4th, 5th ... failed interval the source is left alone for exactly 1, 2, 4, 8, 16, 32
/// intervals, and then 32 again however often it fails (never 64). Each wait is measured at its
/// bound: 1 ns before it an interval is skipped without asking the source, exactly at it the
/// source is asked. One answered interval clears the count: two more failures are not backed
/// off, and the third waits 1 interval again.
#[test]
fn backoff_doubles_from_the_third_failure_up_to_32_intervals() {
    let clock = ManualClock::new();
    let cache: Cache<u64> = Cache::builder().clock(clock.clone()).build().unwrap();
    for i in 0..10 {
        cache.set(&format!("k{i}"), i).unwrap();
    }
    let down = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let h = Healer::new(cache.clone(), config(1.0)).unwrap();
    h.register_source("k", common::flaky_source(&down, &calls)).unwrap();
    assert_eq!(h.config().verify_interval_ms, 5000.0, "the interval the waits are counted in");
    let interval = Duration::from_millis(5000);
    let ns = Duration::from_nanos(1);
    // an interval now: (failed answers, consistent samples, skipped samples, calls to the source)
    let run = || {
        let before = calls.load(SeqCst);
        let r = block_on(h.run_interval());
        (r.failures, r.consistent, r.skipped, calls.load(SeqCst) - before)
    };
    let failed = (10, 0, 10, 10);
    let answered = (0, 10, 0, 10);
    let left_alone = (0, 0, 10, 0);
    // The wait set by the last interval, in intervals: left alone at once and 1 ns before each
    // whole interval, until the source is asked at a whole interval (that run's outcome returned).
    let wait = || {
        assert_eq!(run(), left_alone, "backed off at once");
        for intervals in 1..=64u32 {
            clock.advance(interval - ns);
            assert_eq!(run(), left_alone, "1 ns before {intervals} intervals");
            clock.advance(ns);
            let r = run();
            if r.3 > 0 {
                return (intervals, r);
            }
            assert_eq!(r, left_alone, "at {intervals} intervals");
        }
        panic!("still backed off after 64 intervals");
    };
    // the 1st and 2nd failures: not backed off, the next interval (even at once) asks again
    assert_eq!(run(), failed);
    assert_eq!(run(), failed);
    assert_eq!(run(), failed, "the 3rd failure");
    // each wait ends in the next failure, which sets the next wait
    let waits: Vec<u32> = (3..=10)
        .map(|_| {
            let (intervals, r) = wait();
            assert_eq!(r, failed);
            intervals
        })
        .collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 32, 32], "waits after failures 3 to 10");
    assert_eq!(h.stats().source_failures, 11 * 10);
    // the wait after the 11th failure is 32 still; the source answers when asked at its end
    down.store(false, SeqCst);
    assert_eq!(wait(), (32, answered));
    // a fresh count: failures 1 and 2 asked at once, the 3rd backs off 1 interval, not 64
    down.store(true, SeqCst);
    assert_eq!(run(), failed);
    assert_eq!(run(), failed);
    assert_eq!(run(), failed);
    assert_eq!(wait(), (1, failed));
    let s = h.score("k").unwrap();
    assert_eq!((s.sampled, s.score), (10, 1.0), "failures never count in the score");
}

/// P5, drift events kept (`max_drift_events`, the oldest leaves): at 5, five events are all
/// kept, oldest first; a 6th drops exactly the oldest and is kept last, and each later one again
/// drops only the oldest. One key drifts per interval, so the events' order is known.
#[test]
fn drift_history_keeps_exactly_max_drift_events_and_drops_the_oldest() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    let h = Healer::new(cache.clone(), config(1.0)).unwrap();
    h.config_set("max_drift_events", "5").unwrap();
    assert_eq!(h.config().max_drift_events, 5.0);
    // the source says `k<n>` is n; each key is cached as 0 just before its interval (drift),
    // and repaired in it, so later intervals find it consistent
    h.register_source(
        "k",
        FnSource(|k: &str| futures::future::ready(Ok(SourceAnswer::Value(k[1..].parse().unwrap())))),
    )
    .unwrap();
    let kept = || h.drift_events().into_iter().map(|e| e.key).collect::<Vec<_>>();
    let keys = |r: std::ops::Range<u32>| r.map(|i| format!("k{i}")).collect::<Vec<_>>();
    for i in 1..=5 {
        cache.set(&format!("k{i}"), 0).unwrap();
        let r = block_on(h.run_interval());
        assert_eq!((r.drift, r.repaired), (1, 1));
    }
    assert_eq!(kept(), keys(1..6), "at the bound: all five, oldest first");
    cache.set("k6", 0).unwrap();
    assert_eq!(block_on(h.run_interval()).drift, 1);
    assert_eq!(kept(), keys(2..7), "past it: k1 left, k6 kept last");
    cache.set("k7", 0).unwrap();
    assert_eq!(block_on(h.run_interval()).drift, 1);
    assert_eq!(kept(), keys(3..8));
    assert_eq!(h.stats().total_drift, 7, "dropped events still count in the totals");
}
