//! Keyword arguments of `Cache(...)` to [`healcache::Config`], value weights, and the tokio timer
//! (the spawner of background refreshes is `cache::DriverSpawner`, next to the loop drivers).
//!
//! Numbers go to the core as `f64` unchecked, so the core validates them and names the field.
//! Durations are seconds in Python and milliseconds in the core.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use healcache::{Cache, Config, Timer};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

use crate::error::{invalid, to_pyerr};

/// A stored Python object and its weight, computed once when it enters the cache (GIL held), so
/// the core's weigher, which may run on a thread without the GIL, only reads a number.
pub(crate) struct Stored {
    pub obj: Py<PyAny>,
    pub weight: u64,
}

/// The value type of the core cache.
pub(crate) type Value = Arc<Stored>;

/// How values are weighed.
pub(crate) enum Weigh {
    /// No byte bound is set: weights are not needed.
    Off,
    /// `len()` for str and bytes-likes, `sys.getsizeof` otherwise.
    Default,
    /// The user's `weigher(value) -> int`.
    Custom(Py<PyAny>),
}

impl Weigh {
    /// Wraps `obj` as a cache value with its weight (GIL held).
    pub fn value(&self, obj: Bound<'_, PyAny>) -> PyResult<Value> {
        let py = obj.py();
        let weight = match self {
            Weigh::Off => 0,
            Weigh::Default => {
                if let Ok(s) = obj.cast::<PyString>() {
                    s.len()? as u64
                } else if let Ok(b) = obj.cast::<PyBytes>() {
                    b.as_bytes().len() as u64
                } else if let Ok(b) = obj.cast::<PyByteArray>() {
                    b.len() as u64
                } else {
                    py.import("sys")?.call_method1("getsizeof", (&obj,))?.extract::<u64>()?
                }
            }
            Weigh::Custom(f) => {
                let w = f.bind(py).call1((&obj,))?;
                w.extract::<u64>().map_err(|_| invalid(py, "weigher", "must return an int between 0 and 2**64-1"))?
            }
        };
        Ok(Arc::new(Stored { obj: obj.unbind(), weight }))
    }
}

/// Load timeouts on a one-thread tokio runtime of their own. The returned future only awaits a
/// channel, so it works from any thread or executor (a thread blocked in `get_or_load_sync` may
/// poll it), and the runtime's thread never touches Python.
struct TokioTimer;

fn timer_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("healcache-timer")
            .enable_time()
            .build()
            .expect("healcache: cannot start the timer thread")
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Timer for TokioTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let task = timer_runtime().spawn(async move {
            tokio::time::sleep(d).await;
            let _ = tx.send(());
        });
        let guard = AbortOnDrop(task);
        Box::pin(async move {
            let _ = rx.await;
            drop(guard);
        })
    }
}

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
        .spawner(crate::cache::DriverSpawner)
        .build()
        .map_err(|e| to_pyerr(py, e))?;
    Ok((cache, weigh))
}

/// A per-write TTL in seconds: `None` keeps the cache's TTL, `math.inf` never expires.
pub(crate) fn write_ttl(py: Python<'_>, ttl: Option<f64>) -> PyResult<healcache::Ttl> {
    match ttl {
        None => Ok(healcache::Ttl::Default),
        Some(s) if s == f64::INFINITY => Ok(healcache::Ttl::Never),
        Some(s) => healcache::duration_ms("ttl_ms", s * 1000.0).map(healcache::Ttl::For).map_err(|e| to_pyerr(py, e)),
    }
}
