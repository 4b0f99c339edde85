//! The one table of settings: every field of [`Config`](crate::Config) and
//! [`HealingConfig`](crate::HealingConfig) with its name, unit, default and meaning.
//!
//! Each host reads this table instead of listing settings again: Rust and Python use the snake
//! name, JS the camelCase `js_name`, and each host gives durations in its own unit (Rust
//! milliseconds or a `Duration`, Python seconds, JS milliseconds) while the core keeps
//! milliseconds. Names carry no unit (`ttl`, not `ttl_ms`), so a setting is spelt the same
//! everywhere apart from case.

/// The unit of a setting's value in the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A number of things (entries, shards, samples): a whole number.
    Count,
    /// A size in bytes: a whole number.
    Bytes,
    /// A duration, in milliseconds (an `f64`) in the core.
    Duration,
    /// A share between 0 and 1.
    Fraction,
    /// Any other number (a factor, a seed).
    Number,
    /// On or off (1 or 0 where a number is passed).
    Flag,
}

/// Which configuration a setting belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// [`Config`](crate::Config): fixed when the cache is built.
    Cache,
    /// [`HealingConfig`](crate::HealingConfig): may change at runtime.
    Healing,
}

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The name in Rust and Python: snake_case, without a unit (`load_timeout`).
    pub name: &'static str,
    /// The name in JS: camelCase (`loadTimeout`).
    pub js_name: &'static str,
    /// The configuration it belongs to.
    pub scope: Scope,
    /// The unit of its value in the core.
    pub unit: Unit,
    /// Its default, as a user reads it (`"10000"`, `"none"`, `"false"`); durations in ms.
    pub default: &'static str,
    /// One line on what it does.
    pub doc: &'static str,
    /// Former names still accepted by [`setting`] while the bindings move to the table's names
    /// (the `_ms` spellings and the `healing.` prefix). To be emptied once they have.
    pub aliases: &'static [&'static str],
}

const fn s(
    name: &'static str,
    js_name: &'static str,
    scope: Scope,
    unit: Unit,
    default: &'static str,
    doc: &'static str,
) -> Setting {
    Setting { name, js_name, scope, unit, default, doc, aliases: &[] }
}

const fn aka(setting: Setting, aliases: &'static [&'static str]) -> Setting {
    Setting { aliases, ..setting }
}

use Scope::{Cache, Healing};
use Unit::{Bytes, Count, Duration, Flag, Fraction, Number};

/// Every setting of [`Config`](crate::Config), then of [`HealingConfig`](crate::HealingConfig),
/// in declaration order.
pub static SETTINGS: &[Setting] = &[
    s("max_entries", "maxEntries", Cache, Count, "10000", "Maximum number of entries."),
    s("max_bytes", "maxBytes", Cache, Bytes, "none", "Maximum total weight (key length + value weight)."),
    aka(s("ttl", "ttl", Cache, Duration, "none", "Default time-to-live of an entry (infinity: none)."), &["ttl_ms"]),
    s("max_key_len", "maxKeyLen", Cache, Bytes, "4096", "Longest key accepted."),
    s("max_entry_bytes", "maxEntryBytes", Cache, Bytes, "max_bytes, else 64 MiB", "Heaviest single entry accepted."),
    s("max_in_flight", "maxInFlight", Cache, Count, "10000", "Most distinct keys loading at once."),
    aka(
        s(
            "load_timeout",
            "loadTimeout",
            Cache,
            Duration,
            "none",
            "Time a load may take before every waiter gets a timeout.",
        ),
        &["load_timeout_ms"],
    ),
    s("shards", "shards", Cache, Count, "from max_entries", "Number of lock shards (a power of two up to 256)."),
    s("seed", "seed", Cache, Number, "from the host", "Seed of the random generator (a u64)."),
    aka(
        s(
            "grace",
            "grace",
            Cache,
            Duration,
            "none",
            "Window after the TTL in which a stale value may still be served.",
        ),
        &["grace_ms"],
    ),
    s(
        "stale_while_revalidate",
        "staleWhileRevalidate",
        Cache,
        Flag,
        "false",
        "Within grace, serve the stale value at once and refresh in the background.",
    ),
    aka(
        s(
            "load_soft_timeout",
            "loadSoftTimeout",
            Cache,
            Duration,
            "none",
            "A load with a stale fallback returns it after this long and finishes in the background.",
        ),
        &["load_soft_timeout_ms"],
    ),
    s("xfetch", "xfetch", Cache, Flag, "false", "XFetch probabilistic early refresh."),
    s("xfetch_beta", "xfetchBeta", Cache, Number, "1", "XFetch's beta: above 1 refreshes earlier."),
    aka(
        s(
            "refresh_after",
            "refreshAfter",
            Cache,
            Duration,
            "none",
            "Reads of an older value trigger one background refresh.",
        ),
        &["refresh_after_ms"],
    ),
    s("ttl_jitter", "ttlJitter", Cache, Fraction, "0", "Each TTL is stretched by a random fraction below this."),
    aka(
        s("negative_ttl", "negativeTtl", Cache, Duration, "none", "TTL of cached \"not found\" answers of a loader."),
        &["negative_ttl_ms"],
    ),
    s(
        "max_negative_share",
        "maxNegativeShare",
        Cache,
        Fraction,
        "0.1",
        "Largest share of max_entries that cached \"not found\" answers may take.",
    ),
    aka(
        s(
            "max_negative_ttl",
            "maxNegativeTtl",
            Cache,
            Duration,
            "60000",
            "Longest TTL of a cached \"not found\" answer (negative_ttl and per-call ones above it are refused).",
        ),
        &["max_negative_ttl_ms"],
    ),
    aka(
        s("l2_timeout", "l2Timeout", Cache, Duration, "100", "Deadline of every shared-tier (L2) operation."),
        &["l2_timeout_ms"],
    ),
    s(
        "l2_recovery_max",
        "l2RecoveryMax",
        Cache,
        Count,
        "10000",
        "Invalidations kept while L2 is unreachable, replayed when it returns (oldest dropped beyond).",
    ),
    s(
        "l2_compress_min_bytes",
        "l2CompressMinBytes",
        Cache,
        Bytes,
        "1024",
        "L2 payloads at least this long are lz4-compressed (kept only if that saves 12.5%).",
    ),
    aka(
        s(
            "l2_tombstone_ttl",
            "l2TombstoneTtl",
            Cache,
            Duration,
            "10000",
            "How long a delete's L2 tombstone fences out rebuilds that read before it.",
        ),
        &["l2_tombstone_ttl_ms"],
    ),
    s("allow_degraded", "allowDegraded", Cache, Flag, "false", "ready() stays true while L2 is unreachable."),
    aka(
        s(
            "fleet_lock_lease",
            "fleetLockLease",
            Cache,
            Duration,
            "5000",
            "How long a fleet rebuild lock lives without renewal (renewed every third of it while the loader runs).",
        ),
        &["fleet_lock_lease_ms"],
    ),
    aka(
        s(
            "fleet_lock_max_hold",
            "fleetLockMaxHold",
            Cache,
            Duration,
            "30000",
            "How long a fleet lock holder keeps renewing at most; a slower loader is fenced out if another takes over.",
        ),
        &["fleet_lock_max_hold_ms"],
    ),
    aka(s("enabled", "enabled", Healing, Flag, "false", "Whether the background loop verifies."), &["healing.enabled"]),
    aka(
        s("sample_rate", "sampleRate", Healing, Fraction, "0.01", "Share of live keys sampled each interval."),
        &["healing.sample_rate"],
    ),
    aka(
        s("verify_interval", "verifyInterval", Healing, Duration, "5000", "Time between intervals."),
        &["healing.verify_interval_ms", "verify_interval_ms"],
    ),
    aka(
        s("auto_repair", "autoRepair", Healing, Flag, "true", "Whether drift is repaired (else only reported)."),
        &["healing.auto_repair"],
    ),
    aka(
        s("score_window", "scoreWindow", Healing, Count, "1000", "Samples per prefix in the rolling score."),
        &["healing.score_window"],
    ),
    aka(
        s("source_timeout", "sourceTimeout", Healing, Duration, "2000", "Time a source may take per key."),
        &["healing.source_timeout_ms", "source_timeout_ms"],
    ),
    aka(
        s("source_concurrency", "sourceConcurrency", Healing, Count, "16", "Most keys asked of one source at once."),
        &["healing.source_concurrency"],
    ),
    aka(
        s("max_prefixes", "maxPrefixes", Healing, Count, "1024", "Most registered prefixes."),
        &["healing.max_prefixes"],
    ),
    aka(
        s("max_drift_events", "maxDriftEvents", Healing, Count, "1000", "Drift events kept."),
        &["healing.max_drift_events"],
    ),
    aka(
        s("max_samples", "maxSamples", Healing, Count, "100000", "Most keys sampled in one interval."),
        &["healing.max_samples"],
    ),
    // the fleet verifier's settings exist in builds with the shared tier only (not WebAssembly);
    // their `healing.` names are spelt as the other healing settings' are
    #[cfg(feature = "tier")]
    aka(
        s("fleet_verify", "fleetVerify", Healing, Flag, "true", "With a shared tier: L2 is verified once per fleet."),
        &["healing.fleet_verify"],
    ),
    #[cfg(feature = "tier")]
    aka(
        s(
            "fleet_verify_lease",
            "fleetVerifyLease",
            Healing,
            Duration,
            "5000",
            "How long a fleet verifier's lease lives.",
        ),
        &["healing.fleet_verify_lease_ms"],
    ),
    #[cfg(feature = "tier")]
    aka(
        s(
            "fleet_verify_scan_budget",
            "fleetVerifyScanBudget",
            Healing,
            Count,
            "10000",
            "Keys of L2 a fleet verifier walks per interval and prefix.",
        ),
        &["healing.fleet_verify_scan_budget"],
    ),
];

/// The setting called `name`: its snake name, its camelCase name, or a former name; a healing
/// setting also under `healing.` and any of those (`healing.verify_interval`), the name the RESP
/// server's `CONFIG` shows, so every surface takes the names the others show.
pub fn setting(name: &str) -> Option<&'static Setting> {
    let find = |name: &str| SETTINGS.iter().find(|s| s.name == name || s.js_name == name || s.aliases.contains(&name));
    let bare = name.strip_prefix(HEALING_PREFIX).filter(|bare| !bare.starts_with(HEALING_PREFIX));
    find(name).or_else(|| bare.and_then(find).filter(|s| s.scope == Scope::Healing))
}

/// What a healing setting's name may start with (see [`setting`]).
pub const HEALING_PREFIX: &str = "healing.";

impl Setting {
    /// Every name [`setting`] finds this setting by besides its snake and camelCase names: its
    /// former names and, for a healing setting, each of its names under [`HEALING_PREFIX`] (a
    /// former name already under it may come twice).
    pub fn other_names(&self) -> Vec<String> {
        let healing = self.scope == Scope::Healing;
        let mut out = Vec::new();
        for (i, n) in [self.name, self.js_name].iter().chain(self.aliases).enumerate() {
            if i >= 2 {
                out.push(n.to_string());
            }
            if healing && !n.starts_with(HEALING_PREFIX) {
                let mut prefixed = String::from(HEALING_PREFIX);
                prefixed.push_str(n);
                out.push(prefixed);
            }
        }
        out
    }
}

/// `name` as JS spells it: a setting's camelCase name from the table, else `snake_case` turned
/// into camelCase (counters and per-call options are not in the table: `load_errors` ->
/// `loadErrors`).
pub fn js_name(name: &str) -> std::borrow::Cow<'_, str> {
    if let Some(s) = setting(name) {
        return std::borrow::Cow::Borrowed(s.js_name);
    }
    if !name.contains('_') {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                // names are ASCII identifiers; `char::to_uppercase` would link Unicode's case
                // tables (about 13 KB) into the WebAssembly module
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The setting of `scope` called `name`, as [`setting`] finds it.
pub(crate) fn setting_in(scope: Scope, name: &str) -> Option<&'static Setting> {
    setting(name).filter(|s| s.scope == scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Error, HealingConfig, Host};

    #[test]
    fn names_are_unique_and_spelt_alike() {
        for (i, a) in SETTINGS.iter().enumerate() {
            for b in &SETTINGS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.js_name, b.js_name);
            }
            assert!(!a.name.ends_with("_ms"), "{}: names carry no unit", a.name);
            // the camelCase name is the snake name without its underscores
            assert_eq!(a.js_name.to_lowercase(), a.name.replace('_', ""), "{}", a.name);
        }
    }

    #[test]
    fn lookup_by_snake_camel_and_former_name() {
        assert_eq!(setting("load_timeout").unwrap().js_name, "loadTimeout");
        assert_eq!(setting("loadTimeout").unwrap().name, "load_timeout");
        assert_eq!(setting("load_timeout_ms").unwrap().name, "load_timeout");
        assert_eq!(setting("healing.sample_rate").unwrap().name, "sample_rate");
        assert_eq!(setting("sampleRate").unwrap().scope, Scope::Healing);
        assert_eq!(setting("verify_interval").unwrap().unit, Unit::Duration);
        assert!(setting("nope").is_none());
        assert!(setting("").is_none());
        assert!(setting_in(Scope::Cache, "sample_rate").is_none());
        // a healing setting under `healing.`, as the RESP server's CONFIG shows it, by any name
        assert_eq!(setting("healing.verify_interval").unwrap().name, "verify_interval");
        assert_eq!(setting("healing.verifyInterval").unwrap().name, "verify_interval");
        assert_eq!(setting("healing.source_timeout").unwrap().name, "source_timeout");
        assert_eq!(setting("healing.fleet_verify_lease").unwrap().name, "fleet_verify_lease");
        // only healing settings, and only one prefix
        assert!(setting("healing.load_timeout").is_none());
        assert!(setting("healing.healing.sample_rate").is_none());
        assert!(setting("healing.").is_none());
        // and every other name a setting lists is one `setting` finds it by
        for s in SETTINGS {
            for n in s.other_names() {
                assert_eq!(setting(&n), Some(s), "{n}");
            }
        }
        let names = setting("verify_interval").unwrap().other_names();
        assert!(names.contains(&"healing.verifyInterval".to_string()), "{names:?}");
        assert!(setting("load_timeout").unwrap().other_names().iter().all(|n| !n.starts_with("healing.")));
    }

    /// One spelling of names for JS: the table's for settings (former names included), camelCase
    /// for the rest.
    #[test]
    fn js_names() {
        assert_eq!(js_name("load_timeout"), "loadTimeout");
        assert_eq!(js_name("ttl_ms"), "ttl");
        assert_eq!(js_name("healing.verify_interval_ms"), "verifyInterval");
        assert_eq!(js_name("load_errors"), "loadErrors");
        assert_eq!(js_name("hits"), "hits");
    }

    /// Every table entry set by name reaches its own field, and no two entries share a field.
    #[test]
    fn every_setting_reaches_its_field() {
        let value = |s: &Setting| match s.unit {
            Unit::Flag => 1.0,
            Unit::Fraction => 0.5,
            _ => 3.0,
        };
        let cache_json = |c: &Config| serde_json::to_value(c).unwrap();
        let healing_json = |c: &HealingConfig| serde_json::to_value(c).unwrap();
        let mut cache_fields = Vec::new();
        let mut healing_fields = Vec::new();
        for s in SETTINGS {
            let changed: Vec<String> = match s.scope {
                Scope::Cache => {
                    let mut c = Config::default();
                    // a default-valued flag would not show a change: start from the other value
                    c.set(s.name, value(s)).unwrap_or_else(|e| panic!("{}: {e}", s.name));
                    c.set(s.js_name, value(s)).unwrap_or_else(|e| panic!("{}: {e}", s.js_name));
                    diff(&cache_json(&Config::default()), &cache_json(&c))
                }
                Scope::Healing => {
                    let mut c = HealingConfig {
                        enabled: false,
                        auto_repair: false,
                        #[cfg(feature = "tier")]
                        fleet_verify: false,
                        ..Default::default()
                    };
                    let before = healing_json(&c);
                    c.set(s.name, value(s)).unwrap_or_else(|e| panic!("{}: {e}", s.name));
                    c.set(s.js_name, value(s)).unwrap_or_else(|e| panic!("{}: {e}", s.js_name));
                    assert_eq!(c.get(s.name).unwrap(), value(s), "{} reads back", s.name);
                    diff(&before, &healing_json(&c))
                }
            };
            assert_eq!(changed.len(), 1, "{} changed {changed:?}", s.name);
            let field = &changed[0];
            assert!(field == s.name || field == &format!("{}_ms", s.name), "{} reached {field}", s.name);
            match s.scope {
                Scope::Cache => cache_fields.push(field.clone()),
                Scope::Healing => healing_fields.push(field.clone()),
            }
        }
        // and every field has its entry
        let all = |j: serde_json::Value| j.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        cache_fields.sort();
        healing_fields.sort();
        let (mut want_cache, mut want_healing) =
            (all(cache_json(&Config::default())), all(healing_json(&HealingConfig::default())));
        // text, not a number: set by its own builder call and host keyword
        want_cache.retain(|f| f != "l2_prefix" && f != "fleet_lock");
        want_cache.sort();
        want_healing.sort();
        assert_eq!(cache_fields, want_cache);
        assert_eq!(healing_fields, want_healing);
    }

    fn diff(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
        let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
        a.keys().filter(|k| a[*k] != b[*k]).cloned().collect()
    }

    #[test]
    fn unknown_names_are_refused() {
        let mut c = Config::default();
        assert!(matches!(c.set("nope", 1.0), Err(Error::InvalidConfig { field: "name", .. })));
        assert!(matches!(c.set("sample_rate", 0.5), Err(Error::InvalidConfig { field: "name", .. })));
        let mut h = HealingConfig::default();
        assert!(matches!(h.set("max_entries", 5.0), Err(Error::InvalidConfig { field: "name", .. })));
        assert_eq!(c, Config::default());
    }

    #[test]
    fn messages_in_each_hosts_names_and_units() {
        let mut c = Config::default();
        c.set("load_timeout", -1500.0).unwrap();
        let e = crate::Cache::<u8>::from_config(c).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { field: "load_timeout", value: Some(v), .. } if v == -1500.0));
        assert_eq!(
            e.message_for(Host::Rust),
            "invalid config: `load_timeout` must be a positive number of milliseconds, got -1500"
        );
        assert_eq!(
            e.message_for(Host::Python),
            "invalid config: `load_timeout` must be a positive number of seconds, got -1.5"
        );
        assert_eq!(
            e.message_for(Host::Js),
            "invalid config: `loadTimeout` must be a positive number of milliseconds, got -1500"
        );
        assert_eq!(e.to_string(), e.message_for(Host::Rust));

        let e = crate::Cache::<u8>::builder().max_entries(0).build().unwrap_err();
        assert_eq!(e.code(), "InvalidConfig");
        assert_eq!(e.message_for(Host::Rust), "invalid config: `max_entries` must be between 1 and 2147483648, got 0");
        assert_eq!(e.message_for(Host::Python), e.message_for(Host::Rust));
        assert_eq!(e.message_for(Host::Js), "invalid config: `maxEntries` must be between 1 and 2147483648, got 0");

        // a rule naming another setting names it in the host's spelling
        let mut c = Config::default();
        c.set("load_timeout", 10.0).unwrap();
        c.set("load_soft_timeout", 20.0).unwrap();
        let e = crate::Cache::<u8>::from_config(c).unwrap_err();
        assert_eq!(
            e.message_for(Host::Js),
            "invalid config: `loadSoftTimeout` must be shorter than `loadTimeout`, got 20 milliseconds"
        );
        // a load timeout in the host's unit
        let e = Error::LoadTimeout { after_ms: 250 };
        assert_eq!(e.message_for(Host::Python), "load timed out after 0.25 s");
        assert_eq!(e.message_for(Host::Js), "load timed out after 250 ms");
    }
}
