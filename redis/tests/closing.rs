//! Closing the shared tier, against a real redis-server: a dropped cache closes its connections,
//! and `close_shared` sends the writes under way (with the bus messages announcing them) before
//! it closes them; afterwards the cache works from L1 alone.

mod common;

use std::time::{Duration, Instant};

use common::{block, server, wait_for};
use healcache::tier::MsgPack;
use healcache::Cache;
use healcache_redis::{RedisClusterTransport, RedisTransport};
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::resp::{Reply, RespConn};
use healcache_testkit::{RedisCluster, RedisServer, CLUSTER_PRIMARIES};
use serde_json::{json, Value};

/// One connection of the kit's own client to `r`, to watch it: its connections (this one left
/// out) and its keys.
struct Watch {
    conn: RespConn,
    me: String,
}

impl Watch {
    fn new(r: &RedisServer) -> Watch {
        Watch::on(r.connect().unwrap())
    }

    fn on(mut conn: RespConn) -> Watch {
        let Reply::Int(id) = conn.cmd(&["CLIENT", "ID"]).unwrap() else { panic!("CLIENT ID") };
        Watch { conn, me: format!("id={id} ") }
    }

    /// Connections open now (CLIENT LIST).
    fn clients(&mut self) -> usize {
        let list = self.conn.cmd(&["CLIENT", "LIST"]).unwrap();
        list.as_str().unwrap().lines().filter(|l| !l.starts_with(&self.me)).count()
    }

    /// Keys matching the glob `pattern` (SCAN, never KEYS).
    fn stored(&mut self, pattern: &str) -> usize {
        let (mut cursor, mut n) = ("0".to_string(), 0);
        loop {
            let Reply::Array(Some(a)) = self.conn.cmd(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]).unwrap()
            else {
                panic!("SCAN")
            };
            cursor = a[0].as_str().unwrap().to_string();
            let Reply::Array(Some(keys)) = &a[1] else { panic!("SCAN keys") };
            n += keys.len();
            if cursor == "0" {
                return n;
            }
        }
    }
}

fn cache_with(url: &str, l2_timeout: Duration) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(600))
        .l2_timeout(l2_timeout)
        .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

fn cache(url: &str) -> Cache<Value> {
    cache_with(url, Duration::from_millis(100))
}

/// P5: a dropped cache closes its command connection and its bus connection within about a
/// second; 20 caches made, used and dropped one after another leave none open.
#[test]
fn dropped_caches_leave_no_connection_open() {
    let r = server();
    let mut w = Watch::new(&r);
    let base = w.clients();
    for i in 0..20 {
        let c = cache(&r.url());
        c.set(&format!("k{i}"), json!(i)).unwrap();
        // the command connection and the bus's
        wait_for("the cache's connections", Duration::from_secs(5), || w.clients() >= base + 2);
        wait_for("the write", Duration::from_secs(5), || c.stats().l2_writes == 1);
        drop(c);
    }
    wait_for("every dropped cache's connections closed", Duration::from_millis(1500), || w.clients() == base);
}

/// A cache dropped with writes still queued sends them before its connections close.
#[test]
fn a_dropped_cache_sends_what_it_had_queued() {
    let r = server();
    let mut w = Watch::new(&r);
    let base = w.clients();
    let c = cache(&r.url());
    for i in 0..2000 {
        c.set(&format!("d{i}"), json!(i)).unwrap();
    }
    drop(c);
    wait_for("every queued write stored", Duration::from_secs(5), || w.stored("hc1:*:v:d*") == 2000);
    wait_for("its connections closed", Duration::from_millis(1500), || w.clients() == base);
}

/// `close_shared` returns once every write under way has landed and its bus message has gone:
/// 5,000 sets made just before it are all in Redis when it returns, and another instance drops
/// its old copy of each of them.
#[test]
fn close_shared_sends_every_write_under_way_and_its_bus_message() {
    const N: usize = 5000;
    let r = server();
    let mut w = Watch::new(&r);
    let base = w.clients();
    let other = cache(&r.url());
    for i in 0..N {
        other.set(&format!("k{i}"), json!("old")).unwrap();
    }
    wait_for("the old copies written", Duration::from_secs(10), || other.stats().l2_writes == N as u64);
    let c = cache(&r.url());
    wait_for("both subscribed", Duration::from_secs(5), || w.clients() == base + 4);
    let dropped_before = other.stats().l2_bus_invalidated;
    for i in 0..N {
        c.set(&format!("k{i}"), json!(i)).unwrap();
    }
    let left = block(c.close_shared(Duration::from_secs(10)));
    assert_eq!(left, 0, "every write finished before the deadline");
    assert_eq!(c.stats().l2_writes, N as u64, "every write landed before close_shared returned");
    assert_eq!(w.stored("hc1:*:v:k*"), N);
    wait_for("the other instance dropped every old copy", Duration::from_secs(5), || {
        other.stats().l2_bus_invalidated - dropped_before == N as u64
    });
    assert!((0..N).all(|i| other.get(&format!("k{i}")) != Some(json!("old"))));
    // this cache's two connections are closed; the other's stay
    wait_for("the closed cache's connections gone", Duration::from_secs(1), || w.clients() == base + 2);
}

/// After `close_shared` the cache works from L1 alone: writes, deletes and loads go on locally,
/// L2 operations are skipped and counted (never errors, never a reconnect), and a second close
/// answers at once.
#[test]
fn after_close_shared_the_cache_works_locally_and_skips_l2() {
    let r = server();
    let mut w = Watch::new(&r);
    let base = w.clients();
    let c = cache(&r.url());
    c.set("a", json!(1)).unwrap();
    assert_eq!(block(c.close_shared(Duration::from_secs(5))), 0);
    wait_for("the connections closed", Duration::from_secs(1), || w.clients() == base);
    assert_eq!(w.stored("hc1:*:v:a"), 1);

    let before = c.stats();
    c.set("b", json!(2)).unwrap();
    assert_eq!(c.get("b"), Some(json!(2)));
    assert_eq!(c.remove("a"), Some(json!(1)));
    let loaded = block(c.get_or_load("c", || async { Ok::<_, std::io::Error>(json!(3)) })).unwrap();
    assert_eq!(loaded, json!(3));
    std::thread::sleep(Duration::from_millis(300));
    let after = c.stats();
    assert!(after.l2_skipped >= before.l2_skipped + 3, "the set, the delete and the load's read were skipped");
    assert_eq!((after.l2_writes, after.l2_errors, after.l2_breaker_state), (before.l2_writes, before.l2_errors, 0));
    assert_eq!((w.stored("hc1:*:v:b"), w.stored("hc1:*:v:a")), (0, 1), "nothing reached Redis");
    assert_eq!(w.clients(), base, "no connection opened again");
    let t = Instant::now();
    assert_eq!(block(c.close_shared(Duration::from_secs(5))), 0);
    assert!(t.elapsed() < Duration::from_millis(500));
}

/// P1: a close while Redis hangs (SIGSTOP) ends at its deadline and answers how many writes
/// were still under way; their connections close once Redis answers again.
#[test]
fn close_shared_ends_at_its_deadline_when_redis_hangs() {
    let r = server();
    let mut w = Watch::new(&r);
    let base = w.clients();
    let c = cache_with(&r.url(), Duration::from_secs(30));
    wait_for("connected", Duration::from_secs(5), || w.clients() == base + 2);
    r.stop();
    for i in 0..100 {
        c.set(&format!("h{i}"), json!(i)).unwrap();
    }
    let t = Instant::now();
    let left = block(c.close_shared(Duration::from_millis(300)));
    let took = t.elapsed();
    r.cont();
    assert_eq!(left, 100);
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "took {took:?}");
    wait_for("the connections closed", Duration::from_secs(2), || w.clients() == base);
}

/// The same on a Redis Cluster: a close sends every write first and leaves no connection open on
/// any primary, and neither does a dropped cache.
#[test]
fn a_cluster_cache_closes_its_connections_on_every_primary() {
    let cluster = RedisCluster::start().expect("redis-server must be installed to run these tests");
    let mut nodes: Vec<Watch> = (0..CLUSTER_PRIMARIES).map(|i| Watch::on(cluster.connect(i).unwrap())).collect();
    let base: Vec<usize> = nodes.iter_mut().map(|w| w.clients()).collect();
    let on_cluster = || {
        Cache::<Value>::builder()
            .timer(IoTimer)
            .spawner(IoSpawner)
            .ttl(Duration::from_secs(600))
            .shared_tier(RedisClusterTransport::connect(&cluster.urls()).unwrap(), MsgPack::new())
            .build()
            .unwrap()
    };
    let c = on_cluster();
    for i in 0..1000 {
        c.set(&format!("c{i}"), json!(i)).unwrap();
    }
    assert_eq!(block(c.close_shared(Duration::from_secs(5))), 0);
    assert_eq!(nodes.iter_mut().map(|w| w.stored("hc1:*:v:c*")).sum::<usize>(), 1000);
    let at_base = |nodes: &mut [Watch]| nodes.iter_mut().map(|w| w.clients()).collect::<Vec<_>>() == base;
    wait_for("the closed cache's connections gone", Duration::from_secs(1), || at_base(&mut nodes));

    let d = on_cluster();
    d.set("d", json!(1)).unwrap();
    wait_for("the write", Duration::from_secs(5), || d.stats().l2_writes == 1);
    drop(d);
    wait_for("the dropped cache's connections gone", Duration::from_millis(1500), || at_base(&mut nodes));
}

/// `close_all` (a host's exit hook) closes every cache's shared tier that is still open, each
/// after its writes under way; a cache made afterwards is not affected.
#[test]
fn close_all_closes_every_open_tier_after_its_writes() {
    let r = server();
    let mut w = Watch::new(&r);
    let base = w.clients();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    for i in 0..2000 {
        a.set(&format!("a{i}"), json!(i)).unwrap();
        b.set(&format!("b{i}"), json!(i)).unwrap();
    }
    assert_eq!(block(healcache::tier::close_all(Duration::from_secs(5))), 0);
    assert_eq!((w.stored("hc1:*:v:a*"), w.stored("hc1:*:v:b*")), (2000, 2000));
    wait_for("both caches' connections gone", Duration::from_secs(1), || w.clients() == base);
    let later = cache(&r.url());
    later.set("later", json!(1)).unwrap();
    wait_for("a later cache still writes", Duration::from_secs(5), || later.stats().l2_writes == 1);
    // the closed ones skip L2 from now on
    a.set("a-after", json!(1)).unwrap();
    assert_eq!(w.stored("hc1:*:v:a-after"), 0);
}
