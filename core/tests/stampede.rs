//! Stampede layers on a manual clock: XFetch, stale-while-revalidate, fail-safe, soft timeout,
//! refresh-ahead, TTL jitter, negative caching, per-call status, metrics.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::{Boom, QueueSpawner, TokioTimer};
use futures::executor::block_on;
use futures::future::BoxFuture;
use healcache::{Cache, CacheBuilder, Error, FetchOptions, Loaded, ManualClock, Spawner, Status};

struct TokioSpawner;
impl Spawner for TokioSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        tokio::spawn(fut);
    }
}

const MS: Duration = Duration::from_millis(1);

fn setup(f: impl FnOnce(CacheBuilder<u64>) -> CacheBuilder<u64>) -> (Cache<u64>, ManualClock, QueueSpawner) {
    let clock = ManualClock::new();
    let sp = QueueSpawner::default();
    let c = f(Cache::builder().clock(clock.clone()).spawner(sp.clone()).seed(11)).build().unwrap();
    (c, clock, sp)
}

/// A loader that takes `delta` of (manual) time and returns the number of loads so far.
fn loader(
    clock: &ManualClock,
    calls: &Arc<AtomicUsize>,
    delta: Duration,
) -> impl FnOnce() -> BoxFuture<'static, Result<Loaded<u64>, Boom>> + Send + 'static {
    let (clock, calls) = (clock.clone(), calls.clone());
    move || {
        Box::pin(async move {
            clock.advance(delta);
            Ok(Loaded::Value(calls.fetch_add(1, SeqCst) as u64 + 1))
        })
    }
}

/// XFetch on a hot key: about one early refresh per TTL window, and no read ever misses at
/// expiry after the first load.
#[test]
fn xfetch_hot_key_refreshes_about_once_per_window_and_never_misses() {
    let ttl = 1000 * MS;
    let (c, clock, sp) = setup(|b| b.ttl(ttl).xfetch(1.0));
    let calls = Arc::new(AtomicUsize::new(0));
    let delta = 50 * MS;
    let mut statuses = std::collections::HashMap::new();
    let windows = 40;
    // a read every millisecond for 40 TTL windows
    for _ in 0..(windows * 1000) {
        let f = block_on(c.fetch("hot", FetchOptions::default(), loader(&clock, &calls, delta))).unwrap();
        *statuses.entry(f.status).or_insert(0usize) += 1;
        sp.drain();
        clock.advance(MS);
    }
    let early = statuses.get(&Status::EarlyRefresh).copied().unwrap_or(0);
    let misses = statuses.get(&Status::Loaded).copied().unwrap_or(0);
    assert_eq!(misses, 1, "only the very first read loads in the foreground: {statuses:?}");
    // each refresh lands about `delta`-ish before expiry and restarts the window: the TTL window is
    // then about 1000 - gap + 50 ms of simulated time; roughly one refresh per window.
    let per_window = early as f64 / windows as f64;
    println!("xfetch hot key: {early} early refreshes in {windows} TTL windows ({per_window:.2} per window), {misses} foreground load, statuses {statuses:?}");
    assert!((0.9..=1.3).contains(&per_window), "early refreshes per window = {per_window} ({statuses:?})");
    assert_eq!(c.stats().early_refreshes as usize, early);
    assert_eq!(c.stats().loads as usize, early + 1);
}

/// XFetch on a cold key read once per TTL: every read finds the entry expired (a miss), and no
/// early refresh ever happens.
#[test]
fn xfetch_cold_key_refreshes_nothing_early() {
    let ttl = 1000 * MS;
    let (c, clock, sp) = setup(|b| b.ttl(ttl).xfetch(1.0));
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..200 {
        let f = block_on(c.fetch("cold", FetchOptions::default(), loader(&clock, &calls, 50 * MS))).unwrap();
        assert_eq!(f.status, Status::Loaded);
        sp.drain();
        clock.advance(ttl);
    }
    assert_eq!(c.stats().early_refreshes, 0);
    println!(
        "xfetch cold key: 200 reads, one per TTL: {} early refreshes, {} loads",
        c.stats().early_refreshes,
        c.stats().loads
    );
}

#[test]
fn xfetch_can_be_turned_off_per_call() {
    let (c, clock, sp) = setup(|b| b.ttl(1000 * MS).xfetch(1000.0));
    let calls = Arc::new(AtomicUsize::new(0));
    block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, 100 * MS))).unwrap();
    clock.advance(900 * MS);
    let off = FetchOptions { xfetch: Some(false), ..Default::default() };
    for _ in 0..50 {
        let f = block_on(c.fetch("k", off, loader(&clock, &calls, MS))).unwrap();
        assert_eq!(f.status, Status::Hit);
    }
    assert_eq!(sp.drain(), 0);
    // beta 1000 with 100 ms of delta: the next read with XFetch on refreshes
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    assert_eq!(f.status, Status::EarlyRefresh);
}

/// Stale-while-revalidate: within grace, reads get the stale value at once and exactly one
/// refresh runs; after it, reads are fresh hits.
#[test]
fn stale_while_revalidate_serves_stale_with_one_refresh() {
    let (c, clock, sp) = setup(|b| b.ttl(1000 * MS).grace(500 * MS).stale_while_revalidate(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    assert_eq!((f.value, f.status), (Some(1), Status::Loaded));
    clock.advance(1100 * MS);
    assert_eq!(c.get("k"), None, "plain reads never see stale values");
    for _ in 0..100 {
        let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
        assert_eq!((f.value, f.status), (Some(1), Status::Stale));
    }
    assert_eq!(sp.drain(), 1, "one background refresh for 100 stale reads");
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    assert_eq!((f.value, f.status), (Some(2), Status::Hit));
    assert_eq!(c.stats().stale_served_swr, 100);
    // past the grace window the stale value is gone: a foreground load
    clock.advance(1600 * MS);
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    assert_eq!((f.value, f.status), (Some(3), Status::Loaded));
}

/// Fail-safe: within grace, a failing load serves the stale value (counted); the error is not
/// cached; past grace the error reaches the caller.
#[test]
fn fail_safe_serves_stale_when_the_loader_fails() {
    let (c, clock, _sp) = setup(|b| b.ttl(1000 * MS).grace(5000 * MS));
    c.set("k", 7).unwrap();
    clock.advance(1500 * MS);
    let failing = || async { Err::<Loaded<u64>, _>(Boom("db down")) };
    let f = block_on(c.fetch("k", FetchOptions::default(), failing)).unwrap();
    assert_eq!((f.value, f.status), (Some(7), Status::StaleFailSafe));
    let s = c.stats();
    assert_eq!((s.stale_served_fail_safe, s.load_errors), (1, 1));
    // get_or_load falls back the same way
    let v = block_on(c.get_or_load("k", || async { Err::<u64, _>(Boom("still down")) })).unwrap();
    assert_eq!(v, 7);
    // and so does the blocking twin
    let v = c.get_or_load_blocking("k", || Err::<u64, _>(Boom("down for threads too"))).unwrap();
    assert_eq!(v, 7);
    assert_eq!(c.stats().stale_served_fail_safe, 3);
    clock.advance(5000 * MS);
    let r = block_on(c.fetch("k", FetchOptions::default(), failing));
    assert!(matches!(r, Err(Error::Loader(_))));
    assert!(matches!(c.get_or_load_blocking("k", || Err::<u64, _>(Boom("x"))), Err(Error::Loader(_))));
}

/// Soft timeout: a slow load with a stale value to fall back on returns the stale value at the
/// soft timeout; the load finishes in the background and stores its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_timeout_returns_stale_and_finishes_in_background() {
    let clock = ManualClock::new();
    let c: Cache<u64> = Cache::builder()
        .clock(clock.clone())
        .ttl(1000 * MS)
        .grace(60_000 * MS)
        .load_soft_timeout(Duration::from_millis(30))
        .load_timeout(Duration::from_secs(5))
        .timer(TokioTimer(tokio::runtime::Handle::current()))
        .spawner(TokioSpawner)
        .build()
        .unwrap();
    c.set("k", 1).unwrap();
    clock.advance(2000 * MS);
    let t0 = std::time::Instant::now();
    let f = c
        .fetch("k", FetchOptions::default(), || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, Boom>(Loaded::Value(2))
        })
        .await
        .unwrap();
    assert_eq!((f.value, f.status), (Some(1), Status::StaleSoftTimeout));
    assert!(t0.elapsed() < Duration::from_millis(250));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.get("k"), Some(2), "the load finished in the background");
    assert_eq!(c.stats().stale_served_soft_timeout, 1);
}

/// A hard timeout with a stale value is a fail-safe too; without one it is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_timeout_falls_back_to_stale() {
    let clock = ManualClock::new();
    let c: Cache<u64> = Cache::builder()
        .clock(clock.clone())
        .ttl(1000 * MS)
        .grace(60_000 * MS)
        .load_timeout(Duration::from_millis(30))
        .timer(TokioTimer(tokio::runtime::Handle::current()))
        .build()
        .unwrap();
    c.set("k", 1).unwrap();
    clock.advance(2000 * MS);
    let hang = || async {
        futures::future::pending::<()>().await;
        Ok::<_, Boom>(Loaded::Value(2))
    };
    let f = c.fetch("k", FetchOptions::default(), hang).await.unwrap();
    assert_eq!((f.value, f.status), (Some(1), Status::StaleFailSafe));
    let r = c.fetch("absent", FetchOptions::default(), hang).await;
    assert!(matches!(r, Err(Error::LoadTimeout { after_ms: 30 })));
}

#[test]
fn refresh_ahead_refreshes_old_values_in_background() {
    let (c, clock, sp) = setup(|b| b.ttl(1000 * MS).refresh_after(600 * MS));
    let calls = Arc::new(AtomicUsize::new(0));
    block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    clock.advance(300 * MS);
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    assert_eq!(f.status, Status::Hit);
    clock.advance(400 * MS);
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    assert_eq!((f.value, f.status), (Some(1), Status::RefreshAhead));
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    assert_eq!((f.value, f.status), (Some(1), Status::Hit), "one refresh at a time");
    assert_eq!(sp.drain(), 1);
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    assert_eq!((f.value, f.status), (Some(2), Status::Hit));
    assert_eq!(c.stats().refresh_ahead, 1);
}

/// A refresh that finishes after its entry's TTL is stored (expiry is not a newer write), while a
/// write or a removal during the load still wins over it.
#[test]
fn refresh_finishing_after_expiry_is_stored_but_writes_and_removals_still_win() {
    let (c, clock, sp) = setup(|b| b.ttl(100 * MS).refresh_after(20 * MS));
    let calls = Arc::new(AtomicUsize::new(0));
    block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, MS))).unwrap();
    clock.advance(30 * MS);
    let f = block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, 200 * MS))).unwrap();
    assert_eq!(f.status, Status::RefreshAhead);
    // the refresh takes 200 ms: the entry expires meanwhile
    assert_eq!(sp.drain(), 1);
    assert_eq!(c.get("k"), Some(2), "the late refresh was stored");
    assert_eq!(c.stats().fenced_writes, 0);

    // a removal while a refresh of the entry is in flight fences it (an invalidation is never
    // undone by a load that began before it)
    c.set("k", 5).unwrap();
    clock.advance(30 * MS);
    let c2 = c.clone();
    let f = block_on(c.fetch("k", FetchOptions::default(), move || {
        c2.remove("k");
        async { Ok::<_, Boom>(Loaded::Value(99)) }
    }))
    .unwrap();
    assert_eq!((f.value, f.status), (Some(5), Status::RefreshAhead));
    assert_eq!(sp.drain(), 1);
    assert_eq!(c.get("k"), None, "the removal won");
    assert_eq!(c.stats().fenced_writes, 1);
}

#[test]
fn ttl_jitter_spreads_expiries() {
    let clock = ManualClock::new();
    let c: Cache<u64> =
        Cache::builder().clock(clock.clone()).ttl(1000 * MS).ttl_jitter(0.1).max_entries(2000).build().unwrap();
    let mut exp = Vec::new();
    for i in 0..1000 {
        c.set(&format!("k{i}"), i).unwrap();
        exp.push(c.get_entry(&format!("k{i}")).unwrap().expires_in.unwrap());
    }
    exp.sort();
    assert!(exp[0] >= 1000 * MS);
    assert!(exp[999] < 1100 * MS);
    assert!(exp[999] - exp[0] > 80 * MS, "spread {:?}", exp[999] - exp[0]);
    // without jitter every expiry is the same
    let c: Cache<u64> = Cache::builder().clock(clock.clone()).ttl(1000 * MS).build().unwrap();
    c.set("a", 1).unwrap();
    c.set("b", 1).unwrap();
    assert_eq!(c.get_entry("a").unwrap().expires_in, c.get_entry("b").unwrap().expires_in);
}

#[test]
fn negative_caching() {
    let clock = ManualClock::new();
    let c: Cache<u64> = Cache::builder().clock(clock.clone()).max_entries(100).negative_ttl(200 * MS).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let nf = |calls: &Arc<AtomicUsize>| {
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, SeqCst);
            Ok::<_, Boom>(Loaded::<u64>::NotFound)
        }
    };
    let f = block_on(c.fetch("gone", FetchOptions::default(), nf(&calls))).unwrap();
    assert_eq!((f.value, f.status), (None, Status::NegativeLoaded));
    let f = block_on(c.fetch("gone", FetchOptions::default(), nf(&calls))).unwrap();
    assert_eq!((f.value, f.status), (None, Status::NegativeHit));
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(c.get("gone"), None);
    assert!(!c.contains("gone"));
    assert!(matches!(block_on(c.get_or_load("gone", || async { Ok::<u64, Boom>(1) })), Err(Error::NotFound)));
    let s = c.stats();
    assert_eq!((s.negative_entries, s.negative_hits, s.hits), (1, 3, 0));
    // negative entries expire on their own TTL
    clock.advance(200 * MS);
    let f = block_on(c.fetch("gone", FetchOptions::default(), nf(&calls))).unwrap();
    assert_eq!(f.status, Status::NegativeLoaded);
    // a real value replaces a negative entry
    c.set("gone", 5).unwrap();
    assert_eq!(c.get("gone"), Some(5));
    assert_eq!(c.stats().negative_entries, 0);
    // bounded: at most 10% of 100 entries
    for i in 0..50 {
        block_on(c.fetch(&format!("nf{i}"), FetchOptions::default(), nf(&calls))).unwrap();
    }
    let s = c.stats();
    assert_eq!(s.negative_entries, 10);
    assert_eq!(s.negative_refused, 40);
    // errors are never cached as values or as negatives
    let r = block_on(c.fetch("err", FetchOptions::default(), || async { Err::<Loaded<u64>, _>(Boom("x")) }));
    assert!(r.is_err());
    assert_eq!(c.version("err"), 0);
}

#[test]
fn not_found_is_not_cached_without_negative_ttl() {
    let c: Cache<u64> = Cache::builder().build().unwrap();
    let f = block_on(c.fetch("k", FetchOptions::default(), || async { Ok::<_, Boom>(Loaded::NotFound) })).unwrap();
    assert_eq!(f.status, Status::NegativeLoaded);
    assert_eq!(c.len(), 0);
    // per call
    let opts = FetchOptions { negative_ttl: Some(Duration::from_secs(1)), ..Default::default() };
    block_on(c.fetch("k", opts, || async { Ok::<_, Boom>(Loaded::NotFound) })).unwrap();
    assert_eq!(c.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_loaded_coalesced_hit() {
    let c: Cache<u64> = Cache::builder().build().unwrap();
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, Boom>(Loaded::Value(1))
    };
    let (a, b) =
        futures::future::join(c.fetch("k", FetchOptions::default(), slow), c.fetch("k", FetchOptions::default(), slow))
            .await;
    let mut st = [a.unwrap().status, b.unwrap().status];
    st.sort_by_key(|s| s.as_str());
    assert_eq!(st, [Status::Coalesced, Status::Loaded]);
    assert_eq!(c.fetch("k", FetchOptions::default(), slow).await.unwrap().status, Status::Hit);
}

/// The system clock's TTL reads are coarse on Linux (one scheduler tick, 4 ms here), so a load
/// timed with them would record 0 or a whole tick: load latencies use the precise read instead
/// (a Node test saw `sumNanos == 0` for a 5 ms load in CI).
#[test]
fn load_latency_of_the_system_clock_is_precise() {
    let c: Cache<u64> = Cache::builder().build().unwrap();
    let mut before = 0;
    for i in 0..5u64 {
        c.get_or_load_blocking(&format!("k{i}"), move || {
            std::thread::sleep(Duration::from_micros(300));
            Ok::<_, Boom>(i)
        })
        .unwrap();
        let s = c.stats().load_latency;
        assert_eq!(s.count(), i + 1);
        // this load slept at least 300 µs; a coarse read records 0 for most loads this short
        assert!(s.sum_nanos - before >= 300_000, "load {i}: {} ns", s.sum_nanos - before);
        before = s.sum_nanos;
    }
}

#[test]
fn metrics_snapshot_and_prometheus_text() {
    let (c, clock, _sp) = setup(|b| b.ttl(1000 * MS));
    let calls = Arc::new(AtomicUsize::new(0));
    block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, 30 * MS))).unwrap();
    block_on(c.fetch("k", FetchOptions::default(), loader(&clock, &calls, 30 * MS))).unwrap();
    let s = c.stats();
    assert_eq!(s.load_latency.count(), 1);
    assert_eq!(s.load_latency.sum_nanos, 30_000_000);
    let text = c.prometheus("users\"svc");
    assert!(text.contains("healcache_hits_total{cache=\"users\\\"svc\"} 1"), "{text}");
    assert!(text.contains("healcache_loader_calls_total{cache=\"users\\\"svc\"} 1"));
    assert!(text.contains("healcache_load_duration_seconds_bucket{cache=\"users\\\"svc\",le=\"0.05\"} 1"));
    assert!(text.contains("healcache_load_duration_seconds_bucket{cache=\"users\\\"svc\",le=\"0.025\"} 0"));
    assert!(text.contains("healcache_stale_served_total{cache=\"users\\\"svc\",reason=\"fail_safe\"} 0"));
    assert!(text.contains("# TYPE healcache_in_flight_loads gauge"));
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["loads"], 1);
}

/// Several caches in one exposition: each family's HELP and TYPE lines once, its samples
/// together (concatenated texts repeat every HELP line, which strict parsers refuse), no sample
/// lost; two caches given one name are refused.
#[test]
fn expositions_of_several_caches_join_into_one() {
    let a: Cache<u64> = Cache::builder().build().unwrap();
    let b: Cache<u64> = Cache::builder().build().unwrap();
    a.set("k", 1).unwrap();
    assert_eq!(a.get("k"), Some(1));
    let (ta, tb) = (a.prometheus("a"), b.prometheus("b"));
    let joined = healcache::prometheus_join(&[ta.as_str(), tb.as_str()]).unwrap();
    let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect::<Vec<_>>();
    let mut want = samples(&ta);
    want.extend(samples(&tb));
    want.sort();
    let mut got = samples(&joined);
    got.sort();
    assert_eq!(got, want, "every sample of both, once");
    let mut seen = std::collections::HashSet::new();
    let mut family = String::new();
    for line in joined.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            family = rest.split(' ').next().unwrap().to_owned();
            assert!(seen.insert(family.clone()), "{family}: HELP twice");
        } else if !line.starts_with('#') {
            assert!(line.starts_with(&family), "{line} outside its family {family}");
        }
    }
    assert!(joined.contains("healcache_hits_total{cache=\"a\"} 1\nhealcache_hits_total{cache=\"b\"} 0\n"));
    // one text alone is unchanged
    assert_eq!(healcache::prometheus_join(&[&ta]).unwrap(), ta);
    let e = healcache::prometheus_join(&[&ta, &a.prometheus("a")]).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "texts", .. }), "{e}");
}

#[test]
fn stampede_config_is_validated() {
    let e = Cache::<u8>::builder().xfetch(1.0).build().unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "xfetch", .. }));
    let e = Cache::<u8>::builder().spawner(QueueSpawner::default()).xfetch(0.0).build().unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "xfetch_beta", .. }));
    let e = Cache::<u8>::builder().spawner(QueueSpawner::default()).stale_while_revalidate(true).build().unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "stale_while_revalidate", .. }));
    let e = Cache::<u8>::builder().ttl_jitter(1.5).build().unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "ttl_jitter", .. }));
    let e = Cache::<u8>::builder().refresh_after(MS).build().unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "refresh_after", .. }));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = Cache::<u8>::builder()
        .timer(TokioTimer(rt.handle().clone()))
        .spawner(QueueSpawner::default())
        .load_timeout(10 * MS)
        .load_soft_timeout(20 * MS)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "load_soft_timeout", .. }));
}

/// Every bucket bound of the load-latency histogram is printed in seconds, exactly.
#[test]
fn prometheus_bucket_bounds_are_exact() {
    let c: Cache<u64> = Cache::builder().build().unwrap();
    let text = c.prometheus("x");
    let les: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("healcache_load_duration_seconds_bucket"))
        .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
        .collect();
    assert_eq!(
        les,
        ["0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
    );
}

/// A per-call option the cache cannot honour is refused, as the builder refuses the setting:
/// without a timer and a spawner a `soft_timeout` never fired, and without a spawner
/// `stale_while_revalidate` and `xfetch` loaded in the caller's time, silently.
#[test]
fn per_call_options_a_cache_cannot_honour_are_refused_before_any_work() {
    let clock = ManualClock::new();
    let c: Cache<u64> = Cache::builder()
        .ttl(Duration::from_secs(1))
        .grace(Duration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    c.set("k", 1).unwrap();
    clock.advance(Duration::from_secs(2)); // stale, within grace
    let calls = Arc::new(AtomicUsize::new(0));
    let cases = [
        ("soft_timeout", FetchOptions { soft_timeout: Some(Duration::from_millis(50)), ..Default::default() }),
        ("stale_while_revalidate", FetchOptions { stale_while_revalidate: Some(true), ..Default::default() }),
        ("xfetch", FetchOptions { xfetch: Some(true), ..Default::default() }),
    ];
    for (name, opts) in cases {
        assert!(
            matches!(c.check_fetch("k", &opts, &[]), Err(Error::InvalidConfig { field, .. }) if field == name),
            "{name}"
        );
        let n = Arc::clone(&calls);
        let r = block_on(c.fetch("k", opts, move || async move {
            n.fetch_add(1, SeqCst);
            Ok::<_, Boom>(Loaded::Value(2))
        }));
        assert!(matches!(r, Err(Error::InvalidConfig { field, .. }) if field == name), "{name}: {r:?}");
    }
    assert_eq!(calls.load(SeqCst), 0, "refused before any work");
    assert_eq!(c.peek_stored("k"), Some(1), "nothing changed");
    // turned off, or the cache's own setting: taken
    let off = FetchOptions { stale_while_revalidate: Some(false), xfetch: Some(false), ..Default::default() };
    let got = block_on(c.fetch("k", off, || async { Ok::<_, Boom>(Loaded::Value(3)) })).unwrap();
    assert_eq!((got.value, got.status), (Some(3), Status::Loaded));
}
