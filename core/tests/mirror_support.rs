//! What a host that mirrors entries (the JS packages) needs from the core: the expiry a write
//! decided, reads that count nothing (`peek_entry`), hits recorded without reading values
//! (`record_hits`), a write that may store a value made from the one it replaces
//! (`write_adopting`), and the live keys.

use std::time::Duration;

use healcache::{Cache, ManualClock, Ttl, WriteOptions};

fn cache(clock: &ManualClock) -> Cache<u64> {
    Cache::builder().clock(clock.clone()).ttl(Duration::from_secs(10)).build().unwrap()
}

#[test]
fn a_write_returns_the_expiry_it_decided() {
    let clock = ManualClock::new();
    let c = cache(&clock);
    let w = c.write_entry("a", 1, WriteOptions::default()).unwrap();
    assert_eq!(w.expires_in, Some(Duration::from_secs(10)));
    assert_eq!(w.version, c.version("a"));
    let w =
        c.write_entry("b", 2, WriteOptions { ttl: Ttl::For(Duration::from_millis(250)), if_version: None }).unwrap();
    assert_eq!(w.expires_in, Some(Duration::from_millis(250)));
    let w = c.write_entry("c", 3, WriteOptions { ttl: Ttl::Never, if_version: None }).unwrap();
    assert_eq!(w.expires_in, None);
    // a refused write decides nothing
    assert!(c.write_entry("a", 9, WriteOptions { ttl: Ttl::Default, if_version: Some(12345) }).is_err());
    assert_eq!(c.get("a"), Some(1));
    // what a write said is what a read sees
    clock.advance(Duration::from_millis(100));
    assert_eq!(c.get_entry("b").unwrap().expires_in, Some(Duration::from_millis(150)));
}

#[test]
fn with_jitter_the_write_says_which_expiry_it_chose() {
    let clock = ManualClock::new();
    let c: Cache<u64> =
        Cache::builder().clock(clock.clone()).ttl(Duration::from_secs(10)).ttl_jitter(0.5).seed(3).build().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..100 {
        let key = format!("k{i}");
        let w = c.write_entry(&key, i, WriteOptions::default()).unwrap();
        let e = w.expires_in.unwrap();
        assert!(e >= Duration::from_secs(10) && e < Duration::from_secs(15), "{e:?}");
        // the core keeps it fresh exactly that long
        assert_eq!(c.peek_entry(&key).unwrap().expires_in, Some(e));
        seen.insert(e);
    }
    assert!(seen.len() > 90, "the jitter spreads expiries");
}

#[test]
fn peek_entry_counts_nothing() {
    let clock = ManualClock::new();
    let c = cache(&clock);
    c.set("a", 1).unwrap();
    let before = c.stats();
    let e = c.peek_entry("a").unwrap();
    assert_eq!((e.value, e.version), (1, c.version("a")));
    assert!(c.peek_entry("absent").is_none());
    let after = c.stats();
    assert_eq!((after.hits, after.misses), (before.hits, before.misses));
    clock.advance(Duration::from_secs(11));
    assert!(c.peek_entry("a").is_none());
}

#[test]
fn record_hits_counts_hits_without_reading() {
    let clock = ManualClock::new();
    let c = cache(&clock);
    c.set("a", 1).unwrap();
    c.set("b", 2).unwrap();
    c.record_hits(&["a", "b", "absent"], 48);
    c.record_hits::<&str>(&[], 2);
    let s = c.stats();
    assert_eq!((s.hits, s.misses), (50, 0));
    // a key past its TTL is passed over: no miss, no removal
    clock.advance(Duration::from_secs(11));
    c.record_hits(&["a"], 1);
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.entries), (51, 0, 2));
}

#[test]
fn recorded_reads_protect_from_eviction() {
    // one shard of 64: the keys whose mirror hits are recorded survive a flood of new keys
    let c: Cache<u64> = Cache::builder().max_entries(64).shards(1).seed(5).build().unwrap();
    for i in 0..64 {
        c.set(&format!("k{i}"), i).unwrap();
    }
    let hot: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
    for round in 0..200 {
        c.record_hits(&hot, 64);
        c.set(&format!("new{round}"), round).unwrap();
    }
    let kept = hot.iter().filter(|k| c.contains(k)).count();
    assert!(kept >= 7, "only {kept} of 8 hot keys kept");
}

#[test]
fn keys_lists_every_live_key_once() {
    let clock = ManualClock::new();
    let c = cache(&clock);
    assert!(c.keys().is_empty());
    for i in 0..500 {
        c.set(&format!("k{i}"), i).unwrap();
    }
    c.set_with_ttl("short", 1, Some(Duration::from_secs(1))).unwrap();
    c.remove("k7");
    clock.advance(Duration::from_secs(2));
    let mut keys: Vec<String> = c.keys();
    keys.sort();
    let mut want: Vec<String> = (0..500).filter(|&i| i != 7).map(|i| format!("k{i}")).collect();
    want.sort();
    assert_eq!(keys, want);
}

/// A mirror enters a new key and an overwrite differently, and learns which one a write was from
/// the write's answer.
#[test]
fn a_write_says_whether_it_replaced_a_live_entry() {
    let clock = ManualClock::new();
    let c = cache(&clock);
    let opts = WriteOptions::default;
    assert!(!c.write_entry("a", 1, opts()).unwrap().replaced, "a new key");
    assert!(c.write_entry("a", 2, opts()).unwrap().replaced, "an overwrite of a live value");
    // a refused write replaced nothing, and the next write still finds the live value
    assert!(c.write_entry("a", 9, WriteOptions { ttl: Ttl::Default, if_version: Some(12345) }).is_err());
    assert!(c.write_entry("a", 3, opts()).unwrap().replaced);
    // an entry that expired is not live: the write is a new key's for the mirror
    clock.advance(Duration::from_secs(11));
    assert!(!c.write_entry("a", 4, opts()).unwrap().replaced, "over an expired entry");
    // a removed key is gone
    c.remove("a");
    assert!(!c.write_entry("a", 5, opts()).unwrap().replaced, "after a remove");
}

/// A write that may adopt a value made from the one it replaces (the JS wrapper keeps the
/// handle of a value it overwrites) asks only about a fresh entry, under the write itself: what
/// it answers is stored, `None` stores the value given, and the replaced value is reported.
#[test]
fn a_write_adopting_asks_only_about_the_fresh_value_it_replaces() {
    use std::sync::{Arc, Mutex};
    let clock = ManualClock::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&heard);
    let c: Cache<u64> = Cache::builder()
        .clock(clock.clone())
        .ttl(Duration::from_secs(10))
        .on_removal(move |k, v, cause| h.lock().unwrap().push((k.to_owned(), v, cause)))
        .build()
        .unwrap();
    let asked = std::cell::RefCell::new(Vec::new());
    let mut adopt = |old: &u64| {
        asked.borrow_mut().push(*old);
        (*old < 10).then_some(old + 100)
    };
    let w = c.write_adopting("a", 1, &mut adopt).unwrap();
    assert!(!w.replaced);
    assert_eq!(c.get("a"), Some(1), "a new key: the value given");
    let w = c.write_adopting("a", 2, &mut adopt).unwrap();
    assert!(w.replaced);
    assert_eq!((c.get("a"), w.version), (Some(101), c.version("a")), "the adopted value, at the new version");
    assert_eq!(w.expires_in, Some(Duration::from_secs(10)), "the default TTL");
    c.write_adopting("a", 3, &mut adopt).unwrap();
    assert_eq!(c.get("a"), Some(3), "adopt answered None: the value given");
    // an expired entry is not asked about
    clock.advance(Duration::from_secs(11));
    c.write_adopting("a", 4, &mut adopt).unwrap();
    assert_eq!(c.get("a"), Some(4));
    assert_eq!(*asked.borrow(), [1, 101], "asked about the two fresh values it replaced, not about the expired one");
    // a refused key (over the default 4,096 bytes) changes nothing and asks nothing
    assert_eq!(c.write_adopting(&"k".repeat(4097), 5, &mut adopt).unwrap_err().code(), "KeyTooLong");
    assert_eq!(asked.borrow().len(), 2);
    let heard = heard.lock().unwrap();
    let replaced: Vec<u64> = heard.iter().filter(|e| e.2 == healcache::RemovalCause::Replaced).map(|e| e.1).collect();
    assert_eq!(replaced, [1, 101], "each replaced fresh value reported once");
}
