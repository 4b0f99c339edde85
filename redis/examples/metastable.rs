//! `make metastable`: a metastable failure of a cached service, reproduced and broken. One table,
//! a row per protection added, every row under the same load and the same trigger:
//!
//! - an origin like a database (`healcache_testkit::Origin`): 8 workers x 5 ms = 1,600 queries/s
//!   behind an unbounded FIFO; a query whose client gave up is still served;
//! - a fleet of 4 caches (each its own L1, flights and Redis connection) on one real redis-server;
//! - open-loop arrivals at a constant rate (they do not slow down when the service does); each
//!   request has 100 ms per attempt and, unprotected, up to 3 immediate retries; the loader's own
//!   timeout is 100 ms too, so a load that waits longer never fills the cache;
//! - the load: a long tail of one-off keys (always a miss) that keeps the origin at about 60% of
//!   its capacity in the normal state, and a working set of keys the fleet keeps cached. Cold,
//!   the working set adds enough misses to exceed the origin's capacity: that is the trigger's
//!   lever (a cold cache sends at most one query per request, so a load that stays below the
//!   origin's capacity when nothing is cached cannot be tipped over by a flush);
//! - the trigger at 10 s: redis-server restarted without persistence (a failover that lost the
//!   data). L2 is empty; each instance's bus subscribes again, which distrusts every L1 entry
//!   (so does its breaker closing again, where it opened: only an instance that sent 3 reads to
//!   Redis in the restart's few milliseconds has it open). The trigger ends once every instance
//!   has distrusted its L1.
//!
//! Rows: no protection; + the fleet lock (`all`); + a 503 gate at the origin (estimated wait
//! above 50 ms or more than 16 queued); + fail-safe (a stale value is an answer) and a retry
//! budget (10% token bucket) with full-jitter backoff. Rows 1-3 need fresh data: a stale answer
//! counts as a failed attempt.
//!
//! Recovery: from the trigger's end until goodput stays at 95% or more of its mean before the
//! trigger for 3 s. Writes `metastable.csv` (one line per row per 250 ms) into `--out`.
//!
//! `metastable [--out DIR] [--seconds N] [--trigger-s S] [--rate R] [--tail-share F]
//!  [--keys K] [--rows 1,2,3,4]`

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use healcache::tier::{FleetLock, MsgPack};
use healcache::{Cache, FetchOptions, Loaded, SourceAnswer, Status};
use healcache_http::{AllowPrivate, HttpOptions, HttpSource};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::{Gate, Origin, OriginOptions, RedisServer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const INSTANCES: usize = 4;
const WORKERS: usize = 8;
const LATENCY: Duration = Duration::from_millis(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);
const RETRIES: u32 = 3;
const BUCKET: Duration = Duration::from_millis(250);
const GATE: Gate = Gate { max_wait: Duration::from_millis(50), max_queue: 2 * WORKERS };
/// Retry budget: each request earns 0.1 retry, up to this many saved.
const BUDGET_RATIO: f64 = 0.1;
const BUDGET_MAX: f64 = 20.0;
/// Backoff before retry n (from 1): uniform in [0, min(BACKOFF_MAX, BACKOFF_BASE * 2^n)).
const BACKOFF_BASE: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(200);
/// How long the trigger's distrust may take at most before the row goes on anyway.
const TRIGGER_BOUND: Duration = Duration::from_secs(5);

#[derive(Clone, Copy)]
pub struct Protection {
    pub name: &'static str,
    pub fleet_lock: bool,
    pub gate: bool,
    pub fail_safe_and_budget: bool,
}

pub const ROWS: [Protection; 4] = [
    Protection { name: "no protection", fleet_lock: false, gate: false, fail_safe_and_budget: false },
    Protection {
        name: "+ fleet lock (single flight + all)",
        fleet_lock: true,
        gate: false,
        fail_safe_and_budget: false,
    },
    Protection { name: "+ 503 gate at the origin", fleet_lock: true, gate: true, fail_safe_and_budget: false },
    Protection {
        name: "+ fail-safe + retry budget + backoff",
        fleet_lock: true,
        gate: true,
        fail_safe_and_budget: true,
    },
];

pub struct Args {
    pub out: std::path::PathBuf,
    pub seconds: f64,
    pub trigger_s: f64,
    pub rate: f64,
    pub tail_share: f64,
    pub keys: usize,
    pub rows: Vec<usize>,
}

fn args() -> Args {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| a.iter().position(|x| x == name).and_then(|i| a.get(i + 1)).cloned();
    let num = |name: &str, default: f64| {
        opt(name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}: a number, not {v:?}")))
    };
    let rows = opt("--rows").map_or(vec![1, 2, 3, 4], |v| {
        v.split(',').map(|r| r.trim().parse().expect("--rows: numbers 1-4, comma-separated")).collect()
    });
    assert!(rows.iter().all(|r| (1..=4).contains(r)), "--rows: numbers 1-4");
    let args = Args {
        out: opt("--out").map_or_else(|| "target/lab".into(), Into::into),
        seconds: num("--seconds", 60.0),
        trigger_s: num("--trigger-s", 10.0),
        rate: num("--rate", 1800.0),
        tail_share: num("--tail-share", 0.44),
        keys: num("--keys", 5_000.0) as usize,
        rows,
    };
    assert!(
        args.trigger_s >= 2.0 && args.seconds >= args.trigger_s + 3.0,
        "--seconds must leave 3 s after the trigger"
    );
    assert!(args.rate > 0.0 && (0.0..1.0).contains(&args.tail_share) && args.keys > 0, "rate, tail share, keys");
    args
}

/// One 250 ms bucket of a row.
#[derive(Clone, Copy, Default)]
pub struct Sample {
    pub t_s: f64,
    pub goodput_rps: f64,
    pub queue: u64,
    pub origin_qps: f64,
    pub miss_rate: f64,
    pub breakers_open: u64,
    pub lock_wait_ms: f64,
}

/// What the requests did, counted as they end (read and reset by the sampler every bucket).
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    ended: AtomicU64,
    missed: AtomicU64,
    retries: AtomicU64,
    denied: AtomicU64,
    stale_refused: AtomicU64,
    ok_total: AtomicU64,
    failed_total: AtomicU64,
}

/// A retry token bucket shared by the fleet's clients.
struct Budget(Mutex<f64>);

impl Budget {
    fn earn(&self) {
        let mut b = self.0.lock().unwrap();
        *b = (*b + BUDGET_RATIO).min(BUDGET_MAX);
    }
    fn spend(&self) -> bool {
        let mut b = self.0.lock().unwrap();
        (*b >= 1.0).then(|| *b -= 1.0).is_some()
    }
}

pub struct RowResult {
    pub samples: Vec<Sample>,
    pub trigger_end_s: f64,
    /// Every instance distrusted its L1 (its bus subscribed again) within the trigger's bound.
    pub distrusted: bool,
    /// Times the instances' breakers opened.
    pub breaker_opens: u64,
    pub baseline: f64,
    pub last_5s: f64,
    pub peak_queue: u64,
    pub end_queue: u64,
    pub asked: u64,
    pub rejected: u64,
    pub stale_served: u64,
    pub stale_refused: u64,
    pub retries: u64,
    pub denied: u64,
    pub failed: u64,
    pub recovery_s: Option<f64>,
}

fn cache(url: &str, p: Protection) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .max_entries(200_000)
        .ttl(Duration::from_secs(600))
        .load_timeout(ATTEMPT_TIMEOUT)
        .fleet_lock(if p.fleet_lock { FleetLock::All } else { FleetLock::Off })
        .shared_tier(RedisTransport::connect(url).expect("a redis URL"), MsgPack::new())
        .build()
        .expect("a valid cache")
}

/// One request: attempts until an answer, at most 1 + RETRIES of them.
async fn request(
    c: Cache<Value>,
    source: HttpSource,
    key: String,
    p: Protection,
    tally: Arc<Tally>,
    budget: Arc<Budget>,
    seed: u64,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut missed = false;
    let mut ok = false;
    for attempt in 0..=RETRIES {
        if attempt > 0 {
            if p.fail_safe_and_budget {
                if !budget.spend() {
                    tally.denied.fetch_add(1, Relaxed);
                    break;
                }
                let cap = BACKOFF_MAX.min(BACKOFF_BASE * 2u32.pow(attempt));
                tokio::time::sleep(cap.mul_f64(rng.random::<f64>())).await;
            }
            tally.retries.fetch_add(1, Relaxed);
        }
        let (src, k) = (source.clone(), key.clone());
        let fetch = c.fetch(&key, FetchOptions::default(), move || async move {
            match src.fetch_bytes(&k).await {
                Ok(SourceAnswer::Value(body)) => {
                    serde_json::from_slice(&body).map(Loaded::Value).map_err(std::io::Error::other)
                }
                Ok(SourceAnswer::NotFound) => Ok(Loaded::NotFound),
                Err(e) => Err(std::io::Error::other(e)),
            }
        });
        let answer = tokio::time::timeout(ATTEMPT_TIMEOUT, fetch).await;
        if attempt == 0 {
            missed = !matches!(answer, Ok(Ok(ref f)) if matches!(f.status, Status::Hit | Status::L2Hit | Status::Revalidated));
        }
        match answer {
            Ok(Ok(f)) if f.status == Status::StaleFailSafe && !p.fail_safe_and_budget => {
                tally.stale_refused.fetch_add(1, Relaxed);
            }
            Ok(Ok(_)) => {
                ok = true;
                break;
            }
            _ => {}
        }
    }
    if p.fail_safe_and_budget {
        budget.earn();
    }
    tally.ended.fetch_add(1, Relaxed);
    if missed {
        tally.missed.fetch_add(1, Relaxed);
    }
    if ok {
        tally.ok.fetch_add(1, Relaxed);
        tally.ok_total.fetch_add(1, Relaxed);
    } else {
        tally.failed_total.fetch_add(1, Relaxed);
    }
}

fn hot_key(i: usize) -> String {
    format!("item:{i}")
}

pub async fn run_row(p: Protection, a: &Args) -> RowResult {
    let mut redis = RedisServer::start().expect("redis-server must be installed (.ci/setup-server.sh)");
    let origin = Arc::new(
        Origin::start(OriginOptions { latency: LATENCY, workers: WORKERS, gate: p.gate.then_some(GATE) })
            .expect("an origin"),
    );
    let source = HttpSource::new(
        &format!("{}/{{key}}", origin.url()),
        HttpOptions {
            timeout: Duration::from_secs(2),
            allow_private: AllowPrivate::hosts(["127.0.0.1"]),
            ..HttpOptions::default()
        },
    )
    .expect("an HTTP source");
    let fleet: Vec<Cache<Value>> = (0..INSTANCES).map(|_| cache(&redis.url(), p)).collect();

    // Warm-up, not measured: the working set loaded once (into L2 and the first L1), then read by
    // every other instance from L2.
    for c in &fleet {
        let mut keys = (0..a.keys).map(hot_key);
        loop {
            let batch: Vec<String> = keys.by_ref().take(256).collect();
            if batch.is_empty() {
                break;
            }
            let gets =
                batch.into_iter().map(|k| {
                    let v = Value::String(format!("{k}@origin"));
                    let c = c.clone();
                    async move {
                        c.fetch(&k, FetchOptions::default(), move || async move {
                            Ok::<_, std::io::Error>(Loaded::Value(v))
                        })
                        .await
                    }
                });
            // whether an instance read a key from L2 or (L2 slow on a busy machine) loaded it
            // itself, it holds it now
            for r in futures::future::join_all(gets).await {
                r.expect("warm-up fetch");
            }
        }
    }

    let tally = Arc::new(Tally::default());
    let budget = Arc::new(Budget(Mutex::new(BUDGET_MAX)));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(a.seconds);

    // the sampler: one sample per bucket, from the counters' differences
    let sampler = {
        let (origin, fleet, tally, samples) = (origin.clone(), fleet.clone(), tally.clone(), samples.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::from_std(t0 + BUCKET), BUCKET);
            let (mut served, mut wait_n, mut wait_ns) = (origin.stats().served, 0u64, 0u64);
            let mut last = t0;
            while Instant::now() < end {
                tick.tick().await;
                let now = Instant::now();
                let secs = now.duration_since(last).as_secs_f64();
                last = now;
                let s = origin.stats();
                origin.take_log(); // not needed here: keeps the origin's memory flat
                let stats: Vec<_> = fleet.iter().map(|c| c.stats()).collect();
                let (n, ns) =
                    stats.iter().fold((0, 0), |(n, ns), s| (n + s.l2_lock_wait.count(), ns + s.l2_lock_wait.sum_nanos));
                let ended = tally.ended.swap(0, Relaxed);
                let sample = Sample {
                    t_s: now.duration_since(t0).as_secs_f64(),
                    goodput_rps: tally.ok.swap(0, Relaxed) as f64 / secs,
                    queue: s.queued,
                    origin_qps: (s.served - served) as f64 / secs,
                    miss_rate: if ended == 0 { 0.0 } else { tally.missed.swap(0, Relaxed) as f64 / ended as f64 },
                    breakers_open: stats.iter().filter(|s| s.l2_breaker_state != 0).count() as u64,
                    lock_wait_ms: if n > wait_n { (ns - wait_ns) as f64 / (n - wait_n) as f64 / 1e6 } else { 0.0 },
                };
                if ended == 0 {
                    tally.missed.store(0, Relaxed);
                }
                served = s.served;
                (wait_n, wait_ns) = (n, ns);
                samples.lock().unwrap().push(sample);
            }
        })
    };

    // the arrivals: open loop, one every 1/rate s, whatever became of the earlier ones
    let arrivals = {
        let (fleet, source, tally, budget) = (fleet.clone(), source.clone(), tally.clone(), budget.clone());
        let (rate, share, keys) = (a.rate, a.tail_share, a.keys);
        tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(7);
            let mut tasks = Vec::new();
            for i in 0u64.. {
                let at = t0 + Duration::from_secs_f64(i as f64 / rate);
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                let key = if rng.random_bool(share) { format!("tail:{i}") } else { hot_key(rng.random_range(0..keys)) };
                let c = fleet[rng.random_range(0..INSTANCES)].clone();
                tasks.push(tokio::spawn(request(
                    c,
                    source.clone(),
                    key,
                    p,
                    tally.clone(),
                    budget.clone(),
                    rng.random(),
                )));
                tasks.retain(|t| !t.is_finished());
            }
            tasks
        })
    };

    // the trigger
    tokio::time::sleep_until(tokio::time::Instant::from_std(t0 + Duration::from_secs_f64(a.trigger_s))).await;
    let gaps: Vec<u64> = fleet.iter().map(|c| c.stats().l2_bus_gaps).collect();
    let opens: Vec<u64> = fleet.iter().map(|c| c.stats().l2_breaker_opens).collect();
    redis = tokio::task::spawn_blocking(move || {
        redis.restart().expect("redis-server restarted");
        redis
    })
    .await
    .unwrap();
    let bound = Instant::now() + TRIGGER_BOUND;
    // over once every instance has distrusted its L1: its bus subscribed again, and its breaker
    // (if it opened) closed again
    while Instant::now() < bound
        && !fleet.iter().enumerate().all(|(i, c)| {
            let s = c.stats();
            s.l2_bus_gaps > gaps[i] && (s.l2_breaker_opens == opens[i] || s.l2_breaker_state == 0)
        })
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let trigger_end_s = t0.elapsed().as_secs_f64();
    let distrusted = fleet.iter().enumerate().all(|(i, c)| c.stats().l2_bus_gaps > gaps[i]);

    let pending = arrivals.await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(pending)).await;
    // it stops by itself at the end: every bucket of the run is sampled
    sampler.await.unwrap();
    let samples = samples.lock().unwrap().clone();
    let s = origin.stats();
    let stale_served = fleet.iter().map(|c| c.stats().stale_served_fail_safe).sum();
    let breaker_opens = fleet.iter().zip(&opens).map(|(c, o)| c.stats().l2_breaker_opens - o).sum();
    drop(fleet);
    drop(redis);

    let mean = |xs: Vec<f64>| if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 };
    // the first 2 s are the arrivals settling in
    let baseline =
        mean(samples.iter().filter(|x| x.t_s > 2.0 && x.t_s <= a.trigger_s).map(|x| x.goodput_rps).collect());
    let last_5s = mean(samples.iter().filter(|x| x.t_s > a.seconds - 5.0).map(|x| x.goodput_rps).collect());
    RowResult {
        recovery_s: recovery(&samples, trigger_end_s, baseline),
        trigger_end_s,
        distrusted,
        breaker_opens,
        baseline,
        last_5s,
        peak_queue: samples.iter().map(|x| x.queue).max().unwrap_or(0),
        end_queue: samples.last().map_or(0, |x| x.queue),
        asked: s.asked,
        rejected: s.rejected,
        stale_served,
        stale_refused: tally.stale_refused.load(Relaxed),
        retries: tally.retries.load(Relaxed),
        denied: tally.denied.load(Relaxed),
        failed: tally.failed_total.load(Relaxed),
        samples,
    }
}

pub const CSV_HEADER: &str = "row,t_s,goodput_rps,origin_queue_depth,origin_qps,miss_rate,breaker_open,lock_wait_ms\n";

/// A row's samples as lines of `metastable.csv`.
pub fn csv_lines(csv: &mut String, p: Protection, r: &RowResult) {
    for x in &r.samples {
        let _ = writeln!(
            csv,
            "{},{:.2},{:.1},{},{:.1},{:.4},{},{:.2}",
            p.name, x.t_s, x.goodput_rps, x.queue, x.origin_qps, x.miss_rate, x.breakers_open, x.lock_wait_ms
        );
    }
}

/// Seconds from `from_s` until goodput stays at 95% of `baseline` or more for 3 s.
fn recovery(samples: &[Sample], from_s: f64, baseline: f64) -> Option<f64> {
    let bar = 0.95 * baseline;
    let mut start: Option<f64> = None;
    for x in samples.iter().filter(|x| x.t_s > from_s) {
        if x.goodput_rps >= bar {
            let s = *start.get_or_insert(x.t_s - BUCKET.as_secs_f64());
            if x.t_s - s >= 3.0 {
                return Some((s - from_s).max(0.0));
            }
        } else {
            start = None;
        }
    }
    None
}

fn main() {
    let a = args();
    std::fs::create_dir_all(&a.out).expect("the output directory");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!(
        "Metastable failure: origin {WORKERS} workers x {} ms = {:.0} q/s, unbounded FIFO; {INSTANCES} caches on one redis-server;",
        LATENCY.as_millis(),
        WORKERS as f64 * 1000.0 / LATENCY.as_millis() as f64
    );
    println!(
        "open loop {:.0} req/s ({:.0}% one-off keys: {:.0} q/s at the origin in the normal state; {} working-set keys); \
         {} ms per attempt, up to {RETRIES} retries; trigger (redis-server restarted empty) at {} s; {} s per row.\n",
        a.rate,
        a.tail_share * 100.0,
        a.rate * a.tail_share,
        a.keys,
        ATTEMPT_TIMEOUT.as_millis(),
        a.trigger_s,
        a.seconds
    );
    println!(
        "| {:<36} | {:>11} | {:>11} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8} | {:>18} |",
        "row",
        "goodput 0-T",
        "goodput end",
        "queue max",
        "queue end",
        "origin q",
        "503s",
        "stale",
        "retries",
        "denied",
        "failed",
        "recovery"
    );
    let widths = [38, 13, 13, 11, 11, 11, 11, 10, 10, 10, 10, 20];
    println!("|{}|", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("|"));
    let mut csv = String::from(CSV_HEADER);
    for &n in &a.rows {
        let p = ROWS[n - 1];
        let r = rt.block_on(run_row(p, &a));
        let recovery = match r.recovery_s {
            Some(s) => format!("{s:.2} s"),
            None => format!("none in {:.0} s", a.seconds - r.trigger_end_s),
        };
        println!(
            "| {:<36} | {:>11.0} | {:>11.0} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8} | {:>18} |",
            p.name,
            r.baseline,
            r.last_5s,
            r.peak_queue,
            r.end_queue,
            r.asked,
            r.rejected,
            r.stale_served,
            r.retries,
            r.denied,
            r.failed,
            recovery
        );
        csv_lines(&mut csv, p, &r);
        // trigger end for the reader of the CSV alone
        eprintln!("{}: trigger ended at {:.2} s", p.name, r.trigger_end_s);
    }
    let path = a.out.join("metastable.csv");
    std::fs::write(&path, csv).expect("metastable.csv written");
    println!("\nwrote {}", path.display());
}
