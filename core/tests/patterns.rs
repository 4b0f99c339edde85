//! The microservice patterns in one process: batch reads (`fetch_many`), write-through, and
//! warming with a readiness check.
//!
//! Promises checked: bad input gets a typed error and changes nothing; nothing is lost or
//! hidden silently (a failed write-through caches nothing, a failed batch is reported and keeps
//! the cache not ready); single flight (a key loading elsewhere is not loaded again by a batch).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use futures::future::FutureExt;
use healcache::{Cache, Error, FetchOptions, Status, Warm, WriteThrough};

type Calls = Arc<Mutex<Vec<Vec<String>>>>;

/// A batch loader that records every call and finds every key but those starting with "no:".
fn recording(
    calls: &Calls,
) -> impl Fn(Vec<String>) -> futures::future::Ready<Result<HashMap<String, u64>, std::io::Error>> {
    let calls = calls.clone();
    move |keys: Vec<String>| {
        calls.lock().unwrap().push(keys.clone());
        let found = keys.into_iter().filter(|k| !k.starts_with("no:")).map(|k| (k.clone(), k.len() as u64)).collect();
        futures::future::ready(Ok(found))
    }
}

#[test]
fn fetch_many_loads_only_what_no_layer_answered_in_one_call() {
    let cache = Cache::<u64>::builder().negative_ttl(std::time::Duration::from_secs(60)).build().unwrap();
    cache.set("a", 100).unwrap();
    let calls = Calls::default();
    let got = block_on(cache.fetch_many(&["a", "bb", "no:1", "bb", "ccc"], FetchOptions::default(), recording(&calls)))
        .unwrap();
    let mut asked = calls.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "one loader call: {asked:?}");
    asked[0].sort();
    assert_eq!(asked[0], ["bb", "ccc", "no:1"]);
    let values: Vec<Option<u64>> = got.iter().map(|f| f.value).collect();
    assert_eq!(
        values,
        [Some(100), Some(2), None, Some(2), Some(3)],
        "answers in the order asked, a repeat answered twice"
    );
    assert_eq!(got[0].status, Status::Hit);
    assert_eq!(got[1].status, Status::Loaded);
    assert_eq!(got[2].status, Status::NegativeLoaded);
    // everything is cached now, the absent key as absent: no call at all
    let again =
        block_on(cache.fetch_many(&["a", "bb", "no:1", "ccc"], FetchOptions::default(), recording(&calls))).unwrap();
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(again[2].status, Status::NegativeHit);
    assert!(block_on(cache.fetch_many(&[] as &[&str], FetchOptions::default(), recording(&calls))).unwrap().is_empty());
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[test]
fn fetch_many_leaves_a_key_loading_elsewhere_to_its_flight() {
    let cache = Cache::<u64>::builder().build().unwrap();
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    // another caller is loading "x", slowly
    let other = cache.get_or_load("x", move || async move {
        rx.await.unwrap();
        Ok::<_, std::io::Error>(7)
    });
    let mut other = Box::pin(other);
    assert!((&mut other).now_or_never().is_none());
    let calls = Calls::default();
    let many = cache.fetch_many(&["x", "y"], FetchOptions::default(), recording(&calls));
    let both = futures::future::join(many, async move {
        tx.send(()).unwrap();
        other.await
    });
    let (many, other) = block_on(both);
    assert_eq!(other.unwrap(), 7);
    let many = many.unwrap();
    assert_eq!(calls.lock().unwrap().clone(), [vec!["y".to_string()]], "x was not loaded again");
    assert_eq!((many[0].value, many[0].status), (Some(7), Status::Coalesced));
    assert_eq!(many[1].value, Some(1));
}

#[test]
fn fetch_many_gives_a_loader_error_to_every_key_and_caches_nothing() {
    let cache = Cache::<u64>::builder().build().unwrap();
    let calls = AtomicUsize::new(0);
    let calls = Arc::new(calls);
    let c = calls.clone();
    let failing = move |_keys: Vec<String>| {
        c.fetch_add(1, SeqCst);
        async { Err::<HashMap<String, u64>, _>(std::io::Error::other("origin down")) }
    };
    let e = block_on(cache.fetch_many(&["a", "b", "c"], FetchOptions::default(), failing)).unwrap_err();
    assert!(matches!(e, Error::Loader(_)), "{e:?}");
    assert!(e.to_string().contains("origin down"), "{e}");
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(cache.len(), 0);
}

/// At most `max_in_flight` distinct keys per call: at the bound it works, one more is refused
/// before anything is read or loaded; so is a key over `max_key_len`.
#[test]
fn fetch_many_bounds_hold_at_the_bound() {
    let cache = Cache::<u64>::builder().max_in_flight(4).max_key_len(8).build().unwrap();
    let calls = Calls::default();
    let four = ["a", "b", "c", "d", "a"];
    assert_eq!(block_on(cache.fetch_many(&four, FetchOptions::default(), recording(&calls))).unwrap().len(), 5);
    let five = ["a", "b", "c", "d", "e"];
    let e = block_on(cache.fetch_many(&five, FetchOptions::default(), recording(&calls))).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "keys", .. }), "{e:?}");
    let e = block_on(cache.fetch_many(&["f", "123456789"], FetchOptions::default(), recording(&calls))).unwrap_err();
    assert!(matches!(e, Error::KeyTooLong { len: 9, max: 8 }), "{e:?}");
    assert_eq!(calls.lock().unwrap().len(), 1, "refused calls loaded nothing");
    assert!(!cache.contains("e") && !cache.contains("f"));
}

#[test]
fn write_through_writes_the_source_first_and_caches_only_on_success() {
    let cache = Cache::<u64>::builder().build().unwrap();
    cache.set("stock", 1).unwrap();
    let seen = Arc::new(Mutex::new(None));
    let (c, s) = (cache.clone(), seen.clone());
    let writer = move || {
        // the writer runs before the cache changes
        *s.lock().unwrap() = c.get("stock");
        async { Ok::<(), std::io::Error>(()) }
    };
    let v = block_on(cache.write_through("stock", 2, WriteThrough::default(), writer)).unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(1));
    assert_eq!((cache.get("stock"), cache.version("stock")), (Some(2), v));
    let failing = || async { Err::<(), _>(std::io::Error::other("constraint violated")) };
    let e = block_on(cache.write_through("stock", 3, WriteThrough::default(), failing)).unwrap_err();
    match &e {
        Error::Loader(le) => assert!(le.downcast_ref::<std::io::Error>().is_some(), "the writer's own error"),
        other => panic!("{other:?}"),
    }
    assert_eq!((cache.get("stock"), cache.version("stock")), (Some(2), v), "a failed writer changes nothing");
    let opts = WriteThrough { invalidate: true, ..WriteThrough::default() };
    let ok = || async { Ok::<(), std::io::Error>(()) };
    assert_eq!(block_on(cache.write_through("stock", 4, opts, ok)).unwrap(), 0);
    assert_eq!(cache.get("stock"), None, "invalidated, not written");
}

#[test]
fn write_through_refuses_bad_input_before_the_writer_runs() {
    let cache = Cache::<u64>::builder().max_key_len(4).max_entry_bytes(16).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let writer = |ran: &Arc<AtomicUsize>| {
        let ran = ran.clone();
        move || {
            ran.fetch_add(1, SeqCst);
            async { Ok::<(), std::io::Error>(()) }
        }
    };
    let e = block_on(cache.write_through("12345", 1, WriteThrough::default(), writer(&ran))).unwrap_err();
    assert!(matches!(e, Error::KeyTooLong { .. }), "{e:?}");
    let zero = WriteThrough { ttl: healcache::Ttl::For(std::time::Duration::ZERO), ..WriteThrough::default() };
    let e = block_on(cache.write_through("k", 1, zero, writer(&ran))).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "ttl", .. }), "{e:?}");
    // 8 bytes of u64 + a key of 4 bytes = 12: within 16; a weigher makes it too heavy
    let heavy = Cache::<u64>::builder().max_entry_bytes(16).weigher(|_| 13).build().unwrap();
    let e = block_on(heavy.write_through("abcd", 1, WriteThrough::default(), writer(&ran))).unwrap_err();
    assert!(matches!(e, Error::ValueTooLarge { weight: 17, max: 16 }), "{e:?}");
    assert_eq!(ran.load(SeqCst), 0, "no writer ran");
    block_on(heavy.write_through("abc", 1, WriteThrough::default(), writer(&ran))).unwrap();
    assert_eq!(ran.load(SeqCst), 1, "at the bound (16) it is written");
}

#[test]
fn warm_loads_every_key_in_batches_and_reports_readiness() {
    let cache = Cache::<u64>::builder().max_entries(10_000).build().unwrap();
    assert!(cache.ready(), "never warmed: ready");
    assert!(cache.prometheus("c").contains("healcache_ready{cache=\"c\"} 1\n"));
    let keys: Vec<String> = (0..1000).map(|i| if i % 10 == 0 { format!("no:{i}") } else { format!("k:{i}") }).collect();
    let calls = Calls::default();
    let c2 = cache.clone();
    let saw_not_ready = Arc::new(AtomicUsize::new(0));
    let s = saw_not_ready.clone();
    let load = {
        let record = recording(&calls);
        move |keys: Vec<String>| {
            if !c2.ready() {
                s.fetch_add(1, SeqCst);
            }
            record(keys)
        }
    };
    let opts = Warm { batch: Some(64), concurrency: 3, ..Warm::default() };
    let report = block_on(cache.warm(&keys, opts, load)).unwrap();
    assert_eq!((report.total, report.found, report.not_found, report.failed), (1000, 900, 100, 0));
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 16, "1000 keys in batches of 64");
    assert!(calls.iter().all(|c| c.len() <= 64));
    assert_eq!(saw_not_ready.load(SeqCst), 16, "not ready while warming");
    let text = cache.prometheus("c");
    assert!(text.contains("healcache_warm_keys_total{cache=\"c\",outcome=\"answered\"} 1000\n"), "{text}");
    assert!(text.contains("healcache_warm_keys_total{cache=\"c\",outcome=\"failed\"} 0\n"));
    assert!(cache.ready());
    assert_eq!(cache.warm_progress(), (1000, 0, 1000));
    assert_eq!(cache.get("k:1"), Some(3));
}

#[test]
fn a_failed_warm_batch_is_reported_and_keeps_the_cache_not_ready() {
    let cache = Cache::<u64>::builder().build().unwrap();
    let keys: Vec<String> = (0..10).map(|i| format!("k:{i}")).collect();
    let load = |keys: Vec<String>| async move {
        if keys.contains(&"k:0".to_string()) {
            return Err(std::io::Error::other("origin down"));
        }
        Ok(keys.into_iter().map(|k| (k, 1u64)).collect::<HashMap<_, _>>())
    };
    let opts = Warm { batch: Some(5), ..Warm::default() };
    let r = block_on(cache.warm(&keys, opts, load)).unwrap();
    assert_eq!((r.found, r.failed), (5, 5));
    assert!(r.error.as_deref().unwrap().contains("origin down"));
    assert!(!cache.ready(), "half the keys is less than min_share 1.0");
    let text = cache.prometheus("c");
    assert!(text.contains("healcache_warm_keys_total{cache=\"c\",outcome=\"failed\"} 5\n"), "{text}");
    assert!(text.contains("healcache_ready{cache=\"c\"} 0\n"));
    let lenient = Cache::<u64>::builder().build().unwrap();
    let r = block_on(lenient.warm(&keys, Warm { batch: Some(5), min_share: 0.5, ..Warm::default() }, load)).unwrap();
    assert_eq!(r.failed, 5);
    assert!(lenient.ready(), "half the keys meets min_share 0.5");
    // a dropped warm-up is not running any more
    let dropped = Cache::<u64>::builder().build().unwrap();
    let slow = |_k: Vec<String>| futures::future::pending::<Result<HashMap<String, u64>, std::io::Error>>();
    let mut w = Box::pin(dropped.warm(&keys, Warm::default(), slow));
    assert!((&mut w).now_or_never().is_none());
    assert!(!dropped.ready());
    assert!(dropped.prometheus("d").contains("healcache_warm_running{cache=\"d\"} 1\n"));
    drop(w);
    assert!(dropped.prometheus("d").contains("healcache_warm_running{cache=\"d\"} 0\n"));
    assert!(!dropped.ready(), "10 keys asked, none answered");
    assert_eq!(dropped.warm_progress(), (0, 0, 10));
}

/// The default batch fits any cache: below 100 loads in flight it is `max_in_flight` keys, not a
/// default the cache's own bound refuses; and a warm-up runs no more batches at once than that
/// bound allows.
#[test]
fn the_default_warm_batch_is_at_most_max_in_flight() {
    let cache = Cache::<u64>::builder().max_in_flight(5).build().unwrap();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sizes);
    let load = move |k: Vec<String>| {
        seen.lock().unwrap().push(k.len());
        let m: HashMap<String, u64> = k.into_iter().map(|k| (k, 1u64)).collect();
        async move { Ok::<_, std::io::Error>(m) }
    };
    let keys: Vec<String> = (0..12).map(|i| format!("k:{i}")).collect();
    let r = block_on(cache.warm(&keys, Warm::default(), load.clone())).unwrap();
    assert_eq!(r.found, 12);
    let mut got = sizes.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, [2, 5, 5]);
    // 8 batches of 2 at once would load 16 keys: fewer batches run at once, none fails
    let fresh = Cache::<u64>::builder().max_in_flight(5).build().unwrap();
    let r = block_on(fresh.warm(&keys, Warm { batch: Some(2), ..Warm::default() }, load.clone())).unwrap();
    assert_eq!((r.found, r.failed), (12, 0));
    // given, a batch over the bound is still refused
    let e = block_on(cache.warm(&keys, Warm { batch: Some(6), ..Warm::default() }, load)).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "batch", .. }), "{e:?}");
}

#[test]
fn warm_options_are_checked_at_their_bounds() {
    let cache = Cache::<u64>::builder().max_in_flight(100).build().unwrap();
    let load = |k: Vec<String>| async move {
        Ok::<_, std::io::Error>(k.into_iter().map(|k| (k, 1u64)).collect::<HashMap<_, _>>())
    };
    let keys = ["a", "b"];
    for (opts, field) in [
        (Warm { concurrency: 0, ..Warm::default() }, "concurrency"),
        (Warm { concurrency: 1025, ..Warm::default() }, "concurrency"),
        (Warm { batch: Some(0), ..Warm::default() }, "batch"),
        (Warm { batch: Some(101), ..Warm::default() }, "batch"),
        (Warm { min_share: 1.01, ..Warm::default() }, "min_share"),
        (Warm { max_keys: 0, ..Warm::default() }, "max_keys"),
        (Warm { max_keys: healcache::MAX_PATTERN_KEYS + 1, ..Warm::default() }, "max_keys"),
    ] {
        let e = block_on(cache.warm(&keys, opts, load)).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { field: f, .. } if f == field), "{e:?}");
    }
    assert_eq!(cache.warm_progress(), (0, 0, 0), "refused warm-ups count nothing");
    for opts in [
        Warm { concurrency: 1024, batch: Some(100), min_share: 0.0, max_keys: healcache::MAX_PATTERN_KEYS },
        Warm { concurrency: 1, batch: Some(1), min_share: 1.0, max_keys: 1 },
    ] {
        assert_eq!(block_on(cache.warm(&keys, opts, load)).unwrap().found, 2);
    }
    // a key pattern is listed from the shared tier: without one it is refused, nothing loaded
    let e = block_on(cache.warm_matching("user:*", Warm::default(), load)).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "pattern", .. }), "{e:?}");
    assert_eq!(cache.warm_progress(), (4, 0, 4));
    // a loader answering a key it was not asked for does not cache it
    let extra = |k: Vec<String>| async move {
        let mut m: HashMap<String, u64> = k.into_iter().map(|k| (k, 1u64)).collect();
        m.insert("unasked".into(), 9);
        Ok::<_, std::io::Error>(m)
    };
    block_on(cache.fetch_many(&["z"], FetchOptions::default(), extra)).unwrap();
    assert!(!cache.contains("unasked"));
}
