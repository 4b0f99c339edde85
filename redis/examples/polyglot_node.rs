//! One Rust instance of a polyglot fleet (tests/polyglot/): a cache of neutral values
//! (`rmpv::Value`, so bytes and 64-bit integers cross as they are) on the shared tier, driven by
//! one JSON command per line on stdin, answering one JSON line each. The Python and Node drivers
//! in tests/polyglot/ speak the same protocol.
//!
//! `cargo run -p healcache-redis --example polyglot_node -- --redis URL`
//!
//! Values on the pipe are JSON, with `{"$bytes": "<hex>"}` for bytes and `{"$int": "<decimal>"}`
//! for integers beyond 2^53 (which JSON numbers do not carry exactly everywhere).
//!
//! Commands (`op`):
//! - `set` `key` `value`: answers `{"at_us"}` once the L2 write landed (wall clock, µs);
//! - `delete` `key`: answers `{"at_us"}` once the tombstone landed;
//! - `fetch` `key`: a read-through whose loader fails: `{"status", "value"}`, or
//!   `{"status": "miss"}` when neither L1 nor L2 had it;
//! - `await` `key` `want` (absent: a miss) `since_us` `deadline_ms`: fetches until it reads
//!   `want` or the deadline passes; answers the last fetch and `after_ms` (from `since_us`);
//! - `stats`: a few counters, snake_case.
//!
//! Prints `"ready"` once the cache is built.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use healcache::tier::Neutral;
use healcache::{Cache, FetchOptions, Loaded};
use healcache_rt::{IoSpawner, IoTimer};
use rmpv::Value as Mp;
use serde_json::{json, Value};

const EXACT: u64 = 1 << 53;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.iter().position(|a| a == "--redis").and_then(|i| args.get(i + 1)).expect("--redis URL");
    let cache = Cache::<Mp>::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(healcache_redis::RedisTransport::connect(url).expect("a redis:// URL"), Neutral)
        .build()
        .expect("a cache");
    let out = std::io::stdout();
    let say = |v: Value| {
        let mut o = out.lock();
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    };
    say(json!("ready"));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(cmd) = serde_json::from_str::<Value>(&line) else {
            say(json!({"error": "not JSON"}));
            continue;
        };
        let key = cmd["key"].as_str().unwrap_or_default();
        let answer = match cmd["op"].as_str().unwrap_or_default() {
            "set" => match to_mp(&cmd["value"]) {
                Ok(v) => {
                    let before = cache.stats().l2_writes;
                    match cache.set(key, v) {
                        Ok(_) => landed(&cache, before),
                        Err(e) => json!({"error": e.code()}),
                    }
                }
                Err(e) => json!({"error": e}),
            },
            "delete" => {
                let before = cache.stats().l2_writes;
                cache.remove(key);
                landed(&cache, before)
            }
            "fetch" => read(&cache, key),
            "await" => {
                let want = cmd.get("want").cloned();
                let since = cmd["since_us"].as_u64().unwrap_or_else(epoch_us);
                let until = Instant::now() + Duration::from_millis(cmd["deadline_ms"].as_u64().unwrap_or(2000));
                loop {
                    let mut r = read(&cache, key);
                    let done = match &want {
                        Some(w) => r.get("value") == Some(w),
                        None => r["status"] == "miss",
                    };
                    if done || Instant::now() > until {
                        r["after_ms"] = json!(epoch_us().saturating_sub(since) as f64 / 1000.0);
                        break r;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            "stats" => {
                let s = cache.stats();
                json!({"l2_hits": s.l2_hits, "l2_writes": s.l2_writes, "l2_bus_received": s.l2_bus_received,
                       "l2_bus_invalidated": s.l2_bus_invalidated, "l2_bus_gaps": s.l2_bus_gaps})
            }
            other => json!({"error": format!("unknown op {other:?}")}),
        };
        say(answer);
    }
}

fn epoch_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Waits (5 s at most) until a write queued after `before` writes has landed in L2.
fn landed(cache: &Cache<Mp>, before: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(5);
    while cache.stats().l2_writes <= before {
        if Instant::now() > until {
            return json!({"error": "the L2 write did not land"});
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    json!({"at_us": epoch_us()})
}

fn read(cache: &Cache<Mp>, key: &str) -> Value {
    let called = Arc::new(AtomicBool::new(false));
    let flag = called.clone();
    let got = futures::executor::block_on(cache.fetch(key, FetchOptions::default(), move || async move {
        flag.store(true, Ordering::Relaxed);
        Err::<Loaded<Mp>, _>(std::io::Error::other("not in L1 or L2"))
    }));
    match got {
        Ok(f) => json!({"status": f.status.as_str(), "value": f.value.as_ref().map_or(Value::Null, to_json)}),
        Err(_) if called.load(Ordering::Relaxed) => json!({"status": "miss"}),
        Err(e) => json!({"error": e.code()}),
    }
}

fn to_mp(v: &Value) -> Result<Mp, String> {
    Ok(match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Mp::from(i),
            (_, Some(u)) => Mp::from(u),
            _ => Mp::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(a) => Mp::Array(a.iter().map(to_mp).collect::<Result<_, _>>()?),
        Value::Object(o) => {
            if let (1, Some(Value::String(h))) = (o.len(), o.get("$bytes")) {
                return hex(h).map(Mp::Binary);
            }
            if let (1, Some(Value::String(d))) = (o.len(), o.get("$int")) {
                return d
                    .parse::<i64>()
                    .map(Mp::from)
                    .or_else(|_| d.parse::<u64>().map(Mp::from))
                    .map_err(|_| format!("not a 64-bit integer: {d}"));
            }
            Mp::Map(o.iter().map(|(k, v)| Ok((Mp::from(k.as_str()), to_mp(v)?))).collect::<Result<_, String>>()?)
        }
    })
}

fn to_json(v: &Mp) -> Value {
    match v {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => json!(b),
        Mp::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) if n.unsigned_abs() <= EXACT => json!(n),
            (Some(n), _) => json!({"$int": n.to_string()}),
            (_, Some(n)) => json!({"$int": n.to_string()}),
            _ => Value::Null,
        },
        Mp::F32(f) => json!(f),
        Mp::F64(f) => json!(f),
        Mp::String(s) => json!(s.as_str().unwrap_or_default()),
        Mp::Binary(b) => json!({"$bytes": b.iter().map(|x| format!("{x:02x}")).collect::<String>()}),
        Mp::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Mp::Map(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), to_json(v))).collect())
        }
        Mp::Ext(..) => json!({"error": "an extension type"}),
    }
}

fn hex(h: &str) -> Result<Vec<u8>, String> {
    if !h.len().is_multiple_of(2) {
        return Err("odd hex".into());
    }
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|e| e.to_string())).collect()
}
