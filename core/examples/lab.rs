//! `make lab`: the stampede lab. One table, a row per protection layer added one at a time,
//! every row under the same load:
//!
//! - an origin with 10 ms per query and 16 connections (queries beyond that queue, as on a
//!   saturated database), counting every query it serves;
//! - 32 closed-loop clients, 1 ms think time, for 12 TTL windows of 200 ms after a warm-up that
//!   loads every key at once (so their expiries line up, as after a deploy or a cache flush);
//! - half the requests for one hot key, half for a Zipf(1.0) tail of 400 keys, of which the last
//!   50 do not exist at the origin.
//!
//! Columns: origin queries per TTL window for the hot key, all origin queries, the largest burst
//! of origin queries started within 10 ms, request latency p50/p99, the share of requests that
//! waited on a load, and stale values served.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use healcache::{Cache, CacheBuilder, FetchOptions, Loaded, Spawner, Status, Timer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use tokio::sync::Semaphore;

const TTL: Duration = Duration::from_millis(200);
const WINDOWS: u32 = 12;
const CLIENTS: usize = 32;
const TAIL: usize = 400;
const MISSING_FROM: usize = 350;
const ORIGIN_LATENCY: Duration = Duration::from_millis(10);
const ORIGIN_CONNECTIONS: usize = 16;

struct Origin {
    pool: Semaphore,
    started: Instant,
    /// start times (ms since `started`) of queries, and whether each was for the hot key
    log: Mutex<Vec<(u64, bool)>>,
}

#[derive(Debug)]
struct Down;
impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("origin down")
    }
}
impl std::error::Error for Down {}

impl Origin {
    async fn query(&self, key: &str) -> Result<Loaded<u64>, Down> {
        // logged when asked for, before a connection is free: the demand the database sees
        self.log.lock().unwrap().push((self.started.elapsed().as_millis() as u64, key == "hot"));
        let _conn = self.pool.acquire().await.map_err(|_| Down)?;
        tokio::time::sleep(ORIGIN_LATENCY).await;
        let n: usize = key.strip_prefix("tail:").and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok(if key != "hot" && n >= MISSING_FROM { Loaded::NotFound } else { Loaded::Value(n as u64) })
    }
}

struct TokioTimer;
impl Timer for TokioTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}
struct TokioSpawner;
impl Spawner for TokioSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        tokio::spawn(fut);
    }
}

#[derive(Clone, Copy)]
struct Layers {
    cache: bool,
    swr: bool,
    xfetch: bool,
    jitter: bool,
    negative: bool,
}

struct Row {
    hot_per_window: f64,
    hot_per_boundary: usize,
    origin: usize,
    burst: usize,
    p50: Duration,
    p99: Duration,
    waited: f64,
    stale: u64,
    requests: usize,
}

fn key_for(rng: &mut SmallRng, zipf: &Zipf<f64>) -> String {
    if rng.random_bool(0.5) {
        "hot".to_string()
    } else {
        format!("tail:{}", zipf.sample(rng) as usize - 1)
    }
}

async fn run(layers: Layers) -> Row {
    let origin = Arc::new(Origin {
        pool: Semaphore::new(ORIGIN_CONNECTIONS),
        started: Instant::now(),
        log: Mutex::new(Vec::new()),
    });
    let cache = layers.cache.then(|| {
        let mut b: CacheBuilder<u64> = Cache::builder()
            .max_entries(10_000)
            .ttl(TTL)
            .seed(7)
            .timer(TokioTimer)
            .spawner(TokioSpawner)
            .load_timeout(Duration::from_secs(5));
        if layers.swr {
            b = b.grace(TTL * 100).stale_while_revalidate(true);
        }
        if layers.xfetch {
            b = b.xfetch(1.0);
        }
        if layers.jitter {
            b = b.ttl_jitter(0.2);
        }
        if layers.negative {
            b = b.negative_ttl(TTL);
        }
        b.build().expect("valid lab config")
    });
    let fetch = |cache: &Cache<u64>, key: String, origin: Arc<Origin>| {
        let k = key.clone();
        let cache = cache.clone();
        async move { cache.fetch(&k, FetchOptions::default(), move || async move { origin.query(&key).await }).await }
    };
    // warm-up: every key loaded at once
    if let Some(c) = &cache {
        let mut warm = vec![tokio::spawn(fetch(c, "hot".into(), origin.clone()))];
        for i in 0..TAIL {
            warm.push(tokio::spawn(fetch(c, format!("tail:{i}"), origin.clone())));
        }
        for w in warm {
            let _ = w.await;
        }
    }
    let t0 = origin.started.elapsed().as_millis() as u64;
    let deadline = Instant::now() + TTL * WINDOWS;
    let stale0 = cache.as_ref().map_or(0, |c| {
        let s = c.stats();
        s.stale_served_swr + s.stale_served_fail_safe + s.stale_served_soft_timeout
    });
    let waited = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let (origin, cache, waited) = (origin.clone(), cache.clone(), waited.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(id as u64);
            let zipf = Zipf::new(TAIL as f64, 1.0).unwrap();
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let key = key_for(&mut rng, &zipf);
                let t = Instant::now();
                match &cache {
                    None => {
                        let _ = origin.query(&key).await;
                        waited.fetch_add(1, Relaxed);
                    }
                    Some(c) => {
                        let k = key.clone();
                        let o = origin.clone();
                        let f = c.fetch(&k, FetchOptions::default(), move || async move { o.query(&key).await }).await;
                        if matches!(f, Ok(ref f) if matches!(f.status, Status::Loaded | Status::Coalesced | Status::NegativeLoaded))
                            || f.is_err()
                        {
                            waited.fetch_add(1, Relaxed);
                        }
                    }
                }
                lat.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for c in clients {
        lat.extend(c.await.unwrap());
    }
    let t1 = origin.started.elapsed().as_millis() as u64;
    lat.sort_unstable();
    let log = origin.log.lock().unwrap().clone();
    let during: Vec<_> = log.iter().filter(|(t, _)| *t >= t0 && *t < t1).collect();
    let hot = during.iter().filter(|(_, h)| *h).count();
    // the most hot-key queries serving one TTL boundary: queries less than TTL/2 apart
    let hot_times: Vec<u64> = during.iter().filter(|(_, h)| *h).map(|(t, _)| *t).collect();
    let half = TTL.as_millis() as u64 / 2;
    let hot_per_boundary = (0..hot_times.len())
        .map(|i| hot_times[i..].iter().take_while(|&&t| t < hot_times[i] + half).count())
        .max()
        .unwrap_or(0);
    let mut buckets = std::collections::HashMap::<u64, usize>::new();
    for (t, _) in &during {
        *buckets.entry(t / 10).or_default() += 1;
    }
    let stale = cache.as_ref().map_or(0, |c| {
        let s = c.stats();
        s.stale_served_swr + s.stale_served_fail_safe + s.stale_served_soft_timeout
    }) - stale0;
    Row {
        hot_per_window: hot as f64 / WINDOWS as f64,
        hot_per_boundary,
        origin: during.len(),
        burst: buckets.values().copied().max().unwrap_or(0),
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
        waited: waited.load(Relaxed) as f64 / lat.len() as f64,
        stale,
        requests: lat.len(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "Stampede lab: origin {} ms/query, {} connections; {} clients (1 ms think time); TTL {} ms, {} windows;",
        ORIGIN_LATENCY.as_millis(),
        ORIGIN_CONNECTIONS,
        CLIENTS,
        TTL.as_millis(),
        WINDOWS
    );
    println!(
        "50% of requests on one hot key, 50% on a Zipf(1.0) tail of {TAIL} keys ({} missing at the origin).\n",
        TAIL - MISSING_FROM
    );
    println!(
        "| {:<26} | {:>14} | {:>16} | {:>9} | {:>14} | {:>9} | {:>9} | {:>8} | {:>7} | {:>8} |",
        "layers",
        "hot q / window",
        "hot q / boundary",
        "origin q",
        "max q / 10 ms",
        "p50",
        "p99",
        "waited",
        "stale",
        "requests"
    );
    let widths = [28, 16, 18, 11, 16, 11, 11, 10, 9, 10];
    println!("|{}|", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("|"));
    let rows: [(&str, Layers); 6] = [
        ("none (origin only)", Layers { cache: false, swr: false, xfetch: false, jitter: false, negative: false }),
        ("single-flight", Layers { cache: true, swr: false, xfetch: false, jitter: false, negative: false }),
        ("+ stale-while-revalidate", Layers { cache: true, swr: true, xfetch: false, jitter: false, negative: false }),
        ("+ XFetch", Layers { cache: true, swr: true, xfetch: true, jitter: false, negative: false }),
        ("+ TTL jitter", Layers { cache: true, swr: true, xfetch: true, jitter: true, negative: false }),
        ("+ negative caching", Layers { cache: true, swr: true, xfetch: true, jitter: true, negative: true }),
    ];
    for (name, layers) in rows {
        let r = run(layers).await;
        println!(
            "| {:<26} | {:>14.2} | {:>16} | {:>9} | {:>14} | {:>9.2?} | {:>9.2?} | {:>7.2}% | {:>7} | {:>8} |",
            name,
            r.hot_per_window,
            r.hot_per_boundary,
            r.origin,
            r.burst,
            r.p50,
            r.p99,
            r.waited * 100.0,
            r.stale,
            r.requests
        );
    }
}
