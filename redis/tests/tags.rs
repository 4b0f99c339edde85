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

#[test]
fn a_tag_invalidated_in_one_instance_is_stale_in_every_other_and_in_l2() {
    let r = server();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    tagged(&a, "user:1", json!("u1 v1"), &["team:7"]);
    tagged(&a, "user:2", json!("u2 v1"), &["team:7", "org:1"]);
    tagged(&a, "user:3", json!("u3 v1"), &["team:8"]);
    wait_for("a's writes", Duration::from_secs(5), || a.stats().l2_writes == 3);
    // (read after their messages arrived, which would otherwise make b's fresh copies stale)
    wait_for("b hears them", Duration::from_secs(5), || b.stats().l2_bus_received == 3);
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
    wait_for("a's write", Duration::from_secs(5), || a.stats().l2_writes == 4);
    let f = fetch(&b, "user:1", None).unwrap();
    assert_eq!((f.value, f.status), (Some(json!("u1 v2")), Status::L2Hit));
}

#[test]
fn a_hard_invalidation_removes_the_copies() {
    let r = server();
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    tagged(&a, "doc", json!("v1"), &["t"]);
    wait_for("a's write", Duration::from_secs(5), || a.stats().l2_writes == 1);
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
    let (a, b) = (cache(&r.url()), cache(&r.url()));
    // b learns version 0 of the tag, then a bumps it while b's write is on its way: b's value
    // records the old version, so no instance takes it as valid
    tagged(&b, "warm", json!(0), &["t"]);
    wait_for("b's write", Duration::from_secs(5), || b.stats().l2_writes == 1);
    let mut raw = r.connect_admin().unwrap();
    let key = healcache::keys::tag_key("hc1", "cache", "t");
    // b learns the version in the background after its first tagged write, by a GET of the tag's
    // key (nothing else here sends a GET): once Redis answered it, what b learns is version 0
    wait_for("b's read of the tag's version", Duration::from_secs(10), || r.command_calls("get").unwrap() >= 1);
    raw.cmd(&["INCR", key.as_str()]).unwrap();
    tagged(&b, "doc", json!("written before b knew"), &["t"]);
    wait_for("b's write", Duration::from_secs(5), || b.stats().l2_writes == 2);
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
    for (i, garbage) in ["notanumber", "99999999999999999999999", "1.5"].into_iter().enumerate() {
        // recorded under version 0 (the loads below write untagged values over it)
        raw.cmd(&["DEL", key.as_str()]).unwrap();
        tagged(&a, "item", json!("OLD"), &["tA"]);
        wait_for("a's write", Duration::from_secs(5), || a.stats().l2_writes == i as u64 + 1);
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
