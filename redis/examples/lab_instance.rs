//! One Rust instance of `make fleet-lab` (the `fleet_lab` example drives it): a cache, with or
//! without the shared tier, whose loader asks the lab's origin over HTTP, driven by one JSON
//! command per line on stdin and answering one JSON line each. `tests/fleet_lab/` has the Python
//! and Node instances speaking the same protocol.
//!
//! `lab_instance --origin URL --ttl-ms N [--redis URL] [--fleet-lock off|refresh|all] [--swr]
//!  [--grace-ms N] [--xfetch] [--jitter F] [--negative-ttl-ms N] [--lease-ms N] [--max-hold-ms N]
//!  [--extra-load-ms N] [--l2-timeout-ms N (default 1000)]`
//!
//! Commands:
//! - `{"op":"warm","keys":[...]}`: loads every key at once; answers `{"loaded": n}`.
//! - `{"op":"run","until_ms":T,"clients":C,"seed":S,"tail":K,"missing_from":M}`: C closed-loop
//!   clients (1 ms think time) until wall-clock T (ms since the epoch, so the fleet stops
//!   together); half the requests for `hot`, half for a Zipf(1.0) tail of K keys, `tail:i`
//!   below M and `absent:i` from M on. Answers `{"requests","errors","first_error","lat_ns":[..],"statuses":{..}}`.
//! - `{"op":"fetch","key":K}`: one fetch; `{"status","value"}` or `{"error"}`.
//! - `{"op":"peek","key":K}`: the L1 value, no load; `{"op":"stats"}`: the cache's counters.
//!
//! Prints `"ready"` once the cache is built.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use healcache::tier::{FleetLock, MsgPack};
use healcache::{Cache, FetchOptions, Loaded, SourceAnswer, SourceError, Timer};
use healcache_http::{AllowPrivate, HttpOptions, HttpSource};
use healcache_rt::{IoSpawner, IoTimer};
use serde_json::{json, Value};

#[derive(Clone)]
struct Loader {
    source: HttpSource,
    /// added after the origin answered: a slow rebuild (the fencing scenario's instance A)
    extra: Duration,
}

impl Loader {
    async fn load(self, key: String) -> Result<Loaded<Value>, SourceError> {
        let answer = self.source.fetch_bytes(&key).await?;
        if !self.extra.is_zero() {
            IoTimer.sleep(self.extra).await;
        }
        match answer {
            SourceAnswer::Value(body) => {
                serde_json::from_slice(&body).map(Loaded::Value).map_err(|_| SourceError::Unavailable)
            }
            SourceAnswer::NotFound => Ok(Loaded::NotFound),
        }
    }
}

async fn fetch(cache: &Cache<Value>, loader: &Loader, key: &str) -> healcache::Result<healcache::Fetched<Value>> {
    let (l, k) = (loader.clone(), key.to_string());
    cache.fetch(key, FetchOptions::default(), move || l.load(k)).await
}

/// Zipf(1.0) over `0..n` by inverse CDF: the same table the Python and Node instances build.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / k as f64;
                acc
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= acc);
        Zipf(cdf)
    }
    fn sample(&self, u: f64) -> usize {
        self.0.partition_point(|c| *c < u).min(self.0.len() - 1)
    }
}

/// xorshift64*: a few lines, seeded per client, so runs repeat (no rand needed in this example).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn run(cache: Cache<Value>, loader: Loader, cmd: &Value) -> Value {
    let until = cmd["until_ms"].as_u64().expect("until_ms");
    let clients = cmd["clients"].as_u64().unwrap_or(32) as usize;
    let seed = cmd["seed"].as_u64().unwrap_or(1);
    let tail = cmd["tail"].as_u64().unwrap_or(400) as usize;
    let missing_from = cmd["missing_from"].as_u64().unwrap_or(tail as u64) as usize;
    let zipf = std::sync::Arc::new(Zipf::new(tail));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (cache, loader, zipf) = (cache.clone(), loader.clone(), zipf.clone());
            tokio::spawn(async move {
                let mut rng = Rng(seed.wrapping_mul(1000).wrapping_add(c as u64) | 1);
                let (mut lat, mut statuses, mut errors) = (Vec::new(), BTreeMap::<&'static str, u64>::new(), 0u64);
                let mut first_error = None;
                while epoch_ms() < until {
                    let key = if rng.next() < 0.5 {
                        "hot".to_string()
                    } else {
                        let i = zipf.sample(rng.next());
                        if i >= missing_from {
                            format!("absent:{i}")
                        } else {
                            format!("tail:{i}")
                        }
                    };
                    let t = Instant::now();
                    match fetch(&cache, &loader, &key).await {
                        Ok(f) => *statuses.entry(f.status.as_str()).or_default() += 1,
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                    lat.push(t.elapsed().as_nanos() as u64);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (lat, statuses, errors, first_error)
            })
        })
        .collect();
    let (mut lat, mut statuses, mut errors, mut first_error) =
        (Vec::new(), BTreeMap::<&'static str, u64>::new(), 0, None);
    for t in tasks {
        let (l, s, e, fe) = t.await.expect("a client");
        first_error = first_error.or(fe);
        lat.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
        errors += e;
    }
    json!({"requests": lat.len(), "errors": errors, "first_error": first_error, "lat_ns": lat, "statuses": statuses})
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let ms = |name: &str| opt(name).map(|v| Duration::from_millis(v.parse().expect("a number of ms")));
    let flag = |name: &str| args.iter().any(|a| a == name);
    let origin = opt("--origin").expect("--origin URL");
    let source = HttpSource::new(
        &format!("{origin}/{{key}}"),
        HttpOptions { timeout: Duration::from_secs(10), allow_private: AllowPrivate::All, ..Default::default() },
    )
    .expect("an origin URL");
    let loader = Loader { source, extra: ms("--extra-load-ms").unwrap_or_default() };
    let mut b = Cache::<Value>::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .max_entries(10_000)
        .load_timeout(Duration::from_secs(10))
        .ttl(ms("--ttl-ms").expect("--ttl-ms N"));
    if let Some(url) = opt("--redis") {
        // a deadline far above Redis's own latency: on a busy 2-core machine the default 100 ms
        // can pass while this process waits for a core, and an open breaker (L2 skipped) is a
        // different experiment from the stampede rows
        b = b
            .shared_tier(healcache_redis::RedisTransport::connect(&url).expect("a redis:// URL"), MsgPack::new())
            .l2_timeout(ms("--l2-timeout-ms").unwrap_or(Duration::from_secs(1)));
        if let Some(m) = opt("--fleet-lock") {
            b = b.fleet_lock(FleetLock::parse(&m).expect("off, refresh or all"));
        }
        if let Some(d) = ms("--lease-ms") {
            b = b.fleet_lock_lease(d);
        }
        if let Some(d) = ms("--max-hold-ms") {
            b = b.fleet_lock_max_hold(d);
        }
    }
    if let Some(d) = ms("--grace-ms") {
        b = b.grace(d);
    }
    if flag("--swr") {
        b = b.stale_while_revalidate(true);
    }
    if flag("--xfetch") {
        b = b.xfetch(1.0);
    }
    if let Some(j) = opt("--jitter") {
        b = b.ttl_jitter(j.parse().expect("a fraction"));
    }
    if let Some(d) = ms("--negative-ttl-ms") {
        b = b.negative_ttl(d);
    }
    let cache = b.build().expect("a valid lab configuration");
    // the clients' own runtime: the cache's loads and L2 calls run on healcache's I/O thread
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let out = std::io::stdout();
    let say = |v: Value| {
        let mut o = out.lock();
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    };
    say(json!("ready"));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let cmd: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                say(json!({"error": e.to_string()}));
                continue;
            }
        };
        let key = cmd["key"].as_str().unwrap_or("");
        let reply = match cmd["op"].as_str().unwrap_or("") {
            "warm" => rt.block_on(async {
                let keys: Vec<String> =
                    cmd["keys"].as_array().into_iter().flatten().filter_map(|k| k.as_str().map(String::from)).collect();
                let all = keys.iter().map(|k| fetch(&cache, &loader, k));
                let done = futures::future::join_all(all).await;
                json!({"loaded": done.iter().filter(|r| r.is_ok()).count()})
            }),
            "run" => rt.block_on(run(cache.clone(), loader.clone(), &cmd)),
            "fetch" => match rt.block_on(fetch(&cache, &loader, key)) {
                Ok(f) => json!({"status": f.status.as_str(), "value": f.value}),
                Err(e) => json!({"error": e.to_string()}),
            },
            "peek" => json!({"value": cache.peek(key)}),
            "stats" => serde_json::to_value(cache.stats()).expect("stats as JSON"),
            other => json!({"error": format!("unknown op {other:?}")}),
        };
        say(reply);
    }
}
