//! One instance of a fleet, for the multi-process tests (and to try the fleet lock by hand): a
//! cache on the shared tier, driven by commands on stdin, answering one JSON line each.
//!
//! `cargo run -p healcache-redis --example fleet_node -- --redis URL [--fleet-lock off|refresh|all]
//!  [--lease-ms N] [--max-hold-ms N] [--ttl-ms N] [--grace-ms N] [--soft-timeout-ms N] [--swr]`
//!
//! Commands:
//! - `fetch KEY LOAD_MS VALUE`: a fetch whose loader takes LOAD_MS and answers the JSON VALUE;
//!   answers `{"status", "value", "ms"}` (or `{"error"}`).
//! - `hammer KEY DURATION_MS LOAD_MS THREADS`: fetches KEY in a loop on THREADS threads for
//!   DURATION_MS; each loader call is logged with its wall-clock start (ms since the epoch, so
//!   processes' logs line up); answers `{"loads": [ms...], "errors", "statuses": {status: n}}`.
//! - `get KEY`: the L1 value (a peek: no load, no L2); `stats`: the cache's counters; `loads`:
//!   the wall-clock start of every loader call so far.
//!
//! Prints `ready` once the cache is built.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use healcache::tier::{FleetLock, MsgPack};
use healcache::{Cache, FetchOptions, Loaded, Timer};
use healcache_rt::{IoSpawner, IoTimer};
use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let ms = |name: &str| opt(name).map(|v| Duration::from_millis(v.parse().expect("a number of ms")));
    let url = opt("--redis").expect("--redis URL");
    let mut b = Cache::<Value>::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(healcache_redis::RedisTransport::connect(&url).expect("a redis:// URL"), MsgPack::new());
    if let Some(m) = opt("--fleet-lock") {
        b = b.fleet_lock(FleetLock::parse(&m).expect("off, refresh or all"));
    }
    if let Some(d) = ms("--lease-ms") {
        b = b.fleet_lock_lease(d);
    }
    if let Some(d) = ms("--max-hold-ms") {
        b = b.fleet_lock_max_hold(d);
    }
    if let Some(d) = ms("--ttl-ms") {
        b = b.ttl(d);
    }
    if let Some(d) = ms("--grace-ms") {
        b = b.grace(d);
    }
    if let Some(d) = ms("--soft-timeout-ms") {
        b = b.load_soft_timeout(d);
    }
    if args.iter().any(|a| a == "--swr") {
        b = b.stale_while_revalidate(true);
    }
    let cache = b.build().expect("a cache");
    let out = std::io::stdout();
    let say = |v: Value| {
        let mut o = out.lock();
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    };
    let log = Arc::new(Mutex::new(Vec::<u64>::new()));
    say(json!("ready"));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["fetch", key, load_ms, value] => {
                let v: Value = serde_json::from_str(value).expect("a JSON value");
                let started = Instant::now();
                let r = fetch(&cache, key, load_ms.parse().expect("ms"), v, &log);
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                say(match r {
                    Ok(f) => json!({"status": f.status.as_str(), "value": f.value, "ms": ms}),
                    Err(e) => json!({"error": e.to_string(), "ms": ms}),
                });
            }
            ["hammer", key, duration_ms, load_ms, threads] => {
                let until = Instant::now() + Duration::from_millis(duration_ms.parse().expect("ms"));
                let load_ms: u64 = load_ms.parse().expect("ms");
                let first = log.lock().unwrap().len();
                let tally = Arc::new(Mutex::new((0u64, BTreeMap::<String, u64>::new())));
                let workers: Vec<_> = (0..threads.parse::<usize>().expect("a count"))
                    .map(|_| {
                        let (cache, key, log, tally) = (cache.clone(), key.to_string(), log.clone(), tally.clone());
                        std::thread::spawn(move || {
                            while Instant::now() < until {
                                let r = fetch(&cache, &key, load_ms, json!(epoch_ms()), &log);
                                let mut t = tally.lock().unwrap();
                                match r {
                                    Ok(f) => *t.1.entry(f.status.as_str().to_string()).or_default() += 1,
                                    Err(_) => t.0 += 1,
                                }
                                drop(t);
                                std::thread::sleep(Duration::from_millis(2));
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().unwrap();
                }
                let loads = log.lock().unwrap()[first..].to_vec();
                let t = tally.lock().unwrap();
                say(json!({"loads": loads, "errors": t.0, "statuses": t.1}));
            }
            ["get", key] => say(json!({"value": cache.peek(key)})),
            ["loads"] => say(json!(log.lock().unwrap().clone())),
            ["stats"] => say(serde_json::to_value(cache.stats()).expect("stats as JSON")),
            _ => say(json!({"error": format!("unknown command {line:?}")})),
        }
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A fetch whose loader logs its start, then takes `load_ms` and answers `v`.
fn fetch(
    cache: &Cache<Value>,
    key: &str,
    load_ms: u64,
    v: Value,
    log: &Arc<Mutex<Vec<u64>>>,
) -> healcache::Result<healcache::Fetched<Value>> {
    let log = log.clone();
    futures::executor::block_on(cache.fetch(key, FetchOptions::default(), move || async move {
        log.lock().unwrap().push(epoch_ms());
        IoTimer.sleep(Duration::from_millis(load_ms)).await;
        Ok::<_, std::io::Error>(Loaded::Value(v))
    }))
}
