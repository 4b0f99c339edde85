//! Self-healing repairs and what an interval reports about them: a repair keeps the entry's
//! expiry, the drift history holds `max_drift_events` from the moment it is set, and a write
//! landing while a source is asked makes that sample moot (skipped, not drift).

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use healcache::{Cache, FnSource, Healer, HealingConfig, ManualClock, SourceAnswer};

fn config() -> HealingConfig {
    HealingConfig { enabled: true, sample_rate: 1.0, ..HealingConfig::default() }
}

/// A source that answers every key with `v`.
fn answers(
    v: u64,
) -> FnSource<impl Fn(&str) -> futures::future::Ready<Result<SourceAnswer<u64>, healcache::SourceError>>> {
    FnSource(move |_: &str| futures::future::ready(Ok(SourceAnswer::Value(v))))
}

/// P6: a repair fixes the value and keeps the entry's own expiry, on the cache's clock. With a
/// default TTL of 60 s, an entry written for 500 ms, one that never expires and one written with
/// the default are repaired 100 ms later: they then expire in 400 ms, never, and 59.9 s, and the
/// short one is gone once its 500 ms are over. Without a default TTL a 500 ms entry stays a
/// 500 ms entry (a repair must not make it immortal).
#[test]
fn a_repair_keeps_the_entry_expiry() {
    let clock = ManualClock::new();
    let cache: Cache<u64> = Cache::builder().ttl(Duration::from_secs(60)).clock(clock.clone()).build().unwrap();
    cache.set_with_ttl("s:short", 1, Some(Duration::from_millis(500))).unwrap();
    cache.set_with_ttl("s:never", 1, None).unwrap();
    cache.set("s:default", 1).unwrap();
    clock.advance(Duration::from_millis(100));
    let h = Healer::new(cache.clone(), config()).unwrap();
    h.register_source("s:", answers(2)).unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.drift, r.repaired), (3, 3));
    let left = |k: &str| {
        let e = cache.peek_entry(k).unwrap();
        assert_eq!(e.value, 2, "{k} repaired");
        e.expires_in
    };
    assert_eq!(left("s:short"), Some(Duration::from_millis(400)));
    assert_eq!(left("s:never"), None);
    assert_eq!(left("s:default"), Some(Duration::from_millis(59_900)));
    clock.advance(Duration::from_millis(400));
    assert_eq!(cache.get("s:short"), None, "its 500 ms are over");
    assert_eq!(cache.get("s:never"), Some(2));

    let clock = ManualClock::new();
    let cache: Cache<u64> = Cache::builder().clock(clock.clone()).build().unwrap();
    cache.set_with_ttl("s:short", 1, Some(Duration::from_millis(500))).unwrap();
    let h = Healer::new(cache.clone(), config()).unwrap();
    h.register_source("s:", answers(2)).unwrap();
    assert_eq!(block_on(h.run_interval()).repaired, 1);
    assert_eq!(cache.peek_entry("s:short").unwrap().expires_in, Some(Duration::from_millis(500)));
    clock.advance(Duration::from_millis(500));
    assert_eq!(cache.get("s:short"), None, "no default TTL: still 500 ms, not forever");
}

/// P5, drift events kept (`max_drift_events`): lowering the bound trims the history at once
/// (oldest first), and 0 keeps none, also of the drift found later.
#[test]
fn lowering_max_drift_events_trims_the_history_at_once() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    let h = Healer::new(cache.clone(), config()).unwrap();
    h.register_source("u:", answers(100)).unwrap();
    let drift_all = || {
        for i in 0..20 {
            cache.set(&format!("u:{i:02}"), i).unwrap();
        }
        assert_eq!(block_on(h.run_interval()).drift, 20);
    };
    drift_all();
    assert_eq!(h.drift_events().len(), 20);
    let newest: Vec<String> = h.drift_events().into_iter().skip(15).map(|e| e.key).collect();
    h.config_set("max_drift_events", "5").unwrap();
    let kept: Vec<String> = h.drift_events().into_iter().map(|e| e.key).collect();
    assert_eq!(kept, newest, "the five newest are kept");
    h.config_set_number("max_drift_events", 0.0).unwrap();
    assert!(h.drift_events().is_empty(), "0: none kept");
    drift_all();
    assert!(h.drift_events().is_empty(), "0: nor any found later");
    assert_eq!(h.stats().total_drift, 40, "the totals still count them");
    let mut c = h.config();
    c.max_drift_events = 3.0;
    h.set_config(c).unwrap();
    drift_all();
    assert_eq!(h.drift_events().len(), 3);
}

/// P7 (a newer write wins over the fenced repair) and `IntervalReport::skipped`: a key written,
/// removed, or expired while its source is asked makes that check moot. It is skipped: no drift,
/// no drift event, no score sample, and what was written stays. The same with `auto_repair` off.
#[test]
fn a_write_while_the_source_is_asked_skips_the_sample() {
    for auto_repair in [true, false] {
        let clock = ManualClock::new();
        let cache: Cache<u64> = Cache::builder().clock(clock.clone()).build().unwrap();
        cache.set("u:write", 1).unwrap();
        cache.set("u:remove", 1).unwrap();
        cache.set_with_ttl("u:expire", 1, Some(Duration::from_millis(10))).unwrap();
        cache.set("u:plain", 1).unwrap();
        let c = cache.clone();
        let src = FnSource(move |k: &str| {
            match k {
                "u:write" => drop(c.set(k, 7).unwrap()),
                "u:remove" => drop(c.remove(k)),
                "u:expire" => clock.advance(Duration::from_millis(10)),
                _ => {}
            }
            futures::future::ready(Ok(SourceAnswer::Value(2u64)))
        });
        let h = Healer::new(cache.clone(), HealingConfig { auto_repair, ..config() }).unwrap();
        h.register_source("u:", src).unwrap();
        let r = block_on(h.run_interval());
        let plain_repaired = u64::from(auto_repair);
        assert_eq!(
            (r.drawn, r.verified, r.drift, r.repaired, r.skipped),
            (4, 1, 1, plain_repaired, 3),
            "auto_repair {auto_repair}: only u:plain is drift"
        );
        assert_eq!(h.drift_events().iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["u:plain"]);
        let score = h.score("u:").unwrap();
        assert_eq!((score.sampled, score.score), (1, 0.0), "one sample scored: u:plain's");
        assert_eq!(h.stats().total_drift, 1);
        assert_eq!(cache.get("u:write"), Some(7), "the write is kept");
        assert_eq!(cache.get("u:remove"), None, "the removal is kept");
        assert_eq!(cache.get("u:expire"), None, "an expired entry is not brought back");
    }
    // a consistent answer about an entry written meanwhile still counts as consistent: what the
    // cache held matched the source
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    cache.set("u:1", 2).unwrap();
    let c = Arc::new(cache.clone());
    let h = Healer::new(cache.clone(), config()).unwrap();
    h.register_source(
        "u:",
        FnSource(move |k: &str| {
            c.set(k, 9).unwrap();
            futures::future::ready(Ok(SourceAnswer::Value(2u64)))
        }),
    )
    .unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.consistent, r.drift, r.skipped), (1, 0, 0));
    assert_eq!(cache.get("u:1"), Some(9));
}

/// A repair corrects the value and keeps what the entry is tagged with: invalidating the tag
/// afterwards drops the repaired entry as it would have dropped the one it replaced. (Tags come
/// with the `tier` feature.)
#[cfg(feature = "tier")]
#[test]
fn a_repair_keeps_the_entry_tags() {
    let cache: Cache<u64> = Cache::builder().build().unwrap();
    cache.write_tagged("t:1", 1, healcache::WriteOptions::default(), &["team"]).unwrap();
    let h = Healer::new(cache.clone(), config()).unwrap();
    h.register_source("t:", answers(2)).unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.drift, r.repaired), (1, 1));
    assert_eq!(cache.get("t:1"), Some(2));
    assert_eq!(block_on(cache.invalidate_tag("team", true)).unwrap(), 1);
    assert_eq!(cache.get("t:1"), None, "the repaired entry kept its tag");
}
