//! get_or_load: the hit path, and a 10,000-caller coalesced miss, beside moka (future cache)
//! and quick_cache in the same run. `cargo bench -p healcache --bench flight`.
//!
//! The coalesced miss: 10,000 futures for one cold key are polled together on one thread; the
//! loader yields once, so every caller but the first joins the flight as a waiter. The figure per
//! element is the cost of one waiter (join, wait, wake, get the value) beyond the loader.

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use common::{keys, N};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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

criterion_group!(benches, bench);
criterion_main!(benches);
