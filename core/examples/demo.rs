//! `make demo`: what healcache does for a service, with counted figures.
//!
//! Section 1: 1,000 concurrent requests for one cold key against a deliberately slow origin
//! (50 ms a query, at most 16 queries at once, like a small database pool), first read straight
//! through, then through `Cache::get_or_load`.
//!
//! Section 2: self-healing, drift found and repaired against a source of truth.
//!
//! Section 3: warming before traffic, with a progress bar and the readiness check a probe reads.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use healcache::{Cache, FnSource, Healer, HealingConfig, SourceAnswer, SourceError, Warm};
use tokio::sync::Semaphore;

/// A slow origin that counts its queries and saturates at 16 concurrent ones.
struct Origin {
    queries: AtomicU64,
    pool: Semaphore,
}

impl Origin {
    fn new() -> Arc<Self> {
        Arc::new(Origin { queries: AtomicU64::new(0), pool: Semaphore::new(16) })
    }

    async fn query(&self, key: &str) -> String {
        let _conn = self.pool.acquire().await.expect("pool open");
        self.queries.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        format!("row for {key}")
    }
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

async fn herd(n: usize, origin: Arc<Origin>, cache: Option<Cache<String>>) -> (u64, Duration, Duration, Duration) {
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (origin, cache) = (origin.clone(), cache.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let v = match cache {
                None => origin.query("product:42").await,
                Some(c) => c
                    .get_or_load(
                        "product:42",
                        move || async move { Ok::<_, Infallible>(origin.query("product:42").await) },
                    )
                    .await
                    .expect("load"),
            };
            assert_eq!(v, "row for product:42");
            t.elapsed()
        }));
    }
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.push(t.await.expect("task"));
    }
    (origin.queries.load(SeqCst), pct(lat.clone(), 0.5), pct(lat, 0.99), t0.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("healcache demo\n==============\n");
    println!("1. A cold key under a herd: 1,000 concurrent requests, origin = 50 ms/query, 16 connections\n");
    println!("{:<28} {:>15} {:>10} {:>10} {:>10}", "", "origin queries", "p50", "p99", "total");
    let (q, p50, p99, total) = herd(1000, Origin::new(), None).await;
    println!("{:<28} {:>15} {:>10.1?} {:>10.1?} {:>10.1?}", "without a cache", q, p50, p99, total);
    let cache: Cache<String> = Cache::builder().max_entries(10_000).ttl(Duration::from_secs(60)).build().unwrap();
    let (q2, p50, p99, total) = herd(1000, Origin::new(), Some(cache.clone())).await;
    println!("{:<28} {:>15} {:>10.1?} {:>10.1?} {:>10.1?}", "healcache get_or_load", q2, p50, p99, total);
    let s = cache.stats();
    println!("\nhealcache stats: loads={} coalesced={} hits={} misses={}", s.loads, s.coalesced, s.hits, s.misses);
    assert_eq!(q, 1000, "every uncached request reached the origin");
    assert_eq!(q2, 1, "the coalesced herd reached the origin once");
    println!("\n=> 1,000 requests reached the origin {q} times without healcache and {q2} time with it.");

    healing_section().await;
}

/// Section 2: a cache filled from a database drifts when writes bypass it; the healer samples
/// keys, checks them against the database, repairs the drift and scores each prefix.
async fn healing_section() {
    use std::collections::HashMap;
    use std::sync::RwLock;

    println!("\n2. Self-healing: 100,000 cached rows; then 10% of the `user:` rows change in the database behind the cache\n");
    let n = 100_000u64;
    let db: Arc<RwLock<HashMap<String, u64>>> = Arc::default();
    let cache: Cache<u64> = Cache::builder().max_entries(2 * n).build().unwrap();
    for i in 0..n {
        let key = if i % 2 == 0 { format!("user:{i}") } else { format!("order:{i}") };
        db.write().unwrap().insert(key.clone(), i);
        cache.set(&key, i).unwrap();
    }
    // writes that bypass the cache: a lost invalidation, a batch job, a manual fix
    let mut drifted = 0;
    for i in (0..n).step_by(2).filter(|i| i % 20 == 0) {
        db.write().unwrap().insert(format!("user:{i}"), i + 1_000_000);
        drifted += 1;
    }
    println!("   {drifted} of {} user rows drifted; order rows untouched", n / 2);
    let source = |db: &Arc<RwLock<HashMap<String, u64>>>| {
        let db = db.clone();
        FnSource(move |k: &str| {
            let answer = match db.read().unwrap().get(k) {
                Some(v) => SourceAnswer::Value(*v),
                None => SourceAnswer::NotFound,
            };
            futures::future::ready(Ok::<_, SourceError>(answer))
        })
    };
    let healer = Healer::new(
        cache.clone(),
        HealingConfig {
            enabled: true,
            sample_rate: 0.05,
            auto_repair: false,
            score_window: 1000.0,
            ..HealingConfig::default()
        },
    )
    .unwrap();
    healer.register_source("user:", source(&db)).unwrap();
    healer.register_source("order:", source(&db)).unwrap();
    println!(
        "\n   {:<10} {:>8} {:>9} {:>9} {:>12} {:>12}",
        "interval", "sampled", "drift", "repaired", "user: score", "order: score"
    );
    let row = |i: usize, r: healcache::IntervalReport, h: &Healer<u64>| {
        println!(
            "   {:<10} {:>8} {:>9} {:>9} {:>12.3} {:>12.3}",
            i,
            r.verified,
            r.drift,
            r.repaired,
            h.score("user:").map_or(1.0, |s| s.score),
            h.score("order:").map_or(1.0, |s| s.score)
        );
    };
    for i in 1..=3 {
        let r = healer.run_interval().await;
        row(i, r, &healer);
    }
    println!("   -- auto_repair on --");
    healer.config_set("healing.auto_repair", "true").unwrap();
    let mut i = 3;
    while healer.score("user:").unwrap().score < 1.0 && i < 100 {
        i += 1;
        let r = healer.run_interval().await;
        if i <= 8 || i % 5 == 0 || healer.score("user:").unwrap().score >= 1.0 {
            row(i, r, &healer);
        }
    }
    let st = healer.stats();
    println!(
        "\n=> drift found {} times, {} repairs landed; user: score back to {:.3} after {} intervals (sample rate 5%, window 1,000).",
        st.total_drift,
        st.total_repaired,
        healer.score("user:").unwrap().score,
        i
    );
    warming().await;
}

/// Section 3: 20,000 keys warmed in batches from an origin that answers a batch in 20 ms, with a
/// progress bar drawn from `warm_progress` and the readiness check a probe would ask.
async fn warming() {
    const KEYS: usize = 20_000;
    println!("\n3. Warming before traffic: {KEYS} keys, 250 per origin call, 4 calls at once, 20 ms per call\n");
    let cache: Cache<String> = Cache::builder().max_entries(KEYS as u64).build().unwrap();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("product:{i}")).collect();
    let calls = Arc::new(AtomicU64::new(0));
    let load = {
        let calls = calls.clone();
        move |batch: Vec<String>| {
            calls.fetch_add(1, SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, Infallible>(batch.into_iter().map(|k| (k.clone(), format!("row for {k}"))).collect())
            }
        }
    };
    let bar = |c: &Cache<String>| {
        let (done, failed, total) = c.warm_progress();
        let filled = if total == 0 { 0 } else { (done + failed) as usize * 40 / total as usize };
        format!("[{}{}] {:>6}/{total} ready={}", "#".repeat(filled), ".".repeat(40 - filled), done + failed, c.ready())
    };
    println!("   before: ready={} (a cache never warmed is ready: start warming before the probe asks)", cache.ready());
    let t0 = Instant::now();
    let drawer = {
        let cache = cache.clone();
        tokio::spawn(async move {
            loop {
                print!("\r   {}", bar(&cache));
                let _ = std::io::Write::flush(&mut std::io::stdout());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let opts = Warm { batch: Some(250), concurrency: 4, ..Warm::default() };
    let report = cache.warm(&keys, opts, load).await.unwrap();
    drawer.abort();
    println!("\r   {}", bar(&cache));
    println!(
        "\n=> {} keys warmed ({} found, {} failed) in {:.2?} with {} origin calls; the probe now answers ready={}.",
        report.total,
        report.found,
        report.failed,
        t0.elapsed(),
        calls.load(SeqCst),
        cache.ready()
    );
}
