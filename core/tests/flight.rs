//! Coalesced loads: every call ends; one load per flight; a caller's cancellation never cancels
//! shared work; no lock is held across a callback, and a panic poisons nothing.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Boom, TokioTimer};
use futures::FutureExt;
use healcache::{Cache, Error, FetchOptions, Loaded};

fn cache() -> Cache<String> {
    Cache::builder().max_entries(10_000).build().unwrap()
}

/// One load per flight: 1,000 concurrent callers for a cold key run the loader once and all get its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_one_load_for_a_thousand_callers() {
    let c = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (c, calls) = (c.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            c.get_or_load("k", move || async move {
                calls.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, Boom>("v".to_string())
            })
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "v");
    }
    assert_eq!(calls.load(SeqCst), 1);
    let s = c.stats();
    assert_eq!(s.loads, 1);
    assert_eq!(s.in_flight, 0);
    assert_eq!(c.get("k").as_deref(), Some("v"));
}

/// One load per flight: a loader error reaches every waiter, is not cached, and the next call loads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_error_reaches_all_and_is_not_cached() {
    let c = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (c, calls) = (c.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            c.get_or_load("k", move || async move {
                calls.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                Err::<String, _>(Boom("db down"))
            })
            .await
        }));
    }
    for t in tasks {
        match t.await.unwrap() {
            Err(Error::Loader(e)) => {
                assert_eq!(e.downcast_ref::<Boom>().unwrap().0, "db down");
                assert_eq!(e.message(), "db down");
            }
            other => panic!("expected the loader's error, got {other:?}"),
        }
    }
    assert_eq!(calls.load(SeqCst), 1);
    assert!(c.get("k").is_none(), "errors are never cached");
    assert_eq!(c.stats().load_errors, 1);
    let v = c.get_or_load("k", || async { Ok::<_, Boom>("ok".to_string()) }).await.unwrap();
    assert_eq!(v, "ok");
    assert_eq!(c.stats().loads, 2);
}

/// Every call ends, nothing poisoned: a panicking loader gives every waiter `LoaderPanicked`; the key is not stuck, no lock
/// is poisoned, and the next call loads normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_panicking_loader_does_not_stick_the_key() {
    let c = cache();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.get_or_load("k", move || async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if i < 100 {
                    panic!("loader bug");
                }
                Ok::<_, Boom>("never".to_string())
            })
            .await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(Error::LoaderPanicked { .. })));
    }
    // a panic in the synchronous part of the loader (before any future exists) too
    let r = c.get_or_load("k2", || -> futures::future::Ready<Result<String, Boom>> { panic!("sync part") }).await;
    assert!(matches!(r, Err(Error::LoaderPanicked { .. })));
    assert_eq!(c.stats().load_panics, 2);
    assert_eq!(c.stats().in_flight, 0);
    let v = c.get_or_load("k", || async { Ok::<_, Boom>("fine".to_string()) }).await.unwrap();
    assert_eq!(v, "fine");
    c.set("other", "x".into()).unwrap();
    assert_eq!(c.get("other").as_deref(), Some("x"));
}

/// Cancellation never cancels shared work: the first caller is cancelled (its future dropped) mid-load; the others still get the
/// value, with one loader call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_first_caller_cancelled_others_unharmed() {
    let c = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let loader = |calls: Arc<AtomicUsize>| {
        move || async move {
            calls.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, Boom>("v".to_string())
        }
    };
    let first = {
        let (c, l) = (c.clone(), loader(calls.clone()));
        tokio::spawn(async move { c.get_or_load("k", l).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut others = Vec::new();
    for _ in 0..10 {
        let (c, l) = (c.clone(), loader(calls.clone()));
        others.push(tokio::spawn(async move { c.get_or_load("k", l).await }));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    for t in others {
        assert_eq!(t.await.unwrap().unwrap(), "v");
    }
    assert_eq!(calls.load(SeqCst), 1);
}

/// Every call ends: the first caller polls once and is then parked forever (never polled again, never
/// dropped): the others still finish, with one loader call (a bug moka once had).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_leader_parked_unpolled() {
    let c = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    let mut leader = Box::pin(c.get_or_load("k", move || async move {
        calls2.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, Boom>("v".to_string())
    }));
    let noop = futures::task::noop_waker();
    assert!(leader.as_mut().poll(&mut Context::from_waker(&noop)).is_pending());
    let mut others = Vec::new();
    for _ in 0..5 {
        let c = c.clone();
        others.push(tokio::spawn(async move {
            c.get_or_load("k", || async { Ok::<_, Boom>("second load".to_string()) }).await
        }));
    }
    for t in others {
        let r = tokio::time::timeout(Duration::from_secs(5), t).await.expect("follower hung");
        assert_eq!(r.unwrap().unwrap(), "v");
    }
    assert_eq!(calls.load(SeqCst), 1);
    // the parked leader, polled at last, gets the same value
    assert!(matches!(leader.as_mut().poll(&mut Context::from_waker(&noop)), Poll::Ready(Ok(ref v)) if v == "v"));
}

/// Work nobody waits for stops: when every waiter is gone the load stops, and the key is free for a new flight.
#[tokio::test]
async fn p3_all_waiters_gone_stops_the_load() {
    let c = cache();
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (s, f) = (started.clone(), finished.clone());
    let fut = c.get_or_load("k", move || async move {
        s.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_secs(30)).await;
        f.fetch_add(1, SeqCst);
        Ok::<_, Boom>("late".to_string())
    });
    let r = tokio::time::timeout(Duration::from_millis(20), fut).await;
    assert!(r.is_err(), "timed out as planned");
    assert_eq!(started.load(SeqCst), 1);
    assert_eq!(c.stats().in_flight, 0, "dropping the last waiter removed the flight");
    let v = c.get_or_load("k", || async { Ok::<_, Boom>("fresh".to_string()) }).await.unwrap();
    assert_eq!(v, "fresh");
    assert_eq!(finished.load(SeqCst), 0);
}

/// A loader for key A that asks for key A gets a clear error instead of a deadlock, directly
/// or through another key.
#[tokio::test]
async fn recursive_load_is_an_error() {
    let c = cache();
    let c2 = c.clone();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        c.get_or_load("a", move || async move {
            match c2.get_or_load("a", || async { Ok::<_, Boom>("inner".to_string()) }).await {
                Err(Error::RecursiveLoad) => Ok("detected".to_string()),
                other => Err(Boom(if other.is_ok() { "inner load ran" } else { "other error" })),
            }
        }),
    )
    .await
    .expect("recursive load deadlocked");
    assert_eq!(r.unwrap(), "detected");

    // a -> b -> a
    let (c2, c3) = (c.clone(), c.clone());
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        c.get_or_load("x", move || async move {
            c2.get_or_load(
                "y",
                move || async move { c3.get_or_load("x", || async { Ok::<_, Boom>("z".into()) }).await },
            )
            .await
            .map_err(|e| Boom(e.code()))
        }),
    )
    .await
    .expect("indirect recursion deadlocked");
    match r {
        Err(Error::Loader(e)) => assert_eq!(e.downcast_ref::<Boom>().unwrap().0, "LoaderError"),
        other => panic!("{other:?}"),
    }
}

/// Every call ends: a hanging loader ends with `LoadTimeout` for every waiter; nothing is cached and the
/// next call loads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_load_timeout() {
    let c: Cache<String> = Cache::builder()
        .load_timeout(Duration::from_millis(50))
        .timer(TokioTimer(tokio::runtime::Handle::current()))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.get_or_load("k", || async {
                futures::future::pending::<()>().await;
                Ok::<_, Boom>("never".to_string())
            })
            .await
        }));
    }
    for t in tasks {
        let r = tokio::time::timeout(Duration::from_secs(5), t).await.expect("a call did not end");
        assert!(matches!(r.unwrap(), Err(Error::LoadTimeout { after_ms: 50 })));
    }
    assert_eq!(c.stats().load_timeouts, 1);
    assert!(c.get("k").is_none());
    let v = c.get_or_load("k", || async { Ok::<_, Boom>("ok".to_string()) }).await.unwrap();
    assert_eq!(v, "ok");
}

#[test]
fn timeout_without_timer_is_a_config_error() {
    let e = Cache::<u8>::builder().load_timeout(Duration::from_millis(5)).build().unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "load_timeout", .. }));
}

/// Fenced rebuild: a slow load that finishes after a fresh `set` does not overwrite it.
#[tokio::test]
async fn slow_load_does_not_overwrite_newer_write() {
    let c = cache();
    let c2 = c.clone();
    let load = tokio::spawn(async move {
        c2.get_or_load("k", || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, Boom>("stale from db".to_string())
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    c.set("k", "fresh write".into()).unwrap();
    assert_eq!(load.await.unwrap().unwrap(), "stale from db", "the caller gets what it loaded");
    assert_eq!(c.get("k").as_deref(), Some("fresh write"), "the newer write is kept");
    assert_eq!(c.stats().fenced_writes, 1);
}

/// Works under a plain executor (no tokio): futures' block_on.
#[test]
fn plain_executor() {
    let c = cache();
    let v = futures::executor::block_on(c.get_or_load("k", || async { Ok::<_, Boom>("v".to_string()) })).unwrap();
    assert_eq!(v, "v");
    let v = futures::executor::block_on(c.get_or_load("k", || async { Ok::<_, Boom>("other".to_string()) })).unwrap();
    assert_eq!(v, "v", "second call is a hit");
    assert_eq!(c.stats().loads, 1);
}

/// The blocking variant coalesces threads into one load, and shares flights with async callers.
#[test]
fn blocking_variant_coalesces_threads() {
    let c = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (c, calls, barrier) = (c.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                c.get_or_load_blocking("k", move || {
                    calls.fetch_add(1, SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    Ok::<_, Boom>("v".to_string())
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), "v");
    }
    assert_eq!(calls.load(SeqCst), 1);
}

#[test]
fn blocking_and_async_share_one_flight() {
    let c = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let (c2, calls2) = (c.clone(), calls.clone());
    let t = std::thread::spawn(move || {
        c2.get_or_load_blocking("k", move || {
            calls2.fetch_add(1, SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            Ok::<_, Boom>("sync".to_string())
        })
    });
    std::thread::sleep(Duration::from_millis(30));
    let calls3 = calls.clone();
    let v = futures::executor::block_on(c.get_or_load("k", move || async move {
        calls3.fetch_add(1, SeqCst);
        Ok::<_, Boom>("async".to_string())
    }))
    .unwrap();
    assert_eq!(v, "sync");
    assert_eq!(t.join().unwrap().unwrap(), "sync");
    assert_eq!(calls.load(SeqCst), 1);
}

/// A blocking waiter stops waiting at the load timeout while another thread's loader hangs.
#[test]
fn blocking_waiter_times_out() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c: Cache<String> = Cache::builder()
        .load_timeout(Duration::from_millis(80))
        .timer(TokioTimer(rt.handle().clone()))
        .build()
        .unwrap();
    let c2 = c.clone();
    let _hang = std::thread::spawn(move || {
        let _ = c2.get_or_load_blocking("k", || {
            std::thread::sleep(Duration::from_millis(400));
            Ok::<_, Boom>("late".to_string())
        });
    });
    std::thread::sleep(Duration::from_millis(20));
    let t0 = std::time::Instant::now();
    let r = c.get_or_load_blocking("k", || Ok::<_, Boom>("mine".to_string()));
    assert!(matches!(r, Err(Error::LoadTimeout { .. })), "{r:?}");
    assert!(t0.elapsed() < Duration::from_millis(390), "waited for the hung loader");
}

#[tokio::test]
async fn too_many_loads_is_bounded() {
    let c: Cache<String> = Cache::builder().max_in_flight(2).build().unwrap();
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, Boom>("v".to_string())
    };
    let a = c.get_or_load("a", slow).boxed();
    let b = c.get_or_load("b", slow).boxed();
    let third = c.get_or_load("c", slow);
    let (ra, rb, rc) = futures::future::join3(a, b, third).await;
    assert!(ra.is_ok() && rb.is_ok());
    assert!(matches!(rc, Err(Error::TooManyLoads { max: 2 })));
    assert!(c.get("c").is_none());
    // once the flights end there is room again
    assert!(c.get_or_load("c", slow).await.is_ok());
}

#[tokio::test]
async fn key_bounds_apply_to_loads() {
    let c: Cache<String> = Cache::builder().max_key_len(4).build().unwrap();
    let r = c.get_or_load("too long", || async { Ok::<_, Boom>("v".to_string()) }).await;
    assert!(matches!(r, Err(Error::KeyTooLong { len: 8, max: 4 })));
    assert_eq!(c.stats().loads, 0);
}

#[tokio::test]
async fn oversize_loaded_value_is_returned_but_not_stored() {
    let c: Cache<String> =
        Cache::builder().max_bytes(1000).max_entry_bytes(10).weigher(|v: &String| v.len() as u64).build().unwrap();
    let v = c.get_or_load("k", || async { Ok::<_, Boom>("x".repeat(100)) }).await.unwrap();
    assert_eq!(v.len(), 100);
    assert!(c.get("k").is_none());
    assert_eq!(c.stats().oversize_rejections, 1);
}

/// P1/P9: a blocked wait a host may end. The interrupt is asked while the call waits on another
/// caller's load (told so), at least every 50 ms, and its error ends this call at once while the
/// load goes on for its owner; a call that runs its own loader is never asked.
#[test]
fn an_interruptible_blocking_wait_ends_with_the_hosts_error_and_the_load_goes_on() {
    use std::sync::mpsc;
    let c: Cache<u64> = Cache::builder().build().unwrap();
    let (started, started_rx) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let owner = {
        let c = c.clone();
        std::thread::spawn(move || {
            c.get_or_load_blocking("k", move || {
                started.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok::<_, std::io::Error>(7)
            })
        })
    };
    started_rx.recv().unwrap();
    let mut asked = Vec::new();
    let mut ask = |joined: bool| {
        asked.push(joined);
        if asked.len() == 3 {
            Err(Error::Closed { reason: "closed" })
        } else {
            Ok(())
        }
    };
    let r = c.get_or_load_blocking_interruptible(
        "k",
        FetchOptions::default(),
        || Ok::<_, std::io::Error>(Loaded::Value(1)),
        &mut ask,
    );
    assert!(matches!(r, Err(Error::Closed { .. })), "{r:?}");
    assert_eq!(asked, vec![true; 3], "asked while it waited on the owner's load");
    release.send(()).unwrap();
    assert_eq!(owner.join().unwrap().unwrap(), 7, "the load went on for its owner");
    assert_eq!(c.get("k"), Some(7));

    let mut never = |_: bool| -> healcache::Result<()> { panic!("a call running its own loader is not asked") };
    let own = c.get_or_load_blocking_interruptible(
        "own",
        FetchOptions::default(),
        || Ok::<_, std::io::Error>(Loaded::Value(2)),
        &mut never,
    );
    assert_eq!(own.unwrap(), 2);
}

/// Fail-safe covers a load that cannot start: with every load slot taken, a key whose stale
/// value is within its grace window gets that value (`StaleFailSafe`, counted) rather than
/// `TooManyLoads`; a key with nothing to fall back on still gets the error.
#[tokio::test]
async fn too_many_loads_falls_back_to_a_stale_value_within_grace() {
    let clock = healcache::ManualClock::new();
    let c: Cache<String> = Cache::builder()
        .max_in_flight(1)
        .ttl(Duration::from_secs(1))
        .grace(Duration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    c.set("stale", "old".to_string()).unwrap();
    clock.advance(Duration::from_secs(2));
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let mut hung = Box::pin(c.get_or_load("busy", move || async move {
        let _ = rx.await;
        Ok::<_, Boom>("v".to_string())
    }));
    let waker = futures::task::noop_waker();
    let pending = hung.as_mut().poll(&mut Context::from_waker(&waker));
    assert!(pending.is_pending(), "the one slot is taken");
    let load = || async { Ok::<_, Boom>(Loaded::Value("new".to_string())) };
    let f = c.fetch("stale", FetchOptions::default(), load).await.unwrap();
    assert_eq!((f.value.as_deref(), f.status), (Some("old"), healcache::Status::StaleFailSafe));
    assert_eq!(c.stats().stale_served_fail_safe, 1);
    let none = c.fetch("absent", FetchOptions::default(), load).await;
    assert!(matches!(none, Err(Error::TooManyLoads { max: 1 })), "{none:?}");
    tx.send(()).unwrap();
    assert_eq!(hung.await.unwrap(), "v");
}

/// The cache's spawner on a tokio runtime of its own (not the calling thread's).
struct OnRuntime(tokio::runtime::Handle);
impl healcache::Spawner for OnRuntime {
    fn spawn(&self, fut: futures::future::BoxFuture<'static, ()>) {
        self.0.spawn(fut);
    }
    fn spawns_from_any_thread(&self) -> bool {
        true
    }
}

/// What an async loader sees after its first await: whether it runs on the host's runtime.
fn where_it_ran() -> String {
    if tokio::runtime::Handle::try_current().is_ok() { "on the runtime" } else { "off the runtime" }.to_string()
}

/// A cache whose spawner is a runtime of its own; an async caller that started a load of "k" (its
/// loader waits on the sender returned, then says where it ran) and is parked unpolled; and a
/// thread blocked in `get_or_load_blocking` that joined that load.
#[allow(clippy::type_complexity)]
fn async_leader_and_blocking_joiner() -> (
    tokio::runtime::Runtime,
    Cache<String>,
    std::pin::Pin<Box<dyn Future<Output = healcache::Result<String>> + Send>>,
    futures::channel::oneshot::Sender<()>,
    std::thread::JoinHandle<healcache::Result<String>>,
) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let c: Cache<String> = Cache::builder().max_entries(100).spawner(OnRuntime(rt.handle().clone())).build().unwrap();
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let c1 = c.clone();
    let mut leader: std::pin::Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
        c1.get_or_load("k", move || async move {
            let _ = rx.await;
            Ok::<_, Boom>(where_it_ran())
        })
        .await
    });
    assert!(rt.block_on(futures::future::poll_fn(|cx| Poll::Ready(leader.as_mut().poll(cx)))).is_pending());
    let c2 = c.clone();
    let joiner = std::thread::spawn(move || c2.get_or_load_blocking("k", || Ok::<_, Boom>("its own".to_string())));
    while c.stats().coalesced == 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    (rt, c, leader, tx, joiner)
}

/// A thread that joins a load an async caller started never runs that caller's loader itself:
/// the host's runtime drives it (through the cache's spawner), so a loader that needs the runtime
/// (its timers, sockets, `spawn`) works however async and blocking callers mix, also while the
/// async leader is parked unpolled.
#[test]
fn p1_a_blocking_waiter_never_drives_an_async_loader_off_its_runtime() {
    let (rt, _c, leader, tx, joiner) = async_leader_and_blocking_joiner();
    tx.send(()).unwrap();
    // time for the joining thread to drive the loader, if it would
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(rt.block_on(leader).unwrap(), "on the runtime");
    assert_eq!(joiner.join().unwrap().unwrap(), "on the runtime");
}

/// The same with the async leader gone: the runtime still drives the load the thread waits on.
#[test]
fn p3_a_blocking_waiter_outlives_the_async_leader_it_joined() {
    let (_rt, c, leader, tx, joiner) = async_leader_and_blocking_joiner();
    drop(leader);
    tx.send(()).unwrap();
    assert_eq!(joiner.join().unwrap().unwrap(), "on the runtime");
    assert_eq!(c.get("k").as_deref(), Some("on the runtime"));
}

/// A spawner that takes work only on its runtime's threads (Python's loop drivers, `tokio::spawn`)
/// is never called by a blocked thread: the thread polls the load it joined, as before.
#[test]
fn p1_a_blocking_waiter_does_not_spawn_on_a_spawner_bound_to_its_runtime() {
    struct RuntimeBound;
    impl healcache::Spawner for RuntimeBound {
        fn spawn(&self, _: futures::future::BoxFuture<'static, ()>) {
            panic!("spawned from a thread outside the runtime");
        }
    }
    let c: Cache<String> = Cache::builder().max_entries(100).spawner(RuntimeBound).build().unwrap();
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let mut leader = Box::pin(c.get_or_load("k", move || async move {
        let _ = rx.await;
        Ok::<_, Boom>("async".to_string())
    }));
    assert!(
        futures::executor::block_on(futures::future::poll_fn(|cx| Poll::Ready(leader.as_mut().poll(cx)))).is_pending()
    );
    let c2 = c.clone();
    let joiner = std::thread::spawn(move || c2.get_or_load_blocking("k", || Ok::<_, Boom>("its own".to_string())));
    while c.stats().coalesced == 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    tx.send(()).unwrap();
    assert_eq!(joiner.join().unwrap().unwrap(), "async");
    assert_eq!(futures::executor::block_on(leader).unwrap(), "async");
}

/// A loader's error with a source: "query failed", then its `Boom`.
#[derive(Debug)]
struct Query(Boom);

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("query failed")
    }
}

impl std::error::Error for Query {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A loader's `std::error::Error` is reachable: `LoaderError::as_std_error` gives it, and the
/// chain goes on from it, as `std::io::Error`'s does: the load error's text already shows the
/// loader's ("loader failed: db down"), so `source()` is the loader error's own source, and a
/// report (`anyhow`'s `{:#}`) shows each text once.
#[tokio::test]
async fn a_loader_error_s_chain_is_reachable_and_shows_each_text_once() {
    use std::error::Error as _;
    let c = cache();
    let e = c.get_or_load("k", || async { Err::<String, _>(Query(Boom("db down"))) }).await.unwrap_err();
    assert_eq!(e.to_string(), "loader failed: query failed");
    let Error::Loader(l) = &e else { panic!("{e:?}") };
    let own = l.as_std_error().expect("made from a std error");
    assert!(own.downcast_ref::<Query>().is_some());
    let mut chain = vec![e.to_string()];
    let mut at = e.source();
    while let Some(s) = at {
        chain.push(s.to_string());
        at = s.source();
    }
    assert_eq!(chain, ["loader failed: query failed", "db down"]);

    let plain = c.get_or_load("p", || async { Err::<String, _>(Boom("db down")) }).await.unwrap_err();
    assert!(plain.source().is_none(), "no text after the load error's own");
    let opaque = Error::Loader(healcache::LoaderError::new(7_u32, "seven"));
    assert!(opaque.source().is_none());
    assert!(matches!(&opaque, Error::Loader(l) if l.as_std_error().is_none()));
    assert!(Error::NotFound.source().is_none());
}

/// A loader whose errors are boxed (`Box<dyn Error + Send + Sync>`, or `anyhow::Error` turned
/// into one) cannot use `?` into `LoaderError` (a box is no `std::error::Error`), so
/// `LoaderError::from_boxed` takes it: the text is the boxed error's, and the boxed error is
/// reachable as a `std::error::Error`, its own chain after it.
#[tokio::test]
async fn a_boxed_loader_error_keeps_its_text_and_its_chain() {
    use std::error::Error as _;
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    async fn query() -> Result<String, BoxError> {
        Err(Box::new(Query(Boom("db down"))))
    }
    let c = cache();
    let e =
        c.get_or_load("k", || async { query().await.map_err(healcache::LoaderError::from_boxed) }).await.unwrap_err();
    assert_eq!(e.to_string(), "loader failed: query failed");
    let Error::Loader(l) = &e else { panic!("{e:?}") };
    let own = l.as_std_error().expect("made from a std error");
    assert!(own.downcast_ref::<Query>().is_some(), "{own:?}");
    assert!(l.downcast_ref::<BoxError>().is_some());
    assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("db down"));
}

/// The timer the docs show, `tokio::time::sleep` (which needs its runtime's thread).
struct RuntimeTimer;

impl healcache::Timer for RuntimeTimer {
    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// P1, threads: a blocking load on a plain thread (rayon's, `std::thread`'s) keeps its
/// `load_timeout` without the host timer, whose sleeps may only run on the host runtime's
/// threads: the call panicked ("no reactor running") before its loader ran.
#[test]
fn a_blocking_load_on_a_plain_thread_keeps_its_deadline_without_the_runtime_timer() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c: Cache<String> =
        Cache::builder().load_timeout(Duration::from_millis(100)).timer(RuntimeTimer).build().unwrap();
    let (a, b) = (c.clone(), c.clone());
    let quick = std::thread::spawn(move || a.get_or_load_blocking("k", || Ok::<_, Boom>("v".to_string())));
    assert_eq!(quick.join().unwrap().unwrap(), "v");
    let slow = std::thread::spawn(move || {
        b.get_or_load_blocking("slow", || {
            std::thread::sleep(Duration::from_millis(250));
            Ok::<_, Boom>("late".to_string())
        })
    });
    assert!(matches!(slow.join().unwrap(), Err(Error::LoadTimeout { after_ms: 100 })));
    assert_eq!(c.get("slow"), None, "an answer past the deadline is not kept");
    // the async calls still use the timer, on the runtime
    let r = rt.block_on(c.get_or_load("async", || async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok::<_, Boom>("late".to_string())
    }));
    assert!(matches!(r, Err(Error::LoadTimeout { after_ms: 100 })));
}
