//! One self-healing instance of a fleet, for the multi-process healing tests: a cache on the
//! shared tier with a healer whose source of truth for `--prefix` is an HTTP source, driven by
//! commands on stdin, answering one JSON line each.
//!
//! `cargo run -p healcache-redis --example fleet_healer -- --redis URL --source TEMPLATE
//!  [--prefix item:] [--keys 100] [--rate 0.2] [--interval-ms 250] [--lease-ms 5000]`
//!
//! At start it loads keys `<prefix>0` .. `<prefix>N-1` (the loader answers `"v0-<key>"`, what the
//! source serves at first), then runs the healer in the background.
//!
//! Commands:
//! - `status`: the fleet verifier's counters and the prefix's score as this instance reports it;
//! - `peek KEY...`: the fresh L1 values (no load, no L2; `null` when absent or stale);
//! - `fetch KEY...`: read-through values (L1, then L2, then the loader's `"v0-<key>"`).
//!
//! Prints `ready` once the keys are loaded.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use healcache::tier::{FleetVerify, MsgPack};
use healcache::{Cache, FetchOptions, Healer, HealingConfig, Loaded, SourceError};
use healcache_http::{AllowPrivate, HttpOptions, HttpSource};
use healcache_rt::{IoSpawner, IoTimer};
use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let num = |name: &str, default: f64| opt(name).map_or(default, |v| v.parse().expect("a number"));
    let url = opt("--redis").expect("--redis URL");
    let template = opt("--source").expect("--source URL template");
    let prefix = opt("--prefix").unwrap_or_else(|| "item:".into());
    let keys = num("--keys", 100.0) as usize;
    let cache = Cache::<Value>::builder()
        .max_entries(10_000)
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(healcache_redis::RedisTransport::connect(&url).expect("a redis:// URL"), MsgPack::new())
        .build()
        .expect("a cache");
    for i in 0..keys {
        let key = format!("{prefix}{i}");
        fetch(&cache, &key).expect("the first load");
    }
    let healing = HealingConfig {
        enabled: true,
        sample_rate: num("--rate", 0.2),
        verify_interval_ms: num("--interval-ms", 250.0),
        ..HealingConfig::default()
    };
    let digest =
        Arc::new(|v: &Value| v.to_string().bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    let healer = Healer::with_comparator(cache.clone(), healing, Arc::new(|a: &Value, b: &Value| a == b), digest)
        .expect("a healer");
    let lease = Duration::from_millis(num("--lease-ms", 5000.0) as u64);
    healer.set_fleet_verify(FleetVerify { lease, ..FleetVerify::default() }).expect("fleet settings");
    let local = HttpOptions { allow_private: AllowPrivate::hosts(["127.0.0.1"]), ..HttpOptions::default() };
    let source = HttpSource::new(&template, local)
        .expect("a source")
        .map(|body| serde_json::from_slice::<Value>(&body).map_err(|_| SourceError::Unavailable));
    healer.register_source(&prefix, source).expect("registered");
    let runner = healer.clone();
    std::thread::spawn(move || futures::executor::block_on(runner.run()));

    let out = std::io::stdout();
    let say = |v: Value| {
        let mut o = out.lock();
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    };
    say(json!("ready"));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["status"] => {
                let s = cache.stats();
                let score = healer.score(&prefix).expect("registered");
                say(json!({
                    "held": s.l2_verifier_held,
                    "acquired": s.l2_verifier_acquired,
                    "lost": s.l2_verifier_lost,
                    "sampled": s.l2_verifier_sampled,
                    "repaired": s.l2_verifier_repaired,
                    "score": score.score,
                    "score_sampled": score.sampled,
                    "score_repaired": score.repaired,
                    "drift_events": healer.drift_events().len(),
                }));
            }
            ["peek", keys @ ..] => say(json!(keys.iter().map(|k| cache.peek(k)).collect::<Vec<_>>())),
            ["fetch", keys @ ..] => {
                say(json!(keys.iter().map(|k| fetch(&cache, k).ok()).collect::<Vec<_>>()));
            }
            _ => say(json!({"error": format!("unknown command {line:?}")})),
        }
    }
    healer.stop();
}

/// A read-through of `key` whose loader answers the first value the source serves.
fn fetch(cache: &Cache<Value>, key: &str) -> healcache::Result<Value> {
    let v = json!(format!("v0-{key}"));
    futures::executor::block_on(
        cache.fetch(key, FetchOptions::default(), move || async move { Ok::<_, std::io::Error>(Loaded::Value(v)) }),
    )
    .map(|f| f.value.unwrap_or(Value::Null))
}
