//! get_or_load: the hit path, and a 10,000-caller coalesced miss, beside moka (future cache)
//! and quick_cache in the same run. `cargo bench -p healcache --bench flight`.
//!
//! The coalesced miss: 10,000 futures for one cold key are polled together on one thread; the
//! loader yields once, so every caller but the first joins the flight as a waiter. The figure per
//! element is the cost of one waiter (join, wait, wake, get the value) beyond the loader.
//!
//! Loads under way: a write, and a load's begin and end, while N loads of other keys wait on
//! their loaders; and a whole miss storm (a cold start sends thousands of distinct misses at once).
//! `cargo bench -p healcache --bench flight -- under_way`.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use common::{keys, N};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use futures::executor::block_on;
use futures::future::join_all;
use healcache::Cache;

/// A future that is pending once, so a loader does not finish at its first poll.
async fn yield_once() {
    let mut done = false;
    std::future::poll_fn(|cx| {
        if done {
            std::task::Poll::Ready(())
        } else {
            done = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

fn bench(c: &mut Criterion) {
    let keys = keys(N);
    let hc: Cache<u64> = Cache::builder().max_entries(N as u64).ttl(Duration::from_secs(3600)).build().unwrap();
    let moka: moka::future::Cache<String, u64> = moka::future::Cache::new(N as u64);
    let qc: quick_cache::sync::Cache<String, u64> = quick_cache::sync::Cache::new(N);
    for (i, k) in keys.iter().take(100_000).enumerate() {
        hc.set(k, i as u64).unwrap();
        block_on(moka.insert(k.clone(), i as u64));
        qc.insert(k.clone(), i as u64);
    }
    let mut g = c.benchmark_group("get_or_load");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(1000));
    g.bench_function("hit/healcache", |b| {
        b.iter(|| {
            block_on(async {
                for k in &keys[..1000] {
                    black_box(hc.get_or_load(k, || async { Ok::<u64, Infallible>(0) }).await.unwrap());
                }
            })
        })
    });
    g.bench_function("hit/moka", |b| {
        b.iter(|| {
            block_on(async {
                for k in &keys[..1000] {
                    black_box(moka.get_with_by_ref(k.as_str(), async { 0 }).await);
                }
            })
        })
    });
    g.bench_function("hit/quick_cache", |b| {
        b.iter(|| {
            block_on(async {
                for k in &keys[..1000] {
                    black_box(qc.get_or_insert_async(k, async { Ok::<u64, Infallible>(0) }).await.unwrap());
                }
            })
        })
    });

    const CALLERS: usize = 10_000;
    g.throughput(Throughput::Elements(CALLERS as u64));
    let mut n = 0u64;
    g.bench_function("coalesced_miss_10k/healcache", |b| {
        b.iter(|| {
            n += 1;
            let key = format!("cold:{n}");
            let futs = (0..CALLERS).map(|_| {
                hc.get_or_load(&key, || async {
                    yield_once().await;
                    Ok::<u64, Infallible>(1)
                })
            });
            let r = block_on(join_all(futs));
            assert_eq!(r.len(), CALLERS);
        })
    });
    g.bench_function("coalesced_miss_10k/moka", |b| {
        b.iter(|| {
            n += 1;
            let key = format!("cold:{n}");
            let futs = (0..CALLERS).map(|_| {
                moka.get_with_by_ref(key.as_str(), async {
                    yield_once().await;
                    1
                })
            });
            let r = block_on(join_all(futs));
            assert_eq!(r.len(), CALLERS);
        })
    });
    g.bench_function("coalesced_miss_10k/quick_cache", |b| {
        b.iter(|| {
            n += 1;
            let key = format!("cold:{n}");
            let futs = (0..CALLERS).map(|_| {
                qc.get_or_insert_async(&key, async {
                    yield_once().await;
                    Ok::<u64, Infallible>(1)
                })
            });
            let r = block_on(join_all(futs));
            assert_eq!(r.len(), CALLERS);
        })
    });
    g.finish();
}

/// Loads of `n` distinct keys under way in `c`: each future polled once, its loader never done.
/// Dropping them ends the loads.
fn under_way(c: &Cache<u64>, n: usize) -> Vec<Pin<Box<impl Future<Output = healcache::Result<u64>> + '_>>> {
    let mut cx = Context::from_waker(Waker::noop());
    (0..n)
        .map(|i| {
            let mut f = Box::pin(c.get_or_load(&format!("held:{i}"), std::future::pending::<Result<u64, Infallible>>));
            assert!(f.as_mut().poll(&mut cx).is_pending());
            f
        })
        .collect()
}

/// A write and a load of one key while `n` loads of other keys are under way, in a cache of the
/// default size (its default two shards share the loads).
fn bench_under_way(c: &mut Criterion) {
    let mut g = c.benchmark_group("under_way");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for n in [0, 100, 10_000] {
        // room for the held loads and the measured one
        let hc: Cache<u64> = Cache::builder().max_in_flight(2 * n + 16).build().unwrap();
        let hot: Vec<String> = (0..64).map(|i| format!("hot:{i}")).collect();
        for k in &hot {
            hc.set(k, 0).unwrap();
        }
        let held = under_way(&hc, n);
        assert_eq!(hc.in_flight(), n);
        let mut i = 0usize;
        // an overwrite of a present key
        g.bench_with_input(BenchmarkId::new("set", n), &n, |b, _| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(hc.set(&hot[i % hot.len()], i as u64).unwrap());
            })
        });
        // a miss whose loader fails: the load's begin and end, nothing stored
        g.bench_with_input(BenchmarkId::new("load_failed", n), &n, |b, _| {
            b.iter(|| {
                let r = block_on(hc.get_or_load("cold", || async { Err::<u64, _>(std::io::Error::other("down")) }));
                assert!(r.is_err());
            })
        });
        // a miss loaded and stored (begin, the fenced store, end), then removed so the next is
        // a miss again
        g.bench_with_input(BenchmarkId::new("load_stored", n), &n, |b, _| {
            b.iter(|| {
                black_box(block_on(hc.get_or_load("cold", || async { Ok::<u64, Infallible>(1) })).unwrap());
                black_box(hc.remove("cold"));
            })
        });
        drop(held);
        assert_eq!(hc.in_flight(), 0);
    }
    g.finish();
}

/// A cold start: 10,000 misses of distinct keys polled together on one thread (one event loop
/// starting them all at once), in a cache of the default size and flight limit. Every load
/// begins before the first ends and stores its value.
fn bench_storm(c: &mut Criterion) {
    const STORM: usize = 10_000;
    let keys: Vec<String> = (0..STORM).map(|i| format!("storm:{i}")).collect();
    let mut g = c.benchmark_group("under_way");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(STORM as u64));
    g.bench_function(BenchmarkId::new("storm", STORM), |b| {
        b.iter_batched(
            || Cache::<u64>::builder().build().unwrap(),
            |hc| {
                let futs = keys.iter().map(|k| {
                    hc.get_or_load(k, || async {
                        yield_once().await;
                        Ok::<u64, Infallible>(1)
                    })
                });
                let r = block_on(join_all(futs));
                assert!(r.iter().all(|v| *v.as_ref().unwrap() == 1));
                assert_eq!(hc.stats().loads, STORM as u64);
                hc
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench, bench_under_way, bench_storm);
criterion_main!(benches);
