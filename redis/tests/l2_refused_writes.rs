//! Writes the shared tier cannot take: a value L2 would refuse is refused by `set` before
//! anything changes, and a write Redis answered with an error is not forgotten: its key is
//! invalidated fleet-wide once Redis takes writes again, so no instance keeps serving the value
//! it replaced. Against a real redis-server on a free loopback port.
//!
//! Promises checked: bad input gets a clear, typed error and changes nothing; nothing is lost or
//! hidden silently (an L2 write that failed leaves no stale copy behind for good).

use std::time::{Duration, Instant};

use healcache::tier::MsgPack;
use healcache::{Cache, Error, FetchOptions, Loaded, Status};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::RedisServer;
use serde_json::{json, Value};

fn server() -> RedisServer {
    RedisServer::start().expect("redis-server must be installed (.ci/setup-server.sh) to run these tests")
}

fn cache(url: &str, max_entry_bytes: u64) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(60))
        .max_entry_bytes(max_entry_bytes)
        .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

/// What `c` answers for `key` when the source would give `source`.
fn read(c: &Cache<Value>, key: &str, source: &str) -> (Option<Value>, Status) {
    let v = json!(source);
    let f =
        block(c.fetch(key, FetchOptions::default(), move || async move { Ok::<_, std::io::Error>(Loaded::Value(v)) }))
            .unwrap();
    (f.value, f.status)
}

fn wait_for(what: &str, within: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn raw_get(r: &RedisServer, key: &str) -> Option<Vec<u8>> {
    let mut c = redis::Client::open(r.url()).unwrap().get_connection().unwrap();
    redis::cmd("GET").arg(key).query(&mut c).unwrap()
}

fn stored_key(r: &RedisServer) -> String {
    let mut c = redis::Client::open(r.url()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*:v:k").query(&mut c).unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].clone()
}

#[test]
fn a_value_too_large_for_l2_is_refused_by_set_and_changes_nothing() {
    let r = server();
    let (a, b) = (cache(&r.url(), 1000), cache(&r.url(), 1000));
    let v1 = a.set("k", json!("small")).unwrap();
    wait_for("the first write lands", Duration::from_secs(5), || a.stats().l2_writes == 1);
    assert_eq!(read(&b, "k", "source"), (Some(json!("small")), Status::L2Hit));
    let before = raw_get(&r, &stored_key(&r));

    // L1 weighs a JSON value at nothing; its encoded payload is over 1,000 bytes
    let big = json!({ "a": "x".repeat(5000) });
    match a.set("k", big) {
        Err(Error::ValueTooLarge { weight, max }) => assert!(weight > 5000 && max == 1000, "{weight} {max}"),
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(a.version("k"), v1, "L1 is as it was");
    assert_eq!(a.get("k"), Some(json!("small")));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(raw_get(&r, &stored_key(&r)), before, "L2 is as it was");
    assert_eq!(a.stats().l2_codec_errors, 0, "refused before the tier");
    // at the bound: a payload of exactly 1,000 bytes is taken (a msgpack str 16 of 997
    // characters: 3 header bytes), one more is not
    a.set("k", json!("y".repeat(997))).unwrap();
    assert!(matches!(a.set("k", json!("y".repeat(998))), Err(Error::ValueTooLarge { weight: 1001, max: 1000 })));
}

#[test]
fn a_write_redis_refused_is_invalidated_fleet_wide_once_redis_takes_writes_again() {
    let mut r = server();
    let (a, b) = (cache(&r.url(), 1 << 20), cache(&r.url(), 1 << 20));
    a.set("k", json!("old")).unwrap();
    wait_for("the first write lands", Duration::from_secs(5), || a.stats().l2_writes == 1);
    assert_eq!(read(&b, "k", "source"), (Some(json!("old")), Status::L2Hit));

    // Redis refuses writes (out of memory under noeviction); reads still work
    r.config_set("maxmemory-policy", "noeviction").unwrap();
    r.config_set("maxmemory", "1").unwrap();
    a.set("k", json!("new")).unwrap();
    wait_for("the write fails", Duration::from_secs(5), || a.stats().l2_errors >= 1);
    assert_eq!(a.get("k"), Some(json!("new")), "the writer's L1 has its own write");

    r.config_set("maxmemory", "0").unwrap();
    // b must stop serving the value `a` replaced: the key is invalidated in L2 and on the bus
    wait_for("b drops the replaced value", Duration::from_secs(10), || read(&b, "k", "source").0 != Some(json!("old")));
    assert_eq!(read(&b, "k", "source").0, Some(json!("source")), "b reloads from the source");
    let c = cache(&r.url(), 1 << 20);
    assert_ne!(
        read(&c, "k", "source").0,
        Some(json!("old")),
        "a new instance does not read the replaced value from L2"
    );
}

/// A port nothing listens on: bound and released (the kernel does not hand it out again at once).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A readiness probe asked before any traffic: a cache whose L2 has never answered is not ready
/// (a refused port, a wrong password, a database the server does not have), one whose L2 has
/// answered is, without a single cache call.
#[test]
fn ready_waits_for_l2_to_answer_once() {
    let r = RedisServer::start_with(healcache_testkit::RedisOptions {
        acl_user: Some(("hc".into(), "pw".into())),
        ..Default::default()
    })
    .unwrap();
    let good = cache(&r.url(), 1 << 20);
    wait_for("a cache whose L2 answers is ready", Duration::from_secs(5), || good.ready());
    let bad = [
        format!("redis://127.0.0.1:{}", closed_port()),
        format!("redis://hc:wrong@127.0.0.1:{}", r.port()),
        format!("redis://hc:pw@127.0.0.1:{}/99", r.port()),
    ];
    let caches: Vec<_> = bad.iter().map(|u| cache(u, 1 << 20)).collect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        for (c, u) in caches.iter().zip(&bad) {
            assert!(!c.ready(), "{u}: ready although L2 never answered");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `loads` counts calls of the loader (trips to the source), not flights an L2 hit answered.
#[test]
fn loads_counts_loader_calls_not_l2_hits() {
    let r = server();
    let (a, b) = (cache(&r.url(), 1 << 20), cache(&r.url(), 1 << 20));
    assert_eq!(read(&a, "k", "source"), (Some(json!("source")), Status::Loaded));
    wait_for("the load's write lands", Duration::from_secs(5), || a.stats().l2_writes == 1);
    assert_eq!(read(&b, "k", "other"), (Some(json!("source")), Status::L2Hit));
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.loads, sb.loads, sb.l2_hits), (1, 0, 1));
}

/// A loaded value L2 cannot hold is served and kept in L1, and L2 stops serving the stale value
/// the load replaced: it gets a tombstone, so a third instance whose source fails finds no
/// stale value to fall back on (it would otherwise be served the replaced one).
#[test]
fn a_loaded_value_l2_cannot_hold_leaves_a_tombstone_over_what_it_replaced() {
    let r = server();
    let short = |url: &str| -> Cache<Value> {
        Cache::builder()
            .timer(IoTimer)
            .spawner(IoSpawner)
            .ttl(Duration::from_millis(50))
            .grace(Duration::from_secs(60))
            .max_entry_bytes(1000)
            .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
            .build()
            .unwrap()
    };
    let (a, b, c) = (short(&r.url()), short(&r.url()), short(&r.url()));
    a.set("k", json!("small")).unwrap();
    wait_for("the first write lands", Duration::from_secs(5), || a.stats().l2_writes == 1);
    std::thread::sleep(Duration::from_millis(100));
    // stale in L2 now: b loads, and its value is too large for L2
    let big = json!({ "a": "x".repeat(5000) });
    let loaded = big.clone();
    let f = block(
        b.fetch("k", FetchOptions::default(), move || async move { Ok::<_, std::io::Error>(Loaded::Value(loaded)) }),
    )
    .unwrap();
    assert_eq!((f.value, f.status), (Some(big), Status::Loaded));
    wait_for("the tombstone lands", Duration::from_secs(5), || b.stats().l2_writes == 1);
    assert_eq!(b.stats().l2_codec_errors, 1);
    let f = block(
        c.fetch("k", FetchOptions::default(), || async { Err::<Loaded<Value>, _>(std::io::Error::other("down")) }),
    );
    assert!(f.is_err(), "no stale value to serve: {f:?}");
}

/// `l2_timeout` is the deadline of an L2 operation, above half a second too: a write Redis takes
/// 0.8 s to answer (its clients paused) under a 3 s deadline lands and counts no error (the
/// client library's own 500 ms response timeout used to cut it first).
#[test]
fn an_l2_timeout_over_half_a_second_is_the_deadline() {
    let r = server();
    let a = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(60))
        .l2_timeout(Duration::from_secs(3))
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
        .build()
        .unwrap();
    a.set("warm", json!(0)).unwrap();
    wait_for("the first write lands", Duration::from_secs(5), || a.stats().l2_writes == 1);
    let mut admin = redis::Client::open(r.url()).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(800).arg("ALL").query(&mut admin).unwrap();
    let start = Instant::now();
    a.set("k", json!("v")).unwrap();
    wait_for("the paused write lands", Duration::from_secs(5), || a.stats().l2_writes == 2);
    let s = a.stats();
    assert!(start.elapsed() >= Duration::from_millis(700), "the pause held the write");
    assert_eq!((s.l2_errors, s.l2_timeouts), (0, 0), "{s:?}");
}
