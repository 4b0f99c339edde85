//! Python binding of healcache: `healcache._healcache`, wrapped by the `healcache` package.
//!
//! Only conversion lives here; TTLs, eviction, coalescing, the stampede layers and self-healing
//! are the core's.
//!
//! - `cache.rs`: the `Cache` class; each method converts, calls the core once, converts back.
//! - `config.rs`: keyword arguments to the core's config and healing config, by the names of the
//!   core's settings table.
//! - `healing.rs`: self-healing settings, Python sources of truth, the healer's background thread.
//! - `convert.rs`: keys, values, durations and plain data between Python and the core.
//! - `loaders.rs`: Python loaders as the core's loaders.
//! - `shared.rs`: the shared tier (Redis L2): Python values to the core's payload model and back.
//! - `error.rs`: core errors to Python exceptions, and loader exceptions through the core.
//! - `fast_get.rs`: `Cache.get` installed as a `METH_FASTCALL` method (the hottest call).
//! - `write_behind.rs`: the `WriteBehind` class; Python writers as the core's batch writer.
//! - `runtime.rs`: the one place that polls, parks, spawns or releases the GIL.
//!
//! Modules depend downwards only: `fast_get` on `cache` and `convert`; `cache` on all the
//! others; `healing` on `config`; `config`, `healing`, `loaders` and `shared` on `convert`,
//! `error` and `runtime`; `runtime` on `convert` and
//! `error`; `convert` on `error`; `error` on none.

use pyo3::prelude::*;

mod cache;
mod config;
mod convert;
mod error;
mod fast_get;
mod healing;
mod loaders;
mod runtime;
mod shared;
mod write_behind;

/// The compiled module; `python/healcache/__init__.py` re-exports it.
#[pymodule]
fn _healcache(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<cache::PyCache>()?;
    m.add_class::<runtime::LoopDriver>()?;
    m.add_class::<config::PyManualClock>()?;
    m.add_class::<write_behind::PyWriteBehind>()?;
    m.add_function(wrap_pyfunction!(config::_settings, m)?)?;
    m.add_function(wrap_pyfunction!(shared::_close_all_shared, m)?)?;
    m.add_function(wrap_pyfunction!(cache::prometheus_join, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(write_behind::_close_all_write_behind, m)?)?;
    fast_get::install(&m.py().get_type::<cache::PyCache>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
