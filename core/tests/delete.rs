//! What a delete answers: whether it removed a live entry, with or without a version condition.

use std::time::Duration;

use healcache::{Cache, Error, ManualClock};

/// A compare-and-delete answers whether it removed a live entry: version 0 of an absent or
/// expired key holds and removes nothing live (false), the live version removes it (true), any
/// other version is a mismatch that changes nothing.
#[test]
fn a_compare_and_delete_answers_whether_it_removed_a_live_entry() {
    let clock = ManualClock::new();
    let c: Cache<u32> = Cache::builder().clock(clock.clone()).build().unwrap();
    c.set("other", 7).unwrap();
    assert!(!c.remove_if_version("never-written", 0).unwrap(), "nothing live was removed");
    assert_eq!((c.len(), c.get("other")), (1, Some(7)), "and nothing changed");
    c.set_with_ttl("expired", 1, Some(Duration::from_secs(1))).unwrap();
    clock.advance(Duration::from_secs(2));
    assert!(!c.remove_if_version("expired", 0).unwrap());
    assert_eq!(c.get("expired"), None);

    let v = c.set("live", 2).unwrap();
    assert!(matches!(c.remove_if_version("live", v + 1), Err(Error::VersionMismatch { .. })));
    assert!(matches!(c.remove_if_version("live", 0), Err(Error::VersionMismatch { expected: 0, .. })));
    assert_eq!(c.get("live"), Some(2), "a mismatch changes nothing");
    assert!(c.remove_if_version("live", v).unwrap(), "the live version removes it");
    assert_eq!(c.get("live"), None);
}
