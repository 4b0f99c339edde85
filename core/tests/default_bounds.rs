//! The default bounds (P5, "Everything is bounded"), with each bound left at its default:
//! `max_key_len` 4,096 bytes and `max_in_flight` 10,000 keys; negative entries at most
//! `max_negative_share` (0.1) of `max_entries`, rounded down; and healing's `max_prefixes`
//! (1,024), `max_samples` (100,000), `source_concurrency` (16) and `score_window` (1,000). Other
//! tests check these bounds at small configured values; these check the defaults the README
//! states, exactly at the bound and one past it.
//!
//! In the `max_in_flight` test, loads are held open by a gate the test opens: each loader awaits
//! one shared receiver, and the calls are polled once by hand (a no-op waker), so every flight is
//! under way at the same time without a runtime or a timer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::oneshot;
use futures::executor::block_on;
use futures::future::{self, FutureExt};
use futures::task::noop_waker_ref;
use healcache::{
    Cache, ConfigProblem, Error, FetchOptions, Fetched, FnSource, Healer, HealingConfig, Loaded, SourceAnswer,
    SourceError, Status,
};

const MAX_KEY_LEN: usize = 4096;
const MAX_IN_FLIGHT: usize = 10_000;

/// A cache with every setting at its default.
fn default_cache() -> Cache<u64> {
    let cache = Cache::builder().build().unwrap();
    // the defaults under test are the ones the README states
    assert_eq!(cache.config().max_key_len, MAX_KEY_LEN as f64);
    assert_eq!(cache.config().max_in_flight, MAX_IN_FLIGHT as f64);
    cache
}

/// `k<i>` for each i in `0..n`: distinct keys whose loader answers `i`.
fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

fn index(key: &str) -> u64 {
    key[1..].parse().unwrap()
}

/// A loader that must not run (its key is refused, or answered from the cache); counts its calls.
fn counted(calls: &Arc<AtomicUsize>) -> impl FnOnce() -> future::Ready<Result<u64, std::io::Error>> {
    let calls = calls.clone();
    move || {
        calls.fetch_add(1, SeqCst);
        future::ready(Ok(0))
    }
}

type Batches = Arc<Mutex<Vec<usize>>>;

/// A batch loader that finds every key (`k<i>` is `i`) and records how many keys each call got.
fn batch_loader(
    batches: &Batches,
) -> impl Fn(Vec<String>) -> future::Ready<Result<HashMap<String, u64>, std::io::Error>> + Send + Sync + 'static {
    let batches = batches.clone();
    move |ks: Vec<String>| {
        batches.lock().unwrap().push(ks.len());
        future::ready(Ok(ks.into_iter().map(|k| (k.clone(), index(&k))).collect()))
    }
}

/// Asserts `r` is `KeyTooLong` for a key of `len` bytes against the default limit.
fn assert_key_too_long<T: std::fmt::Debug>(r: healcache::Result<T>, len: usize) {
    match r {
        Err(Error::KeyTooLong { len: l, max }) => assert_eq!((l, max), (len, MAX_KEY_LEN)),
        other => panic!("expected KeyTooLong {{ len: {len}, max: {MAX_KEY_LEN} }}, got {other:?}"),
    }
}

/// Checks that a key of exactly 4,096 bytes (`at`) works with every call, and that a key one
/// byte longer (`past`) is refused with `KeyTooLong` by every call, changing nothing.
fn check_key_bound(at: &str, past: &str) {
    assert_eq!((at.len(), past.len()), (MAX_KEY_LEN, MAX_KEY_LEN + 1));
    let cache = default_cache();
    let calls = Arc::new(AtomicUsize::new(0));

    // at the bound: written, read, answered from the cache without a load, and loaded when absent
    let v = cache.set(at, 7).unwrap();
    assert!(v > 0);
    assert_eq!(cache.get(at), Some(7));
    assert_eq!(block_on(cache.get_or_load(at, counted(&calls))).unwrap(), 7);
    assert_eq!(calls.load(SeqCst), 0, "a cached key at the bound is not loaded");
    assert_eq!(cache.remove(at), Some(7));
    let f = block_on(cache.fetch(at, FetchOptions::default(), || async { Ok::<_, std::io::Error>(Loaded::Value(8)) }));
    assert_eq!(f.unwrap(), healcache::Fetched { value: Some(8), status: Status::Loaded });
    assert_eq!(cache.get(at), Some(8), "the loaded value was stored");
    let batches = Batches::default();
    let got = block_on(cache.fetch_many(&[at], FetchOptions::default(), batch_loader(&batches))).unwrap();
    assert_eq!(got[0].value, Some(8));

    // one byte past it: refused by writes, loads and batch reads alike, before any work
    let before = (cache.len(), cache.stats(), cache.version(at));
    assert_key_too_long(cache.set(past, 1), past.len());
    assert_key_too_long(cache.set_if_version(past, 1, 0), past.len());
    assert_key_too_long(block_on(cache.get_or_load(past, counted(&calls))), past.len());
    let f =
        block_on(cache.fetch(past, FetchOptions::default(), || async { Ok::<_, std::io::Error>(Loaded::Value(1)) }));
    assert_key_too_long(f, past.len());
    // a batch with one key over the bound is refused whole: the key at the bound is not read either
    assert_key_too_long(
        block_on(cache.fetch_many(&[at, past], FetchOptions::default(), batch_loader(&batches))),
        past.len(),
    );
    assert_eq!(calls.load(SeqCst), 0, "no loader ran for a refused key");
    assert!(batches.lock().unwrap().is_empty(), "no batch loader ran");
    assert!(!cache.contains(past));
    assert_eq!((cache.len(), cache.stats(), cache.version(at)), before, "refused calls changed nothing");
}

/// P5: a key is at most `max_key_len` bytes, 4,096 by default. A key of exactly 4,096 bytes is
/// written, read and loaded; one of 4,097 is `KeyTooLong { len: 4097, max: 4096 }` from `set`,
/// `set_if_version`, `get_or_load`, `fetch` and `fetch_many`, and the cache's entries and stats
/// stay as they were.
#[test]
fn p5_default_max_key_len_is_4096_bytes() {
    check_key_bound(&"k".repeat(MAX_KEY_LEN), &"k".repeat(MAX_KEY_LEN + 1));
}

/// P5: the key bound counts UTF-8 bytes, not characters: 2,048 two-byte characters (4,096 bytes)
/// are accepted, while 1,024 four-byte characters and one ASCII letter (1,025 characters, 4,097
/// bytes) are `KeyTooLong { len: 4097 }`.
#[test]
fn p5_default_max_key_len_counts_utf8_bytes() {
    let at = "é".repeat(MAX_KEY_LEN / 2);
    let past = format!("{}a", "😀".repeat(MAX_KEY_LEN / 4));
    assert_eq!((at.chars().count(), past.chars().count()), (2048, 1025));
    check_key_bound(&at, &past);
}

/// P5: at most `max_in_flight` distinct keys load at once, 10,000 by default. With 10,000
/// loads held open by a gate, all 10,000 are under way; a caller of one of those keys joins its
/// flight, while the 10,001st distinct key is `TooManyLoads { max: 10000 }` and its loader never
/// runs. Once the gate opens, all 10,000 complete with their own values and are stored, and the
/// 10,001st key loads.
#[test]
fn p5_default_max_in_flight_is_10000_loads() {
    let cache = default_cache();
    let ks = keys(MAX_IN_FLIGHT + 1);
    let (open, gate) = oneshot::channel::<()>();
    let gate = gate.shared();
    let started = Arc::new(AtomicUsize::new(0));
    let mut loads: Vec<Pin<Box<dyn Future<Output = healcache::Result<u64>> + Send + '_>>> = ks[..MAX_IN_FLIGHT]
        .iter()
        .map(|k| {
            let (gate, started, i) = (gate.clone(), started.clone(), index(k));
            cache
                .get_or_load(k, move || async move {
                    started.fetch_add(1, SeqCst);
                    gate.await.expect("the gate opens");
                    Ok::<_, std::io::Error>(i)
                })
                .boxed()
        })
        .collect();
    let mut cx = Context::from_waker(noop_waker_ref());
    for (k, load) in ks.iter().zip(&mut loads) {
        assert!(load.as_mut().poll(&mut cx).is_pending(), "{k} was not refused and waits for the gate");
    }
    assert_eq!(started.load(SeqCst), MAX_IN_FLIGHT, "every loader runs and waits");
    assert_eq!(cache.in_flight(), MAX_IN_FLIGHT);

    // a caller of a key already loading does not start a load: it joins, it is not refused
    let calls = Arc::new(AtomicUsize::new(0));
    let mut joined = cache.get_or_load(&ks[0], counted(&calls)).boxed();
    assert!(joined.as_mut().poll(&mut cx).is_pending());
    assert_eq!(cache.stats().coalesced, 1);

    // the 10,001st distinct key is refused, its loader never called
    let over = &ks[MAX_IN_FLIGHT];
    match block_on(cache.get_or_load(over, counted(&calls))) {
        Err(Error::TooManyLoads { max }) => assert_eq!(max, MAX_IN_FLIGHT),
        other => panic!("expected TooManyLoads {{ max: {MAX_IN_FLIGHT} }}, got {other:?}"),
    }
    let f =
        block_on(cache.fetch(over, FetchOptions::default(), || async { Ok::<_, std::io::Error>(Loaded::Value(1)) }));
    assert!(matches!(f, Err(Error::TooManyLoads { max: MAX_IN_FLIGHT })), "{f:?}");
    assert_eq!(calls.load(SeqCst), 0);
    assert_eq!(cache.in_flight(), MAX_IN_FLIGHT);
    assert!(!cache.contains(over));

    open.send(()).unwrap();
    let got = block_on(future::join_all(loads));
    for (k, r) in ks.iter().zip(got) {
        assert_eq!(r.unwrap(), index(k), "{k}");
    }
    assert_eq!(block_on(joined).unwrap(), 0, "the joined caller got k0's value");
    let s = cache.stats();
    assert_eq!((s.loads, s.load_errors, s.in_flight), (MAX_IN_FLIGHT as u64, 0, 0));
    // the default `max_entries` is 10,000 too: every loaded value is kept
    assert_eq!(cache.len(), MAX_IN_FLIGHT);
    for k in &ks[..MAX_IN_FLIGHT] {
        assert_eq!(cache.peek(k), Some(index(k)), "{k}");
    }
    // with the flights ended there is room again
    assert_eq!(block_on(cache.get_or_load(over, || async { Ok::<_, std::io::Error>(42) })).unwrap(), 42);
    assert_eq!(calls.load(SeqCst), 0, "the refused loaders never ran");
}

/// P5: a batch read takes at most `max_in_flight` distinct keys, 10,000 by default. 10,001
/// distinct keys are `InvalidConfig` (field `keys`, must not exceed `max_in_flight`, value
/// 10001) before anything is read or loaded; 10,000 distinct keys (given 10,001 times, one
/// twice) are read, loaded by one loader call, and answered in order.
#[test]
fn p5_default_batch_read_takes_10000_distinct_keys() {
    let cache = default_cache();
    let ks = keys(MAX_IN_FLIGHT + 1);
    let batches = Batches::default();

    let before = (cache.len(), cache.stats());
    match block_on(cache.fetch_many(&ks, FetchOptions::default(), batch_loader(&batches))) {
        Err(Error::InvalidConfig { field, problem, value, .. }) => {
            assert_eq!(field, "keys");
            assert!(matches!(problem, ConfigProblem::MustNotExceed("max_in_flight")), "{problem:?}");
            assert_eq!(value, Some((MAX_IN_FLIGHT + 1) as f64));
        }
        other => panic!("expected InvalidConfig for `keys`, got {other:?}"),
    }
    assert!(batches.lock().unwrap().is_empty(), "a refused batch loads nothing");
    assert_eq!((cache.len(), cache.stats()), before, "a refused batch changes nothing");

    // the bound counts distinct keys: 10,001 keys of which 10,000 differ are accepted
    let mut at: Vec<&str> = ks[..MAX_IN_FLIGHT].iter().map(String::as_str).collect();
    at.push(&ks[0]);
    let got = block_on(cache.fetch_many(&at, FetchOptions::default(), batch_loader(&batches))).unwrap();
    assert_eq!(*batches.lock().unwrap(), [MAX_IN_FLIGHT], "one loader call with every distinct key");
    assert_eq!(got.len(), MAX_IN_FLIGHT + 1);
    for (k, f) in at.iter().zip(&got) {
        assert_eq!(f.value, Some(index(k)), "{k}");
    }
    assert_eq!(cache.len(), MAX_IN_FLIGHT);
    assert_eq!(cache.in_flight(), 0);
}

const MAX_PREFIXES: usize = 1024;
const MAX_SAMPLES: u64 = 100_000;
const SOURCE_CONCURRENCY: usize = 16;
const SCORE_WINDOW: u64 = 1000;

/// The default healing settings, but for `sample_rate` 1.0: every live key is drawn, so what an
/// interval asks is known.
fn every_key() -> HealingConfig {
    let d = HealingConfig::default();
    // the defaults under test are the ones the README states
    assert_eq!(
        (d.max_prefixes, d.max_samples, d.source_concurrency, d.score_window),
        (MAX_PREFIXES as f64, MAX_SAMPLES as f64, SOURCE_CONCURRENCY as f64, SCORE_WINDOW as f64)
    );
    HealingConfig { sample_rate: 1.0, ..d }
}

type Answer = future::Ready<Result<SourceAnswer<u64>, SourceError>>;

/// A source of truth that says `k<i>` is `i` (what `keys` and `index` use).
fn index_source() -> FnSource<impl Fn(&str) -> Answer + Send + Sync + 'static> {
    FnSource(|k: &str| future::ready(Ok(SourceAnswer::Value(index(k)))))
}

/// A source that answers every key with `v`.
fn answers(v: u64) -> FnSource<impl Fn(&str) -> Answer + Send + Sync + 'static> {
    FnSource(move |_: &str| future::ready(Ok(SourceAnswer::Value(v))))
}

/// Pending once (waking itself at once), then ready: a call that yields stays under way while the
/// interval polls its other calls.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// P5: `healing.max_prefixes` defaults to 1,024: 1,024 prefixes register, the 1,025th is refused, a replacement is not.
#[test]
fn p5_default_max_prefixes_is_1024() {
    let cache = default_cache();
    let h = Healer::new(cache.clone(), HealingConfig::default()).unwrap();
    let prefix = |i: usize| format!("p{i}:");
    for i in 0..MAX_PREFIXES {
        h.register_source(&prefix(i), answers(1)).unwrap_or_else(|e| panic!("prefix {} of {MAX_PREFIXES}: {e}", i + 1));
    }
    assert_eq!(h.scores().len(), MAX_PREFIXES);
    let refused = |r: healcache::Result<()>| match r {
        Err(Error::InvalidConfig { field: "max_prefixes", problem: ConfigProblem::LimitReached { max }, .. }) => {
            assert_eq!(max, MAX_PREFIXES as f64)
        }
        other => panic!("expected InvalidConfig for `max_prefixes`, got {other:?}"),
    };
    let past = prefix(MAX_PREFIXES);
    refused(h.register_source(&past, answers(1)));
    assert!(h.score(&past).is_none(), "a refused prefix is not registered");
    assert_eq!(h.scores().len(), MAX_PREFIXES);

    // at the bound a registered prefix can still be replaced: it adds no prefix
    h.register_source(&prefix(0), answers(2)).unwrap();
    h.register_source(&prefix(MAX_PREFIXES - 1), answers(2)).unwrap();
    assert_eq!(h.scores().len(), MAX_PREFIXES);
    // and the replacement is the source asked: p0:'s key drifts from 1 to 2 and is repaired
    cache.set("p0:k", 1).unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.drawn, r.drift, r.repaired), (1, 1, 1));
    assert_eq!(cache.get("p0:k"), Some(2));
    // the replacements did not make room for one more
    refused(h.register_source(&past, answers(1)));
}

/// P5: `max_samples` defaults to 100,000: an interval draws all 100,000 live keys, and 100,000 of 100,001.
#[test]
fn p5_default_max_samples_is_100000() {
    let n = MAX_SAMPLES;
    // room for every key: no eviction decides how many are live
    let cache: Cache<u64> = Cache::builder().max_entries(2 * n).seed(5).build().unwrap();
    for k in keys(n as usize) {
        cache.set(&k, index(&k)).unwrap();
    }
    let h = Healer::new(cache.clone(), every_key()).unwrap();
    h.register_source("k", index_source()).unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.drawn, r.verified, r.consistent), (n, n, n), "at the bound: every live key drawn");

    cache.set(&format!("k{n}"), n).unwrap();
    assert_eq!(cache.len(), n as usize + 1);
    let r = block_on(h.run_interval());
    assert_eq!((r.drawn, r.verified, r.consistent, r.skipped), (n, n, n, 0), "one past it: the draw is capped");
    assert_eq!(h.score("k").unwrap().sampled, 2 * n);
}

/// P5: `source_concurrency` defaults to 16: asked about 100 keys, a source has 16 calls under way at once, never more.
#[test]
fn p5_default_source_concurrency_is_16() {
    const KEYS: u64 = 100;
    let cache = default_cache();
    for k in keys(KEYS as usize) {
        cache.set(&k, index(&k)).unwrap();
    }
    let (under_way, peak, calls) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let src = {
        let (under_way, peak, calls) = (under_way.clone(), peak.clone(), calls.clone());
        FnSource(move |k: &str| {
            let (under_way, peak, calls, i) = (under_way.clone(), peak.clone(), calls.clone(), index(k));
            async move {
                calls.fetch_add(1, SeqCst);
                peak.fetch_max(under_way.fetch_add(1, SeqCst) + 1, SeqCst);
                // stay under way over a few polls, so the interval starts its other calls meanwhile
                for _ in 0..3 {
                    YieldNow(false).await;
                }
                under_way.fetch_sub(1, SeqCst);
                Ok(SourceAnswer::Value(i))
            }
        })
    };
    let h = Healer::new(cache.clone(), every_key()).unwrap();
    h.register_source("k", src).unwrap();
    let r = block_on(h.run_interval());
    // the keys past the 16th waited their turn: every one was asked and verified
    assert_eq!((r.drawn, r.verified, r.consistent), (KEYS, KEYS, KEYS));
    assert_eq!(calls.load(SeqCst), KEYS as usize);
    assert_eq!(peak.load(SeqCst), SOURCE_CONCURRENCY, "calls under way at once, at most");
    assert_eq!(under_way.load(SeqCst), 0);
}

/// P5: `score_window` defaults to 1,000: a score counts the last 1,000 samples; the 1,001st pushes the oldest out.
#[test]
fn p5_default_score_window_is_1000_samples() {
    let cache = default_cache();
    // the source says k0 is 0: the first sample is drift (and repaired), every later one consistent
    cache.set("k0", 1).unwrap();
    let h = Healer::new(cache.clone(), every_key()).unwrap();
    h.register_source("k", index_source()).unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.drift, r.repaired), (1, 1));
    for _ in 1..SCORE_WINDOW {
        assert_eq!(block_on(h.run_interval()).consistent, 1);
    }
    // one sample per interval, so the window's order is the intervals'
    let s = h.score("k").unwrap();
    assert_eq!((s.sampled, s.score), (SCORE_WINDOW, 0.999), "at the bound: 1,000 samples, the drift among them");
    assert_eq!(block_on(h.run_interval()).consistent, 1);
    let s = h.score("k").unwrap();
    assert_eq!((s.sampled, s.score), (SCORE_WINDOW + 1, 1.0), "one past it: the oldest sample, the drift, left");
}

/// Fetches `k` with a loader answering "not found".
fn fetch_not_found(cache: &Cache<u64>, k: &str) -> Fetched<u64> {
    block_on(cache.fetch(k, FetchOptions::default(), || async { Ok::<_, std::io::Error>(Loaded::NotFound) })).unwrap()
}

/// Checks that `cache` (empty, with a `negative_ttl`) keeps `allowed` not-found answers, and that
/// the next is answered but not cached, counted in `negative_refused`.
fn check_negative_bound(cache: &Cache<u64>, allowed: u64) {
    let nf = |i: u64| format!("nf{i}");
    for i in 0..allowed {
        assert_eq!(fetch_not_found(cache, &nf(i)).status, Status::NegativeLoaded);
    }
    let s = cache.stats();
    assert_eq!((s.negative_entries, s.negative_refused), (allowed, 0), "at the bound: all {allowed} kept");
    assert_eq!(cache.len(), allowed as usize);

    // one past it: the caller still gets the answer, the cache does not keep it
    let past = nf(allowed);
    assert_eq!(fetch_not_found(cache, &past), Fetched { value: None, status: Status::NegativeLoaded });
    let s = cache.stats();
    assert_eq!((s.negative_entries, s.negative_refused), (allowed, 1), "one past it: refused, counted");
    assert_eq!(cache.len(), allowed as usize);
    // the kept answers are served from the cache; the refused one is loaded (and refused) again
    for i in 0..allowed {
        assert_eq!(fetch_not_found(cache, &nf(i)).status, Status::NegativeHit, "{}", nf(i));
    }
    assert_eq!(fetch_not_found(cache, &past).status, Status::NegativeLoaded);
    assert_eq!(cache.stats().negative_refused, 2);
}

/// P5: negative entries are `max_negative_share` (0.1) of `max_entries`, rounded down: 2 of 25 (2.5), the 3rd refused.
#[test]
fn p5_negative_share_of_max_entries_rounds_down() {
    // (max_entries, negative entries allowed): 2.5 and 2.9 round down to 2, 0.9 to none
    for (max_entries, allowed) in [(25, 2), (29, 2), (9, 0), (10, 1), (30, 3)] {
        let cache: Cache<u64> =
            Cache::builder().max_entries(max_entries).negative_ttl(Duration::from_secs(10)).build().unwrap();
        assert_eq!(cache.config().max_negative_share, 0.1, "the default share");
        check_negative_bound(&cache, allowed);
    }
}

/// P5: default negative share, 0.1 of the default 10,000 entries: 1,000 not-found answers kept, the 1,001st refused.
#[test]
fn p5_default_negative_share_keeps_1000_of_10000_entries() {
    let cache: Cache<u64> = Cache::builder().negative_ttl(Duration::from_secs(10)).build().unwrap();
    assert_eq!((cache.config().max_entries, cache.config().max_negative_share), (10_000.0, 0.1));
    check_negative_bound(&cache, 1000);
}
