//! Settings from Python keyword arguments, through the core's settings table.
//!
//! `Cache(...)` and `set_healing(...)` declare one keyword per setting of the table (healing
//! settings prefixed `healing_` in `Cache(...)`) and pass them here by the table's name. Each value
//! is converted by the table's unit (seconds or a `timedelta` to milliseconds, flags from `bool`)
//! and set by name on the core's config, which validates it and names it in its errors.

use healcache::settings::{setting, Scope, Setting, SETTINGS};
use healcache::{Cache, Clock, Config, HealingConfig, ManualClock};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use std::sync::Arc;

use crate::convert::{arg, setting_to_py, Given, Seconds, Value, Weigh};
use crate::error::{config_error, invalid, to_pyerr, Spelling};
use crate::runtime::{detach, DriverSpawner, TokioTimer};
use crate::shared::PyCodec;

/// The shared tier's keywords that are text: `redis` (a URL), `l2_prefix` and `fleet_lock`.
#[derive(Default)]
pub(crate) struct Shared {
    pub redis: Option<String>,
    pub prefix: Option<String>,
    pub fleet_lock: Option<String>,
}

/// Keyword arguments by the settings table's names; `None`: not given.
pub(crate) type Settings = [(&'static str, Option<Given>)];

/// The table's entry of a name this binding declares.
fn declared(name: &str) -> PyResult<&'static Setting> {
    setting(name).ok_or_else(|| PyRuntimeError::new_err(format!("healcache: no setting {name:?} in the core")))
}

/// Sets every given setting with `set` (the core's by-name setter), converted by the table's unit.
fn apply(
    py: Python<'_>,
    given: &Settings,
    spelling: Spelling<'_>,
    mut set: impl FnMut(&str, f64) -> healcache::Result<()>,
) -> PyResult<()> {
    for (name, value) in given {
        let Some(value) = value else { continue };
        let setting = declared(name)?;
        let keyword = match spelling {
            Spelling::Keyword(prefix) => format!("{prefix}{name}"),
            _ => name.to_string(),
        };
        set(setting.name, value.to_core(py, setting, &keyword, spelling)?)
            .map_err(|e| config_error(py, e, spelling))?;
    }
    Ok(())
}

/// Builds the core cache from the keywords of `Cache(...)`; every invalid value raises
/// `InvalidConfig` (a `ValueError`) naming it. `seed` is a whole `u64` (more than an `f64`
/// holds), so it is set directly; `clock` is a [`PyManualClock`] or nothing (the host's clock).
pub(crate) fn build(
    py: Python<'_>,
    given: &Settings,
    seed: Option<Bound<'_, PyAny>>,
    weigher: Option<Bound<'_, PyAny>>,
    clock: Option<Bound<'_, PyAny>>,
    shared: Shared,
) -> PyResult<(Cache<Value>, Arc<Weigh>)> {
    let mut config = Config::default();
    apply(py, given, Spelling::ByName, |name, v| config.set(name, v))?;
    if let Some(s) = seed {
        // a bool is an int to Python, but `seed=True` is a mistake, refused as a bad seed is
        let whole = if s.is_instance_of::<PyBool>() { None } else { s.extract::<u64>().ok() };
        config.seed = Some(whole.ok_or_else(|| invalid(py, "seed", "must be an int between 0 and 2**64-1"))?);
    }
    let weigh = match weigher {
        Some(f) if !f.is_callable() => return Err(invalid(py, "weigher", "must be callable")),
        Some(f) => Weigh::Custom(f.unbind()),
        None if config.max_bytes.is_some() || config.max_entry_bytes.is_some() => Weigh::Default,
        None => Weigh::Lengths,
    };
    for (name, text) in [("l2_prefix", shared.prefix), ("fleet_lock", shared.fleet_lock)] {
        if let Some(text) = text {
            config.set_text(name, &text).map_err(|e| config_error(py, e, Spelling::ByName))?;
        }
    }
    let weigh = Arc::new(weigh);
    let mut builder = healcache::CacheBuilder::from_config(config)
        .weigher(|v: &Value| v.weight)
        .timer(TokioTimer)
        .spawner(DriverSpawner);
    if let Some(c) = clock {
        // Only the core's own manual clock: the cache reads its clock under its shard locks, on
        // any thread, where calling back into Python could deadlock with a thread holding the GIL.
        let c = c.cast::<PyManualClock>().map_err(|_| invalid(py, "clock", "must be a healcache.ManualClock"))?;
        builder = builder.clock(c.get().inner.clone());
    }
    if let Some(url) = shared.redis {
        // connecting waits at most the connect timeout; the GIL is not needed meanwhile
        let transport = detach(py, || healcache_redis::RedisTransport::connect(&url)).map_err(|e| to_pyerr(py, e))?;
        builder = builder.shared_tier(transport, PyCodec { weigh: Arc::clone(&weigh) });
    }
    let cache = builder.build().map_err(|e| to_pyerr(py, e))?;
    Ok((cache, weigh))
}

/// `healcache.ManualClock`: the core's manual clock, for deterministic tests of TTLs, grace
/// windows and XFetch. `Cache(clock=...)` reads time from it; `clock()` is its time in seconds,
/// like `time.monotonic`, so it is also a `timer=` for cachetools. Load timeouts still sleep on
/// the host's timer (wall time).
#[pyclass(name = "ManualClock", module = "healcache", frozen)]
pub(crate) struct PyManualClock {
    inner: ManualClock,
}

#[pymethods]
impl PyManualClock {
    #[new]
    fn new() -> Self {
        PyManualClock { inner: ManualClock::new() }
    }

    /// Moves the clock forward by `seconds` (a number or a `timedelta`, not negative).
    #[pyo3(signature = (seconds, /))]
    fn advance(&self, py: Python<'_>, #[pyo3(from_py_with = arg::advance)] seconds: Seconds) -> PyResult<()> {
        self.inner.advance_ms("seconds", seconds.0 * 1000.0).map_err(|e| to_pyerr(py, e))
    }

    /// The clock's time in seconds (it starts near 0).
    fn __call__(&self) -> f64 {
        self.inner.now_nanos() as f64 / 1e9
    }

    fn __repr__(&self) -> String {
        format!("ManualClock({})", self.__call__())
    }
}

/// `config` with the given healing settings, each validated as it is set; errors name the
/// keyword (`prefix` + the table's name).
pub(crate) fn healing(
    py: Python<'_>,
    mut config: HealingConfig,
    given: &Settings,
    prefix: &'static str,
) -> PyResult<HealingConfig> {
    apply(py, given, Spelling::Keyword(prefix), |name, v| config.set(name, v))?;
    Ok(config)
}

/// Every healing setting of the table under its name, in Python's units.
pub(crate) fn healing_dict<'py>(py: Python<'py>, config: &HealingConfig) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for s in SETTINGS.iter().filter(|s| s.scope == Scope::Healing) {
        let v = config.get(s.name).map_err(|e| to_pyerr(py, e))?;
        d.set_item(s.name, setting_to_py(py, s, v)?)?;
    }
    Ok(d)
}

/// `_healcache._settings()`: the core's settings table as `(name, scope, unit)` in lowercase, so
/// the tests check that every setting has its Python keyword.
#[pyfunction]
pub(crate) fn _settings() -> Vec<(&'static str, String, String)> {
    let lower = |d: &dyn std::fmt::Debug| format!("{d:?}").to_lowercase();
    SETTINGS.iter().map(|s| (s.name, lower(&s.scope), lower(&s.unit))).collect()
}
