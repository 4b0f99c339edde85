//! Python binding of healcache: `healcache._healcache`, wrapped by the `healcache` package.
//!
//! Only conversion lives here: keyword arguments to [`healcache::Config`] (`config.rs`), Python
//! objects to cache values and core errors to Python exceptions (`error.rs`), and the bridge between
//! core flights and asyncio or threads, including the spawner of background refreshes (`cache.rs`).
//! TTLs, eviction, coalescing, the stampede layers and self-healing are the core's; `healing.rs`
//! bridges the healer's sources and loop to Python threads and event loops.

use pyo3::prelude::*;

mod cache;
mod config;
mod error;
mod healing;

/// The compiled module; `python/healcache/__init__.py` re-exports it.
#[pymodule]
fn _healcache(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<cache::PyCache>()?;
    m.add_class::<cache::LoopDriver>()?;
    cache::install_fast_get(&m.py().get_type::<cache::PyCache>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
