//! Store operations on 1,000,000 keys, uniform and Zipf 0.99, beside moka, quick_cache and a
//! plain hashbrown map (the floor), in the same run. `cargo bench -p healcache --bench store`.
//! healcache and moka run with TTL tracking on (every entry has a 1 h TTL); quick_cache and
//! hashbrown have no TTL.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{filled, keys, trace, N, TRACE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::seq::IteratorRandom;
use rand::SeedableRng;

const BATCH: usize = 1000;

fn config(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("x");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    g
}

fn bench_get(c: &mut Criterion) {
    let cs = filled();
    for (dist, zipf) in [("uniform", false), ("zipf", true)] {
        let tr = trace(N, TRACE, zipf, 1);
        let mut g = config(c);
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut pos = 0usize;
        let mut next = move || {
            pos = (pos + BATCH) % (TRACE - BATCH);
            pos
        };
        let (k, t) = (&cs.keys, &tr);
        let mut p = next;
        g.bench_function(format!("get_hit/{dist}/healcache"), |b| {
            b.iter(|| {
                let s = p();
                for &i in &t[s..s + BATCH] {
                    black_box(cs.hc.get(&k[i]));
                }
            })
        });
        let mut p = next;
        g.bench_function(format!("get_hit/{dist}/moka"), |b| {
            b.iter(|| {
                let s = p();
                for &i in &t[s..s + BATCH] {
                    black_box(cs.moka.get(&k[i]));
                }
            })
        });
        let mut p = next;
        g.bench_function(format!("get_hit/{dist}/quick_cache"), |b| {
            b.iter(|| {
                let s = p();
                for &i in &t[s..s + BATCH] {
                    black_box(cs.qc.get(&k[i]));
                }
            })
        });
        g.bench_function(format!("get_hit/{dist}/hashbrown"), |b| {
            b.iter(|| {
                let s = next();
                for &i in &t[s..s + BATCH] {
                    black_box(cs.hb.get(&k[i]));
                }
            })
        });
        g.finish();
    }

    // sampling 10,000 of 1,000,000 keys: O(k) for healcache; the others can only walk all n
    let mut g = config(c);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("sample_10k_of_1m/healcache", |b| b.iter(|| black_box(cs.hc.sample_keys(10_000))));
    let mut rng = SmallRng::seed_from_u64(5);
    g.bench_function("sample_10k_of_1m/moka_iter", |b| {
        b.iter(|| black_box(cs.moka.iter().map(|(k, _)| k).choose_multiple(&mut rng, 10_000)))
    });
    g.bench_function("sample_10k_of_1m/quick_cache_iter", |b| {
        b.iter(|| black_box(cs.qc.iter().map(|(k, _)| k).choose_multiple(&mut rng, 10_000)))
    });
    g.bench_function("sample_10k_of_1m/hashbrown_iter", |b| {
        b.iter(|| black_box(cs.hb.keys().choose_multiple(&mut rng, 10_000)))
    });
    g.finish();
}

fn bench_writes(c: &mut Criterion) {
    let cs = filled();
    // keys from a space twice the capacity: half the writes update, half insert and evict
    let wide = keys(2 * N);
    for (dist, zipf) in [("uniform", false), ("zipf", true)] {
        let tr = trace(2 * N, TRACE, zipf, 2);
        let mut g = config(c);
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut pos = 0usize;
        let next = move || {
            pos = (pos + BATCH) % (TRACE - BATCH);
            pos
        };
        let (k, t) = (&wide, &tr);
        let mut p = next;
        g.bench_function(format!("insert/{dist}/healcache"), |b| {
            b.iter(|| {
                let s = p();
                for &i in &t[s..s + BATCH] {
                    cs.hc.set(&k[i], i as u64).unwrap();
                }
            })
        });
        let mut p = next;
        g.bench_function(format!("insert/{dist}/moka"), |b| {
            b.iter(|| {
                let s = p();
                for &i in &t[s..s + BATCH] {
                    cs.moka.insert(k[i].clone(), i as u64);
                }
            })
        });
        let mut p = next;
        g.bench_function(format!("insert/{dist}/quick_cache"), |b| {
            b.iter(|| {
                let s = p();
                for &i in &t[s..s + BATCH] {
                    cs.qc.insert(k[i].clone(), i as u64);
                }
            })
        });
        let mut p = next;
        let mut hb = cs.hb.clone();
        g.bench_function(format!("insert/{dist}/hashbrown"), |b| {
            b.iter(|| {
                let s = p();
                for &i in &t[s..s + BATCH] {
                    hb.insert(k[i].clone(), i as u64);
                }
            })
        });
        // mixed: 90% reads, 10% writes
        let mut p = next;
        g.bench_function(format!("mixed_90_10/{dist}/healcache"), |b| {
            b.iter(|| {
                let s = p();
                for (j, &i) in t[s..s + BATCH].iter().enumerate() {
                    if j % 10 == 0 {
                        cs.hc.set(&k[i], i as u64).unwrap();
                    } else {
                        black_box(cs.hc.get(&k[i]));
                    }
                }
            })
        });
        let mut p = next;
        g.bench_function(format!("mixed_90_10/{dist}/moka"), |b| {
            b.iter(|| {
                let s = p();
                for (j, &i) in t[s..s + BATCH].iter().enumerate() {
                    if j % 10 == 0 {
                        cs.moka.insert(k[i].clone(), i as u64);
                    } else {
                        black_box(cs.moka.get(&k[i]));
                    }
                }
            })
        });
        let mut p = next;
        g.bench_function(format!("mixed_90_10/{dist}/quick_cache"), |b| {
            b.iter(|| {
                let s = p();
                for (j, &i) in t[s..s + BATCH].iter().enumerate() {
                    if j % 10 == 0 {
                        cs.qc.insert(k[i].clone(), i as u64);
                    } else {
                        black_box(cs.qc.get(&k[i]));
                    }
                }
            })
        });
        let mut p = next;
        g.bench_function(format!("mixed_90_10/{dist}/hashbrown"), |b| {
            b.iter(|| {
                let s = p();
                for (j, &i) in t[s..s + BATCH].iter().enumerate() {
                    if j % 10 == 0 {
                        hb.insert(k[i].clone(), i as u64);
                    } else {
                        black_box(hb.get(&k[i]));
                    }
                }
            })
        });
        drop(hb);
        g.finish();
    }
}

criterion_group!(benches, bench_get, bench_writes);
criterion_main!(benches);
