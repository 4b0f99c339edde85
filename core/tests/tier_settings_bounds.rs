//! The shared tier's settings at their bounds (P5), through the paths users take: the builder's
//! methods, the settings table by name (`Config::set`, what the hosts call), and the healer's
//! config. Each bound is accepted exactly at it and refused just past it with `InvalidConfig`
//! naming the setting. No transport is needed: the settings are checked when the cache is built,
//! with or without one.
#![cfg(feature = "tier")]

use std::time::Duration;

use healcache::{Cache, CacheBuilder, Config, ConfigProblem, Error, Healer, HealingConfig};

/// The field an `InvalidConfig` names; panics on any other outcome.
fn refused_field(r: healcache::Result<()>) -> &'static str {
    match r {
        Err(Error::InvalidConfig { field, .. }) => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

/// Builds a cache from `config` as `Cache::from_config` does, keeping only the outcome.
fn build(config: Config) -> healcache::Result<()> {
    CacheBuilder::<u32>::from_config(config).build().map(drop)
}

/// A config with one setting set by its name in the settings table.
fn by_name(name: &str, value: f64) -> Config {
    let mut c = Config::default();
    c.set(name, value).unwrap();
    c
}

/// The longest duration accepted, in ms: the constant the check itself reports when refusing.
fn hundred_years_ms() -> f64 {
    match healcache::duration_ms("l2_timeout", f64::MAX) {
        Err(Error::InvalidConfig { problem: ConfigProblem::TooLong { max }, .. }) => max,
        other => panic!("expected TooLong, got {other:?}"),
    }
}

/// The next `f64` above a positive finite `v`: just past it in the unit hosts pass.
fn just_above(v: f64) -> f64 {
    f64::from_bits(v.to_bits() + 1)
}

/// The next `f64` below a positive finite `v`.
fn just_below(v: f64) -> f64 {
    f64::from_bits(v.to_bits() - 1)
}

/// P5: `l2_recovery_max` is 1 to 10,000,000; 0 and 10,000,001 are refused naming it.
#[test]
fn l2_recovery_max_is_accepted_from_1_to_10_million() {
    for ok in [1.0, 10_000_000.0] {
        build(by_name("l2_recovery_max", ok)).unwrap_or_else(|e| panic!("{ok} refused: {e}"));
    }
    for bad in [0.0, 10_000_001.0] {
        let c = by_name("l2_recovery_max", bad);
        assert_eq!(refused_field(c.check()), "l2_recovery_max", "{bad}");
        assert_eq!(refused_field(build(c)), "l2_recovery_max", "{bad}");
    }
}

/// P5: each tier duration is accepted at exactly 1 ns and at exactly 100 years, and refused at 0,
/// just below 1 ns and just past 100 years, set by name in milliseconds as the hosts do.
#[test]
fn tier_durations_by_name_are_accepted_from_1_ns_to_100_years() {
    let max = hundred_years_ms();
    assert_eq!(max, 100.0 * 365.0 * 24.0 * 3600.0 * 1000.0, "100 years of 365 days");
    for name in ["l2_timeout", "fleet_lock_lease", "fleet_lock_max_hold", "l2_tombstone_ttl"] {
        for ok in [1e-6, max] {
            build(by_name(name, ok)).unwrap_or_else(|e| panic!("{name} = {ok} ms refused: {e}"));
        }
        for bad in [0.0, just_below(1e-6), just_above(max)] {
            assert_eq!(refused_field(build(by_name(name, bad))), name, "{name} = {bad} ms");
        }
    }
}

/// P5: the same bounds through the builder's `Duration` methods. A `Duration` crosses as an `f64`
/// of milliseconds, which near 100 years resolves about half a microsecond: 100 years and 1 ns
/// is read as 100 years (never more), so "just past" is the next microsecond.
#[test]
fn tier_durations_by_builder_are_accepted_from_1_ns_to_100_years() {
    type Set = fn(CacheBuilder<u32>, Duration) -> CacheBuilder<u32>;
    let setters: [(&str, Set); 3] = [
        ("l2_timeout", CacheBuilder::l2_timeout),
        ("fleet_lock_lease", CacheBuilder::fleet_lock_lease),
        ("fleet_lock_max_hold", CacheBuilder::fleet_lock_max_hold),
    ];
    let max = Duration::from_millis(hundred_years_ms() as u64);
    for (name, set) in setters {
        for ok in [Duration::from_nanos(1), max, max + Duration::from_nanos(1)] {
            set(Cache::builder(), ok).build().unwrap_or_else(|e| panic!("{name} = {ok:?} refused: {e}"));
        }
        for bad in [Duration::ZERO, max + Duration::from_micros(1)] {
            assert_eq!(refused_field(set(Cache::builder(), bad).build().map(drop)), name, "{name} = {bad:?}");
        }
    }
}

/// P5: the fleet verifier walks 1 to 10,000,000 keys per interval; 0 and 10,000,001 are refused
/// naming `fleet_verify_scan_budget`, by name (nothing changes) and when a healer is made.
#[test]
fn fleet_verify_scan_budget_is_accepted_from_1_to_10_million() {
    let cache = || Cache::<u32>::builder().build().unwrap();
    for ok in [1.0, 10_000_000.0] {
        let mut c = HealingConfig::default();
        c.set("fleet_verify_scan_budget", ok).unwrap_or_else(|e| panic!("{ok} refused: {e}"));
        assert_eq!(c.fleet_verify_scan_budget, ok);
        let h = Healer::new(cache(), HealingConfig { fleet_verify_scan_budget: ok, ..HealingConfig::default() });
        assert_eq!(h.unwrap_or_else(|e| panic!("{ok} refused: {e}")).config().fleet_verify_scan_budget, ok);
    }
    for bad in [0.0, 10_000_001.0] {
        let mut c = HealingConfig::default();
        assert_eq!(refused_field(c.set("fleet_verify_scan_budget", bad)), "fleet_verify_scan_budget", "{bad}");
        assert_eq!(c, HealingConfig::default(), "a refused setting changes nothing");
        let h = Healer::new(cache(), HealingConfig { fleet_verify_scan_budget: bad, ..HealingConfig::default() });
        assert_eq!(refused_field(h.map(drop)), "fleet_verify_scan_budget", "{bad}");
    }
}

/// P5: `l2_prefix` is accepted at 64 characters and refused at 65 when the cache is built,
/// through the builder and by name.
#[test]
fn l2_prefix_is_accepted_at_64_characters_and_refused_at_65() {
    let at = "p".repeat(64);
    let past = "p".repeat(65);
    Cache::<u32>::builder().l2_prefix(&at).build().unwrap();
    assert_eq!(refused_field(Cache::<u32>::builder().l2_prefix(&past).build().map(drop)), "l2_prefix");
    let text = |v: &str| {
        let mut c = Config::default();
        c.set_text("l2_prefix", v).unwrap();
        c
    };
    build(text(&at)).unwrap();
    assert_eq!(refused_field(build(text(&past))), "l2_prefix");
}
