//! Configuration: a plain [`Config`] (serde, defaults) and the [`CacheBuilder`] that collects it
//! with the cache's parts. `build()` lives with the cache (`cache.rs`): this module knows nothing
//! of the cache it configures, so the two do not import each other.
//!
//! Numbers are kept as `f64` in [`Config`] on purpose: the same struct is filled from JSON, from a JS
//! options object and from Python keyword arguments, and a negative, fractional or NaN value must
//! become a typed [`Error::InvalidConfig`] naming the field, not a host-specific conversion error.
//! Rust users get typed setters on the builder.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigProblem, Error, Result};
use crate::settings::{setting_in, Scope, Unit};
use crate::store::RemovalCause;

/// Called with each entry that leaves the cache, after the cache's locks are released. The key
/// is lent: a listener that keeps it copies it (most keep only some, so none is allocated for
/// the others).
pub type RemovalListener<V> = Arc<dyn Fn(&str, V, RemovalCause) + Send + Sync>;

/// Hard ceilings: values above these are refused as absurd rather than allocated.
pub const MAX_ENTRIES_LIMIT: f64 = (1u64 << 31) as f64;
/// Largest `max_bytes` accepted (1 PiB).
pub const MAX_BYTES_LIMIT: f64 = (1u64 << 50) as f64;
/// Largest key length accepted for `max_key_len` (1 MiB).
pub const MAX_KEY_LEN_LIMIT: f64 = (1u64 << 20) as f64;
/// Longest duration accepted (100 years, in ms).
pub const MAX_DURATION_MS: f64 = 100.0 * 365.0 * 24.0 * 3600.0 * 1000.0;

/// Cache settings. Every field documents its default; [`CacheBuilder::build`] validates all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Maximum number of entries. Defaults to: 10,000.
    pub max_entries: f64,
    /// Maximum total weight in bytes (key length + value weight). Defaults to: unbounded by weight.
    pub max_bytes: Option<f64>,
    /// Default time-to-live of an entry, in milliseconds. Defaults to: no expiry.
    pub ttl_ms: Option<f64>,
    /// Longest key accepted, in bytes. Defaults to: 4,096.
    pub max_key_len: f64,
    /// Heaviest single entry accepted, in bytes. Defaults to: `max_bytes`, else 64 MiB.
    pub max_entry_bytes: Option<f64>,
    /// Most distinct keys loading at once through `get_or_load`. Defaults to: 10,000.
    pub max_in_flight: f64,
    /// Time a load may take before every waiter gets [`Error::LoadTimeout`], in ms. Defaults to: none.
    /// Needs a [`crate::Timer`] for async loads (the bindings supply one).
    pub load_timeout_ms: Option<f64>,
    /// Number of lock shards (a power of two up to 256). Defaults to: chosen from `max_entries`.
    pub shards: Option<f64>,
    /// Seed of the cache's random generator (eviction sampling, key sampling). Defaults to: from the host.
    pub seed: Option<u64>,
    /// Window after an entry's TTL during which its stale value may still be served: at once
    /// while one refresh runs (`stale_while_revalidate`), or when a load fails or passes its soft
    /// timeout (fail-safe), in ms. Defaults to: none.
    pub grace_ms: Option<f64>,
    /// Within the grace window, `fetch` returns the stale value at once and refreshes it in the
    /// background (needs `grace` and a spawner). Defaults to: false.
    pub stale_while_revalidate: bool,
    /// A load that has a stale value to fall back on returns it after this long and finishes in
    /// the background, in ms (needs a timer and a spawner). Defaults to: none.
    pub load_soft_timeout_ms: Option<f64>,
    /// XFetch probabilistic early refresh (Vattani et al., VLDB 2015): a read at time t refreshes
    /// in the background when `t - delta * beta * ln(rand()) >= expiry` (needs a spawner).
    /// Defaults to: false.
    pub xfetch: bool,
    /// XFetch's beta: above 1 refreshes earlier, below 1 later. Defaults to: 1.0.
    pub xfetch_beta: f64,
    /// Reads of a value written longer ago than this trigger one background refresh, in ms
    /// (Caffeine's refreshAfterWrite; needs a spawner). Defaults to: none.
    pub refresh_after_ms: Option<f64>,
    /// Each TTL is stretched by a random fraction in `[0, ttl_jitter)`, so keys written together
    /// do not expire together (0 to 1). Defaults to: 0.
    pub ttl_jitter: f64,
    /// TTL of cached "not found" answers of a loader, in ms. Defaults to: none (not cached).
    pub negative_ttl_ms: Option<f64>,
    /// Largest share of `max_entries` that cached "not found" answers may take (0 to 1).
    /// Defaults to: 0.1.
    pub max_negative_share: f64,
    /// Longest TTL a cached "not found" answer may have, in ms: `negative_ttl` and per-call
    /// negative TTLs above it are refused, so a mistaken "not found" cannot pin a key for hours.
    /// Defaults to: 60,000 (one minute).
    pub max_negative_ttl_ms: f64,
    /// Deadline of every shared-tier (L2) operation, in ms. Defaults to: 100.
    pub l2_timeout_ms: f64,
    /// Invalidations kept while L2 is unreachable (replayed when it returns; beyond it the
    /// oldest is dropped and counted). Defaults to: 10,000.
    pub l2_recovery_max: f64,
    /// L2 payloads at least this long are lz4-compressed, kept only if that saves 12.5%, in
    /// bytes. Defaults to: 1,024.
    pub l2_compress_min_bytes: f64,
    /// How long a delete's L2 tombstone fences out rebuilds that read before it, in ms.
    /// Defaults to: 10,000.
    pub l2_tombstone_ttl_ms: f64,
    /// First part of every L2 key (the digit is the layout version). Defaults to: `hc1`.
    pub l2_prefix: String,
    /// Which loads take the fleet rebuild lock (one rebuild per fleet): `off`, `refresh`
    /// (background refreshes only, skipping when another instance refreshes) or `all` (foreground
    /// misses too; they wait for the holder's value). Defaults to: `refresh`.
    pub fleet_lock: crate::tier::FleetLock,
    /// How long a fleet lock lives without renewal, in ms; the holder renews it every third of
    /// it. Defaults to: 5,000.
    pub fleet_lock_lease_ms: f64,
    /// How long a holder keeps renewing at most, in ms: a loader slower than this loses the lock
    /// to the next instance and its write is fenced out. Defaults to: 30,000.
    pub fleet_lock_max_hold_ms: f64,
    /// [`crate::Cache::ready`] stays true while the shared tier is unreachable: L1 and the
    /// loader serve, so a probe need not take the instance out of traffic. Defaults to: false.
    pub allow_degraded: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_entries: 10_000.0,
            max_bytes: None,
            ttl_ms: None,
            max_key_len: 4096.0,
            max_entry_bytes: None,
            max_in_flight: 10_000.0,
            load_timeout_ms: None,
            shards: None,
            seed: None,
            grace_ms: None,
            stale_while_revalidate: false,
            load_soft_timeout_ms: None,
            xfetch: false,
            xfetch_beta: 1.0,
            refresh_after_ms: None,
            ttl_jitter: 0.0,
            negative_ttl_ms: None,
            max_negative_share: 0.1,
            max_negative_ttl_ms: 60_000.0,
            l2_timeout_ms: 100.0,
            l2_recovery_max: 10_000.0,
            l2_compress_min_bytes: 1024.0,
            l2_tombstone_ttl_ms: 10_000.0,
            l2_prefix: crate::keys::DEFAULT_PREFIX.to_string(),
            fleet_lock: crate::tier::FleetLock::Refresh,
            fleet_lock_lease_ms: 5_000.0,
            fleet_lock_max_hold_ms: 30_000.0,
            allow_degraded: false,
        }
    }
}

/// Validated settings, in the types the engine uses.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub max_entries: u64,
    pub max_bytes: u64,
    pub ttl: Option<Duration>,
    pub max_key_len: usize,
    pub max_entry_bytes: u64,
    pub max_in_flight: usize,
    pub load_timeout: Option<Duration>,
    pub shards: usize,
    pub seed: u64,
    pub grace: Option<Duration>,
    pub stale_while_revalidate: bool,
    pub soft_timeout: Option<Duration>,
    pub xfetch_beta: Option<f64>,
    /// The beta of a read that turns XFetch on per call: the configured one, also when the
    /// cache's own XFetch is off.
    pub xfetch_call_beta: f64,
    pub refresh_after: Option<Duration>,
    pub ttl_jitter: f64,
    pub negative_ttl: Option<Duration>,
    pub max_negative_ttl: Duration,
    pub max_negative: u64,
    pub tier: crate::tier::TierConfig,
    pub allow_degraded: bool,
}

impl Settings {
    /// The grace window in nanoseconds (0: none).
    pub fn grace_nanos(&self) -> u64 {
        self.grace.map_or(0, |g| u64::try_from(g.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// Checks a whole number in `min..=max` (counts and sizes).
pub(crate) fn count(field: &'static str, v: f64, min: f64, max: f64) -> Result<u64> {
    let problem = if !v.is_finite() {
        ConfigProblem::NotFinite
    } else if v.fract() != 0.0 {
        ConfigProblem::NotWhole
    } else if v < min || v > max {
        ConfigProblem::OutOfRange { min, max }
    } else {
        return Ok(v as u64);
    };
    Err(Error::invalid_config(field, problem, Some(v)))
}

/// How long a close waits at most for the shared tier's writes under way when the caller does
/// not say ([`crate::Cache::close_shared`]).
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the exit hook of a host (Python's `atexit`, Node's `beforeExit`) waits at most for
/// the writes under way of every shared tier still open ([`crate::tier::close_all`]): an exit
/// must not hang on an unreachable Redis.
pub const EXIT_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A close's timeout in milliseconds as a host gives it: `None` is `default`, 0 closes at once
/// (waits for no write), anything else is checked as every duration is ([`duration_ms`]).
pub fn close_timeout_ms(ms: Option<f64>, default: Duration) -> Result<Duration> {
    match ms {
        None => Ok(default),
        Some(0.0) => Ok(Duration::ZERO),
        Some(v) => duration_ms("timeout", v),
    }
}

/// Validates a duration in milliseconds: finite, positive, at most 100 years. `field` names the
/// setting (as in the settings table) or the option of a call.
pub fn duration_ms(field: &'static str, v: f64) -> Result<Duration> {
    let problem = if !v.is_finite() || v <= 0.0 {
        ConfigProblem::NotPositive
    } else if v < 1e-6 {
        // Below a nanosecond the duration would round to zero: an entry would expire on arrival.
        ConfigProblem::TooShort { min: 1e-6 }
    } else if v > MAX_DURATION_MS {
        ConfigProblem::TooLong { max: MAX_DURATION_MS }
    } else {
        return Ok(Duration::from_nanos((v * 1_000_000.0) as u64));
    };
    Err(Error::InvalidConfig { field, problem, value: Some(v), unit: Unit::Duration })
}

/// A duration a Rust caller gives one call, held to the bounds [`duration_ms`] holds the
/// settings to: not zero, at most 100 years (compared exactly, not through a float).
pub(crate) fn call_duration(field: &'static str, d: Duration) -> Result<()> {
    let problem = if d.is_zero() {
        ConfigProblem::NotPositive
    } else if d > Duration::from_millis(MAX_DURATION_MS as u64) {
        ConfigProblem::TooLong { max: MAX_DURATION_MS }
    } else {
        return Ok(());
    };
    Err(Error::InvalidConfig { field, problem, value: Some(d.as_secs_f64() * 1000.0), unit: Unit::Duration })
}

/// Checks a share between 0 and 1.
pub(crate) fn fraction(field: &'static str, v: f64) -> Result<f64> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(Error::invalid_config(field, ConfigProblem::OutOfRange { min: 0.0, max: 1.0 }, Some(v)));
    }
    Ok(v)
}

fn host_seed() -> u64 {
    // Native: std's RandomState is seeded from the OS. On wasm32-unknown-unknown its keys are
    // fixed, so the WASM binding passes a seed from the host (`crypto.getRandomValues`), and a
    // fixed fallback is all std could give there anyway (without linking its hasher).
    #[cfg(target_arch = "wasm32")]
    return 0x6865_616c_6361_6368;
    #[cfg(not(target_arch = "wasm32"))]
    use std::hash::{BuildHasher, Hasher};
    #[cfg(not(target_arch = "wasm32"))]
    {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6865_616c_6361_6368);
        h.finish()
    }
}

impl Config {
    /// Sets one field by its name in the settings table ([`crate::settings::SETTINGS`], snake or
    /// camelCase) from a host number: durations in milliseconds, flags 0 (false) or anything else
    /// (true), `seed` a whole number up to 2^53. Values are checked when the cache is built.
    ///
    /// ```
    /// let mut c = healcache::Config::default();
    /// c.set("max_entries", 500.0).unwrap();
    /// c.set("loadTimeout", 250.0).unwrap();
    /// c.set("stale_while_revalidate", 1.0).unwrap();
    /// assert_eq!((c.max_entries, c.load_timeout_ms, c.stale_while_revalidate), (500.0, Some(250.0), true));
    /// assert!(c.set("max_entrys", 1.0).is_err());
    /// c.set("ttl", f64::INFINITY).unwrap();
    /// assert_eq!(c.ttl_ms, None);
    /// ```
    pub fn set(&mut self, name: &str, value: f64) -> Result<()> {
        let unknown = || Error::invalid_config("name", ConfigProblem::Unknown, Some(value));
        let setting = setting_in(Scope::Cache, name).ok_or_else(unknown)?;
        let flag = value != 0.0;
        match setting.name {
            "max_entries" => self.max_entries = value,
            "max_bytes" => self.max_bytes = Some(value),
            // infinity is no expiry, the default, as for a write's TTL
            "ttl" => self.ttl_ms = (value != f64::INFINITY).then_some(value),
            "max_key_len" => self.max_key_len = value,
            "max_entry_bytes" => self.max_entry_bytes = Some(value),
            "max_in_flight" => self.max_in_flight = value,
            "load_timeout" => self.load_timeout_ms = Some(value),
            "shards" => self.shards = Some(value),
            "seed" => self.seed = Some(count("seed", value, 0.0, (1u64 << 53) as f64)?),
            "grace" => self.grace_ms = Some(value),
            "stale_while_revalidate" => self.stale_while_revalidate = flag,
            "load_soft_timeout" => self.load_soft_timeout_ms = Some(value),
            "xfetch" => self.xfetch = flag,
            "xfetch_beta" => self.xfetch_beta = value,
            "refresh_after" => self.refresh_after_ms = Some(value),
            "ttl_jitter" => self.ttl_jitter = value,
            "negative_ttl" => self.negative_ttl_ms = Some(value),
            "max_negative_share" => self.max_negative_share = value,
            "max_negative_ttl" => self.max_negative_ttl_ms = value,
            "l2_timeout" => self.l2_timeout_ms = value,
            "l2_recovery_max" => self.l2_recovery_max = value,
            "l2_compress_min_bytes" => self.l2_compress_min_bytes = value,
            "l2_tombstone_ttl" => self.l2_tombstone_ttl_ms = value,
            "fleet_lock_lease" => self.fleet_lock_lease_ms = value,
            "fleet_lock_max_hold" => self.fleet_lock_max_hold_ms = value,
            "allow_degraded" => self.allow_degraded = flag,
            _ => return Err(unknown()),
        }
        Ok(())
    }

    /// Sets a text setting by name: `l2_prefix` (checked when the cache is built) or
    /// `fleet_lock` (`off`, `refresh` or `all`, checked now). The hosts' text options.
    ///
    /// ```
    /// let mut c = healcache::Config::default();
    /// c.set_text("fleetLock", "all").unwrap();
    /// assert_eq!(c.fleet_lock, healcache::tier::FleetLock::All);
    /// assert!(c.set_text("fleet_lock", "sometimes").is_err());
    /// ```
    pub fn set_text(&mut self, name: &str, value: &str) -> Result<()> {
        match name {
            "l2_prefix" | "l2Prefix" => self.l2_prefix = value.to_string(),
            "fleet_lock" | "fleetLock" => {
                self.fleet_lock = crate::tier::FleetLock::parse(value).ok_or_else(|| {
                    let problem = ConfigProblem::Rule("must be \"off\", \"refresh\" or \"all\"");
                    Error::invalid_config("fleet_lock", problem, None)
                })?
            }
            _ => return Err(Error::invalid_config("name", ConfigProblem::Unknown, None)),
        }
        Ok(())
    }

    /// Checks every setting as [`CacheBuilder::build`] does, without building a cache.
    pub fn check(&self) -> Result<()> {
        self.validate().map(drop)
    }

    pub(crate) fn validate(&self) -> Result<Settings> {
        let max_entries = count("max_entries", self.max_entries, 1.0, MAX_ENTRIES_LIMIT)?;
        let max_bytes = match self.max_bytes {
            Some(b) => count("max_bytes", b, 1.0, MAX_BYTES_LIMIT)?,
            None => u64::MAX,
        };
        let max_key_len = count("max_key_len", self.max_key_len, 1.0, MAX_KEY_LEN_LIMIT)? as usize;
        let max_entry_bytes = match self.max_entry_bytes {
            Some(b) => {
                let b = count("max_entry_bytes", b, 1.0, MAX_BYTES_LIMIT)?;
                if b > max_bytes {
                    let problem = ConfigProblem::MustNotExceed("max_bytes");
                    return Err(Error::invalid_config("max_entry_bytes", problem, Some(b as f64)));
                }
                b
            }
            None => max_bytes.min(64 << 20),
        };
        let max_in_flight = count("max_in_flight", self.max_in_flight, 1.0, 1e7)? as usize;
        let ttl = self.ttl_ms.map(|v| duration_ms("ttl", v)).transpose()?;
        let load_timeout = self.load_timeout_ms.map(|v| duration_ms("load_timeout", v)).transpose()?;
        let shards = match self.shards {
            Some(s) => {
                let s = count("shards", s, 1.0, 256.0)? as usize;
                if !s.is_power_of_two() {
                    return Err(Error::invalid_config("shards", ConfigProblem::NotPowerOfTwo, Some(s as f64)));
                }
                if s as u64 > max_entries {
                    let problem = ConfigProblem::MustNotExceed("max_entries");
                    return Err(Error::invalid_config("shards", problem, Some(s as f64)));
                }
                s
            }
            // About 4,096 entries per shard, at most 64 shards: enough to spread a 2-64 core host.
            None => ((max_entries / 4096).max(1).next_power_of_two() as usize).min(64),
        };
        let grace = self.grace_ms.map(|v| duration_ms("grace", v)).transpose()?;
        if self.stale_while_revalidate && grace.is_none() {
            return Err(Error::invalid_config("stale_while_revalidate", ConfigProblem::Needs("grace"), None));
        }
        let soft_timeout = self.load_soft_timeout_ms.map(|v| duration_ms("load_soft_timeout", v)).transpose()?;
        if let (Some(s), Some(h)) = (soft_timeout, load_timeout) {
            if s >= h {
                let problem = ConfigProblem::MustBeBelow("load_timeout");
                return Err(Error::invalid_config("load_soft_timeout", problem, Some(s.as_secs_f64() * 1000.0)));
            }
        }
        if !self.xfetch_beta.is_finite() || self.xfetch_beta <= 0.0 || self.xfetch_beta > 1000.0 {
            let problem = if !self.xfetch_beta.is_finite() {
                ConfigProblem::NotFinite
            } else if self.xfetch_beta <= 0.0 {
                ConfigProblem::NotPositive
            } else {
                ConfigProblem::OutOfRange { min: 0.0, max: 1000.0 }
            };
            return Err(Error::invalid_config("xfetch_beta", problem, Some(self.xfetch_beta)));
        }
        let refresh_after = self.refresh_after_ms.map(|v| duration_ms("refresh_after", v)).transpose()?;
        let ttl_jitter = fraction("ttl_jitter", self.ttl_jitter)?;
        let max_negative_ttl = duration_ms("max_negative_ttl", self.max_negative_ttl_ms)?;
        let negative_ttl = self.negative_ttl_ms.map(|v| duration_ms("negative_ttl", v)).transpose()?;
        if negative_ttl.is_some_and(|t| t > max_negative_ttl) {
            return Err(Error::invalid_config(
                "negative_ttl",
                ConfigProblem::MustNotExceed("max_negative_ttl"),
                self.negative_ttl_ms,
            ));
        }
        let share = fraction("max_negative_share", self.max_negative_share)?;
        if crate::keys::check_prefix(&self.l2_prefix).is_err() {
            let problem = ConfigProblem::Rule("must be 1 to 64 characters of A-Z a-z 0-9 . _ : -");
            return Err(Error::invalid_config("l2_prefix", problem, None));
        }
        let tier = crate::tier::TierConfig {
            prefix: self.l2_prefix.clone(),
            timeout: duration_ms("l2_timeout", self.l2_timeout_ms)?,
            recovery_max: count("l2_recovery_max", self.l2_recovery_max, 1.0, 1e7)? as usize,
            compress_min_bytes: count("l2_compress_min_bytes", self.l2_compress_min_bytes, 0.0, MAX_BYTES_LIMIT)?
                as usize,
            tombstone_ttl: duration_ms("l2_tombstone_ttl", self.l2_tombstone_ttl_ms)?,
            lock: crate::tier::lock::LockConfig {
                mode: self.fleet_lock,
                lease: duration_ms("fleet_lock_lease", self.fleet_lock_lease_ms)?,
                max_hold: duration_ms("fleet_lock_max_hold", self.fleet_lock_max_hold_ms)?,
            },
            ..crate::tier::TierConfig::default()
        };
        Ok(Settings {
            tier,
            allow_degraded: self.allow_degraded,
            grace,
            stale_while_revalidate: self.stale_while_revalidate,
            soft_timeout,
            xfetch_beta: self.xfetch.then_some(self.xfetch_beta),
            xfetch_call_beta: self.xfetch_beta,
            refresh_after,
            ttl_jitter,
            negative_ttl,
            max_negative_ttl,
            max_negative: (max_entries as f64 * share) as u64,
            max_entries,
            max_bytes,
            ttl,
            max_key_len,
            max_entry_bytes,
            max_in_flight,
            load_timeout,
            shards,
            seed: self.seed.unwrap_or_else(host_seed),
        })
    }
}

/// Computes the weight of a value in bytes (the key's length is added by the cache).
pub type Weigher<V> = Arc<dyn Fn(&V) -> u64 + Send + Sync>;

/// Builds a [`crate::Cache`], validating every setting ([`CacheBuilder::build`]).
///
/// ```
/// use healcache::Cache;
/// use std::time::Duration;
///
/// let cache: Cache<String> = Cache::builder()
///     .max_entries(100_000)
///     .max_bytes(64 << 20)
///     .ttl(Duration::from_secs(60))
///     .weigher(|v: &String| v.len() as u64)
///     .build()
///     .unwrap();
/// cache.set("user:1", "Ada".to_string()).unwrap();
/// assert_eq!(cache.get("user:1").as_deref(), Some("Ada"));
///
/// // Invalid settings are typed errors naming the field.
/// let err = Cache::<String>::builder().max_entries(0).build().unwrap_err();
/// assert_eq!(err.code(), "InvalidConfig");
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct CacheBuilder<V> {
    pub(crate) config: Config,
    pub(crate) weigher: Option<Weigher<V>>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(crate) timer: Option<Arc<dyn crate::Timer>>,
    pub(crate) listener: Option<RemovalListener<V>>,
    pub(crate) spawner: Option<Arc<dyn crate::Spawner>>,
    pub(crate) tier: Option<SharedTier<V>>,
}

impl<V> std::fmt::Debug for CacheBuilder<V> {
    // its closures and trait objects print as nothing useful: the settings are what it is
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A shared tier as the builder keeps it until `build`.
pub(crate) type SharedTier<V> = (Arc<dyn crate::tier::Transport>, Arc<dyn crate::tier::ValueCodec<V>>);

impl<V> CacheBuilder<V> {
    /// A builder with [`Config::default`].
    pub fn new() -> Self {
        Self::from_config(Config::default())
    }

    /// A builder starting from `config`.
    pub fn from_config(config: Config) -> Self {
        CacheBuilder { config, weigher: None, clock: None, timer: None, listener: None, spawner: None, tier: None }
    }

    /// Maximum number of entries. Defaults to: 10,000.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.config.max_entries = n as f64;
        self
    }

    /// Maximum total weight in bytes. Defaults to: unbounded by weight.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.config.max_bytes = Some(n as f64);
        self
    }

    /// Default TTL of entries. Defaults to: no expiry.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl_ms = Some(ttl.as_secs_f64() * 1000.0);
        self
    }

    /// Longest key accepted, in bytes. Defaults to: 4,096.
    pub fn max_key_len(mut self, n: usize) -> Self {
        self.config.max_key_len = n as f64;
        self
    }

    /// Heaviest entry accepted, in bytes. Defaults to: `max_bytes`, else 64 MiB.
    pub fn max_entry_bytes(mut self, n: u64) -> Self {
        self.config.max_entry_bytes = Some(n as f64);
        self
    }

    /// Most keys loading at once. Defaults to: 10,000.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n as f64;
        self
    }

    /// Time a load may take. Defaults to: none.
    pub fn load_timeout(mut self, d: Duration) -> Self {
        self.config.load_timeout_ms = Some(d.as_secs_f64() * 1000.0);
        self
    }

    /// Number of lock shards, a power of two. Defaults to: chosen from `max_entries`.
    pub fn shards(mut self, n: usize) -> Self {
        self.config.shards = Some(n as f64);
        self
    }

    /// Seed of the random generator. Defaults to: from the host.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Weight of a value in bytes. Defaults to: `size_of::<V>()`.
    ///
    /// The cache keeps no weight per entry (8 bytes each): it weighs a value when it is written
    /// and again when it leaves, so `f` must give a value the same weight each time, as
    /// quick_cache's weighter must. It runs under a shard's lock: keep it cheap, and do not call
    /// the cache from it.
    pub fn weigher(mut self, f: impl Fn(&V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(f));
        self
    }

    /// The clock. Defaults to: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The timer used for load timeouts of async loads. Defaults to: none.
    pub fn timer(mut self, timer: impl crate::Timer) -> Self {
        self.timer = Some(Arc::new(timer));
        self
    }

    /// Runs background refreshes (stale-while-revalidate, XFetch, refresh-ahead, the tail of a
    /// soft-timed-out load). Defaults to: none.
    pub fn spawner(mut self, spawner: impl crate::Spawner) -> Self {
        self.spawner = Some(Arc::new(spawner));
        self
    }

    /// Grace window after the TTL for stale values. Defaults to: none.
    pub fn grace(mut self, d: Duration) -> Self {
        self.config.grace_ms = Some(d.as_secs_f64() * 1000.0);
        self
    }

    /// Serve stale values at once within the grace window, refreshing in the background.
    /// Defaults to: false.
    pub fn stale_while_revalidate(mut self, on: bool) -> Self {
        self.config.stale_while_revalidate = on;
        self
    }

    /// [`crate::Cache::ready`] stays true while the shared tier is unreachable. Defaults to: false.
    pub fn allow_degraded(mut self, on: bool) -> Self {
        self.config.allow_degraded = on;
        self
    }

    /// Soft load timeout (falls back to a stale value). Defaults to: none.
    pub fn load_soft_timeout(mut self, d: Duration) -> Self {
        self.config.load_soft_timeout_ms = Some(d.as_secs_f64() * 1000.0);
        self
    }

    /// XFetch early refresh with this beta. Defaults to: off.
    pub fn xfetch(mut self, beta: f64) -> Self {
        self.config.xfetch = true;
        self.config.xfetch_beta = beta;
        self
    }

    /// Refresh-ahead age. Defaults to: none.
    pub fn refresh_after(mut self, d: Duration) -> Self {
        self.config.refresh_after_ms = Some(d.as_secs_f64() * 1000.0);
        self
    }

    /// TTL jitter fraction (0 to 1). Defaults to: 0.
    pub fn ttl_jitter(mut self, f: f64) -> Self {
        self.config.ttl_jitter = f;
        self
    }

    /// TTL of cached "not found" answers. Defaults to: none.
    pub fn negative_ttl(mut self, d: Duration) -> Self {
        self.config.negative_ttl_ms = Some(d.as_secs_f64() * 1000.0);
        self
    }

    /// Longest TTL of a cached "not found" answer. Defaults to: one minute.
    pub fn max_negative_ttl(mut self, d: Duration) -> Self {
        self.config.max_negative_ttl_ms = d.as_secs_f64() * 1000.0;
        self
    }

    /// A shared tier (L2) every process of a fleet reads: `transport` reaches it (the
    /// `healcache-redis` crate gives one for Redis), `codec` turns values into payload bytes
    /// (`healcache::tier::MsgPack` for serde types). Its settings are the `l2_*` ones. Needs a
    /// timer. Defaults to: none.
    pub fn shared_tier(
        mut self,
        transport: impl crate::tier::Transport,
        codec: impl crate::tier::ValueCodec<V>,
    ) -> Self {
        self.tier = Some((Arc::new(transport), Arc::new(codec)));
        self
    }

    /// Deadline of every shared-tier operation. Defaults to: 100 ms.
    pub fn l2_timeout(mut self, d: Duration) -> Self {
        self.config.l2_timeout_ms = d.as_secs_f64() * 1000.0;
        self
    }

    /// First part of every L2 key. Defaults to: `hc1`.
    pub fn l2_prefix(mut self, prefix: &str) -> Self {
        self.config.l2_prefix = prefix.to_string();
        self
    }

    /// Which loads take the fleet rebuild lock. Defaults to: [`crate::tier::FleetLock::Refresh`].
    pub fn fleet_lock(mut self, mode: crate::tier::FleetLock) -> Self {
        self.config.fleet_lock = mode;
        self
    }

    /// How long a fleet lock lives without renewal. Defaults to: 5 s.
    pub fn fleet_lock_lease(mut self, d: Duration) -> Self {
        self.config.fleet_lock_lease_ms = d.as_secs_f64() * 1000.0;
        self
    }

    /// How long a fleet lock holder keeps renewing at most. Defaults to: 30 s.
    pub fn fleet_lock_max_hold(mut self, d: Duration) -> Self {
        self.config.fleet_lock_max_hold_ms = d.as_secs_f64() * 1000.0;
        self
    }

    /// Called with each entry that leaves the cache (evicted, expired, replaced, removed),
    /// after the cache's locks are released. A panic in `f` reaches the call that removed the
    /// entry, after every other entry that call removed was reported; one raised while a load
    /// stores its value stops there (the panic hook reports it), so every caller of that shared
    /// load still gets the value. Defaults to: none.
    pub fn on_removal(mut self, f: impl Fn(&str, V, RemovalCause) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(f));
        self
    }

    pub(crate) fn take_clock(&mut self) -> Arc<dyn Clock> {
        self.clock.take().unwrap_or_else(|| Arc::new(SystemClock::new()))
    }
}

impl<V> Default for CacheBuilder<V> {
    fn default() -> Self {
        Self::new()
    }
}
