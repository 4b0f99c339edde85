//! Every range the README states for a setting, at its bound and one step past it: taken at the
//! bound, refused past it with `InvalidConfig` naming the setting (P-bounds: every bound is
//! stated and tested at the bound).

use healcache::{Config, Error, HealingConfig};

fn refused_naming(e: Error, name: &str) {
    assert!(matches!(e, Error::InvalidConfig { field, .. } if field == name), "{name}: {e}");
}

/// `Config` settings: set by name, checked as the builder checks them.
#[test]
fn cache_settings_are_taken_at_their_bound_and_refused_one_past_it() {
    let cases: &[(&str, f64, f64)] = &[
        ("max_entries", 2f64.powi(31), 2f64.powi(31) + 1.0),
        ("max_bytes", 2f64.powi(50), 2f64.powi(50) + 1.0),
        ("max_key_len", 1048576.0, 1048577.0),
        ("max_in_flight", 1e7, 1e7 + 1.0),
        ("xfetch_beta", 1000.0, 1000.0001),
        ("ttl_jitter", 1.0, 1.000001),
        ("max_negative_share", 1.0, 1.000001),
        #[cfg(feature = "tier")]
        ("l2_compress_min_bytes", 2f64.powi(50), 2f64.powi(50) + 1.0),
    ];
    for &(name, at, past) in cases {
        let mut c = Config::default();
        c.set(name, at).unwrap();
        c.check().unwrap_or_else(|e| panic!("{name} = {at}: {e}"));
        let mut c = Config::default();
        c.set(name, past).unwrap();
        refused_naming(c.check().unwrap_err(), name);
    }
    // shards: a power of two, at most 256 and at most max_entries
    let mut c = Config::default();
    c.set("max_entries", 256.0).unwrap();
    c.set("shards", 256.0).unwrap();
    c.check().unwrap();
    c.set("shards", 512.0).unwrap();
    refused_naming(c.check().unwrap_err(), "shards");
    c.set("max_entries", 255.0).unwrap();
    c.set("shards", 256.0).unwrap();
    refused_naming(c.check().unwrap_err(), "shards");
}

/// The healing ceilings, set by name (each set is checked at once).
#[test]
fn healing_settings_are_taken_at_their_bound_and_refused_one_past_it() {
    for (name, at) in [
        ("max_prefixes", 1e5),
        ("max_samples", 1e7),
        ("source_concurrency", 4096.0),
        ("score_window", 1e6),
        ("max_drift_events", 1e6),
        ("sample_rate", 1.0),
    ] {
        let mut h = HealingConfig::default();
        h.set(name, at).unwrap_or_else(|e| panic!("{name} = {at}: {e}"));
        let past = if name == "sample_rate" { 1.000001 } else { at + 1.0 };
        refused_naming(h.set(name, past).unwrap_err(), name);
        assert_eq!(h.get(name).unwrap(), at, "{name}: a refused set changes nothing");
    }
}
