//! The shared tier's bounds (docs/shared-tier.md, "Settings and bounds") checked at the bound
//! against a real redis-server (started on a free loopback port by the test kit, as the
//! restricted ACL user): the value exactly at the bound is taken, the one past it gets the
//! documented outcome.
//!
//! Promise checked: P5, everything is bounded; over a bound, a clear typed error or a documented
//! refusal, never unbounded growth.

mod common;

use std::time::Duration;

use common::{block, wait_for};
use futures::FutureExt;
use healcache::codec::{self, Kind, Limits};
use healcache::keys::l2_keys;
use healcache::tier::{MsgPack, Transport, TransportError, WriteReply, WriteRequest};
use healcache::Cache;
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::{RedisOptions, RedisServer};
use serde_json::{json, Value};

/// Writes queued for the connection at most, as documented.
const WRITE_QUEUE: usize = 65_536;
/// Keys unlinked per UNLINK, as `unlink_shared` documents ("UNLINK in batches").
const UNLINK_BATCH: usize = 500;
/// Long enough that no deadline passes while the server is stopped: a refusal seen in the test
/// is the queue's, never a timeout.
const LONG: Duration = Duration::from_secs(60);

fn server() -> RedisServer {
    RedisServer::start_with(RedisOptions::restricted())
        .expect("redis-server must be installed (.ci/setup-server.sh) to run these tests")
}

/// A cache on `t` whose L2 operations may take [`LONG`].
fn cache(t: &RedisTransport) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(600))
        .l2_timeout(LONG)
        .shared_tier(t.clone(), MsgPack::new())
        .build()
        .unwrap()
}

/// An unconditional write of cache key `key` as the core sends it.
fn write(key: &str) -> WriteRequest {
    common::write_request(key, b"v", LONG)
}

/// Raw access as the ACL user, for planting keys and reading what Redis holds.
fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// P5: with the server stopped (SIGSTOP to its pid) so nothing drains, exactly 65,536 writes wait
/// in the queue behind the one batch already sent; the next write fails at once, and through a
/// cache that refusal is counted in `l2_errors`, not a timeout. Once the server runs again every
/// queued write lands: nothing queued is lost, and the refused ones are not in Redis.
#[test]
fn the_write_queue_holds_65536_writes_and_the_next_fails_at_once_in_l2_errors() {
    let r = server();
    let t = RedisTransport::connect(&r.url()).unwrap();
    // the writer and its connection exist before the server stops
    assert!(matches!(block(t.write(write("warm"))), Ok(WriteReply::Written(_))));
    r.stop();
    let sent = t.write(write("sent"));
    // the writer takes it as a batch of one and sends it: it waits on the stopped server, out of the queue
    std::thread::sleep(Duration::from_millis(300));
    let mut queued = Vec::with_capacity(WRITE_QUEUE);
    for i in 0..WRITE_QUEUE {
        let mut w = t.write(write(&format!("q{i}")));
        assert!((&mut w).now_or_never().is_none(), "write {i} of {WRITE_QUEUE} is queued, not refused");
        queued.push(w);
    }
    let over = t.write(write("over")).now_or_never();
    assert_eq!(over, Some(Err(TransportError::Io("write queue full".into()))), "the 65,537th fails at once");

    // the same refusal through a cache sharing the connection: counted in l2_errors
    let c = cache(&t);
    c.set("over-cache", json!(1)).unwrap();
    wait_for("the refused write in l2_errors", Duration::from_secs(2), || c.stats().l2_errors == 1);
    let s = c.stats();
    assert_eq!((s.l2_errors, s.l2_timeouts, s.l2_writes), (1, 0, 0), "a refusal, not a deadline");

    r.cont();
    let answers = block(futures::future::join_all(std::iter::once(sent).chain(queued)));
    let lost: Vec<_> = answers.iter().enumerate().filter(|(_, a)| !matches!(a, Ok(WriteReply::Written(_)))).collect();
    assert!(lost.is_empty(), "{} queued writes did not land, first: {:?}", lost.len(), lost.first());
    let mut conn = raw(&r.url());
    let mut pipe = redis::pipe();
    for i in 0..WRITE_QUEUE {
        pipe.cmd("EXISTS").arg(l2_keys("hc1", &format!("q{i}")).value);
    }
    let there: Vec<i64> = pipe.query(&mut conn).unwrap();
    assert_eq!(there.iter().sum::<i64>(), WRITE_QUEUE as i64, "every queued write is in Redis");
    let refused: i64 = redis::cmd("EXISTS").arg(l2_keys("hc1", "over").value).query(&mut conn).unwrap();
    assert_eq!(refused, 0, "the refused write is not");
    // the cache's refused write is not either: its key gets an invalidation (a tombstone) once
    // Redis takes writes again, so no other instance keeps the value it replaced
    let key = l2_keys("hc1", "over-cache").value;
    wait_for("the refused write's tombstone", Duration::from_secs(5), || {
        let stored: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(&mut raw(&r.url())).unwrap();
        stored.is_some_and(|b| codec::decode_header(&b, &Limits::default()).is_ok_and(|h| h.kind == Kind::Tombstone))
    });
}

/// Plants `n` L2 values whose cache keys start with `prefix`, and one that does not match;
/// resets the command counts.
fn plant(conn: &mut redis::Connection, prefix: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET").arg(l2_keys("hc1", &format!("{prefix}{i}")).value).arg("v").ignore();
    }
    pipe.cmd("SET").arg(l2_keys("hc1", "other").value).arg("v").ignore();
    pipe.cmd("CONFIG").arg("RESETSTAT").ignore();
    pipe.query::<()>(conn).unwrap();
}

/// `unlink_shared` over `n` matching keys (all in one SCAN page): how many it answered, UNLINK
/// commands run, keys left in Redis, and whether the non-matching key is still there.
fn unlink_matching(n: usize) -> (u64, u64, u64, bool) {
    let r = server();
    let mut conn = raw(&r.url());
    plant(&mut conn, "p:", n);
    let c = cache(&RedisTransport::connect(&r.url()).unwrap());
    let unlinked = block(c.unlink_shared("p:*")).unwrap();
    let left: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    let other: bool = redis::cmd("EXISTS").arg(l2_keys("hc1", "other").value).query(&mut conn).unwrap();
    (unlinked, r.command_calls("unlink").unwrap(), left, other)
}

/// P5: an UNLINK carries at most 500 keys: exactly 500 matching keys go in one UNLINK, and all of
/// them are gone; the key that does not match stays.
#[test]
fn unlinking_500_matching_keys_takes_one_unlink() {
    assert_eq!(unlink_matching(UNLINK_BATCH), (500, 1, 1, true));
}

/// P5: 501 matching keys are all unlinked, the 501st in a second UNLINK: the batch bound splits
/// the work, it never drops a key.
#[test]
fn unlinking_501_matching_keys_takes_two_unlinks_and_leaves_none() {
    assert_eq!(unlink_matching(UNLINK_BATCH + 1), (501, 2, 1, true));
}

/// P5: with a shared tier a key is at most 65,482 bytes, so its bus message fits in 64 KiB (a key
/// that did not fit could only be announced as a gap, distrusting every receiver's L1). The
/// bound is accepted at build, one byte more is `InvalidConfig` naming `max_key_len`, and a key of
/// exactly that length is written to L2 and read back by another cache.
#[test]
fn max_key_len_with_a_shared_tier_is_at_most_what_a_bus_message_carries() {
    let r = server();
    let t = RedisTransport::connect(&r.url()).unwrap();
    let with_key_len = |n: usize| {
        Cache::<Value>::builder()
            .timer(IoTimer)
            .spawner(IoSpawner)
            .max_key_len(n)
            .shared_tier(t.clone(), MsgPack::new())
            .build()
    };
    match with_key_len(65_483) {
        Err(healcache::Error::InvalidConfig { field, .. }) => assert_eq!(field, "max_key_len"),
        other => panic!("expected InvalidConfig, got {:?}", other.map(drop)),
    }
    // without a shared tier the longer keys stay allowed (no bus to carry them)
    assert!(Cache::<Value>::builder().max_key_len(65_483).build().is_ok());
    let a = with_key_len(65_482).unwrap();
    let b = with_key_len(65_482).unwrap();
    let key = "k".repeat(65_482);
    a.set(&key, json!("long")).unwrap();
    wait_for("the long key written to L2", Duration::from_secs(5), || a.stats().l2_writes == 1);
    let got = block(b.get_or_load(&key, || async { Ok::<_, std::io::Error>(json!("loaded")) })).unwrap();
    assert_eq!(got, json!("long"));
    assert_eq!(a.stats().l2_bus_publish_failed, 0, "the write was announced");
}
