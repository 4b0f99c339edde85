//! The shared tier on a local three-primary Redis Cluster (redis-server children on loopback,
//! stopped by pid): L2 writes and reads, the fleet lock (acquire, renew, release), a fenced write
//! refused, a bus invalidation between two instances over sharded pub/sub, SCAN and pattern
//! unlink over every primary, tag versions, the fleet verifier's lease and score record; on
//! keys spread across the three primaries.
//!
//! No cross-slot command exists: every key a script declares shares one hash tag (checked over
//! many keys), and after the whole run no node has answered a single CROSSSLOT error, the tier's
//! commands all succeeded, and the bus used only SPUBLISH/SSUBSCRIBE (no classic PUBLISH, whose
//! messages every node would forward over the cluster bus).

use std::time::Duration;

use healcache::keys::{self, L2Keys};
use healcache::tier::{Expect, LeaseReply, LockReply, MsgPack, TagSet, Transport, WriteReply, WriteRequest};
use healcache::{Cache, FetchOptions, Loaded, Status};
use healcache_redis::RedisClusterTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::{RedisCluster, CLUSTER_PRIMARIES};
use serde_json::{json, Value};

mod common;
use common::{block, wait_for};

/// The cluster slot of a Redis key: its hash tag's (the first `{...}` with something inside),
/// else the whole key's.
fn cluster_slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let tag = b.iter().position(|&c| c == b'{').and_then(|open| {
        let len = b[open + 1..].iter().position(|&c| c == b'}')?;
        (len > 0).then(|| &b[open + 1..open + 1 + len])
    });
    keys::slot(tag.unwrap_or(b))
}

fn cache(urls: &[String]) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(600))
        .shared_tier(RedisClusterTransport::connect(urls).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

/// Cache keys whose L2 keys land on each primary, `per_node` each.
fn spread_keys(cluster: &RedisCluster, per_node: usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut count = [0usize; CLUSTER_PRIMARIES];
    for i in 0.. {
        let key = format!("user:{i}");
        let node = cluster.node_of_slot(cluster_slot(&keys::l2_keys("hc1", &key).value));
        if count[node] < per_node {
            count[node] += 1;
            out.push((key, node));
        }
        if count.iter().all(|c| *c == per_node) {
            return out;
        }
    }
    unreachable!()
}

fn read(c: &Cache<Value>, key: &str) -> healcache::Fetched<Value> {
    block(
        c.fetch(key, FetchOptions::default(), || async { Err::<Loaded<Value>, _>(std::io::Error::other("no origin")) }),
    )
    .unwrap()
}

#[test]
fn every_script_declares_keys_of_one_slot() {
    for i in 0..5000 {
        // keys with braces, colons and percent signs of their own: the tier's tag comes first
        let key = format!("k{{{i}}}:x%{}:{{}}", i * 7);
        let k = keys::l2_keys("hc1", &key);
        let slot = cluster_slot(&k.value);
        assert_eq!((cluster_slot(&k.lock), cluster_slot(&k.fence)), (slot, slot), "{k:?}");
        let (lease, record) = keys::verifier_keys("hc1", &key);
        assert_eq!(cluster_slot(&lease), cluster_slot(&record), "{lease} {record}");
    }
}

#[test]
fn the_tier_on_a_three_primary_cluster() {
    let cluster = RedisCluster::start().expect("redis-server must be installed (.ci/setup-server.sh)");
    assert_eq!(cluster.pids().len(), CLUSTER_PRIMARIES);
    let urls = cluster.urls();
    let (a, b) = (cache(&urls), cache(&urls));
    let spread = spread_keys(&cluster, 4);

    // L2 write by A, read by B (from L2, not its loader), on every primary
    for (key, _) in &spread {
        let k = key.clone();
        let got = block(a.fetch(key, FetchOptions::default(), move || async move {
            Ok::<_, std::io::Error>(Loaded::Value(json!({ "key": k, "v": 1 })))
        }))
        .unwrap();
        assert_eq!(got.value, Some(json!({ "key": key, "v": 1 })));
    }
    wait_for("A's writes", Duration::from_secs(10), || a.stats().l2_writes as usize == spread.len());
    for (key, _) in &spread {
        let f = read(&b, key);
        assert_eq!((f.value, f.status), (Some(json!({ "key": key, "v": 1 })), Status::L2Hit), "{key}");
    }
    for node in 0..CLUSTER_PRIMARIES {
        assert!(cluster.dbsize(node).unwrap() >= 4, "node {node} holds its keys");
    }

    // a bus invalidation between the two instances over sharded pub/sub: A's write drops B's copy
    for (key, _) in &spread {
        a.set(key, json!({ "key": key, "v": 2 })).unwrap();
    }
    wait_for("B drops its copies", Duration::from_secs(10), || spread.iter().all(|(k, _)| b.peek(k).is_none()));
    for (key, _) in &spread {
        let f = read(&b, key);
        assert_eq!((f.value, f.status), (Some(json!({ "key": key, "v": 2 })), Status::L2Hit), "{key}");
    }
    // a copy is dropped first, then counted
    wait_for("B counts its drops", Duration::from_secs(10), || b.stats().l2_bus_invalidated as usize >= spread.len());
    assert!(b.stats().l2_bus_received > 0 && b.stats().l2_bus_invalidated as usize >= spread.len());

    // the fleet lock and fencing, through the transport itself, on every primary
    let t = RedisClusterTransport::connect(&urls).unwrap();
    let lease = Duration::from_secs(5);
    for (key, node) in &spread {
        let keys: L2Keys = keys::l2_keys("hc1", key);
        let LockReply::Won { token, lockval } = block(t.acquire(&keys, "x", lease)).unwrap() else {
            panic!("the lock of {key} (node {node}) is free")
        };
        assert!(matches!(block(t.acquire(&keys, "y", lease)).unwrap(), LockReply::Held { pttl_ms } if pttl_ms > 0));
        assert!(block(t.renew(&keys.lock, &lockval, lease)).unwrap(), "renewed");
        assert!(!block(t.renew(&keys.lock, "not-ours", lease)).unwrap(), "another value renews nothing");
        // a write since the lock was taken fences the holder out
        let plain = WriteRequest {
            keys: keys.clone(),
            envelope: envelope(&keys, 3),
            px_ms: 60_000,
            expect: Expect::Any,
            deadline: Duration::from_secs(2),
            release: None,
        };
        assert!(matches!(block(t.write(plain)).unwrap(), WriteReply::Written(_)));
        let fenced = WriteRequest {
            keys: keys.clone(),
            envelope: envelope(&keys, 4),
            px_ms: 60_000,
            expect: Expect::Fenced(token),
            deadline: Duration::from_secs(2),
            release: None,
        };
        assert_eq!(block(t.write(fenced)).unwrap(), WriteReply::Newer, "{key}: the stale holder's write is refused");
        assert!(block(t.release(&keys.lock, &lockval)).unwrap(), "released");
        assert!(!block(t.release(&keys.lock, &lockval)).unwrap(), "released once");
        let LockReply::Won { token: again, .. } = block(t.acquire(&keys, "x", lease)).unwrap() else {
            panic!("free again")
        };
        assert!(again.counter > token.counter && again.epoch == token.epoch, "a newer token");
        // the holder's fenced write lands
        let fenced = WriteRequest {
            keys: keys.clone(),
            envelope: envelope(&keys, 5),
            px_ms: 60_000,
            expect: Expect::Fenced(again),
            deadline: Duration::from_secs(2),
            release: None,
        };
        assert!(matches!(block(t.write(fenced)).unwrap(), WriteReply::Written(_)), "{key}");
    }

    // SCAN walks every primary; a pattern unlink reaches every primary too
    let glob = keys::value_glob("hc1", "user:");
    let (mut cursor, mut seen) = (0u64, Vec::new());
    for _ in 0..10_000 {
        let (next, found) = block(t.scan(&glob, cursor, 100)).unwrap();
        seen.extend(found);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), spread.len(), "every value key, from every primary: {seen:?}");
    let unlinked = block(t.unlink_matching(glob.clone())).unwrap();
    assert_eq!(unlinked as usize, spread.len());
    assert_eq!(block(t.scan(&glob, 0, 1000)).unwrap().1.len(), 0);

    // tags: versions read by one script call per tag, each on its own slot
    let tag_keys: Vec<String> = (0..12).map(|i| keys::tag_key("hc1", "cache", &format!("t{i}"))).collect();
    let slots: std::collections::HashSet<usize> =
        tag_keys.iter().map(|k| cluster.node_of_slot(cluster_slot(k))).collect();
    assert_eq!(slots.len(), CLUSTER_PRIMARIES, "tags on every primary");
    let bumped: Vec<u64> = tag_keys[..3].iter().map(|k| block(t.tag_bump(k)).unwrap()).collect();
    let read = block(t.tag_versions(tag_keys.clone())).unwrap();
    for (i, r) in read.iter().enumerate() {
        match i {
            // set by an invalidation (odd), and just now
            0..3 => {
                assert_eq!(r.version, bumped[i]);
                assert!(
                    r.version % 2 == 1 && matches!(r.set, TagSet::Bumped(d) if d < Duration::from_secs(10)),
                    "{r:?}"
                );
            }
            // absent: made by the read (even), from the clock
            _ => assert!(r.version % 2 == 0 && r.version > 1 << 50 && r.set == TagSet::ByThisRead, "{r:?}"),
        }
    }
    let again = block(t.tag_versions(tag_keys.clone())).unwrap();
    assert_eq!(again.iter().map(|r| r.version).collect::<Vec<_>>(), read.iter().map(|r| r.version).collect::<Vec<_>>());
    assert!(again[3..].iter().all(|r| r.set == TagSet::ByARead), "{again:?}");

    // the fleet verifier's lease and score record (one slot: the record's write checks the lease)
    let (lease_key, record) = keys::verifier_keys("hc1", "user:");
    assert_eq!(block(t.try_lease(&lease_key, "a:1", lease)).unwrap(), LeaseReply::Won);
    assert!(matches!(block(t.try_lease(&lease_key, "b:1", lease)).unwrap(), LeaseReply::Held { .. }));
    let fields = vec![("score".to_string(), b"0.5".to_vec())];
    assert!(!block(t.put_record(&lease_key, "b:1", &record, fields.clone(), lease)).unwrap(), "not the holder");
    assert!(block(t.put_record(&lease_key, "a:1", &record, fields.clone(), lease)).unwrap());
    assert_eq!(block(t.get_record(&record)).unwrap(), fields);

    // the proof: no node ever answered CROSSSLOT, no tier command failed, sharded pub/sub only
    let errors = cluster.error_stats().unwrap();
    let commands = cluster.command_stats().unwrap();
    eprintln!("errors by kind: {errors:?}");
    eprintln!("commands (name, calls, failed, rejected): {commands:?}");
    assert!(errors.iter().all(|(kind, _)| kind != "CROSSSLOT"), "{errors:?}");
    let calls = |name: &str| commands.iter().find(|c| c.0 == name).map_or(0, |c| c.1);
    let errs = |kind: &str| errors.iter().find(|e| e.0 == kind).map_or(0, |e| e.1);
    // the only errors: NOSCRIPT, the script cache's first miss on a node (answered by SCRIPT
    // LOAD), and ERR twice per connection, the `CLIENT SETINFO` pair the client sends after
    // HELLO, which Redis 7.0 does not know
    assert!(errors.iter().all(|(kind, _)| kind == "NOSCRIPT" || kind == "ERR"), "{errors:?}");
    assert_eq!(errs("ERR"), 2 * calls("hello"), "{errors:?} {commands:?}");
    assert!(calls("spublish") > 0 && calls("ssubscribe") >= 2, "{commands:?}");
    assert_eq!((calls("publish"), calls("subscribe")), (0, 0), "no classic pub/sub");
    assert!(calls("evalsha") > 0);
    for (name, _, failed, rejected) in &commands {
        let allowed = if name == "evalsha" { errs("NOSCRIPT") } else { 0 };
        assert!(*failed <= allowed && *rejected == 0, "{name} failed {failed} rejected {rejected}");
    }
}

/// A value envelope for `keys` with a small payload.
fn envelope(keys: &L2Keys, n: u8) -> Vec<u8> {
    use healcache::codec::{self, Kind, Limits, PayloadCodec, Token};
    let limits = Limits { max_entry_bytes: 1 << 20, compress_min_bytes: 1 << 20 };
    codec::encode_tagged(
        keys.value.as_bytes(),
        Kind::Value,
        PayloadCodec::Raw,
        Token::default(),
        60_000,
        0,
        0,
        &[],
        &[n],
        &limits,
    )
    .unwrap()
}
