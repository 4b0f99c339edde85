//! Tag invalidation, soft then hard, and of entries that never expire: in one process and, with
//! a shared tier, in another instance told on the bus.
//!
//! The promise checked (P7, and what `invalidate_tag` documents): a soft invalidation makes every
//! entry written with the tag stale, served only as a fallback within a grace window, whether or
//! not the entry had an expiry; a hard one removes every such entry, the ones an earlier soft
//! invalidation made stale too, so nothing of the tag is served as a fallback after it. The
//! count answers how many fresh entries were invalidated.

#![cfg(feature = "tier")]

use std::time::Duration;

use futures::executor::block_on;
use healcache::{Cache, FetchOptions, Loaded, ManualClock, Status, WriteOptions};

mod common;
use common::Boom;

const TTL: Duration = Duration::from_secs(1);
const GRACE: Duration = Duration::from_millis(500);

fn cache(clock: &ManualClock) -> Cache<String> {
    Cache::builder().ttl(TTL).grace(GRACE).clock(clock.clone()).build().unwrap()
}

fn tagged(c: &Cache<String>, key: &str, ttl: Option<Duration>, tags: &[&str]) {
    let opts = WriteOptions { ttl: ttl.map_or(healcache::Ttl::Never, healcache::Ttl::For), ..WriteOptions::default() };
    c.write_tagged(key, format!("{key} v1"), opts, tags).unwrap();
}

/// What a fetch of `key` serves while the origin is down: the value and its status, or `None`
/// when the loader's error reaches the caller.
fn served_while_down(c: &Cache<String>, key: &str) -> Option<(String, Status)> {
    let f = block_on(c.fetch(key, FetchOptions::default(), || async { Err::<Loaded<String>, _>(Boom("origin down")) }));
    f.ok().map(|f| (f.value.unwrap(), f.status))
}

/// P7: a hard invalidation after a soft one removes the entries the soft one made stale: no
/// fallback is served for them afterwards. The soft call counts the fresh entry; the hard one
/// finds it stale already, removes it and counts nothing (a count of fresh entries).
#[test]
fn p7_a_hard_invalidation_after_a_soft_one_removes_the_stale_entries() {
    let clock = ManualClock::new();
    let c = cache(&clock);
    tagged(&c, "x", None, &["h"]);
    tagged(&c, "y", Some(TTL), &["h", "other"]);
    tagged(&c, "z", Some(TTL), &["other"]);
    assert_eq!(block_on(c.invalidate_tag("h", false)).unwrap(), 2, "x and y were fresh");
    assert_eq!(served_while_down(&c, "y"), Some(("y v1".into(), Status::StaleFailSafe)), "soft: a fallback");

    assert_eq!(block_on(c.invalidate_tag("h", true)).unwrap(), 0, "no fresh entry left to invalidate");
    for k in ["x", "y"] {
        assert_eq!(c.peek_stored(k), None, "{k}: removed, not kept as a fallback");
        assert_eq!(served_while_down(&c, k), None, "{k}: the loader's error, no stale value");
    }
    assert_eq!(c.get("z"), Some("z v1".into()), "another tag's entry stays");
    assert_eq!(block_on(c.invalidate_tag("other", false)).unwrap(), 1, "z was fresh; y is gone");
}

/// P7: a soft invalidation twice, then a hard one: the second soft call counts nothing (the entry
/// is stale already) and leaves it a fallback; the hard one still removes it.
#[test]
fn p7_a_second_soft_invalidation_keeps_the_fallback_and_a_hard_one_still_removes_it() {
    let clock = ManualClock::new();
    let c = cache(&clock);
    tagged(&c, "x", Some(TTL), &["h"]);
    assert_eq!(block_on(c.invalidate_tag("h", false)).unwrap(), 1);
    assert_eq!(block_on(c.invalidate_tag("h", false)).unwrap(), 0, "stale already");
    assert_eq!(c.peek_stored("x"), Some("x v1".into()), "still a fallback");
    assert_eq!(block_on(c.invalidate_tag("h", true)).unwrap(), 0);
    assert_eq!(c.peek_stored("x"), None);
}

/// P7: a soft invalidation makes an entry stored with no expiry stale, not gone: it serves as a
/// fallback for the cache's grace window from the invalidation on, then is gone, as an entry
/// with a TTL is. Without a grace window there is no fallback: it is gone at once.
#[test]
fn p7_a_soft_invalidation_keeps_an_entry_without_expiry_as_a_fallback_for_the_grace_window() {
    let clock = ManualClock::new();
    let c = cache(&clock);
    tagged(&c, "withTtl", Some(TTL), &["t"]);
    tagged(&c, "noTtl", None, &["t"]);
    clock.advance(Duration::from_millis(200));
    assert_eq!(block_on(c.invalidate_tag("t", false)).unwrap(), 2, "both were fresh");
    assert_eq!((c.get("withTtl"), c.get("noTtl")), (None, None), "neither is served fresh");
    assert_eq!(c.len(), 2, "both kept, stale");
    assert_eq!(served_while_down(&c, "withTtl"), Some(("withTtl v1".into(), Status::StaleFailSafe)));
    assert_eq!(served_while_down(&c, "noTtl"), Some(("noTtl v1".into(), Status::StaleFailSafe)));
    // the grace window runs from the invalidation: 500 ms
    clock.advance(GRACE - Duration::from_millis(1));
    assert_eq!(c.peek_stored("noTtl"), Some("noTtl v1".into()), "within the grace window");
    clock.advance(Duration::from_millis(1));
    assert_eq!(c.peek_stored("noTtl"), None, "past the grace window");
    assert_eq!(served_while_down(&c, "noTtl"), None);

    // and a hard invalidation still removes such an entry
    tagged(&c, "noTtl", None, &["t"]);
    assert_eq!(block_on(c.invalidate_tag("t", true)).unwrap(), 1);
    assert_eq!(c.peek_stored("noTtl"), None);

    // no grace window: nothing to fall back on, the entry is gone at once
    let c: Cache<String> = Cache::builder().ttl(TTL).clock(clock.clone()).build().unwrap();
    tagged(&c, "noTtl", None, &["t"]);
    assert_eq!(block_on(c.invalidate_tag("t", false)).unwrap(), 1);
    assert_eq!((c.peek_stored("noTtl"), served_while_down(&c, "noTtl")), (None, None));
}

/// The same two promises with a shared tier: the invalidating instance bumps the tag's version
/// in L2 and tells the others on the bus, which apply it to their own L1 copies.
mod shared {
    use super::*;

    use common::fake_l2::{FakeL2, Never};
    use healcache::tier::MsgPack;

    fn instance(redis: &FakeL2, clock: &ManualClock) -> Cache<String> {
        let b = Cache::builder().ttl(TTL).grace(GRACE).clock(clock.clone()).timer(Never);
        b.shared_tier(redis.clone(), MsgPack::<String>::new()).build().unwrap()
    }

    /// Counts what a cache's bus callbacks report, to tell a message arrived.
    fn received(c: &Cache<String>) -> u64 {
        c.stats().l2_tag_received
    }

    /// P7 in a fleet: `a` invalidates soft then hard; `b`, told on the bus, keeps its copies as
    /// fallbacks after the soft message (the one without expiry too, for the grace window) and
    /// removes them after the hard one. `a`'s own copies go the same way.
    #[test]
    fn p7_soft_then_hard_invalidation_holds_across_instances() {
        let (redis, clock) = (FakeL2::default(), ManualClock::new());
        let (a, b) = (instance(&redis, &clock), instance(&redis, &clock));
        tagged(&a, "a:ttl", Some(TTL), &["t"]);
        tagged(&a, "a:never", None, &["t"]);
        tagged(&b, "b:ttl", Some(TTL), &["t"]);
        tagged(&b, "b:never", None, &["t"]);
        redis.deliver();
        let before = received(&b);

        assert_eq!(block_on(a.invalidate_tag("t", false)).unwrap(), 2, "a's two fresh copies");
        assert_eq!(redis.deliver(), 1);
        assert_eq!(received(&b), before + 1, "b heard the soft invalidation");
        for (c, k) in [(&a, "a:ttl"), (&a, "a:never"), (&b, "b:ttl"), (&b, "b:never")] {
            assert_eq!(c.peek(k), None, "{k}: not fresh");
            assert_eq!(c.peek_stored(k), Some(format!("{k} v1")), "{k}: stale, kept as a fallback");
        }

        assert_eq!(block_on(a.invalidate_tag("t", true)).unwrap(), 0, "no fresh copy left in a");
        assert_eq!(redis.deliver(), 1);
        assert_eq!(received(&b), before + 2, "b heard the hard invalidation");
        for (c, k) in [(&a, "a:ttl"), (&a, "a:never"), (&b, "b:ttl"), (&b, "b:never")] {
            assert_eq!(c.peek_stored(k), None, "{k}: removed");
        }
        assert_eq!((a.len(), b.len()), (0, 0));
    }

    /// P7 with L2 unreachable: the soft invalidation still makes this process's copies stale (the
    /// one without expiry kept for the grace window) and says `L2Unavailable`; once L2 answers
    /// again, a hard invalidation removes them.
    #[test]
    fn p7_a_soft_invalidation_l2_missed_is_still_followed_by_a_hard_one() {
        let (redis, clock) = (FakeL2::default(), ManualClock::new());
        let a = instance(&redis, &clock);
        tagged(&a, "a:ttl", Some(TTL), &["t"]);
        tagged(&a, "a:never", None, &["t"]);
        redis.set_down(true);
        assert_eq!(block_on(a.invalidate_tag("t", false)).unwrap_err().code(), "L2Unavailable");
        for k in ["a:ttl", "a:never"] {
            assert_eq!(a.peek(k), None, "{k}: not fresh");
            assert_eq!(a.peek_stored(k), Some(format!("{k} v1")), "{k}: stale, kept as a fallback");
        }
        redis.set_down(false);
        assert_eq!(block_on(a.invalidate_tag("t", true)).unwrap(), 0);
        for k in ["a:ttl", "a:never"] {
            assert_eq!(a.peek_stored(k), None, "{k}: removed");
        }
    }
}
