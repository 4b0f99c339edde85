//! The fleet verifier's repairs and bounds against a real redis-server: a repair keeps the L2
//! entry's remaining time, `max_samples` bounds the whole interval, a write landing while the
//! source is asked makes the sample moot, and closing the cache releases the verifier's leases.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use healcache::keys::{l2_keys, verifier_keys};
use healcache::tier::MsgPack;
use healcache::{Cache, FnSource, Healer, HealingConfig, SourceAnswer, SourceError};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::{RedisOptions, RedisServer};

fn server() -> RedisServer {
    RedisServer::start_with(RedisOptions { acl_user: Some(("hc".into(), "pw".into())), ..Default::default() })
        .expect("redis-server must be installed (.ci/setup-server.sh) to run these tests")
}

/// A cache on `url` whose entries live 60 s by default.
fn cache(url: &str) -> Cache<u64> {
    Cache::<u64>::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(60))
        .l2_timeout(Duration::from_secs(5))
        .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A source answering every key with `v`, counting its calls.
fn source(
    v: u64,
    calls: &Arc<AtomicUsize>,
) -> FnSource<impl Fn(&str) -> futures::future::Ready<Result<SourceAnswer<u64>, SourceError>>> {
    let calls = calls.clone();
    FnSource(move |_: &str| {
        calls.fetch_add(1, SeqCst);
        futures::future::ready(Ok(SourceAnswer::Value(v)))
    })
}

/// Runs intervals until the cache holds `n` leases.
fn hold(cache: &Cache<u64>, healer: &Healer<u64>, n: u64) {
    wait_for("leases taken", || {
        block_on(healer.run_interval());
        cache.stats().l2_verifier_held >= n
    });
}

/// A cache on `url` and its healer, drawing every entry.
fn verifier(url: &str) -> (Cache<u64>, Healer<u64>) {
    let c = cache(url);
    let healer = Healer::new(c.clone(), HealingConfig { sample_rate: 1.0, ..HealingConfig::default() }).unwrap();
    (c, healer)
}

/// Runs intervals until the fleet verifier has repaired `n` L2 entries.
fn repaired(verifier: &Cache<u64>, healer: &Healer<u64>, n: u64) {
    wait_for("repaired", || {
        block_on(healer.run_interval());
        verifier.stats().l2_verifier_repaired == n
    });
}

/// What a fresh cache on `url` reads for `key` (L2, else its loader's 0).
fn read_fresh(url: &str, key: &str) -> healcache::Fetched<u64> {
    let read = cache(url);
    block_on(read.fetch(key, healcache::FetchOptions::default(), || async {
        Ok::<_, std::io::Error>(healcache::Loaded::Value(0))
    }))
    .unwrap()
}

/// P6 (an entry keeps the lifetime it was written with; L2's time is Redis's own): an entry
/// written for 5 s into a cache whose default TTL is 60 s, repaired by the fleet verifier, keeps
/// what it had left in L2 (its PTTL stays at most 5 s), not the cache's default.
#[test]
fn a_fleet_repair_keeps_the_l2_entry_remaining_time() {
    let r = server();
    let writer = cache(&r.url());
    writer.set_with_ttl("s:1", 1, Some(Duration::from_secs(5))).unwrap();
    writer.set_with_ttl("s:2", 1, None).unwrap();
    wait_for("writes landed", || writer.stats().l2_writes == 2);
    let (verifier, healer) = verifier(&r.url());
    let calls = Arc::new(AtomicUsize::new(0));
    healer.register_source("s:", source(2, &calls)).unwrap();
    hold(&verifier, &healer, 1);
    repaired(&verifier, &healer, 2);
    let mut raw = redis::Client::open(r.url()).unwrap().get_connection().unwrap();
    let mut pttl = |k: &str| -> i64 { redis::cmd("PTTL").arg(l2_keys("hc1", k).value).query(&mut raw).unwrap() };
    let short = pttl("s:1");
    assert!((1..=5000).contains(&short), "s:1 keeps its 5 s: PTTL {short} ms");
    assert_eq!(pttl("s:2"), -1, "s:2 never expires, after its repair too");
    assert_eq!(read_fresh(&r.url(), "s:1").value, Some(2), "the repair is in L2");
}

/// P5: `max_samples` bounds what one interval draws in all, the local L1 sample and every prefix
/// the instance verifies for the fleet together. Three prefixes of 20 entries each (in L1 and L2),
/// every entry drawn (rate 1), `max_samples` 3: each interval draws and asks the sources about 3
/// keys at most, and over 30 intervals every prefix gets its turn.
#[test]
fn max_samples_bounds_the_whole_interval_of_a_fleet_verifier() {
    let r = server();
    let c = cache(&r.url());
    let config = HealingConfig { sample_rate: 1.0, max_samples: 3.0, ..HealingConfig::default() };
    let healer = Healer::new(c.clone(), config).unwrap();
    let calls: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    for (p, n) in ["a:", "b:", "c:"].into_iter().zip(&calls) {
        healer.register_source(p, source(1, n)).unwrap();
        for i in 0..20 {
            c.set(&format!("{p}{i}"), 1).unwrap();
        }
    }
    wait_for("writes landed", || c.stats().l2_writes == 60);
    hold(&c, &healer, 3);
    let total = || calls.iter().map(|n| n.load(SeqCst)).sum::<usize>();
    let before: Vec<usize> = calls.iter().map(|n| n.load(SeqCst)).collect();
    for i in 0..30 {
        let at = total();
        let report = block_on(healer.run_interval());
        assert!(report.drawn <= 3, "interval {i}: {report:?}");
        assert!(total() - at <= 3, "interval {i}: {} source calls", total() - at);
    }
    for (p, (n, b)) in ["a:", "b:", "c:"].iter().zip(calls.iter().zip(before)) {
        assert!(n.load(SeqCst) > b, "{p} was never verified in 30 intervals");
    }
}

/// P7 (fenced repairs: a newer write wins) and `IntervalReport::skipped`: a key written by
/// another instance while the verifier asks its source is skipped, not drift: no repair, no drift
/// event, no score sample, and L2 keeps the newer write.
#[test]
fn a_write_while_the_verifier_asks_skips_the_sample() {
    let r = server();
    let writer = cache(&r.url());
    writer.set("w:1", 1).unwrap();
    wait_for("write landed", || writer.stats().l2_writes == 1);
    let (verifier, healer) = verifier(&r.url());
    // no source yet: the lease is taken, nothing is asked
    let idle = Arc::new(AtomicUsize::new(0));
    healer.register_source("w:", source(1, &idle)).unwrap();
    hold(&verifier, &healer, 1);
    let w = writer.clone();
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = asked.clone();
    healer
        .register_source(
            "w:",
            FnSource(move |k: &str| {
                log.lock().unwrap().push(k.to_string());
                // another instance writes the key while its source is asked
                let landed = w.stats().l2_writes + 1;
                w.set(k, 7).unwrap();
                wait_for("the newer write landed", || w.stats().l2_writes == landed);
                futures::future::ready(Ok(SourceAnswer::Value(2u64)))
            }),
        )
        .unwrap();
    let report = block_on(healer.run_interval());
    assert_eq!(*asked.lock().unwrap(), ["w:1"]);
    assert_eq!((report.drift, report.repaired, report.skipped), (0, 0, 1), "{report:?}");
    assert!(healer.drift_events().is_empty());
    assert_eq!(healer.stats().total_drift, 0);
    assert_eq!(healer.score("w:").unwrap().score, 1.0, "the score is not lowered");
    assert_eq!(read_fresh(&r.url(), "w:1").value, Some(7), "L2 keeps the newer write");
}

/// P7 (the lease is an efficiency lock, and given back when done): closing the cache releases
/// the fleet verifier's leases (compare-and-delete) before its connections close, so another
/// instance can verify the prefix at once rather than when the lease expires. After the close,
/// healing checks this instance's L1 entries itself.
#[test]
fn closing_the_cache_releases_its_verifier_leases() {
    let r = server();
    let (c, healer) = verifier(&r.url());
    healer
        .set_fleet_verify(healcache::tier::FleetVerify { lease: Duration::from_secs(10), ..Default::default() })
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    for p in ["user:", "item:"] {
        healer.register_source(p, source(1, &calls)).unwrap();
        c.set(&format!("{p}1"), 1).unwrap();
    }
    hold(&c, &healer, 2);
    let mut raw = redis::Client::open(r.url()).unwrap().get_connection().unwrap();
    let exists = |raw: &mut redis::Connection, p: &str| -> bool {
        redis::cmd("EXISTS").arg(verifier_keys("hc1", p).0).query(raw).unwrap()
    };
    assert!(exists(&mut raw, "user:") && exists(&mut raw, "item:"));
    assert_eq!(block_on(c.close_shared(Duration::from_secs(5))), 0);
    assert!(!exists(&mut raw, "user:"), "the lease of user: is released by the close");
    assert!(!exists(&mut raw, "item:"), "the lease of item: is released by the close");
    assert_eq!(c.stats().l2_verifier_held, 0);
    // later intervals take no lease again, and check L1 here
    let report = block_on(healer.run_interval());
    assert_eq!((report.verified, report.consistent), (2, 2), "{report:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!exists(&mut raw, "user:") && !exists(&mut raw, "item:"));
}

/// A fleet repair corrects the value and keeps the L2 entry's tags: invalidating a tag after
/// the repair reaches the repaired copy, so another instance loads the key anew instead of
/// reading the repaired value.
#[test]
fn a_fleet_repair_keeps_the_l2_entry_tags() {
    let r = server();
    let writer = cache(&r.url());
    writer.write_tagged("s:1", 1, healcache::WriteOptions::default(), &["team"]).unwrap();
    // a tag the writer did not know: written, then again with the version read
    wait_for("write landed", || writer.stats().l2_writes == 2);
    let (verifier, healer) = verifier(&r.url());
    let calls = Arc::new(AtomicUsize::new(0));
    healer.register_source("s:", source(2, &calls)).unwrap();
    hold(&verifier, &healer, 1);
    repaired(&verifier, &healer, 1);
    block_on(writer.invalidate_tag("team", true)).unwrap();
    let got = read_fresh(&r.url(), "s:1");
    assert_eq!(got.value, Some(0), "the repaired copy lost its tag: status {:?}", got.status);
}
