//! Tags and revalidation across instances, against a real redis-server.
//!
//! The promise checked: invalidation is best effort and never silently trusted: a tag
//! invalidated in one instance makes every copy stale (or removed) in the others and in L2, a
//! value written before the invalidation never reads as valid again, and after a gap an L1 copy
//! is trusted again only when L2 still holds its token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use healcache::tier::MsgPack;
use healcache::{Cache, FetchOptions, Loaded, RemovalCause, Status, WriteOptions};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::RedisServer;
use serde_json::{json, Value};

mod common;
use common::{block, cache_with_grace, server, wait_for};

fn cache(url: &str) -> Cache<Value> {
    cache_with_grace(url, Duration::from_secs(600))
}

/// What `c` serves for `key` with a loader that answers `origin` (`None`: the origin fails).
fn fetch(c: &Cache<Value>, key: &str, origin: Option<Value>) -> healcache::Result<healcache::Fetched<Value>> {
    block(c.fetch(key, FetchOptions::default(), move || async move {
        origin.map(Loaded::Value).ok_or_else(|| std::io::Error::other("origin down"))
    }))
}

fn tagged(c: &Cache<Value>, key: &str, v: Value, tags: &[&str]) {
    c.write_tagged(key, v, WriteOptions::default(), tags).unwrap();
}

/// Waits until `a` has made `writes` L2 writes and each of `others` has heard every bus message
/// `a` sent (a message arriving after another instance's read would make its fresh copy stale).
fn settled(a: &Cache<Value>, writes: u64, others: &[&Cache<Value>]) {
    let limit = std::time::Instant::now() + Duration::from_secs(5);
    while a.stats().l2_writes != writes && std::time::Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(a.stats().l2_writes, writes, "{:?}", a.stats());
    for o in others {
        wait_for("a's messages heard", Duration::from_secs(5), || o.stats().l2_bus_received >= a.stats().l2_bus_sent);
    }
}

/// Invalidates `tag` in Redis where no instance hears it (no bus message), as the TAG_BUMP
/// script does.
fn bump_unheard(r: &RedisServer, tag: &str) {
    let key = healcache::keys::tag_key("hc1", "cache", tag);
    r.connect_admin().unwrap().cmd(&["EVAL", healcache::tier::scripts::TAG_BUMP, "1", key.as_str()]).unwrap();
}

#[test]
fn a_tag_invalidated_in_one_instance_is_stale_in_every_other_and_in_l2() {
    let r = server();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    tagged(&a, "user:1", json!("u1 v1"), &["team:7"]);
    tagged(&a, "user:2", json!("u2 v1"), &["team:7", "org:1"]);
    tagged(&a, "user:3", json!("u3 v1"), &["team:8"]);
    // a knew none of the tags: each value is written, then written again with the versions read
    settled(&a, 6, &[&b]);
    for (k, v) in [("user:1", "u1 v1"), ("user:2", "u2 v1"), ("user:3", "u3 v1")] {
        let f = fetch(&b, k, None).unwrap();
        assert_eq!((f.value, f.status), (Some(json!(v)), Status::L2Hit), "{k}");
    }
    assert_eq!(block(a.invalidate_tag("team:7", false)).unwrap(), 2, "a's own two copies");
    assert_eq!((a.get("user:1"), a.get("user:3")), (None, Some(json!("u3 v1"))));
    wait_for("b drops its team:7 copies", Duration::from_secs(5), || {
        b.peek("user:1").is_none() && b.peek("user:2").is_none()
    });
    assert_eq!(b.peek("user:3"), Some(json!("u3 v1")), "another tag's entry stays");
    // soft: the stale copy still serves as a fallback while the origin is down
    let f = fetch(&b, "user:1", None).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("u1 v1")), Status::StaleFailSafe));
    // and L2's value is outdated: a third instance, with no L1 copy, loads from the origin
    let c = cache(&r.url());
    let f = fetch(&c, "user:2", Some(json!("u2 v2"))).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("u2 v2")), Status::Loaded));
    assert_eq!(c.stats().l2_tag_outdated, 1);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.l2_tag_invalidations, sb.l2_tag_received, sb.l2_bus_gaps), (1, 1, 0), "{sb:?}");
    // a value written after the invalidation, with the tag, is valid everywhere
    tagged(&a, "user:1", json!("u1 v2"), &["team:7"]);
    wait_for("a's write", Duration::from_secs(5), || a.stats().l2_writes == 7);
    let f = fetch(&b, "user:1", None).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("u1 v2")), Status::L2Hit));
}

#[test]
fn a_hard_invalidation_removes_the_copies() {
    let r = server();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    tagged(&a, "doc", json!("v1"), &["t"]);
    settled(&a, 2, &[&b]);
    assert_eq!(fetch(&b, "doc", None).unwrap().status, Status::L2Hit);
    assert_eq!(block(a.invalidate_tag("t", true)).unwrap(), 1);
    wait_for("b removes its copy", Duration::from_secs(5), || b.stats().l2_tag_received == 1);
    // the message is counted before the copies it names are removed
    wait_for("b's copy removed", Duration::from_secs(5), || b.peek_entry("doc").is_none());
    assert!(b.peek_entry("doc").is_none());
    let e = fetch(&b, "doc", None).unwrap_err();
    assert_eq!(e.code(), "LoaderError", "no stale fallback after a hard invalidation: {e}");
}

#[test]
fn a_write_racing_an_invalidation_it_did_not_see_reads_as_outdated() {
    let r = server();
    let b = cache(&r.url());
    // b learns the tag's version (its first tagged write reads it), then the tag is invalidated
    // where b cannot hear it while b's next write is on its way: b's value records the old
    // version, so no instance takes it as valid
    tagged(&b, "warm", json!(0), &["t"]);
    wait_for("b's writes", Duration::from_secs(5), || b.stats().l2_writes == 2);
    bump_unheard(&r, "t");
    tagged(&b, "doc", json!("written before b knew"), &["t"]);
    wait_for("b's write", Duration::from_secs(5), || b.stats().l2_writes == 3);
    // (read by an instance that knows no version of the tag: a learnt b's from the bus, and
    // the invalidation above, sent on no bus, is one a real instance could not miss unnoticed)
    let a = cache(&r.url());
    let f = fetch(&a, "doc", Some(json!("from the origin"))).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("from the origin")), Status::Loaded));
    assert_eq!(a.stats().l2_tag_outdated, 1);
}

/// P7: a tag version L2 holds that no cache wrote (text, a number past 64 bits) is no version:
/// a value recorded under the tag is not served unchecked (it would be served as if the tag had
/// never been bumped, an invalidated value back to life), and the garbage is counted.
#[test]
fn a_tag_version_no_cache_wrote_makes_the_value_a_miss_and_is_counted() {
    let r = server();
    let a = cache(&r.url());
    let mut raw = r.connect_admin().unwrap();
    let key = healcache::keys::tag_key("hc1", "cache", "tA");
    for (i, garbage) in ["notanumber", "99999999999999999999999", "1.5", "9007199254740991"].into_iter().enumerate() {
        // a valid version recorded (the loads below write untagged values over it): the first
        // time a writes twice, the second write with the version it read
        tagged(&a, "item", json!("OLD"), &["tA"]);
        wait_for("a's write", Duration::from_secs(5), || a.stats().l2_writes == i as u64 + 2);
        raw.cmd(&["SET", key.as_str(), garbage]).unwrap();
        let fresh = cache(&r.url());
        let f = fetch(&fresh, "item", Some(json!("from the origin"))).unwrap();
        assert_eq!((f.value, f.status), (Some(json!("from the origin")), Status::Loaded), "{garbage}");
        let s = fresh.stats();
        assert_eq!((s.l2_codec_errors, s.l2_tag_outdated, s.l2_hits), (1, 1, 0), "{garbage}: {s:?}");
    }
}

#[test]
fn bad_tags_are_refused_and_change_nothing() {
    let r = server();
    let a = cache(&r.url());
    let seventeen: Vec<String> = (0..17).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = seventeen.iter().map(String::as_str).collect();
    let e = a.write_tagged("k", json!(1), WriteOptions::default(), &refs).unwrap_err();
    assert_eq!(e.code(), "InvalidConfig", "{e}");
    let long = "x".repeat(129);
    assert!(a.write_tagged("k", json!(1), WriteOptions::default(), &[long.as_str()]).is_err());
    assert!(block(a.invalidate_tag("", false)).is_err());
    assert!(a.peek("k").is_none());
    assert_eq!(a.stats().l2_writes, 0);
    // at the bounds: 16 tags of 128 bytes
    let full: Vec<String> = (0..16).map(|i| format!("{i:0>128}")).collect();
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    a.write_tagged("k", json!(1), WriteOptions::default(), &refs).unwrap();
    assert_eq!(block(a.invalidate_tag(&full[15], false)).unwrap(), 1);
}

#[test]
fn after_a_gap_a_copy_whose_token_l2_still_holds_is_revalidated() {
    let r = server();
    // b reports what leaves its L1: a host holding values by handle (the Node package) frees a
    // value when told it left, so a copy trusted again must not be reported as replaced
    let left: Arc<Mutex<Vec<(String, RemovalCause)>>> = Arc::default();
    let log = left.clone();
    let b = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .ttl(Duration::from_secs(600))
        .grace(Duration::from_secs(600))
        .on_removal(move |k, _, cause| log.lock().unwrap().push((k.to_string(), cause)))
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
        .build()
        .unwrap();
    let a = cache(&r.url());
    a.set("same", json!("s")).unwrap();
    a.set("gone", json!("g")).unwrap();
    wait_for("a's writes", Duration::from_secs(5), || a.stats().l2_writes == 2);
    wait_for("b hears them", Duration::from_secs(5), || b.stats().l2_bus_received == 2);
    for k in ["same", "gone"] {
        assert_eq!(fetch(&b, k, None).unwrap().status, Status::L2Hit);
    }
    // a change b cannot hear (no bus message), then a gap: every subscription is cut
    let mut raw = r.connect_admin().unwrap();
    let gone = healcache::keys::l2_keys("hc1", "gone").value;
    raw.cmd(&["DEL", gone.as_str()]).unwrap();
    let gaps = b.stats().l2_bus_gaps;
    raw.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).unwrap();
    wait_for("b notices the gap", Duration::from_secs(5), || b.stats().l2_bus_gaps > gaps);
    // the cache clock is coarse (1-4 ms): an entry rewritten in the gap's own tick stays suspect
    std::thread::sleep(Duration::from_millis(20));
    let f = fetch(&b, "same", None).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("s")), Status::Revalidated), "{:?}", b.stats());
    let f = fetch(&b, "same", None).unwrap();
    assert_eq!(f.status, Status::Hit, "trusted again");
    assert_eq!(*left.lock().unwrap(), [], "a copy trusted again is renewed in place, not replaced");
    let f = fetch(&b, "gone", Some(json!("g2"))).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("g2")), Status::Loaded), "a token L2 lost is no revalidation");
    let s = b.stats();
    assert_eq!((s.l2_suspect_rereads, s.l2_revalidated), (2, 1), "{s:?}");
}

#[test]
fn an_unreachable_l2_still_invalidates_this_process_and_says_so() {
    // nothing listens on port 1: L2 cannot be reached
    let a = cache("redis://127.0.0.1:1");
    tagged(&a, "k", json!(1), &["t"]);
    tagged(&a, "other", json!(2), &["u"]);
    let e = block(a.invalidate_tag("t", false)).unwrap_err();
    assert_eq!(e.code(), "L2Unavailable", "{e}");
    assert_eq!((a.get("k"), a.get("other")), (None, Some(json!(2))));
}

#[test]
fn a_tag_invalidated_during_a_load_leaves_the_loaded_value_uncached_everywhere() {
    let r = server();
    let (a, b, c) = (cache(&r.url()), cache(&r.url()), cache(&r.url()));
    let a2 = a.clone();
    // the loader runs once the load has read the tag's version; it is held until the
    // invalidation has reached a
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let slow = std::thread::spawn(move || {
        block(a2.fetch_tagged("doc", FetchOptions::default(), &["t"], move || async move {
            started_tx.send(()).unwrap();
            let _ = go_rx.recv_timeout(Duration::from_secs(10));
            Ok::<_, std::io::Error>(Loaded::Value(json!("read before the invalidation")))
        }))
    });
    started.recv_timeout(Duration::from_secs(10)).expect("the load started");
    assert_eq!(block(b.invalidate_tag("t", false)).unwrap(), 0);
    wait_for("a hears the invalidation", Duration::from_secs(5), || a.stats().l2_tag_received >= 1);
    go.send(()).unwrap();
    let f = slow.join().unwrap().unwrap();
    assert_eq!(f.value, Some(json!("read before the invalidation")), "the caller still gets its value");
    assert_eq!(a.peek("doc"), None, "but a does not keep it");
    let f = fetch(&c, "doc", Some(json!("after"))).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("after")), Status::Loaded), "nor does L2 serve it");
    // a load with the tag after the invalidation is kept, and read by the others
    let f = block(a.fetch_tagged("doc2", FetchOptions::default(), &["t"], || async {
        Ok::<_, std::io::Error>(Loaded::Value(json!(2)))
    }))
    .unwrap();
    assert_eq!(f.status, Status::Loaded);
    assert_eq!(a.peek("doc2"), Some(json!(2)));
    wait_for("a's write", Duration::from_secs(5), || a.stats().l2_writes >= 2);
    // b reads doc2 only after the message of its write arrived (a's two writes and c's one):
    // a message arriving after the read would make b's copy stale before the invalidation
    wait_for("b hears the writes", Duration::from_secs(5), || b.stats().l2_bus_received >= 3);
    assert_eq!(fetch(&b, "doc2", None).unwrap().status, Status::L2Hit);
    assert_eq!(block(b.invalidate_tag("t", true)).unwrap(), 1, "b's copy of doc2");
    wait_for("a removes doc2", Duration::from_secs(5), || a.peek_entry("doc2").is_none());
}

/// P7: a tag's key lost in Redis on its own (evicted under an `allkeys-*` policy, deleted) never
/// makes a value valid again: the key is made anew at a version no value recorded, and an
/// invalidation of a lost key moves to one too. Every instance learns the version made, so
/// values written afterwards are valid again everywhere.
#[test]
fn a_tag_key_lost_in_redis_never_makes_an_outdated_value_valid_again() {
    let r = server();
    let a = cache(&r.url());
    let mut raw = r.connect_admin().unwrap();
    let key = healcache::keys::tag_key("hc1", "cache", "t");
    tagged(&a, "doc", json!("before"), &["t"]);
    settled(&a, 2, &[]);
    let b = cache(&r.url());
    assert_eq!(fetch(&b, "doc", None).unwrap().status, Status::L2Hit, "valid before the invalidation");
    block(a.invalidate_tag("t", false)).unwrap();
    tagged(&a, "doc2", json!("after"), &["t"]);
    settled(&a, 3, &[]);
    assert_eq!(fetch(&cache(&r.url()), "doc2", None).unwrap().status, Status::L2Hit);

    // lost, then read: both values recorded a version the key held before
    raw.cmd(&["DEL", key.as_str()]).unwrap();
    let c = cache(&r.url());
    for k in ["doc", "doc2"] {
        let f = fetch(&c, k, Some(json!("from the origin"))).unwrap();
        assert_eq!((f.value, f.status), (Some(json!("from the origin")), Status::Loaded), "{k}");
    }
    assert_eq!(c.stats().l2_tag_outdated, 2);

    // a, which knew the lost version, learns the one c's read made: its next write is valid
    wait_for("a hears c", Duration::from_secs(5), || a.stats().l2_bus_received >= c.stats().l2_bus_sent);
    tagged(&a, "doc3", json!("after the loss"), &["t"]);
    settled(&a, 4, &[]);
    assert_eq!(fetch(&cache(&r.url()), "doc3", None).unwrap().status, Status::L2Hit);

    // lost, then invalidated: the new version is none the key held
    raw.cmd(&["DEL", key.as_str()]).unwrap();
    block(a.invalidate_tag("t", false)).unwrap();
    let e = cache(&r.url());
    let f = fetch(&e, "doc3", Some(json!("from the origin"))).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("from the origin")), Status::Loaded));
    assert_eq!(e.stats().l2_tag_outdated, 1);
}

/// A burst of first writes with tags this instance has not seen (new to the fleet, or known
/// only elsewhere): each value is written, then confirmed with the versions read, so every
/// other instance reads it.
#[test]
fn first_writes_with_tags_not_known_here_are_read_by_other_instances() {
    let r = server();
    let (a, c) = (cache(&r.url()), cache(&r.url()));
    for i in 0..10 {
        tagged(&a, &format!("a{i}"), json!(i), &["shared", &format!("own{i}")]);
    }
    settled(&a, 20, &[&c]);
    // b, started since, has not heard of "shared", which a's reads made: its writes until it
    // has read the version are written twice (how many is up to timing), the others once
    let b = cache(&r.url());
    for i in 0..10 {
        tagged(&b, &format!("b{i}"), json!(i), &["shared"]);
    }
    let mut last = (0, std::time::Instant::now());
    wait_for("b's writes settle", Duration::from_secs(10), || {
        let n = b.stats().l2_writes;
        if n != last.0 {
            last = (n, std::time::Instant::now());
        }
        n >= 11 && last.1.elapsed() > Duration::from_millis(300)
    });
    let sent = a.stats().l2_bus_sent + b.stats().l2_bus_sent;
    wait_for("c hears them", Duration::from_secs(5), || c.stats().l2_bus_received >= sent);
    for k in (0..10).flat_map(|i| [format!("a{i}"), format!("b{i}")]) {
        let f = fetch(&c, &k, None).unwrap();
        assert_eq!(f.status, Status::L2Hit, "{k}");
    }
    assert_eq!(c.stats().l2_tag_outdated, 0);
}

/// A write cannot tell whether an invalidation of a tag it does not know came before it began
/// or after, when the invalidation is recent (within a second, the margin for the clocks): its
/// value then stays outdated in L2 (a miss, never an invalidated value served). It learns the
/// version all the same, and its next write is valid.
#[test]
fn a_first_write_just_after_an_unheard_invalidation_stays_outdated_in_l2() {
    let r = server();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    bump_unheard(&r, "t");
    tagged(&a, "doc", json!("v1"), &["t"]);
    wait_for("a's write", Duration::from_secs(5), || a.stats().l2_writes == 1);
    // the tag's version is read at once (loopback), and no second write follows
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.stats().l2_writes, 1, "no second write of doc: its tag was set too recently");
    let f = fetch(&b, "doc", Some(json!("from the origin"))).unwrap();
    assert_eq!(f.status, Status::Loaded);
    assert_eq!(b.stats().l2_tag_outdated, 1);
    // a learnt the version: its next write records it, once
    tagged(&a, "doc", json!("v2"), &["t"]);
    settled(&a, 2, &[&b]);
    let f = fetch(&b, "doc", None).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("v2")), Status::L2Hit));
}
