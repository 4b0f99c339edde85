//! Model check of the flight table under randomised schedules (shuttle). Run with
//! `cargo test -p healcache --features shuttle --test shuttle`: the engine's locks are then
//! shuttle's, so every interleaving point of the table is explored.
#![cfg(feature = "shuttle")]

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;

use healcache::Cache;

const ITERATIONS: usize = 2000;

/// One load per flight: however the tasks interleave, one loader call serves every caller.
#[test]
fn one_load_per_flight_under_random_schedules() {
    shuttle::check_random(
        || {
            let c: Cache<u64> = Cache::builder().seed(1).build().unwrap();
            let calls = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let (c, calls) = (c.clone(), calls.clone());
                    shuttle::future::spawn(async move {
                        c.get_or_load("k", move || async move {
                            calls.fetch_add(1, SeqCst);
                            shuttle::future::yield_now().await;
                            Ok::<u64, Infallible>(7)
                        })
                        .await
                    })
                })
                .collect();
            for h in handles {
                assert_eq!(shuttle::future::block_on(h).unwrap().unwrap(), 7);
            }
            assert_eq!(calls.load(SeqCst), 1);
            assert_eq!(c.stats().in_flight, 0);
        },
        ITERATIONS,
    );
}

/// Cancellation never cancels shared work: a caller polled once then dropped, racing with others: every other caller still gets
/// the value, the table ends empty, and at most two loads ran (the dropped flight's, if every
/// waiter was gone before anyone joined it, and a fresh one).
#[test]
fn cancelled_caller_never_fails_the_others() {
    shuttle::check_random(
        || {
            let c: Cache<u64> = Cache::builder().seed(2).build().unwrap();
            let calls = Arc::new(AtomicUsize::new(0));
            let loader = |calls: Arc<AtomicUsize>| {
                move || async move {
                    calls.fetch_add(1, SeqCst);
                    shuttle::future::yield_now().await;
                    Ok::<u64, Infallible>(9)
                }
            };
            let quitter = {
                let (c, l) = (c.clone(), loader(calls.clone()));
                shuttle::future::spawn(async move {
                    let mut f = Box::pin(c.get_or_load("k", l));
                    std::future::poll_fn(|cx| {
                        let _ = f.as_mut().poll(cx);
                        Poll::Ready(())
                    })
                    .await;
                    drop(f);
                })
            };
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let (c, l) = (c.clone(), loader(calls.clone()));
                    shuttle::future::spawn(async move { c.get_or_load("k", l).await })
                })
                .collect();
            shuttle::future::block_on(quitter).unwrap();
            for h in others {
                assert_eq!(shuttle::future::block_on(h).unwrap().unwrap(), 9);
            }
            assert!(calls.load(SeqCst) <= 2);
            assert_eq!(c.stats().in_flight, 0);
        },
        ITERATIONS,
    );
}

/// Writers and a loader racing: the fence keeps the newest write.
#[test]
fn fenced_load_never_overwrites_a_later_write() {
    shuttle::check_random(
        || {
            let c: Cache<u64> = Cache::builder().seed(3).build().unwrap();
            let loader = {
                let c = c.clone();
                shuttle::future::spawn(async move {
                    c.get_or_load("k", || async {
                        shuttle::future::yield_now().await;
                        Ok::<u64, Infallible>(1)
                    })
                    .await
                })
            };
            let writer = {
                let c = c.clone();
                shuttle::thread::spawn(move || c.set("k", 2).unwrap())
            };
            let loaded = shuttle::future::block_on(loader).unwrap().unwrap();
            let wv = writer.join().unwrap();
            if loaded == 2 {
                // the write landed first: a plain hit, no load
                assert_eq!((c.get("k"), c.version("k")), (Some(2), wv));
                return;
            }
            assert_eq!(loaded, 1);
            // whichever order: if the write's version is the live one, its value is there
            if c.version("k") == wv {
                assert_eq!(c.get("k"), Some(2));
            } else {
                assert!(c.version("k") > wv, "the load stored over a newer write");
                assert_eq!(c.get("k"), Some(1));
            }
        },
        ITERATIONS,
    );
}
