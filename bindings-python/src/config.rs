//! Keyword arguments of `Cache(...)` to the core's [`healcache::Config`], and the core cache built
//! from them with the binding's timer and spawner.
//!
//! Numbers go to the core as `f64` unchecked, so the core validates them and names the field.
//! Durations are seconds in Python and milliseconds in the core.

use healcache::{Cache, Config};
use pyo3::prelude::*;

use crate::convert::{Value, Weigh};
use crate::error::{invalid, to_pyerr};
use crate::runtime::{DriverSpawner, TokioTimer};

/// The keyword arguments of `Cache(...)`, as declared in its signature.
pub(crate) struct Options<'py> {
    pub max_entries: Option<f64>,
    pub max_bytes: Option<f64>,
    pub ttl: Option<f64>,
    pub max_key_len: Option<f64>,
    pub max_entry_bytes: Option<f64>,
    pub max_in_flight: Option<f64>,
    pub load_timeout: Option<f64>,
    pub shards: Option<f64>,
    pub seed: Option<Bound<'py, PyAny>>,
    pub weigher: Option<Bound<'py, PyAny>>,
    pub grace: Option<f64>,
    pub stale_while_revalidate: Option<bool>,
    pub load_soft_timeout: Option<f64>,
    pub xfetch: Option<bool>,
    pub xfetch_beta: Option<f64>,
    pub refresh_after: Option<f64>,
    pub ttl_jitter: Option<f64>,
    pub negative_ttl: Option<f64>,
    pub max_negative_share: Option<f64>,
}

/// Builds the core cache; every invalid value raises `InvalidConfig` (a `ValueError`) naming it.
pub(crate) fn build(py: Python<'_>, o: Options<'_>) -> PyResult<(Cache<Value>, Weigh)> {
    let seed = match o.seed {
        None => None,
        Some(s) => Some(s.extract::<u64>().map_err(|_| invalid(py, "seed", "must be an int between 0 and 2**64-1"))?),
    };
    // Fields this binding does not expose keep the core's defaults.
    let mut config = Config {
        max_bytes: o.max_bytes,
        ttl_ms: o.ttl.map(|s| s * 1000.0),
        max_entry_bytes: o.max_entry_bytes,
        load_timeout_ms: o.load_timeout.map(|s| s * 1000.0),
        shards: o.shards,
        seed,
        grace_ms: o.grace.map(|s| s * 1000.0),
        load_soft_timeout_ms: o.load_soft_timeout.map(|s| s * 1000.0),
        refresh_after_ms: o.refresh_after.map(|s| s * 1000.0),
        negative_ttl_ms: o.negative_ttl.map(|s| s * 1000.0),
        ..Config::default()
    };
    let defaults = Config::default();
    config.stale_while_revalidate = o.stale_while_revalidate.unwrap_or(defaults.stale_while_revalidate);
    config.xfetch = o.xfetch.unwrap_or(defaults.xfetch);
    config.xfetch_beta = o.xfetch_beta.unwrap_or(defaults.xfetch_beta);
    config.ttl_jitter = o.ttl_jitter.unwrap_or(defaults.ttl_jitter);
    config.max_negative_share = o.max_negative_share.unwrap_or(defaults.max_negative_share);
    if let Some(n) = o.max_entries {
        config.max_entries = n;
    }
    if let Some(n) = o.max_key_len {
        config.max_key_len = n;
    }
    if let Some(n) = o.max_in_flight {
        config.max_in_flight = n;
    }
    let weigh = match o.weigher {
        Some(f) if !f.is_callable() => return Err(invalid(py, "weigher", "must be callable")),
        Some(f) => Weigh::Custom(f.unbind()),
        None if config.max_bytes.is_some() || config.max_entry_bytes.is_some() => Weigh::Default,
        None => Weigh::Off,
    };
    let cache = healcache::CacheBuilder::from_config(config)
        .weigher(|v: &Value| v.weight)
        .timer(TokioTimer)
        .spawner(DriverSpawner)
        .build()
        .map_err(|e| to_pyerr(py, e))?;
    Ok((cache, weigh))
}
