//! The shared tier against a real redis-server (started on a free loopback port by the test
//! kit, as a restricted ACL user that may not run KEYS, FLUSHALL or DEBUG), checked from the
//! cache's public API: what one cache writes another reads, freshness follows Redis's PTTL,
//! deletes fence out late rebuilds, and stored bytes that are not ours are misses.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use healcache::tier::{MsgPack, Neutral};
use healcache::{Cache, FetchOptions, Loaded, Status};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::{RedisOptions, RedisServer};
use serde_json::{json, Value};

fn server() -> RedisServer {
    RedisServer::start_with(RedisOptions { acl_user: Some(("hc".into(), "pw".into())), ..Default::default() })
        .expect("redis-server must be installed (.ci/setup-server.sh) to run these tests")
}

fn cache(url: &str) -> Cache<Value> {
    cache_with(url)
}

fn cache_with(url: &str) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(60))
        .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

async fn fetch(c: &Cache<Value>, key: &str, v: Value) -> healcache::Fetched<Value> {
    c.fetch(key, FetchOptions::default(), move || async move { Ok::<_, std::io::Error>(Loaded::Value(v)) })
        .await
        .unwrap()
}

async fn fetch_unloadable(c: &Cache<Value>, key: &str) -> healcache::Result<healcache::Fetched<Value>> {
    c.fetch(key, FetchOptions::default(), || async { Err::<Loaded<Value>, _>(std::io::Error::other("origin down")) })
        .await
}

/// Raw access for planting and inspecting values: a plain RESP connection as the ACL user.
fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

#[test]
fn what_one_cache_loads_another_reads_from_l2() {
    let r = server();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    let doc = json!({"name": "Ada", "langs": ["en", "fr"], "n": 36, "ok": true, "x": null, "pi": 3.5});
    let f = block(fetch(&a, "user:1", doc.clone()));
    assert_eq!((f.value.as_ref(), f.status), (Some(&doc), Status::Loaded));
    // the load's write may still be on its way when fetch returns (past the L2 deadline)
    wait_for(|| a.stats().l2_writes == 1);
    let f = block(fetch_unloadable(&b, "user:1")).unwrap();
    assert_eq!((f.value, f.status), (Some(doc.clone()), Status::L2Hit));
    // now in b's L1: a plain hit, no second L2 read
    let f = block(fetch_unloadable(&b, "user:1")).unwrap();
    assert_eq!(f.status, Status::Hit);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.l2_misses, sa.l2_writes, sb.l2_hits, sb.l2_codec_errors), (1, 1, 1, 0));
}

#[test]
fn plain_sets_and_deletes_reach_other_caches() {
    let r = server();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    a.set("k", json!("v1")).unwrap();
    // the write is queued in call order; wait for it to land
    wait_for(|| a.stats().l2_writes == 1);
    assert_eq!(block(fetch_unloadable(&b, "k")).unwrap().value, Some(json!("v1")));
    a.remove("k");
    wait_for(|| a.stats().l2_writes == 2);
    let c = cache(&r.url());
    let f = block(fetch(&c, "k", json!("reloaded")));
    assert_eq!((f.value, f.status), (Some(json!("reloaded")), Status::Loaded), "a tombstone reads as a miss");
}

/// P5: the tombstone a delete leaves in Redis lives `l2_tombstone_ttl`: 10 s by default (its
/// PTTL read just after is under 10,000 ms and close to it), or what the setting says.
#[test]
fn a_tombstone_lives_l2_tombstone_ttl() {
    let r = server();
    let value_key = |k: &str| healcache::keys::l2_keys(healcache::keys::DEFAULT_PREFIX, k).value;
    let mut conn = raw(&r.url());
    let mut configured = healcache::Config::default();
    configured.set("l2_tombstone_ttl", 1_500.0).unwrap();
    configured.set("ttl", 60_000.0).unwrap();
    let short = healcache::CacheBuilder::<Value>::from_config(configured)
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
        .build()
        .unwrap();
    for (c, key, range) in [(cache(&r.url()), "default", 9_000..=10_000), (short, "set", 500..=1_500)] {
        c.set(key, json!(1)).unwrap();
        wait_for(|| c.stats().l2_writes == 1);
        let before: i64 = redis::cmd("PTTL").arg(value_key(key)).query(&mut conn).unwrap();
        assert!(before > 50_000, "the value's own TTL (60 s), not a tombstone's: {before}");
        c.remove(key);
        wait_for(|| c.stats().l2_writes == 2);
        let left: i64 = redis::cmd("PTTL").arg(value_key(key)).query(&mut conn).unwrap();
        assert!(range.contains(&left), "{key}: the tombstone has {left} ms left");
    }
}

#[test]
fn l1_keeps_an_l2_value_only_for_the_life_redis_has_left() {
    let r = server();
    let a = cache(&r.url());
    let b = cache(&r.url());
    let f = block(a.fetch(
        "short",
        FetchOptions { ttl: healcache::Ttl::For(Duration::from_millis(400)), ..Default::default() },
        || async { Ok::<_, std::io::Error>(Loaded::Value(json!(1))) },
    ))
    .unwrap();
    assert_eq!(f.status, Status::Loaded);
    // the load's write may still be on its way when fetch returns (past the L2 deadline)
    wait_for(|| a.stats().l2_writes == 1);
    std::thread::sleep(Duration::from_millis(150));
    let e = {
        block(fetch_unloadable(&b, "short")).unwrap();
        b.get_entry("short").unwrap()
    };
    let left = e.expires_in.unwrap();
    assert!(left <= Duration::from_millis(260), "b's copy outlives Redis's: {left:?}");
    std::thread::sleep(left + Duration::from_millis(50));
    let f = block(fetch(&b, "short", json!(2)));
    assert_eq!((f.value, f.status), (Some(json!(2)), Status::Loaded));
}

#[test]
fn a_delete_fences_out_a_rebuild_that_read_before_it() {
    let r = server();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let a2 = a.clone();
    let slow = std::thread::spawn(move || {
        block(a2.fetch("acct", FetchOptions::default(), move || async move {
            // the rebuild read L2 (a miss) before this point; hold it past the delete
            let _ = rx.recv_timeout(Duration::from_secs(10));
            Ok::<_, std::io::Error>(Loaded::Value(json!("old balance")))
        }))
        .unwrap()
    });
    wait_for(|| a.stats().l2_misses == 1);
    b.remove("acct");
    wait_for(|| b.stats().l2_writes == 1);
    tx.send(()).unwrap();
    assert_eq!(slow.join().unwrap().value, Some(json!("old balance")), "the caller still gets its value");
    // the refusal may come back after fetch returned (past the L2 deadline)
    wait_for(|| a.stats().l2_fenced_out >= 1);
    assert_eq!(a.stats().l2_fenced_out, 1, "but L2 refused it");
    let c = cache(&r.url());
    let f = block(fetch(&c, "acct", json!("fresh")));
    assert_eq!(f.status, Status::Loaded, "the old value never reached L2");
}

#[test]
fn bytes_that_are_not_our_envelope_for_this_key_are_misses() {
    let r = server();
    let a = cache(&r.url());
    block(fetch(&a, "good", json!({"secret": "alice"})));
    // the load's write may still be on its way when fetch returns (past the L2 deadline)
    wait_for(|| a.stats().l2_writes == 1);
    let keys = healcache::keys::l2_keys("hc1", "good");
    let other = healcache::keys::l2_keys("hc1", "other");
    let mut con = raw(&r.url());
    let stored: Vec<u8> = redis::cmd("GET").arg(&keys.value).query(&mut con).unwrap();
    let mut planted: Vec<(String, Vec<u8>)> = vec![
        // a value copied under another key: the checksum covers the key
        (other.value.clone(), stored.clone()),
        // a Python pickle whose loading would create a file
        (
            healcache::keys::l2_keys("hc1", "pickle").value,
            b"\x80\x04\x95cos\nsystem\n(S'touch /tmp/hc-marker'\ntR.".to_vec(),
        ),
        (healcache::keys::l2_keys("hc1", "trunc").value, stored[..40].to_vec()),
        (healcache::keys::l2_keys("hc1", "empty").value, Vec::new()),
    ];
    let mut bad_sum = stored.clone();
    *bad_sum.last_mut().unwrap() ^= 0xff;
    planted.push((healcache::keys::l2_keys("hc1", "badsum").value, bad_sum));
    let mut huge = stored.clone();
    huge[44..48].copy_from_slice(&u32::MAX.to_be_bytes());
    planted.push((healcache::keys::l2_keys("hc1", "huge").value, huge));
    for (k, v) in &planted {
        let _: () = redis::cmd("SET").arg(k).arg(v).query(&mut con).unwrap();
    }
    let b = cache(&r.url());
    for key in ["other", "pickle", "trunc", "empty", "badsum", "huge"] {
        let f = block(fetch(&b, key, json!("from origin")));
        assert_eq!((f.value, f.status), (Some(json!("from origin")), Status::Loaded), "{key}");
    }
    assert_eq!(b.stats().l2_codec_errors, 6);
    assert_eq!(b.stats().l2_hits, 0);
}

/// P7 and untrusted bytes: a slot's fence record that is not of our layout (another type, a
/// counter that is no integer, one at the end of the integers, an epoch or a counter past 2^53)
/// gets a new epoch at the next write, which lands; a value key holding another type is a miss
/// plus a codec error, not a failed command that counts toward the breaker, and the next write
/// replaces it.
#[test]
fn a_fence_record_or_a_value_key_not_of_our_layout_is_replaced_not_fatal() {
    let r = server();
    let a = cache(&r.url());
    let mut con = raw(&r.url());
    let epoch = |e: u64| e.to_be_bytes().to_vec();
    type Plant = fn(&mut redis::Connection, &str, Vec<u8>);
    let cases: Vec<(&str, Plant)> = vec![
        ("string", |c, f, _| redis::cmd("SET").arg(f).arg("garbage").query::<()>(c).unwrap()),
        ("list", |c, f, _| redis::cmd("RPUSH").arg(f).arg("x").query::<()>(c).unwrap()),
        ("not an integer", |c, f, e| redis::cmd("HSET").arg(f).arg(e).arg("notanint").query::<()>(c).unwrap()),
        ("at the end of the integers", |c, f, e| {
            redis::cmd("HSET").arg(f).arg(e).arg(i64::MAX).query::<()>(c).unwrap()
        }),
        ("a counter past 2^53", |c, f, e| {
            redis::cmd("HSET").arg(f).arg(e).arg((1u64 << 53) + 5).query::<()>(c).unwrap()
        }),
        ("an epoch past 2^53", |c, f, _| redis::cmd("HSET").arg(f).arg(vec![0xffu8; 8]).arg(1).query::<()>(c).unwrap()),
    ];
    for (i, (what, plant)) in cases.into_iter().enumerate() {
        let key = format!("victim{i}");
        let keys = healcache::keys::l2_keys("hc1", &key);
        let _: () = redis::cmd("DEL").arg(&keys.fence).query(&mut con).unwrap();
        plant(&mut con, &keys.fence, epoch(1_700_000_000_000_000));
        let before = a.stats();
        a.set(&key, json!(what)).unwrap();
        wait_for(|| a.stats().l2_writes > before.l2_writes || a.stats().l2_errors > before.l2_errors);
        let s = a.stats();
        assert_eq!((s.l2_writes - before.l2_writes, s.l2_errors - before.l2_errors), (1, 0), "{what}: {s:?}");
        let b = cache(&r.url());
        let f = block(fetch(&b, &key, json!("from origin")));
        assert_eq!((f.value, f.status), (Some(json!(what)), Status::L2Hit), "{what}");
        // the record is ours again: one epoch field, its counter below 2^53
        let fields: Vec<(Vec<u8>, u64)> = redis::cmd("HGETALL").arg(&keys.fence).query(&mut con).unwrap();
        assert_eq!(fields.len(), 1, "{what}");
        assert!(
            u64::from_be_bytes(fields[0].0.clone().try_into().unwrap()) < 1 << 53 && fields[0].1 < 1 << 53,
            "{what}"
        );
    }
    assert_eq!(a.stats().l2_breaker_opens, 0);
    // a value key of another type
    let keys = healcache::keys::l2_keys("hc1", "hashed");
    let _: () = redis::cmd("HSET").arg(&keys.value).arg("f").arg("v").query(&mut con).unwrap();
    let b = cache(&r.url());
    let f = block(fetch(&b, "hashed", json!("from origin")));
    assert_eq!((f.value, f.status), (Some(json!("from origin")), Status::Loaded));
    let s = b.stats();
    assert_eq!((s.l2_codec_errors, s.l2_errors), (1, 0), "{s:?}");
    wait_for(|| b.stats().l2_writes == 1);
    let c = cache(&r.url());
    assert_eq!(block(fetch(&c, "hashed", json!("no"))).status, Status::L2Hit, "the load's write replaced it");
}

/// Bytes Redis has sent to its clients so far (`INFO stats`).
fn net_output_bytes(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
    let line = info.lines().find_map(|l| l.strip_prefix("total_net_output_bytes:")).unwrap();
    line.trim().parse().unwrap()
}

/// A value key longer than any envelope this cache accepts (its `max_entry_bytes`, plus the
/// header and the largest tag section) is refused by its length inside Redis: a miss and a codec
/// error, as when it is read and refused, but its bytes never cross the network, so a planted
/// 8 MiB value costs no transfer and no timeout.
#[test]
fn a_value_key_past_the_read_bound_is_refused_without_its_bytes_crossing() {
    let r = server();
    let mut con = raw(&r.url());
    let keys = healcache::keys::l2_keys("hc1", "huge");
    let _: () = redis::cmd("SET").arg(&keys.value).arg(vec![7u8; 8 << 20]).query(&mut con).unwrap();
    let c = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(60))
        .max_entry_bytes(64 << 10)
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
        .build()
        .unwrap();
    let before = net_output_bytes(&mut con);
    let f = block(fetch(&c, "huge", json!("from origin")));
    let sent = net_output_bytes(&mut con) - before;
    assert_eq!((f.value, f.status), (Some(json!("from origin")), Status::Loaded));
    let s = c.stats();
    assert_eq!((s.l2_codec_errors, s.l2_errors, s.l2_breaker_opens), (1, 0, 0), "{s:?}");
    assert!(sent < 1 << 20, "{sent} bytes sent for one refused read");
    // the load's write replaced it, and the next cache reads the value
    wait_for(|| c.stats().l2_writes == 1);
    assert_eq!(block(fetch(&cache(&r.url()), "huge", json!("no"))).status, Status::L2Hit);
    // within a cache's bound the bytes are read (and these, being no envelope, refused)
    let keys = healcache::keys::l2_keys("hc1", "large");
    let _: () = redis::cmd("SET").arg(&keys.value).arg(vec![7u8; 8 << 20]).query(&mut con).unwrap();
    let d = cache(&r.url());
    let before = net_output_bytes(&mut con);
    assert_eq!(block(fetch(&d, "large", json!("loaded"))).status, Status::Loaded);
    let sent = net_output_bytes(&mut con) - before;
    assert_eq!(d.stats().l2_codec_errors, 1);
    assert!(sent >= 8 << 20, "{sent} bytes: a 64 MiB bound reads 8 MiB");
}

#[test]
fn the_acl_user_cannot_run_keys_flushall_or_debug() {
    let r = server();
    let mut con = raw(&r.url());
    for cmd in ["KEYS", "FLUSHALL", "DEBUG"] {
        let mut c = redis::cmd(cmd);
        if cmd == "KEYS" {
            c.arg("*");
        }
        if cmd == "DEBUG" {
            c.arg("SLEEP").arg(0);
        }
        let e = c.query::<redis::Value>(&mut con).unwrap_err();
        assert!(e.to_string().contains("NOPERM") || e.to_string().contains("permission"), "{cmd}: {e}");
    }
}

#[test]
fn pattern_unlink_removes_exactly_the_matching_keys() {
    let r = server();
    let a = cache(&r.url());
    for i in 0..300 {
        a.set(&format!("user:{i}:en"), json!(i)).unwrap();
        a.set(&format!("user:{i}:fr"), json!(i)).unwrap();
    }
    // a key whose literal text contains glob metacharacters
    a.set("user:*:en", json!("star")).unwrap();
    wait_for(|| a.stats().l2_writes == 601);
    let n = block(a.unlink_shared("user:*:en")).unwrap();
    assert_eq!(n, 301);
    let b = cache(&r.url());
    assert_eq!(block(fetch_unloadable(&b, "user:7:fr")).unwrap().status, Status::L2Hit);
    assert_eq!(block(fetch(&b, "user:7:en", json!("x"))).status, Status::Loaded);
}

#[test]
fn values_cross_with_their_types() {
    let r = server();
    let a: Cache<rmpv::Value> = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), Neutral)
        .build()
        .unwrap();
    let v = rmpv::Value::Map(vec![
        ("bytes".into(), rmpv::Value::Binary(vec![0, 1, 255])),
        ("big".into(), rmpv::Value::from(u64::MAX)),
        ("neg".into(), rmpv::Value::from(-5i64)),
    ]);
    a.set("typed", v.clone()).unwrap();
    wait_for(|| a.stats().l2_writes == 1);
    let b: Cache<rmpv::Value> = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), Neutral)
        .build()
        .unwrap();
    let got = block(b.get_or_load("typed", || async { Err::<rmpv::Value, _>(std::io::Error::other("no")) })).unwrap();
    assert_eq!(got, v);
}

#[test]
fn an_unreachable_redis_is_skipped_and_the_loader_serves() {
    // a port nothing listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = cache(&format!("redis://127.0.0.1:{port}"));
    let calls = Arc::new(AtomicUsize::new(0));
    for i in 0..20 {
        let calls = calls.clone();
        let f = block(c.fetch(&format!("k{i}"), FetchOptions::default(), move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Loaded::Value(json!(i)))
        }))
        .unwrap();
        assert_eq!(f.value, Some(json!(i)));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 20);
    let s = c.stats();
    assert_eq!(s.l2_breaker_state, 1, "{s:?}");
    assert!(s.l2_skipped >= 17, "{s:?}");
}

fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("condition not met within 5 s");
}

/// A burst of writes (a warm-up, a batch import) lands: writes are queued in call order and sent
/// in pipelined batches, so thousands of them fit in one deadline instead of one round trip each
/// timing out behind the others and opening the breaker. The last write of a key wins.
#[test]
fn a_burst_of_writes_lands_in_order_within_its_deadlines() {
    const N: u64 = 20_000;
    let r = server();
    let a = cache(&r.url());
    for i in 0..N {
        a.set(&format!("k{}", i % 1000), json!({"i": i})).unwrap();
    }
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while a.stats().l2_writes + a.stats().l2_errors < N && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = a.stats();
    assert_eq!((s.l2_writes, s.l2_errors, s.l2_timeouts, s.l2_breaker_opens), (N, 0, 0, 0));
    // read back by a new cache with a long deadline: its first read also connects, while Redis
    // may still be sending the burst's bus messages, and what is checked here is the content
    let b = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(60))
        .l2_timeout(Duration::from_secs(5))
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
        .build()
        .unwrap();
    for k in 0..1000u64 {
        let got = block(fetch_unloadable(&b, &format!("k{k}"))).unwrap_or_else(|e| panic!("k{k}: {e} {:?}", b.stats()));
        assert_eq!((got.value, got.status), (Some(json!({"i": N - 1000 + k})), Status::L2Hit));
    }
}

/// A cache that has only read a slot learns its fence epoch from what it read, so its first write
/// there names the epoch and takes its token with one `HINCRBY`: the write script's slower way
/// (which reads the record's fields with `HKEYS`) is not taken.
#[test]
fn a_first_write_after_a_read_names_the_epoch_the_read_saw() {
    let r = server();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    a.set("k", json!("from a")).unwrap();
    wait_for(|| a.stats().l2_writes == 1);
    let read = block(fetch_unloadable(&b, "k")).unwrap();
    assert_eq!((read.status, read.value), (Status::L2Hit, Some(json!("from a"))));
    let before = r.command_calls("hkeys").unwrap();
    b.set("k", json!("from b")).unwrap();
    wait_for(|| b.stats().l2_writes == 1);
    assert_eq!(r.command_calls("hkeys").unwrap(), before, "b's first write took the slow way: {:?}", b.stats());
    // and the write landed, fenced by the right token: a third cache reads it
    let c = cache(&r.url());
    assert_eq!(block(fetch_unloadable(&c, "k")).unwrap().value, Some(json!("from b")));
}

fn graceful(url: &str, ttl: Duration, grace: Duration) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(ttl)
        .grace(grace)
        .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

/// Fail-safe on an instance with no stale copy of its own (a new one): a failed load serves
/// what L2 still holds within the grace window its writer gave it, and keeps it here as a stale
/// entry (a fallback only: never served fresh, never written back to L2). Not a tombstone, not
/// a value a tag invalidation outdated, and not on a cache without a grace window of its own.
#[test]
fn a_new_instance_serves_a_stale_l2_value_when_its_load_fails() {
    let r = server();
    let (ttl, grace) = (Duration::from_millis(300), Duration::from_secs(60));
    let a = graceful(&r.url(), ttl, grace);
    block(fetch(&a, "k", json!("v1")));
    a.write_tagged("tagged", json!("t1"), healcache::WriteOptions::default(), &["t"]).unwrap();
    a.set("gone", json!("g1")).unwrap();
    wait_for(|| a.stats().l2_writes == 4);
    a.remove("gone");
    block(a.invalidate_tag("t", false)).unwrap();
    wait_for(|| a.stats().l2_writes == 5);
    std::thread::sleep(ttl + Duration::from_millis(100));

    let c = graceful(&r.url(), ttl, grace);
    let f = block(fetch_unloadable(&c, "k")).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("v1")), Status::StaleFailSafe));
    assert_eq!(c.get("k"), None, "kept as a fallback, not fresh");
    let f = block(fetch_unloadable(&c, "k")).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("v1")), Status::StaleFailSafe), "and served again from here");
    // the blocking path too
    let d = graceful(&r.url(), ttl, grace);
    let v = d.get_or_load_blocking("k", || Err::<Value, _>(std::io::Error::other("origin down"))).unwrap();
    assert_eq!(v, json!("v1"));
    // a load that times out: the caller's deadline ends its wait as the load's ends the load,
    // so the caller reads L2 itself, async or blocked
    let timed = || {
        Cache::builder()
            .timer(IoTimer)
            .spawner(IoSpawner)
            .ttl(ttl)
            .grace(grace)
            .load_timeout(Duration::from_millis(200))
            .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
            .build()
            .unwrap()
    };
    let hung = || futures::future::pending::<Result<Loaded<Value>, std::io::Error>>();
    let f = block(timed().fetch("k", FetchOptions::default(), hung)).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("v1")), Status::StaleFailSafe));
    let slow = || {
        std::thread::sleep(Duration::from_millis(400));
        Ok::<Value, std::io::Error>(json!("too late"))
    };
    assert_eq!(timed().get_or_load_blocking("k", slow).unwrap(), json!("v1"));
    for e in ["tagged", "gone"] {
        let err = block(fetch_unloadable(&c, e)).unwrap_err();
        assert_eq!(err.code(), "LoaderError", "{e}: {err}");
    }
    let s = c.stats();
    assert_eq!((s.stale_served_fail_safe, s.l2_writes), (2, 0), "{s:?}");
    // a loader that answers replaces the fallback
    assert_eq!(block(fetch(&c, "k", json!("v2"))).status, Status::Loaded);
    assert_eq!(c.get("k"), Some(json!("v2")));
    // a cache with no grace window of its own has no fallback
    let plain = cache(&r.url());
    block(fetch(&a, "other", json!("o1")));
    std::thread::sleep(ttl + Duration::from_millis(100));
    assert!(block(fetch_unloadable(&plain, "other")).is_err());
}
