//! Hostile use of the core: each test is a bound or a meaning that broke once under a user who
//! pushed at it (heavy entries against the byte budget, durations below a nanosecond, version 0 on
//! an absent key, a panic's message, a clock whose two readings have different origins).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use healcache::{
    Cache, CacheBuilder, Clock, Config, Error, FetchOptions, Healer, HealingConfig, Host, Loaded, ManualClock,
};
use rand::{rngs::SmallRng, Rng, SeedableRng};

fn weighed(max_bytes: u64, shards: Option<usize>) -> Cache<Vec<u8>> {
    let mut b = Cache::<Vec<u8>>::builder()
        .max_entries(100_000)
        .max_bytes(max_bytes)
        .seed(7)
        .weigher(|v: &Vec<u8>| v.len() as u64);
    if let Some(s) = shards {
        b = b.shards(s);
    }
    b.build().unwrap()
}

/// The byte budget bounds the whole cache, not each shard: 64 values of 900 KiB into 1 MiB once
/// left about 25 times the budget stored, because each of the shards admitted one heavy entry.
#[test]
fn byte_budget_holds_for_heavy_entries() {
    let budget = 1u64 << 20;
    let cache = weighed(budget, Some(8));
    for i in 0..64 {
        cache.set(&format!("k{i}"), vec![0u8; 900 << 10]).unwrap();
        let w = cache.stats().weight;
        assert!(w <= budget, "after write {i}: {w} bytes stored, budget {budget}");
        // the entry just written is the one kept: a write that returns Ok is readable at once
        assert!(cache.get(&format!("k{i}")).is_some(), "write {i} returned Ok but is not stored");
    }
}

/// Entries from one byte up to `max_entry_bytes` (the default: the whole budget), in random order
/// and sizes, over 16 shards: the total weight never exceeds the budget after any write returns.
#[test]
fn byte_budget_holds_from_tiny_entries_to_the_entry_bound() {
    let budget = 256u64 << 10;
    let cache = weighed(budget, Some(16));
    let mut rng = SmallRng::seed_from_u64(11);
    for i in 0..3_000u32 {
        let len = match rng.random_range(0..10) {
            0 => budget as usize - 16, // the key's length counts too: at the bound exactly
            1..=2 => rng.random_range(budget as usize / 4..budget as usize / 2),
            _ => rng.random_range(1..512),
        };
        let key = format!("k{:011}", rng.random_range(0..2_000u32)); // 12 bytes
        let r = cache.set(&key, vec![1u8; len]);
        if len + key.len() <= budget as usize {
            r.unwrap_or_else(|e| panic!("write {i} of {len} bytes refused: {e}"));
        }
        let w = cache.stats().weight;
        assert!(w <= budget, "after write {i} ({len} bytes): {w} stored, budget {budget}");
    }
    // one byte over the entry bound is refused and changes nothing
    let before = cache.stats().weight;
    let e = cache.set("over", vec![0u8; budget as usize]).unwrap_err();
    assert_eq!(e.code(), "ValueTooLarge");
    assert_eq!(cache.stats().weight, before);
}

/// A duration that rounds to zero nanoseconds would make every entry expire on arrival: it is
/// refused, naming the field, like any other invalid duration.
#[test]
fn durations_below_a_nanosecond_are_refused() {
    for field in ["ttl_ms", "grace_ms", "negative_ttl_ms", "load_timeout_ms", "refresh_after_ms"] {
        let mut c = Config::default();
        c.set(field, 1e-9).unwrap();
        if field == "grace_ms" {
            c.set("ttl_ms", 1000.0).unwrap();
        }
        let e =
            CacheBuilder::<u32>::from_config(c).build().err().unwrap_or_else(|| panic!("{field} = 1e-9 ms accepted"));
        assert_eq!(e.code(), "InvalidConfig", "{field}");
    }
    // one nanosecond is the shortest duration kept
    let mut c = Config::default();
    c.set("ttl_ms", 1e-6).unwrap();
    assert!(CacheBuilder::<u32>::from_config(c).build().is_ok());
}

/// The field of an `InvalidConfig`; panics on any other outcome.
fn refused<T: std::fmt::Debug>(r: healcache::Result<T>) -> &'static str {
    match r {
        Err(Error::InvalidConfig { field, .. }) => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

/// P5: durations given per call hold the settings' bounds. A TTL of exactly 100 years is kept; a
/// microsecond more, on a write or a fetch, is `InvalidConfig` naming the field and changes
/// nothing (it was once capped silently); a zero duration per call is refused too.
#[test]
fn per_call_durations_are_bounded_like_the_settings() {
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    let past = century + Duration::from_micros(1);
    let c: Cache<u32> = Cache::builder().build().unwrap();
    assert!(c.set_with_ttl("at", 1, Some(century)).is_ok());
    assert_eq!(refused(c.set_with_ttl("past", 1, Some(past))), "ttl");
    assert_eq!(c.get("past"), None);
    let loads = Arc::new(AtomicUsize::new(0));
    let fetch = |opts: FetchOptions| {
        let loads = Arc::clone(&loads);
        block_on(c.fetch("f", opts, move || async move {
            loads.fetch_add(1, SeqCst);
            Ok::<_, std::io::Error>(Loaded::Value(7))
        }))
    };
    let with_ttl = |d| FetchOptions { ttl: healcache::Ttl::For(d), ..FetchOptions::default() };
    assert_eq!(refused(fetch(with_ttl(past))), "ttl");
    assert_eq!(refused(fetch(with_ttl(Duration::ZERO))), "ttl");
    assert_eq!(
        refused(fetch(FetchOptions { negative_ttl: Some(Duration::ZERO), ..FetchOptions::default() })),
        "negative_ttl"
    );
    assert_eq!(refused(fetch(FetchOptions { soft_timeout: Some(past), ..FetchOptions::default() })), "soft_timeout");
    assert_eq!(
        refused(fetch(FetchOptions { soft_timeout: Some(Duration::ZERO), ..FetchOptions::default() })),
        "soft_timeout"
    );
    assert_eq!(loads.load(SeqCst), 0, "a refused call loads nothing");
    assert_eq!((c.get("f"), c.len()), (None, 1));
    assert_eq!(fetch(with_ttl(century)).unwrap().value, Some(7));
}

/// P5: without `max_entry_bytes`, an entry (key included) weighs at most the smaller of
/// `max_bytes` and 64 MiB: at 64 MiB it is stored under a 1 GiB budget, a byte more is
/// `ValueTooLarge` and changes nothing; under a smaller budget the budget is the bound.
#[test]
fn the_default_entry_bound_is_the_smaller_of_the_budget_and_64_mib() {
    const MIB: u64 = 1 << 20;
    let c = weighed(1 << 30, None);
    let sized = |n: u64| vec![0u8; usize::try_from(n).unwrap()];
    // key "k" weighs 1 byte
    assert!(c.set("k", sized(64 * MIB - 1)).is_ok());
    match c.set("j", sized(64 * MIB)) {
        Err(Error::ValueTooLarge { .. }) => {}
        other => panic!("expected ValueTooLarge, got {:?}", other.map(drop)),
    }
    assert!(!c.contains("j"));
    let small = weighed(MIB, None);
    assert!(small.set("k", sized(MIB - 1)).is_ok());
    assert!(matches!(small.set("j", sized(MIB)), Err(Error::ValueTooLarge { .. })));
}

/// Version 0 means "absent", for absent, expired and live keys alike: removing "only if absent"
/// succeeds (there is nothing to remove) unless a live entry is there.
#[test]
fn version_zero_means_absent_everywhere() {
    let clock = ManualClock::new();
    let cache: Cache<u32> = Cache::builder().clock(clock.clone()).build().unwrap();
    assert!(cache.remove_if_version("never-written", 0).is_ok());
    cache.set_with_ttl("expired", 1, Some(Duration::from_secs(1))).unwrap();
    clock.advance(Duration::from_secs(2));
    assert!(cache.remove_if_version("expired", 0).is_ok());
    let v = cache.set("live", 2).unwrap();
    match cache.remove_if_version("live", 0) {
        Err(Error::VersionMismatch { expected: 0, current }) => assert_eq!(current, v),
        other => panic!("expected a mismatch on a live key, got {other:?}"),
    }
    assert_eq!(cache.get("live"), Some(2));
    // and a version that never existed is a mismatch on an absent key, reporting 0
    match cache.remove_if_version("never-written", 5) {
        Err(Error::VersionMismatch { expected: 5, current: 0 }) => {}
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

/// Every waiter of a panicking loader learns what the panic said.
#[test]
fn a_loader_panic_carries_its_message() {
    let cache: Cache<u32> = Cache::builder().build().unwrap();
    let e = block_on(cache.get_or_load("k", || async {
        if true {
            panic!("boom {}", 7);
        }
        Ok::<u32, std::io::Error>(1)
    }))
    .unwrap_err();
    assert_eq!(e.code(), "LoaderPanicked");
    assert!(e.to_string().contains("boom 7"), "message lost: {e}");
    let e = block_on(cache.get_or_load("k2", || async {
        if true {
            std::panic::panic_any(42u8);
        }
        Ok::<u32, std::io::Error>(1)
    }))
    .unwrap_err();
    assert_eq!(e.code(), "LoaderPanicked", "a payload that is not text still panics cleanly");
    // the key is not stuck
    assert_eq!(block_on(cache.get_or_load("k", || async { Ok::<u32, std::io::Error>(3) })).unwrap(), 3);
}

/// A clock whose precise reading has another origin than its plain one (allowed: only
/// differences of precise reads mean anything). The healer's backoff must use one time base.
#[derive(Clone)]
struct SkewedClock(Arc<AtomicU64>);

impl Clock for SkewedClock {
    fn now_nanos(&self) -> u64 {
        self.0.load(SeqCst)
    }
    fn precise_nanos(&self) -> u64 {
        self.0.load(SeqCst) - 600_000_000_000 // 600 s behind
    }
}

#[test]
fn healing_backoff_uses_one_time_base() {
    let now = Arc::new(AtomicU64::new(10_000_000_000_000));
    let cache: Cache<u64> = Cache::builder().clock(SkewedClock(now.clone())).build().unwrap();
    for i in 0..10 {
        cache.set(&format!("k{i}"), i).unwrap();
    }
    let down = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let src = common::flaky_source(&down, &calls);
    let h = Healer::new(cache.clone(), HealingConfig { enabled: true, sample_rate: 1.0, ..HealingConfig::default() })
        .unwrap();
    h.register_source("k", src).unwrap();
    for _ in 0..3 {
        block_on(h.run_interval());
    }
    assert_eq!(calls.load(SeqCst), 30);
    // backed off: the next interval does not ask the source
    let r = block_on(h.run_interval());
    assert_eq!((r.skipped, calls.load(SeqCst)), (10, 30), "no backoff after three failed intervals");
    let interval = h.config().verify_interval_ms;
    // after the longest backoff; after the longest backoff (32 intervals) it must be asked again
    down.store(false, SeqCst);
    now.fetch_add(((33.0 * interval) * 1e6) as u64, SeqCst);
    let r = block_on(h.run_interval());
    assert_eq!(r.verified, 10, "a recovered source was still skipped after the backoff cap: {r:?}");
}

/// Writers on four threads shedding from each other's shards at once: no deadlock, and once they
/// have all returned the store is within its budget.
#[test]
fn byte_budget_holds_under_concurrent_heavy_writes() {
    let budget = 512u64 << 10;
    let cache = weighed(budget, Some(4));
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let cache = &cache;
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t);
                for i in 0..2_000u32 {
                    let len = if rng.random_range(0..8) == 0 {
                        rng.random_range(100_000..400_000)
                    } else {
                        rng.random_range(1..2_000)
                    };
                    cache.set(&format!("t{t}-{}", i % 300), vec![0u8; len]).unwrap();
                }
                // end on heavy writes, which per-shard shares let every shard keep one of
                for i in 0..3 {
                    cache.set(&format!("heavy-{t}-{i}"), vec![0u8; 300_000]).unwrap();
                }
            });
        }
    });
    let w = cache.stats().weight;
    assert!(w <= budget, "{w} bytes stored after the writers returned, budget {budget}");
}

/// A cached "not found" lives at most `max_negative_ttl` (default one minute), so a mistaken
/// answer cannot pin a key for hours: longer negative TTLs are refused, in the settings and per
/// call, before any work.
#[test]
fn negative_entries_have_a_ttl_cap() {
    let e = Cache::<u32>::builder()
        .negative_ttl(Duration::from_secs(61))
        .build()
        .err()
        .unwrap_or_else(|| panic!("61 s accepted"));
    assert_eq!(e.code(), "InvalidConfig");
    assert!(e.to_string().contains("max_negative_ttl"), "{e}");
    assert!(
        Cache::<u32>::builder().negative_ttl(Duration::from_secs(60)).build().is_ok(),
        "the bound itself is allowed"
    );
    let raised =
        Cache::<u32>::builder().max_negative_ttl(Duration::from_secs(3600)).negative_ttl(Duration::from_secs(600));
    assert!(raised.build().is_ok());
    let c = Cache::<u32>::builder().negative_ttl(Duration::from_secs(5)).build().unwrap();
    let long = FetchOptions { negative_ttl: Some(Duration::from_secs(61)), ..FetchOptions::default() };
    let e = block_on(c.fetch("k", long, || async { Ok::<_, std::io::Error>(Loaded::NotFound) })).unwrap_err();
    assert_eq!(e.code(), "InvalidConfig");
    assert_eq!(c.stats().loads, 0, "refused before any work");
}

/// A bound is stated as it is: the fleet verifier's lease of at least a millisecond says so (it
/// once said "at least one nanosecond (1 ms)"), and the nanosecond floor of every duration still
/// reads as one nanosecond.
#[test]
fn a_too_short_duration_states_its_own_floor() {
    // the fleet verifier's settings exist with the shared tier only
    #[cfg(feature = "tier")]
    {
        let config = healcache::HealingConfig { fleet_verify_lease_ms: 0.1, ..Default::default() };
        let e = healcache::Healer::new(Cache::<u32>::builder().build().unwrap(), config).err().expect("0.1 ms refused");
        let text = e.to_string();
        assert!(text.ends_with("must be at least 1 millisecond, got 0.1 milliseconds"), "{text}");
    }
    let mut c = Config::default();
    c.set("ttl_ms", 1e-9).unwrap();
    let e = CacheBuilder::<u32>::from_config(c).build().expect_err("1e-9 ms refused");
    assert!(e.to_string().contains("must be at least one nanosecond"), "{e}");
}

/// A per-call soft timeout is held to the rule the setting is: shorter than `load_timeout`
/// (a soft timeout at or past the hard one never serves stale); InvalidConfig, nothing done.
#[test]
fn a_per_call_soft_timeout_must_be_shorter_than_the_load_timeout() {
    // a timer and a spawner: what a soft timeout needs (without them it is refused for that)
    let c: Cache<u32> = Cache::builder()
        .load_timeout(Duration::from_secs(1))
        .timer(common_timer())
        .spawner(common::QueueSpawner(Arc::default()))
        .build()
        .unwrap();
    for soft in [Duration::from_secs(1), Duration::from_secs(5)] {
        let opts = FetchOptions { soft_timeout: Some(soft), ..FetchOptions::default() };
        let loaded = Arc::new(AtomicBool::new(false));
        let l = Arc::clone(&loaded);
        let r = block_on(c.fetch("k", opts, move || {
            l.store(true, SeqCst);
            async { Ok::<_, std::io::Error>(Loaded::Value(1)) }
        }));
        assert_eq!(refused(r), "soft_timeout", "{soft:?}");
        assert!(!loaded.load(SeqCst), "no load started");
    }
    // worded as the setting's rule is, with the value given in the host's unit
    let opts = FetchOptions { soft_timeout: Some(Duration::from_millis(1500)), ..FetchOptions::default() };
    let e = block_on(c.fetch("k", opts, || async { Ok::<_, std::io::Error>(Loaded::Value(1)) })).unwrap_err();
    assert_eq!(
        e.message_for(Host::Python),
        "invalid config: `soft_timeout` must be shorter than `load_timeout`, got 1.5 seconds"
    );
    assert_eq!(
        e.message_for(Host::Js),
        "invalid config: `softTimeout` must be shorter than `loadTimeout`, got 1500 milliseconds"
    );
    let opts = FetchOptions { soft_timeout: Some(Duration::from_millis(999)), ..FetchOptions::default() };
    assert_eq!(
        block_on(c.fetch("k", opts, || async { Ok::<_, std::io::Error>(Loaded::Value(1)) })).unwrap().value,
        Some(1)
    );
}

/// A timer that never fires within a test (the fetches above end at once).
fn common_timer() -> impl healcache::Timer {
    struct Never;
    impl healcache::Timer for Never {
        fn sleep(&self, _: Duration) -> futures::future::BoxFuture<'static, ()> {
            Box::pin(futures::future::pending())
        }
    }
    Never
}

/// A blocking load runs on the calling thread: no background work (stale-while-revalidate,
/// XFetch, a soft timeout). Options it cannot honour are refused by name, before any load,
/// rather than ignored; their "off" values are taken. Its loader may answer "not found"
/// (`Err(Error::NotFound)`), which a per-call `negative_ttl` caches, bounded as in `fetch`.
#[test]
fn a_blocking_load_refuses_the_options_it_cannot_honour() {
    let c: Cache<u32> = Cache::builder().build().unwrap();
    let negative = FetchOptions { negative_ttl: Some(Duration::from_secs(5)), ..FetchOptions::default() };
    let missing = || -> Result<u32, healcache::Error> { Err(healcache::Error::NotFound) };
    assert_eq!(c.get_or_load_blocking_with("gone", negative, missing).unwrap_err().code(), "NotFound");
    let again = c.get_or_load_blocking_with("gone", negative, || -> Result<u32, std::io::Error> { panic!("cached") });
    assert_eq!(again.unwrap_err().code(), "NotFound", "the per-call negative_ttl cached the answer");
    let (s, _) = (c.stats(), c.remove("gone"));
    assert_eq!((s.loads, s.load_errors, s.negative_hits), (1, 0, 1));
    let over = FetchOptions { negative_ttl: Some(Duration::from_secs(61)), ..FetchOptions::default() };
    assert_eq!(refused(c.get_or_load_blocking_with("k", over, missing)), "negative_ttl", "max_negative_ttl");
    let refused_opts = [
        ("stale_while_revalidate", FetchOptions { stale_while_revalidate: Some(true), ..FetchOptions::default() }),
        ("xfetch", FetchOptions { xfetch: Some(true), ..FetchOptions::default() }),
        ("soft_timeout", FetchOptions { soft_timeout: Some(Duration::from_millis(100)), ..FetchOptions::default() }),
    ];
    for (field, opts) in refused_opts {
        let r = c.get_or_load_blocking_with("k", opts, || -> Result<u32, std::io::Error> { panic!("loader called") });
        assert_eq!(refused(r), field);
        let e = c.get_or_load_blocking_with("k", opts, || -> Result<u32, std::io::Error> { Ok(1) }).unwrap_err();
        assert!(e.to_string().contains("not supported by a blocking load"), "{e}");
    }
    assert_eq!(c.len(), 0, "nothing loaded");
    let off = FetchOptions { stale_while_revalidate: Some(false), xfetch: Some(false), ..FetchOptions::default() };
    assert_eq!(c.get_or_load_blocking_with("k", off, || Ok::<_, std::io::Error>(1)).unwrap(), 1);
}
