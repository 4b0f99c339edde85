//! The fleet rebuild lock and fencing tokens against a real redis-server, several caches in one
//! process (each its own instance of the fleet, with its own L1 and flights; separate OS
//! processes are in `fleet_processes.rs`).
//!
//! The promise checked: the shared tier promises only what it can. The lock is an efficiency
//! lock (one rebuild per fleet while holders behave); data is protected by fencing tokens with
//! epochs, so a holder that lost its lease, or whose fence record was lost, never overwrites a
//! newer value, in L2 or in any L1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use healcache::tier::{FleetLock, MsgPack, Transport};
use healcache::{Cache, FetchOptions, Loaded, Status, Timer};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::RedisServer;
use redis::Commands;
use serde_json::{json, Value};

fn server() -> RedisServer {
    RedisServer::start().expect("redis-server must be installed (.ci/setup-server.sh) to run these tests")
}

fn cache(url: &str, mode: FleetLock, lease_ms: u64, max_hold_ms: u64) -> Cache<Value> {
    cache_on(RedisTransport::connect(url).unwrap(), mode, lease_ms, max_hold_ms)
}

fn cache_on(l2: RedisTransport, mode: FleetLock, lease_ms: u64, max_hold_ms: u64) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(60))
        .fleet_lock(mode)
        .fleet_lock_lease(Duration::from_millis(lease_ms))
        .fleet_lock_max_hold(Duration::from_millis(max_hold_ms))
        .shared_tier(l2, MsgPack::new())
        .build()
        .unwrap()
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

/// `c.fetch(key)` with a loader that takes `ms` and answers `v`, counting its calls in `calls`.
fn fetch_slow(c: &Cache<Value>, key: &str, ms: u64, v: Value, calls: &Arc<AtomicUsize>) -> healcache::Fetched<Value> {
    let calls = calls.clone();
    block(c.fetch(key, FetchOptions::default(), move || async move {
        calls.fetch_add(1, Ordering::SeqCst);
        IoTimer.sleep(Duration::from_millis(ms)).await;
        Ok::<_, std::io::Error>(Loaded::Value(v))
    }))
    .unwrap()
}

fn l2_value(url: &str, key: &str) -> Option<Value> {
    let c = cache(url, FleetLock::Off, 5000, 30000);
    block(c.fetch(key, FetchOptions::default(), || async { Err::<Loaded<Value>, _>(std::io::Error::other("no load")) }))
        .ok()
        .and_then(|f| f.value)
}

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Without the lock every instance that misses rebuilds; with `all`, one does and the others
/// wait for its value (statuses `loaded` once, `fleet-coalesced` for the rest).
#[test]
fn four_instances_missing_one_key_rebuild_it_once_with_the_lock_and_four_times_without() {
    let r = server();
    for (mode, want) in [(FleetLock::Off, 4), (FleetLock::All, 1)] {
        let key = format!("hot:{}", mode.as_str());
        let calls = Arc::new(AtomicUsize::new(0));
        let caches: Vec<_> = (0..4).map(|_| cache(&r.url(), mode, 2000, 30000)).collect();
        let threads: Vec<_> = caches
            .iter()
            .map(|c| {
                let (c, calls, key) = (c.clone(), calls.clone(), key.clone());
                std::thread::spawn(move || fetch_slow(&c, &key, 200, json!("built"), &calls))
            })
            .collect();
        let got: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(calls.load(Ordering::SeqCst), want, "origin rebuilds with fleet_lock={}", mode.as_str());
        assert!(got.iter().all(|f| f.value == Some(json!("built"))));
        if mode == FleetLock::All {
            let mut statuses: Vec<_> = got.iter().map(|f| f.status.as_str()).collect();
            statuses.sort();
            assert_eq!(statuses, ["fleet-coalesced", "fleet-coalesced", "fleet-coalesced", "loaded"]);
            let s: Vec<_> = caches.iter().map(|c| c.stats()).collect();
            let sum = |f: fn(&healcache::Stats) -> u64| s.iter().map(f).sum::<u64>();
            // every instance took the lock or found it taken; one that missed L2 just before the
            // value landed may take it after the release, finds the value and loads nothing
            let (acquired, contended) = (sum(|s| s.l2_lock_acquired), sum(|s| s.l2_lock_contended));
            assert!(acquired >= 1 && acquired + contended >= 4, "acquired {acquired}, contended {contended}");
            assert_eq!(sum(|s| s.l2_lock_wait.count()), contended, "each contended miss waited once");
            let lock_key = healcache::keys::l2_keys("hc1", &key).lock;
            assert!(!raw(&r.url()).exists::<_, bool>(&lock_key).unwrap(), "the fenced write released the lock");
        }
    }
}

/// With `all`, a holder whose loader fails releases the lock at once (its lease is not waited
/// out): the next waiter to poll takes it and loads in its turn, so a failing origin sees the
/// waiters' loads one at a time, never together, and each caller gets its own loader's error.
#[test]
fn a_failing_holder_releases_the_lock_and_the_waiters_load_one_at_a_time() {
    let r = server();
    let lease = Duration::from_millis(3000);
    let caches: Vec<_> = (0..4).map(|_| cache(&r.url(), FleetLock::All, 3000, 30000)).collect();
    let (calls, running, most) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let threads: Vec<_> = caches
        .iter()
        .map(|c| {
            let (c, calls, running, most) = (c.clone(), calls.clone(), running.clone(), most.clone());
            std::thread::spawn(move || {
                block(c.fetch("down", FetchOptions::default(), move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    IoTimer.sleep(Duration::from_millis(100)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Err::<Loaded<Value>, _>(std::io::Error::other("origin down"))
                }))
            })
        })
        .collect();
    let got: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let elapsed = started.elapsed();
    for f in &got {
        let e = f.as_ref().expect_err("nothing to serve: every caller fails");
        assert_eq!(e.code(), "LoaderError");
        assert!(e.to_string().contains("origin down"), "{e}");
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "the origin saw one load at a time");
    assert_eq!(calls.load(Ordering::SeqCst), 4, "each waiter loaded in its turn");
    // four loads of 100 ms and the waiters' polls (50 ms): nowhere near one lease
    assert!(elapsed < lease, "took {elapsed:?}: a waiter waited out a lease");
    let lock_key = healcache::keys::l2_keys("hc1", "down").lock;
    wait_for("the last holder released the lock", || !raw(&r.url()).exists::<_, bool>(&lock_key).unwrap());
    let s: Vec<_> = caches.iter().map(|c| c.stats()).collect();
    assert_eq!(s.iter().map(|s| s.l2_lock_timeouts).sum::<u64>(), 0, "no waiter timed out");
}

/// Lease 100 ms, renewed for 100 ms at most; A's loader takes 400 ms, B's 10 ms. B takes the lock
/// once A's lease lapses and writes first; A's late write is refused by its token. B's value is
/// final in L2 and in both L1s; A's caller gets its own value with `fenced-out`.
#[test]
fn a_holder_past_its_lease_is_fenced_out_and_the_newer_value_stays_everywhere() {
    let r = server();
    let (a, b) = (cache(&r.url(), FleetLock::All, 100, 100), cache(&r.url(), FleetLock::All, 100, 100));
    let calls = Arc::new(AtomicUsize::new(0));
    let (a2, c2) = (a.clone(), calls.clone());
    let slow = std::thread::spawn(move || fetch_slow(&a2, "acct", 400, json!("A: old"), &c2));
    wait_for("A holds the lock", || a.stats().l2_lock_acquired == 1);
    let fb = fetch_slow(&b, "acct", 10, json!("B: new"), &calls);
    assert_eq!((fb.value.clone(), fb.status), (Some(json!("B: new")), Status::Loaded));
    assert_eq!(b.stats().l2_lock_contended, 1, "B waited for A's lease first");
    let fa = slow.join().unwrap();
    assert_eq!((fa.value, fa.status), (Some(json!("A: old")), Status::FencedOut));
    assert_eq!(a.stats().l2_fenced_out, 1);
    assert_eq!(l2_value(&r.url(), "acct"), Some(json!("B: new")), "L2 keeps B's value");
    for (name, c) in [("A", &a), ("B", &b)] {
        assert_eq!(c.get("acct"), Some(json!("B: new")), "{name}'s L1 holds B's value");
    }
}

/// The fence record deleted while A rebuilds (an operator's DEL, an eviction): the epoch A's
/// token carries is gone, so A is fenced out even though nothing newer was written.
#[test]
fn a_lost_fence_record_fences_out_every_holder_from_before() {
    let r = server();
    let a = cache(&r.url(), FleetLock::All, 5000, 30000);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let a2 = a.clone();
    let slow = std::thread::spawn(move || {
        block(a2.fetch("doc", FetchOptions::default(), move || async move {
            let _ = rx.recv_timeout(Duration::from_secs(10));
            Ok::<_, std::io::Error>(Loaded::Value(json!("A")))
        }))
        .unwrap()
    });
    wait_for("A holds the lock", || a.stats().l2_lock_acquired == 1);
    let fence = healcache::keys::l2_keys("hc1", "doc").fence;
    let _: () = raw(&r.url()).del(&fence).unwrap();
    tx.send(()).unwrap();
    let f = slow.join().unwrap();
    assert_eq!((f.value, f.status), (Some(json!("A")), Status::FencedOut));
    assert_eq!(l2_value(&r.url(), "doc"), None, "nothing reached L2");
    assert_eq!(a.get("doc"), None, "nor A's L1: a fenced-out value is not cached");
}

/// Redis restarted without persistence while A rebuilds; B rebuilds after the restart. A's token
/// is from the old epoch: refused, and B's value stays.
#[test]
fn a_restart_without_persistence_starts_a_new_epoch_that_fences_out_the_old_holder() {
    let mut r = server();
    let (ta, tb) = (RedisTransport::connect(&r.url()).unwrap(), RedisTransport::connect(&r.url()).unwrap());
    let (a, b) = (cache_on(ta.clone(), FleetLock::All, 5000, 30000), cache_on(tb.clone(), FleetLock::All, 5000, 30000));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let a2 = a.clone();
    let slow = std::thread::spawn(move || {
        block(a2.fetch("cfg", FetchOptions::default(), move || async move {
            let _ = rx.recv_timeout(Duration::from_secs(10));
            Ok::<_, std::io::Error>(Loaded::Value(json!("A")))
        }))
        .unwrap()
    });
    wait_for("A holds the lock", || a.stats().l2_lock_acquired == 1);
    r.restart().unwrap();
    // both connections were dropped by the restart: reconnect them as the breaker's probe does
    // (a write on a dropped connection fails rather than being fenced, which is not this case)
    block(ta.probe()).unwrap();
    block(tb.probe()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let f = fetch_slow(&b, "cfg", 1, json!("B"), &calls);
    assert_eq!(f.status, Status::Loaded);
    wait_for("B's write", || b.stats().l2_writes == 1);
    tx.send(()).unwrap();
    let f = slow.join().unwrap();
    assert_eq!(f.status, Status::FencedOut, "A's token is from before the restart");
    assert_eq!(l2_value(&r.url(), "cfg"), Some(json!("B")));
    assert_eq!(a.get("cfg"), Some(json!("B")), "A's L1 takes B's value");
}

/// A holder that died (its lock left behind until its lease ends): a waiter rebuilds once the
/// lease has passed, not before, and with a stale value and a soft timeout its callers are served
/// the stale value meanwhile, never an error.
#[test]
fn a_dead_holders_lock_delays_the_rebuild_by_its_lease_only_and_waiters_get_stale_meanwhile() {
    let r = server();
    let b = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_millis(200))
        .grace(Duration::from_secs(30))
        .load_soft_timeout(Duration::from_millis(50))
        .fleet_lock(FleetLock::All)
        .fleet_lock_lease(Duration::from_millis(500))
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    assert_eq!(fetch_slow(&b, "k", 1, json!("v1"), &calls).status, Status::Loaded);
    std::thread::sleep(Duration::from_millis(250));
    // a dead instance's lock: nobody renews it or writes under it
    let lock_key = healcache::keys::l2_keys("hc1", "k").lock;
    let _: () = redis::cmd("SET").arg(&lock_key).arg("dead:1:1").arg("PX").arg(500).query(&mut raw(&r.url())).unwrap();
    let planted = Instant::now();
    let f = fetch_slow(&b, "k", 1, json!("v2"), &calls);
    assert_eq!((f.value, f.status), (Some(json!("v1")), Status::StaleSoftTimeout), "stale while the lock is held");
    wait_for("the rebuild after the lease", || calls.load(Ordering::SeqCst) == 2);
    let after = planted.elapsed();
    assert!(after >= Duration::from_millis(450), "rebuilt before the dead holder's lease ended: {after:?}");
    wait_for("the rebuilt value", || b.get("k") == Some(json!("v2")));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "exactly one rebuild");
}

/// `refresh` mode: a background refresh (stale-while-revalidate here) that finds another
/// instance refreshing skips, serving what it has; exactly one origin call for the fleet.
#[test]
fn background_refreshes_skip_when_another_instance_is_refreshing() {
    let r = server();
    let make = || {
        Cache::builder()
            .timer(IoTimer)
            .spawner(IoSpawner)
            .ttl(Duration::from_millis(100))
            .grace(Duration::from_secs(30))
            .stale_while_revalidate(true)
            .fleet_lock(FleetLock::Refresh)
            .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    let calls = Arc::new(AtomicUsize::new(0));
    fetch_slow(&a, "k", 1, json!(1), &calls);
    // the load's write may still be on its way when fetch returns (past the L2 deadline)
    wait_for("a's value in L2", || a.stats().l2_writes == 1);
    fetch_slow(&b, "k", 1, json!(1), &calls);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "b read a's value from L2");
    std::thread::sleep(Duration::from_millis(150));
    // both stale: a's refresh takes the lock and is slow; b's finds it taken
    let fa = fetch_slow(&a, "k", 300, json!(2), &calls);
    assert_eq!(fa.status, Status::Stale);
    wait_for("a's refresh holds the lock", || a.stats().l2_lock_acquired == 1);
    let fb = fetch_slow(&b, "k", 300, json!(2), &calls);
    assert_eq!((fb.value, fb.status), (Some(json!(1)), Status::Stale));
    wait_for("b's refresh skipped", || b.stats().l2_lock_skipped == 1);
    wait_for("a's refresh landed", || a.get("k") == Some(json!(2)));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one refresh for the fleet");
    assert_eq!(b.stats().l2_lock_acquired, 0);
}
