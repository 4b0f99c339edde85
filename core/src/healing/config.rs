//! [`HealingConfig`]: the healer's settings, checked as a whole and set by their names in the
//! settings table.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{count, duration_ms, fraction};
use crate::error::{ConfigProblem, Error, Result};
use crate::settings::{setting_in, Scope, Setting, Unit};

/// Self-healing settings. Every field documents its default; all can change at runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealingConfig {
    /// Whether the background loop verifies at all. Defaults to: false.
    pub enabled: bool,
    /// Share of live keys sampled each interval (0 to 1). Defaults to: 0.01.
    pub sample_rate: f64,
    /// Time between intervals, in ms. Defaults to: 5,000.
    pub verify_interval_ms: f64,
    /// Whether drift is repaired (else only reported). Defaults to: true.
    pub auto_repair: bool,
    /// Samples per prefix in the rolling score. Defaults to: 1,000.
    pub score_window: f64,
    /// Time a source may take per key, in ms. Defaults to: 2,000.
    pub source_timeout_ms: f64,
    /// Most keys asked of one source at once. Defaults to: 16.
    pub source_concurrency: f64,
    /// Most registered prefixes. Defaults to: 1,024.
    pub max_prefixes: f64,
    /// Drift events kept for `drift_events` (0: none); lowering it drops the oldest at once.
    /// Defaults to: 1,000.
    pub max_drift_events: f64,
    /// Most keys sampled in one interval, in all: the L1 sample and, as a fleet verifier, the L2
    /// samples of every prefix together. Defaults to: 100,000.
    pub max_samples: f64,
    /// With a shared tier, whether L2 entries are verified once per fleet, by the lease holder of
    /// each prefix (else every instance verifies what its own L1 holds). Defaults to: true.
    #[cfg(feature = "tier")]
    pub fleet_verify: bool,
    /// How long a fleet verifier's lease lives without renewal, in ms (at least 1); it is renewed
    /// every third of it, and a verifier that dies is replaced about this long after its last
    /// renewal. Defaults to: 5,000.
    #[cfg(feature = "tier")]
    pub fleet_verify_lease_ms: f64,
    /// Keys of L2 a fleet verifier walks per interval and prefix at most (1 to 10,000,000), which
    /// bounds its load on Redis. Defaults to: 10,000.
    #[cfg(feature = "tier")]
    pub fleet_verify_scan_budget: f64,
}

impl Default for HealingConfig {
    fn default() -> Self {
        HealingConfig {
            enabled: false,
            sample_rate: 0.01,
            verify_interval_ms: 5000.0,
            auto_repair: true,
            score_window: 1000.0,
            source_timeout_ms: 2000.0,
            source_concurrency: 16.0,
            max_prefixes: 1024.0,
            max_drift_events: 1000.0,
            max_samples: 100_000.0,
            #[cfg(feature = "tier")]
            fleet_verify: true,
            #[cfg(feature = "tier")]
            fleet_verify_lease_ms: 5000.0,
            #[cfg(feature = "tier")]
            fleet_verify_scan_budget: 10_000.0,
        }
    }
}

/// Validated settings, in the types the healer uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub enabled: bool,
    pub sample_rate: f64,
    pub interval: Duration,
    pub auto_repair: bool,
    pub score_window: usize,
    pub source_timeout: Duration,
    pub concurrency: usize,
    pub max_prefixes: usize,
    pub max_drift_events: usize,
    pub max_samples: usize,
    #[cfg(feature = "tier")]
    pub fleet: crate::tier::FleetVerify,
}

impl HealingConfig {
    pub(crate) fn validate(&self) -> Result<Settings> {
        Ok(Settings {
            enabled: self.enabled,
            sample_rate: fraction("sample_rate", self.sample_rate)?,
            interval: duration_ms("verify_interval", self.verify_interval_ms)?,
            auto_repair: self.auto_repair,
            score_window: count("score_window", self.score_window, 1.0, 1e6)? as usize,
            source_timeout: duration_ms("source_timeout", self.source_timeout_ms)?,
            concurrency: count("source_concurrency", self.source_concurrency, 1.0, 4096.0)? as usize,
            max_prefixes: count("max_prefixes", self.max_prefixes, 1.0, 1e5)? as usize,
            max_drift_events: count("max_drift_events", self.max_drift_events, 0.0, 1e6)? as usize,
            max_samples: count("max_samples", self.max_samples, 1.0, 1e7)? as usize,
            #[cfg(feature = "tier")]
            fleet: crate::tier::FleetVerify {
                enabled: self.fleet_verify,
                lease: {
                    // a lease goes to Redis in whole milliseconds: below one it would be none
                    let lease = duration_ms("fleet_verify_lease", self.fleet_verify_lease_ms)?;
                    if lease < Duration::from_millis(1) {
                        let problem = ConfigProblem::TooShort { min: 1.0 };
                        return Err(Error::InvalidConfig {
                            field: "fleet_verify_lease",
                            problem,
                            value: Some(self.fleet_verify_lease_ms),
                            unit: Unit::Duration,
                        });
                    }
                    Duration::from_millis(lease.as_millis() as u64)
                },
                scan_budget: count("fleet_verify_scan_budget", self.fleet_verify_scan_budget, 1.0, 1e7)? as usize,
            },
        })
    }

    /// The healing setting called `name` in the settings table (snake or camelCase).
    fn setting(name: &str, value: Option<f64>) -> Result<&'static Setting> {
        setting_in(Scope::Healing, name).ok_or(Error::invalid_config("name", ConfigProblem::Unknown, value))
    }

    /// Sets one field by its name in the settings table ([`crate::settings::SETTINGS`], snake or
    /// camelCase) to a number: durations in milliseconds, flags 1 or 0. The whole config is
    /// validated and nothing changes on error.
    ///
    /// ```
    /// let mut c = healcache::HealingConfig::default();
    /// c.set("sample_rate", 0.05).unwrap();
    /// c.set("verifyInterval", 250.0).unwrap();
    /// assert_eq!((c.sample_rate, c.verify_interval_ms), (0.05, 250.0));
    /// assert!(c.set("sample_rate", 2.0).is_err());
    /// ```
    pub fn set(&mut self, name: &str, value: f64) -> Result<()> {
        let setting = Self::setting(name, Some(value))?;
        let mut next = self.clone();
        let flag = || match value {
            1.0 => Ok(true),
            0.0 => Ok(false),
            _ => Err(Error::invalid_config(setting.name, ConfigProblem::NotFlag, Some(value))),
        };
        match setting.name {
            "enabled" => next.enabled = flag()?,
            "sample_rate" => next.sample_rate = value,
            "verify_interval" => next.verify_interval_ms = value,
            "auto_repair" => next.auto_repair = flag()?,
            "score_window" => next.score_window = value,
            "source_timeout" => next.source_timeout_ms = value,
            "source_concurrency" => next.source_concurrency = value,
            "max_prefixes" => next.max_prefixes = value,
            "max_drift_events" => next.max_drift_events = value,
            "max_samples" => next.max_samples = value,
            #[cfg(feature = "tier")]
            "fleet_verify" => next.fleet_verify = flag()?,
            #[cfg(feature = "tier")]
            "fleet_verify_lease" => next.fleet_verify_lease_ms = value,
            #[cfg(feature = "tier")]
            "fleet_verify_scan_budget" => next.fleet_verify_scan_budget = value,
            _ => return Err(Error::invalid_config("name", ConfigProblem::Unknown, Some(value))),
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// One field by its name in the settings table, as a number (durations in milliseconds,
    /// flags 1 or 0).
    pub fn get(&self, name: &str) -> Result<f64> {
        let flag = |on: bool| f64::from(u8::from(on));
        Ok(match Self::setting(name, None)?.name {
            "enabled" => flag(self.enabled),
            "sample_rate" => self.sample_rate,
            "verify_interval" => self.verify_interval_ms,
            "auto_repair" => flag(self.auto_repair),
            "score_window" => self.score_window,
            "source_timeout" => self.source_timeout_ms,
            "source_concurrency" => self.source_concurrency,
            "max_prefixes" => self.max_prefixes,
            "max_drift_events" => self.max_drift_events,
            "max_samples" => self.max_samples,
            #[cfg(feature = "tier")]
            "fleet_verify" => flag(self.fleet_verify),
            #[cfg(feature = "tier")]
            "fleet_verify_lease" => self.fleet_verify_lease_ms,
            #[cfg(feature = "tier")]
            "fleet_verify_scan_budget" => self.fleet_verify_scan_budget,
            _ => return Err(Error::invalid_config("name", ConfigProblem::Unknown, None)),
        })
    }

    /// Whether the setting `name` is a flag (`enabled`, `auto_repair`, `fleet_verify`).
    pub fn is_flag(name: &str) -> bool {
        setting_in(Scope::Healing, name).is_some_and(|s| s.unit == Unit::Flag)
    }

    /// [`HealingConfig::set`] from text (`"0.02"`; flags: `true`/`false`, `1`/`0`, `on`/`off`).
    pub fn set_by_name(&mut self, name: &str, value: &str) -> Result<()> {
        let setting = Self::setting(name, None)?;
        let v = if setting.unit == Unit::Flag {
            match value.trim() {
                "true" | "1" | "on" => 1.0,
                "false" | "0" | "off" => 0.0,
                _ => return Err(Error::invalid_config(setting.name, ConfigProblem::NotFlag, None)),
            }
        } else {
            value
                .trim()
                .parse::<f64>()
                .map_err(|_| Error::invalid_config(setting.name, ConfigProblem::NotNumber, None))?
        };
        self.set(name, v)
    }

    /// One field by its name, as text (flags: `true`/`false`).
    pub fn get_by_name(&self, name: &str) -> Result<String> {
        let v = self.get(name)?;
        Ok(if Self::is_flag(name) { (v == 1.0).to_string() } else { v.to_string() })
    }
}
