//! A reconnect herd: 100 instances in this process, each a `Cache` with its own transport, on one
//! real redis-server reached through a fault proxy (which records when each connection was
//! accepted), lose Redis for 30 s (SIGKILL by pid, restart on the same port, empty).
//!
//! - Reconnect attempts are spread by full jitter: from the restart until every instance is back
//!   (its breaker closed, its bus subscribed again), no 100 ms bucket holds more than 10% of the
//!   connection attempts the proxy saw; nor over the whole outage, from the kill.
//! - The origin is not stormed once the tier is back: loader calls per second over the windows
//!   after recovery are at most 1.2x those of the steady state before the outage.
//!
//! Counts, not speeds: the figures are shares and ratios of counted events; only the window
//! lengths are wall-clock, and they are long (seconds) next to this machine's scheduling noise.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use healcache::tier::MsgPack;
use healcache::{Cache, FetchOptions, Loaded};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::{FaultProxy, RedisOptions, RedisServer};
use serde_json::{json, Value};

/// A hundred rather than fifty: after the restart each instance's next probe is nearer than a
/// uniform draw (the time left of a `U(0, 4 s)` wait), so the first buckets are the busiest, at
/// about 5% of the attempts. With 50 instances that is some 6 attempts a bucket, and Poisson
/// noise alone put 11.2% in one of them in a run; a hundred shrink the noise's share by √2 (runs
/// here: 5.7-6.4%).
const INSTANCES: usize = 100;
const KEYS: u64 = 100;
const TTL: Duration = Duration::from_secs(3);
/// Each instance reads one key about this often (jittered): each key about every 5 s, the fleet
/// each key about 10 times a second, so about one load per key per TTL in the steady state (some
/// 400 loads in a window: the ratio's noise stays well under its bar).
const READ_EVERY: Duration = Duration::from_millis(50);
const OUTAGE: Duration = Duration::from_secs(30);
/// The steady state and the post-recovery figure are taken over this long (four TTLs).
const WINDOW: Duration = Duration::from_secs(12);
/// 100 ms buckets of connection attempts; at most this share in any one.
const BUCKET: Duration = Duration::from_millis(100);
const MAX_BUCKET_SHARE: f64 = 0.10;
const MAX_ORIGIN_RATIO: f64 = 1.2;

fn cache(url: &str, seed: u64) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .seed(seed)
        .ttl(TTL)
        .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

/// Load events (time since the test started), one per loader call: the origin's view.
#[derive(Default)]
struct Origin {
    calls: Mutex<Vec<Duration>>,
}

impl Origin {
    fn between(&self, from: Duration, to: Duration) -> usize {
        self.calls.lock().unwrap().iter().filter(|t| **t >= from && **t < to).count()
    }
}

fn all_closed(caches: &[Cache<Value>]) -> bool {
    caches.iter().all(|c| c.stats().l2_breaker_state == 0)
}

fn wait_until(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// The attempts in `[from, to)` per 100 ms bucket.
fn buckets(attempts: &[Duration], from: Duration, to: Duration) -> Vec<usize> {
    let n = ((to - from).as_nanos() / BUCKET.as_nanos() + 1) as usize;
    let mut b = vec![0; n];
    for t in attempts.iter().filter(|t| **t >= from && **t < to) {
        b[((*t - from).as_nanos() / BUCKET.as_nanos()) as usize] += 1;
    }
    b
}

#[test]
fn a_hundred_instances_reconnect_spread_and_leave_the_origin_calm() {
    let mut r = RedisServer::start_with(RedisOptions::restricted()).unwrap();
    let proxy = FaultProxy::start(r.addr()).unwrap();
    let url = r.url_via(proxy.addr());
    let caches: Vec<Cache<Value>> = (0..INSTANCES).map(|i| cache(&url, 0x4e7d_0000 + i as u64)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let origin = Arc::new(Origin::default());
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    // the proxy's clock: accept times are counted from its start
    let started = Instant::now();
    let since = move || started.elapsed();
    let mut tasks = Vec::new();
    for (i, c) in caches.iter().enumerate() {
        let (c, origin, stop, errors) = (c.clone(), origin.clone(), stop.clone(), errors.clone());
        tasks.push(rt.spawn(async move {
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            while !stop.load(Ordering::Relaxed) {
                // xorshift: the key and the pause of each read
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let pause = READ_EVERY / 2 + Duration::from_micros(x % READ_EVERY.as_micros() as u64);
                tokio::time::sleep(pause).await;
                let key = format!("herd:{}", (x >> 20) % KEYS);
                let (k, origin) = (key.clone(), origin.clone());
                let got = c
                    .fetch(&key, FetchOptions::default(), move || async move {
                        origin.calls.lock().unwrap().push(since());
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Ok::<_, std::io::Error>(Loaded::Value(json!({ "key": k })))
                    })
                    .await;
                if !matches!(got, Ok(f) if f.value == Some(json!({ "key": key }))) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // warm up one TTL, then the steady state
    std::thread::sleep(TTL);
    let steady_from = since();
    std::thread::sleep(WINDOW);
    let steady_to = since();
    assert!(all_closed(&caches), "every instance on the tier before the outage");

    let cut = since();
    r.kill();
    std::thread::sleep(OUTAGE);
    let opened = caches.iter().filter(|c| c.stats().l2_breaker_opens > 0).count();
    let restart = since();
    r.restart().unwrap();
    // back: every breaker closed, and every bus subscription open again (one data and one bus
    // connection per instance)
    let back = wait_until(Duration::from_secs(15), || all_closed(&caches) && proxy.active() == 2 * INSTANCES as u64);
    let recovered = since();
    let after_from = recovered;
    std::thread::sleep(WINDOW);
    let after_to = since();
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });

    // reconnect attempts: every connection the proxy accepted (refused ones included)
    let accepts = proxy.accept_times();
    assert!(accepts.len() < healcache_testkit::ACCEPT_LOG_LEN, "the proxy kept every accept time");
    // the herd: from the restart until every instance is back
    let herd = buckets(&accepts, restart, recovered);
    let total: usize = herd.iter().sum();
    let (max_at, max) = herd.iter().enumerate().max_by_key(|(_, n)| **n).map(|(i, n)| (i, *n)).unwrap();
    let share = max as f64 / total.max(1) as f64;
    // and over the whole outage, from the kill
    let outage = buckets(&accepts, cut, recovered);
    let outage_total: usize = outage.iter().sum();
    let outage_max = outage.iter().copied().max().unwrap_or(0);
    let outage_share = outage_max as f64 / outage_total.max(1) as f64;

    let steady = origin.between(steady_from, steady_to) as f64 / WINDOW.as_secs_f64();
    let after = origin.between(after_from, after_to) as f64 / WINDOW.as_secs_f64();
    let ratio = after / steady.max(f64::MIN_POSITIVE);
    let outage_rate = origin.between(cut, restart) as f64 / OUTAGE.as_secs_f64();
    let rejoin = origin.between(restart, recovered);
    eprintln!(
        "reconnect attempts from the restart until all {INSTANCES} were back ({:?}): {total}, busiest 100 ms \
         bucket {max} ({:.1}%, at +{:?}); from the kill: {outage_total}, busiest bucket {outage_max} ({:.1}%)",
        recovered - restart,
        share * 100.0,
        BUCKET * max_at as u32,
        outage_share * 100.0,
    );
    eprintln!(
        "origin loads/s: steady {steady:.1}, outage {outage_rate:.1}, after recovery {after:.1} (ratio {ratio:.2}); \
         {rejoin} loads while instances rejoined ({:?}); errors {}",
        recovered - restart,
        errors.load(Ordering::Relaxed)
    );
    let histogram: Vec<String> = outage.chunks(10).map(|s| s.iter().sum::<usize>().to_string()).collect();
    eprintln!("attempts per second from the kill: {}", histogram.join(" "));
    eprintln!("attempts per 100 ms from the restart: {herd:?}");

    assert_eq!(opened, INSTANCES, "every instance saw the outage");
    assert!(back, "every instance reconnected");
    assert_eq!(errors.load(Ordering::Relaxed), 0, "every read answered its own key");
    assert!(total >= INSTANCES * 2, "each instance reconnected its data and bus links ({total} attempts)");
    assert!(
        share <= MAX_BUCKET_SHARE,
        "{max} of {total} reconnect attempts ({:.1}%) fell in one 100 ms bucket",
        share * 100.0
    );
    assert!(
        outage_share <= MAX_BUCKET_SHARE,
        "{outage_max} of {outage_total} attempts during the outage ({:.1}%) fell in one 100 ms bucket",
        outage_share * 100.0
    );
    assert!(ratio <= MAX_ORIGIN_RATIO, "origin load after recovery {after:.1}/s against {steady:.1}/s steady");
}
