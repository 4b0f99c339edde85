//! `healcache.Cache`: the core cache of Python objects, with its sync, threaded and asyncio faces.
//!
//! Each method converts its arguments (`convert.rs`, `config.rs`), calls the core once, and
//! converts the result or the error (`error.rs`). Loads go through core flights, shared by
//! `get_or_load` and `fetch` (asyncio) and `get_or_load_sync` (threads): the loader adapters are
//! in `loaders.rs`, and the asyncio hand-off, the GIL release and the spawner of background
//! refreshes in `runtime.rs`.

use std::sync::Arc;

use futures::future::FutureExt;
use healcache::{Cache, Error, FetchOptions, Warm, WriteOptions, WriteThrough};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyList, PyString, PyTuple, PyType};

use crate::config;
use crate::convert::{self, arg, key_str, to_py, EntryTuple, Given, Reply, Seconds, Value, Weigh};
use crate::error::{invalid, loader_error, loop_would_block, to_pyerr};
use crate::healing::{self, Healing};
use crate::loaders::{check_callable, sync_loader, AsyncLoad, BatchLoad, Want};
use crate::runtime::{self, block_on_attached, drive, on_loop, running_loop, WaitFuture};

/// A bounded, concurrent in-memory cache from `str` keys to Python objects.
#[pyclass(name = "Cache", module = "healcache", frozen, mapping, weakref)]
pub(crate) struct PyCache {
    pub(crate) inner: Cache<Value>,
    pub(crate) weigh: Arc<Weigh>,
    healing: Healing,
}

impl Drop for PyCache {
    /// A dropped cache ends its background healing (the thread stops at its next step).
    fn drop(&mut self) {
        self.healing.drop_background();
    }
}

#[pymethods]
impl PyCache {
    /// Keyword-only settings, one per entry of the core's settings table (healing settings
    /// prefixed `healing_`), passed on by the table's names; `seed`, `weigher`,
    /// `healing_comparator` and `clock` are Python objects rather than numbers.
    #[new]
    #[pyo3(signature = (
        *,
        max_entries=None,
        max_bytes=None,
        ttl=None,
        max_key_len=None,
        max_entry_bytes=None,
        max_in_flight=None,
        load_timeout=None,
        shards=None,
        seed=None,
        weigher=None,
        grace=None,
        stale_while_revalidate=None,
        load_soft_timeout=None,
        xfetch=None,
        xfetch_beta=None,
        refresh_after=None,
        ttl_jitter=None,
        negative_ttl=None,
        max_negative_share=None,
        max_negative_ttl=None,
        l2_timeout=None,
        l2_recovery_max=None,
        l2_compress_min_bytes=None,
        l2_tombstone_ttl=None,
        fleet_lock_lease=None,
        fleet_lock_max_hold=None,
        allow_degraded=None,
        redis=None,
        l2_prefix=None,
        fleet_lock=None,
        healing_enabled=None,
        healing_sample_rate=None,
        healing_verify_interval=None,
        healing_auto_repair=None,
        healing_score_window=None,
        healing_source_timeout=None,
        healing_source_concurrency=None,
        healing_max_prefixes=None,
        healing_max_drift_events=None,
        healing_max_samples=None,
        healing_fleet_verify=None,
        healing_fleet_verify_lease=None,
        healing_fleet_verify_scan_budget=None,
        healing_comparator=None,
        clock=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
        max_entries: Option<Given>,
        max_bytes: Option<Given>,
        ttl: Option<Given>,
        max_key_len: Option<Given>,
        max_entry_bytes: Option<Given>,
        max_in_flight: Option<Given>,
        load_timeout: Option<Given>,
        shards: Option<Given>,
        seed: Option<Bound<'py, PyAny>>,
        weigher: Option<Bound<'py, PyAny>>,
        grace: Option<Given>,
        stale_while_revalidate: Option<Given>,
        load_soft_timeout: Option<Given>,
        xfetch: Option<Given>,
        xfetch_beta: Option<Given>,
        refresh_after: Option<Given>,
        ttl_jitter: Option<Given>,
        negative_ttl: Option<Given>,
        max_negative_share: Option<Given>,
        max_negative_ttl: Option<Given>,
        l2_timeout: Option<Given>,
        l2_recovery_max: Option<Given>,
        l2_compress_min_bytes: Option<Given>,
        l2_tombstone_ttl: Option<Given>,
        fleet_lock_lease: Option<Given>,
        fleet_lock_max_hold: Option<Given>,
        allow_degraded: Option<Given>,
        #[pyo3(from_py_with = arg::redis)] redis: Option<String>,
        #[pyo3(from_py_with = arg::l2_prefix)] l2_prefix: Option<String>,
        #[pyo3(from_py_with = arg::fleet_lock)] fleet_lock: Option<String>,
        healing_enabled: Option<Given>,
        healing_sample_rate: Option<Given>,
        healing_verify_interval: Option<Given>,
        healing_auto_repair: Option<Given>,
        healing_score_window: Option<Given>,
        healing_source_timeout: Option<Given>,
        healing_source_concurrency: Option<Given>,
        healing_max_prefixes: Option<Given>,
        healing_max_drift_events: Option<Given>,
        healing_max_samples: Option<Given>,
        healing_fleet_verify: Option<Given>,
        healing_fleet_verify_lease: Option<Given>,
        healing_fleet_verify_scan_budget: Option<Given>,
        healing_comparator: Option<Bound<'py, PyAny>>,
        clock: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let settings = [
            ("max_entries", max_entries),
            ("max_bytes", max_bytes),
            ("ttl", ttl),
            ("max_key_len", max_key_len),
            ("max_entry_bytes", max_entry_bytes),
            ("max_in_flight", max_in_flight),
            ("load_timeout", load_timeout),
            ("shards", shards),
            ("grace", grace),
            ("stale_while_revalidate", stale_while_revalidate),
            ("load_soft_timeout", load_soft_timeout),
            ("xfetch", xfetch),
            ("xfetch_beta", xfetch_beta),
            ("refresh_after", refresh_after),
            ("ttl_jitter", ttl_jitter),
            ("negative_ttl", negative_ttl),
            ("max_negative_share", max_negative_share),
            ("max_negative_ttl", max_negative_ttl),
            ("l2_timeout", l2_timeout),
            ("l2_recovery_max", l2_recovery_max),
            ("l2_compress_min_bytes", l2_compress_min_bytes),
            ("l2_tombstone_ttl", l2_tombstone_ttl),
            ("fleet_lock_lease", fleet_lock_lease),
            ("fleet_lock_max_hold", fleet_lock_max_hold),
            ("allow_degraded", allow_degraded),
        ];
        let shared = config::Shared { redis, prefix: l2_prefix, fleet_lock };
        let (inner, weigh) = config::build(py, &settings, seed, weigher, clock, shared)?;
        let healing_settings = [
            ("enabled", healing_enabled),
            ("sample_rate", healing_sample_rate),
            ("verify_interval", healing_verify_interval),
            ("auto_repair", healing_auto_repair),
            ("score_window", healing_score_window),
            ("source_timeout", healing_source_timeout),
            ("source_concurrency", healing_source_concurrency),
            ("max_prefixes", healing_max_prefixes),
            ("max_drift_events", healing_max_drift_events),
            ("max_samples", healing_max_samples),
            ("fleet_verify", healing_fleet_verify),
            ("fleet_verify_lease", healing_fleet_verify_lease),
            ("fleet_verify_scan_budget", healing_fleet_verify_scan_budget),
        ];
        let healing = Healing::new(py, &inner, &healing_settings, healing_comparator)?;
        Ok(PyCache { inner, weigh, healing })
    }

    /// The live value of `key`, else `default`.
    #[pyo3(signature = (key, default=None, /))]
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.inner.get(key_str(key)?) {
            Some(v) => Ok(v.obj.clone_ref(py)),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// The live value of `key`, else `default`, counting no read: the hit and miss counters and
    /// what is evicted next stay as they were.
    #[pyo3(signature = (key, default=None, /))]
    fn peek(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.inner.peek(key_str(key)?) {
            Some(v) => Ok(v.obj.clone_ref(py)),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// Every key holding a value, in no particular order: a snapshot, so writing while
    /// iterating over it is safe.
    fn keys(&self) -> Vec<String> {
        self.inner.keys()
    }

    /// Every fresh value, in no particular order (a snapshot, as `keys()`); counts no read.
    fn values(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.inner.entries().into_iter().map(|(_, v)| v.obj.clone_ref(py)).collect()
    }

    /// Every `(key, value)` holding a fresh value, in no particular order (a snapshot, as
    /// `keys()`); counts no read.
    fn items(&self, py: Python<'_>) -> Vec<(String, Py<PyAny>)> {
        self.inner.entries().into_iter().map(|(k, v)| (k, v.obj.clone_ref(py))).collect()
    }

    /// Removes `key` and returns its fresh value, as `dict.pop`: `default` when it has none, else
    /// `KeyError`.
    #[pyo3(signature = (key, /, *default))]
    fn pop(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        // `*default`, not `default=None`: `pop(key, None)` answers None where `pop(key)` raises
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!("pop expected at most 2 arguments, got {}", default.len() + 1)));
        }
        let key = key_str(key)?;
        match (self.inner.remove(key), default.get_item(0).ok()) {
            (Some(v), _) => Ok(v.obj.clone_ref(py)),
            (None, Some(d)) => Ok(d.unbind()),
            (None, None) => Err(missing()),
        }
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        PyList::new(py, self.inner.keys())?.try_iter()
    }

    /// The entry bound the cache was built with.
    #[getter]
    fn max_entries(&self) -> u64 {
        self.inner.config().max_entries as u64
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match self.inner.get(key_str(key)?) {
            Some(v) => Ok(v.obj.clone_ref(py)),
            None => Err(missing()),
        }
    }

    /// Stores `value`; returns the entry's new version. `ttl` in seconds (`None`: the cache's
    /// TTL, `math.inf`: never expires); `if_version`: write only if the live version is this
    /// (0: only if the key has no entry, a cached "not found" being one), else raise
    /// `VersionMismatch`; `tags`: up to 16 names of 1 to 128 bytes, for `invalidate_tag`.
    #[pyo3(signature = (key, value, /, *, ttl=None, if_version=None, tags=None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: Bound<'_, PyAny>,
        #[pyo3(from_py_with = arg::ttl)] ttl: Option<Seconds>,
        #[pyo3(from_py_with = arg::if_version)] if_version: Option<u64>,
        #[pyo3(from_py_with = arg::tags)] tags: Option<Vec<String>>,
    ) -> PyResult<u64> {
        let k = key_str(key)?;
        let ttl = convert::write_ttl(py, ttl)?;
        let v = self.weigh.value(value)?;
        let opts = WriteOptions { ttl, if_version };
        match tags {
            None => self.inner.write(k, v, opts),
            Some(tags) => {
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                self.inner.write_tagged(k, v, opts, &tags).map(|w| w.version)
            }
        }
        .map_err(|e| to_pyerr(py, e))
    }

    /// Invalidates every entry written with `tag`: made stale (a fallback within its grace
    /// window) or, `hard`, removed; with a shared tier, in every instance and in L2 (raises
    /// `L2Unavailable` when L2 cannot be reached; this process's entries are invalidated all
    /// the same). Returns how many fresh entries of this process it invalidated. Blocks for one
    /// round trip to L2 at most, without holding the GIL.
    #[pyo3(signature = (tag, /, *, hard=false))]
    fn invalidate_tag(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::tag)] tag: String,
        #[pyo3(from_py_with = arg::hard)] hard: bool,
    ) -> PyResult<usize> {
        let cache = self.inner.clone();
        runtime::detach(py, || futures::executor::block_on(cache.invalidate_tag(&tag, hard))).map_err(|e| match e {
            // the core checks the tag as a list of one, `tags`; the argument here is `tag`
            Error::InvalidConfig { field: "tags", problem, value, unit } => {
                to_pyerr(py, Error::InvalidConfig { field: "tag", problem, value, unit })
            }
            e => to_pyerr(py, e),
        })
    }

    fn __setitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: Bound<'_, PyAny>) -> PyResult<()> {
        let k = key_str(key)?;
        let v = self.weigh.value(value)?;
        self.inner.set(k, v).map(drop).map_err(|e| to_pyerr(py, e))
    }

    /// Removes `key`; returns whether a live entry was removed. With `if_version`, removes only
    /// if the live version is this one (0: only if absent, which removes nothing live), else
    /// raises `VersionMismatch`.
    #[pyo3(signature = (key, /, *, if_version=None))]
    fn delete(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = arg::if_version)] if_version: Option<u64>,
    ) -> PyResult<bool> {
        let k = key_str(key)?;
        match if_version {
            None => Ok(self.inner.remove(k).is_some()),
            Some(v) => self.inner.remove_if_version(k, v).map_err(|e| to_pyerr(py, e)),
        }
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        match self.inner.remove(key_str(key)?) {
            Some(_) => Ok(()),
            None => Err(missing()),
        }
    }

    /// As `in` answers for a dict: a key of another type than `str` is not in the cache (no
    /// key of it can be), which is no error.
    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        if !key.is_instance_of::<PyString>() {
            return Ok(false);
        }
        Ok(self.inner.contains(key_str(key)?))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The version of `key`'s live entry (a cached "not found" included), 0 if it has none.
    #[pyo3(signature = (key, /))]
    fn version(&self, key: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(self.inner.version(key_str(key)?))
    }

    /// `(value, version, seconds_left)` of `key`'s live entry (`seconds_left` is `None` if it
    /// never expires), or `None`. Counts as a read.
    #[pyo3(signature = (key, /))]
    fn get_entry(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<EntryTuple>> {
        Ok(self
            .inner
            .get_entry(key_str(key)?)
            .map(|e| (e.value.obj.clone_ref(py), e.version, e.expires_in.map(|d| d.as_secs_f64()))))
    }

    /// Removes every entry.
    fn clear(&self) {
        self.inner.clear()
    }

    /// Removes every expired entry now; returns how many.
    fn purge_expired(&self) -> usize {
        self.inner.purge_expired()
    }

    /// Up to `k` live keys drawn uniformly at random.
    #[pyo3(signature = (k, /))]
    fn sample_keys(&self, #[pyo3(from_py_with = arg::k)] k: usize) -> Vec<String> {
        self.inner.sample_keys(k).iter().map(str::to_owned).collect()
    }

    /// Every counter of the cache, as a plain dict (the core's `Stats`, field for field), with
    /// the healer's totals under `"healing"` (as `healing_stats()`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = to_py(py, &self.inner.stats())?;
        stats.set_item("healing", self.healing_stats(py)?)?;
        Ok(stats)
    }

    /// `await cache.get_or_load(key, loader)`: the live value of `key`, or the result of one
    /// `loader()` call shared by every concurrent caller of this key (async or threaded). Takes
    /// `fetch`'s per-call options, with `fetch`'s meaning; a "not found" answer (`NOT_FOUND`,
    /// loaded or cached) raises `NotFound`.
    #[pyo3(signature = (
        key,
        loader,
        /,
        *,
        ttl=None,
        negative_ttl=None,
        stale_while_revalidate=None,
        xfetch=None,
        soft_timeout=None,
        tags=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn get_or_load<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        loader: Py<PyAny>,
        #[pyo3(from_py_with = arg::ttl)] ttl: Option<Seconds>,
        #[pyo3(from_py_with = arg::negative_ttl)] negative_ttl: Option<Seconds>,
        #[pyo3(from_py_with = arg::stale_while_revalidate)] stale_while_revalidate: Option<bool>,
        #[pyo3(from_py_with = arg::xfetch)] xfetch: Option<bool>,
        #[pyo3(from_py_with = arg::soft_timeout)] soft_timeout: Option<Seconds>,
        #[pyo3(from_py_with = arg::tags)] tags: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = convert::fetch_options(slf.py(), ttl, negative_ttl, stale_while_revalidate, xfetch, soft_timeout)?;
        Self::call(slf, key, loader, opts, tags, false)
    }

    /// `await cache.fetch(key, loader)`: `Fetched(value, status)`, the read-through call with
    /// every stampede layer of the cache; `status` is the core's `Status::as_str()`. A loader
    /// answers "not found" with `NOT_FOUND` (then `value` is `None`). Per-call options override
    /// the cache's: `ttl`, `negative_ttl` and `soft_timeout` in seconds, `stale_while_revalidate`
    /// and `xfetch` as booleans; `tags`: the loaded value's tags (as `set`'s), recorded from
    /// before the load, so an `invalidate_tag` during it leaves the value uncached.
    #[pyo3(signature = (
        key,
        loader,
        /,
        *,
        ttl=None,
        negative_ttl=None,
        stale_while_revalidate=None,
        xfetch=None,
        soft_timeout=None,
        tags=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn fetch<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        loader: Py<PyAny>,
        #[pyo3(from_py_with = arg::ttl)] ttl: Option<Seconds>,
        #[pyo3(from_py_with = arg::negative_ttl)] negative_ttl: Option<Seconds>,
        #[pyo3(from_py_with = arg::stale_while_revalidate)] stale_while_revalidate: Option<bool>,
        #[pyo3(from_py_with = arg::xfetch)] xfetch: Option<bool>,
        #[pyo3(from_py_with = arg::soft_timeout)] soft_timeout: Option<Seconds>,
        #[pyo3(from_py_with = arg::tags)] tags: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = convert::fetch_options(slf.py(), ttl, negative_ttl, stale_while_revalidate, xfetch, soft_timeout)?;
        Self::call(slf, key, loader, opts, tags, true)
    }

    /// Every counter in the Prometheus text exposition format, labelled `cache="<name>"`,
    /// the healing metrics included.
    #[pyo3(signature = (name, /))]
    fn prometheus(&self, #[pyo3(from_py_with = arg::name)] name: String) -> String {
        self.inner.prometheus(&name) + &self.healing.healer.prometheus(&name)
    }

    /// The threaded twin of `get_or_load`: blocks with the GIL released while another thread
    /// or task loads `key`; `loader` must be a plain (sync) callable. It declares `fetch`'s
    /// options; the core's blocking load refuses by name those it cannot honour (it loads on
    /// this thread, with no background work), and there is no blocking load of tagged values.
    #[pyo3(signature = (
        key,
        loader,
        /,
        *,
        ttl=None,
        negative_ttl=None,
        stale_while_revalidate=None,
        xfetch=None,
        soft_timeout=None,
        tags=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn get_or_load_sync(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        loader: Py<PyAny>,
        #[pyo3(from_py_with = arg::ttl)] ttl: Option<Seconds>,
        #[pyo3(from_py_with = arg::negative_ttl)] negative_ttl: Option<Seconds>,
        #[pyo3(from_py_with = arg::stale_while_revalidate)] stale_while_revalidate: Option<bool>,
        #[pyo3(from_py_with = arg::xfetch)] xfetch: Option<bool>,
        #[pyo3(from_py_with = arg::soft_timeout)] soft_timeout: Option<Seconds>,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        if tags.is_some() {
            return Err(invalid(py, "tags", NO_TAGGED_SYNC));
        }
        let k = key_str(key)?;
        check_callable(loader.bind(py))?;
        let opts = convert::fetch_options(py, ttl, negative_ttl, stale_while_revalidate, xfetch, soft_timeout)?;
        let load = sync_loader(loader, Arc::clone(&self.weigh));
        let cache = &self.inner;
        // asked while the call waits: Ctrl-C ends the wait; and a thread running an event loop
        // must not wait on another caller's load, which may need that very loop (an async
        // loader): the wait would block it for good
        let mut interrupt = |joined: bool| -> healcache::Result<()> {
            Python::attach(|py| {
                let e = if joined && running_loop(py).is_ok() {
                    loop_would_block(
                        py,
                        "get_or_load_sync would block the running event loop waiting for another caller's load \
                         of this key: use `await cache.get_or_load(...)` there",
                    )
                } else {
                    match py.check_signals() {
                        Ok(()) => return Ok(()),
                        Err(e) => e,
                    }
                };
                Err(Error::Loader(loader_error(py, e)))
            })
        };
        match runtime::detach(py, || cache.get_or_load_blocking_interruptible(k, opts, load, &mut interrupt)) {
            Ok(v) => Ok(v.obj.clone_ref(py)),
            Err(e) => Err(to_pyerr(py, e)),
        }
    }

    /// Decorator caching a sync or async function through `get_or_load(_sync)`; see
    /// `healcache._decorator.cached` for the key function.
    #[pyo3(signature = (func=None, /, *, key=None, ttl=None))]
    fn cached<'py>(
        slf: &Bound<'py, Self>,
        func: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
        ttl: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        // a bad ttl fails at decoration time; the calls get it as given
        convert::write_ttl(py, ttl.as_ref().map(arg::ttl).transpose()?.flatten())?;
        py.import("healcache._decorator")?.getattr("cached")?.call1((slf, func, key, ttl))
    }

    /// `await cache.write_through(key, value, writer)`: calls `writer(key, value)` (sync or
    /// async: the source of truth's write) and only when it returned writes the value to the
    /// cache (L1, and with a shared tier L2 and the bus, awaited within `l2_timeout`); returns
    /// the new version. An exception of the writer is raised as it is and the cache is left as
    /// it was. `invalidate=True` removes the key instead of caching the value. The key, the
    /// TTL and the value's weight are checked before the writer is called.
    #[pyo3(signature = (key, value, writer, /, *, ttl=None, invalidate=false))]
    fn write_through<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        value: Bound<'py, PyAny>,
        writer: Py<PyAny>,
        #[pyo3(from_py_with = arg::ttl)] ttl: Option<Seconds>,
        #[pyo3(from_py_with = arg::invalidate)] invalidate: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let k = key_str(key)?.to_owned();
        check_callable(writer.bind(py))?;
        let opts = WriteThrough { ttl: convert::write_ttl(py, ttl)?, invalidate };
        let call = py.import("functools")?.getattr("partial")?.call1((writer.bind(py), key, &value))?.unbind();
        let v = slf.get().weigh.value(value)?;
        // refused when called, not when awaited
        slf.get().inner.check_write_through(&k, &v, &opts).map_err(|e| to_pyerr(py, e))?;
        on_loop(slf, move |this, event_loop, context| {
            let py = event_loop.py();
            let write = AsyncLoad {
                loader: call.clone_ref(py),
                event_loop: event_loop.clone().unbind(),
                context: context.unbind(),
                weigh: Arc::clone(&this.weigh),
                key: None,
                want: Want::Nothing,
            };
            let (cache, k, v) = (this.inner.clone(), k.clone(), v.clone());
            let fut: WaitFuture = Box::pin(async move {
                cache.write_through(&k, v, opts, move || write.answer().map(|r| r.map(drop))).await.map(Reply::Version)
            });
            drive(py, event_loop, fut)
        })
    }

    /// `await cache.get_many(keys, loader)`: a dict of the keys found, each read as `fetch`
    /// reads it; the keys no layer could answer are loaded by one call `loader(keys)` (sync or
    /// async) returning a mapping of the keys it found to their values (a key left out is not
    /// found, and absent from the result). At most `max_in_flight` distinct keys.
    #[pyo3(signature = (keys, loader, /, *, ttl=None))]
    fn get_many<'py>(
        slf: &Bound<'py, Self>,
        #[pyo3(from_py_with = arg::keys)] keys: Vec<String>,
        loader: Py<PyAny>,
        #[pyo3(from_py_with = arg::ttl)] ttl: Option<Seconds>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        check_callable(loader.bind(py))?;
        let opts = FetchOptions { ttl: convert::write_ttl(py, ttl)?, ..FetchOptions::default() };
        // refused when called, not when awaited
        slf.get().inner.check_fetch_many(&keys, &opts).map_err(|e| to_pyerr(py, e))?;
        on_loop(slf, move |this, event_loop, context| {
            let load = this.batch_load(loader.clone_ref(event_loop.py()), event_loop, context);
            let (cache, keys) = (this.inner.clone(), keys.clone());
            let fut: WaitFuture = Box::pin(async move {
                let got = cache.fetch_many(&keys, opts, move |k| load.call(k)).await?;
                let found = keys.into_iter().zip(got).filter_map(|(k, f)| f.value.map(|v| (k, v))).collect();
                Ok(Reply::Many(found))
            });
            drive(event_loop.py(), event_loop, fut)
        })
    }

    /// `await cache.warm(keys, loader)`: loads `keys` before traffic, `batch` keys per
    /// `loader(keys)` call (as `get_many`'s), `concurrency` calls at once; returns a dict
    /// `{total, found, not_found, failed, error}`. `ready()` is False while it runs. Given a
    /// `str` instead of keys, warms the keys the shared tier holds that match it as a glob (at
    /// most `max_keys` of them).
    #[pyo3(signature = (keys, loader, /, *, concurrency=8, batch=None, min_share=1.0, max_keys=100_000))]
    #[allow(clippy::too_many_arguments)]
    fn warm<'py>(
        slf: &Bound<'py, Self>,
        keys: &Bound<'py, PyAny>,
        loader: Py<PyAny>,
        #[pyo3(from_py_with = arg::concurrency)] concurrency: usize,
        #[pyo3(from_py_with = arg::batch)] batch: Option<usize>,
        #[pyo3(from_py_with = arg::min_share)] min_share: f64,
        #[pyo3(from_py_with = arg::max_keys)] max_keys: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pattern = keys.cast::<PyString>().ok().map(|p| p.to_string());
        let keys: Option<Vec<String>> = if pattern.is_none() { Some(convert::key_list(keys)?) } else { None };
        check_callable(loader.bind(slf.py()))?;
        let opts = Warm { concurrency, batch, min_share, max_keys };
        // refused when called, not when awaited
        let checked = match &keys {
            Some(keys) => slf.get().inner.check_warm_keys(keys, &opts).map(drop),
            None => slf.get().inner.check_warm_matching(&opts),
        };
        checked.map_err(|e| to_pyerr(slf.py(), e))?;
        on_loop(slf, move |this, event_loop, context| {
            let load = Arc::new(this.batch_load(loader.clone_ref(event_loop.py()), event_loop, context));
            let (cache, keys, pattern) = (this.inner.clone(), keys.clone(), pattern.clone());
            let fut: WaitFuture = Box::pin(async move {
                let load = move |k| load.call(k);
                let report = match (keys, pattern) {
                    (Some(keys), _) => cache.warm(&keys, opts, load).await,
                    (None, pattern) => cache.warm_matching(&pattern.unwrap_or_default(), opts, load).await,
                };
                report.map(Reply::Warm)
            });
            drive(event_loop.py(), event_loop, fut)
        })
    }

    /// Whether the cache is ready for traffic (a readiness probe): no `warm` running, the last
    /// one's `min_share` of keys answered, and with a shared tier L2 answering unless the
    /// `allow_degraded` setting is on.
    fn ready(&self) -> bool {
        self.inner.ready()
    }

    /// `(answered, failed, total)` keys of the warm-ups so far.
    fn warm_progress(&self) -> (u64, u64, u64) {
        self.inner.warm_progress()
    }

    /// Registers (or replaces) the source of truth of keys starting with `prefix` (the longest
    /// registered prefix of a key wins): a sync callable `source(key)`, an async one, or a URL
    /// template (`str`) fetched over HTTP whose body is `decode`d (`"bytes"`, `"text"`, `"json"`);
    /// `allow_private` (True, or a list of hosts) lets a template reach non-public addresses;
    /// `max_body_bytes` bounds its bodies (default 1 MiB).
    #[pyo3(signature = (prefix, source, /, *, decode=None, allow_private=None, max_body_bytes=None))]
    fn register_source(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::prefix)] prefix: String,
        source: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = arg::decode)] decode: Option<String>,
        allow_private: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::max_body_bytes)] max_body_bytes: Option<usize>,
    ) -> PyResult<()> {
        let url = healing::UrlOptions { decode: decode.as_deref(), allow_private, max_body_bytes };
        self.healing.register_source(py, &prefix, source, url, &self.weigh)
    }

    /// Removes a prefix's source and its score; returns whether it was registered.
    #[pyo3(signature = (prefix, /))]
    fn unregister_source(&self, #[pyo3(from_py_with = arg::prefix)] prefix: String) -> bool {
        self.healing.unregister_source(&prefix)
    }

    /// `await cache.verify_now()`: one healing interval now; its report as a dict.
    fn verify_now<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        on_loop(slf, |this, event_loop, _| {
            let healer = this.healing.healer.clone();
            let fut: WaitFuture = Box::pin(async move { Ok(Reply::Report(healer.run_interval().await)) });
            drive(event_loop.py(), event_loop, fut)
        })
    }

    /// One healing interval now, on this thread (the GIL is released while sources answer);
    /// raises `RuntimeError` inside a running event loop, which it would block.
    fn verify_now_sync<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if running_loop(py).is_ok() {
            return Err(PyRuntimeError::new_err(
                "verify_now_sync() would block the running event loop: use `await cache.verify_now()`",
            ));
        }
        let report = block_on_attached(py, self.healing.healer.run_interval())?;
        to_py(py, &report)
    }

    /// The score report of one prefix, or `None` if it has no source.
    #[pyo3(signature = (prefix, /))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = arg::prefix)] prefix: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.healing.healer.score(&prefix))
    }

    /// The score reports of every prefix, sorted by prefix.
    fn scores<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.healing.healer.scores())
    }

    /// The healer's totals.
    fn healing_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.healing.healer.stats())
    }

    /// The most recent drift events, newest last.
    fn drift_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.healing.healer.drift_events())
    }

    /// Changes healing settings at runtime, all validated before any changes; one keyword per
    /// healing setting of the core's settings table.
    #[pyo3(signature = (
        *,
        enabled=None,
        sample_rate=None,
        verify_interval=None,
        auto_repair=None,
        score_window=None,
        source_timeout=None,
        source_concurrency=None,
        max_prefixes=None,
        max_drift_events=None,
        max_samples=None,
        fleet_verify=None,
        fleet_verify_lease=None,
        fleet_verify_scan_budget=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn set_healing(
        &self,
        py: Python<'_>,
        enabled: Option<Given>,
        sample_rate: Option<Given>,
        verify_interval: Option<Given>,
        auto_repair: Option<Given>,
        score_window: Option<Given>,
        source_timeout: Option<Given>,
        source_concurrency: Option<Given>,
        max_prefixes: Option<Given>,
        max_drift_events: Option<Given>,
        max_samples: Option<Given>,
        fleet_verify: Option<Given>,
        fleet_verify_lease: Option<Given>,
        fleet_verify_scan_budget: Option<Given>,
    ) -> PyResult<()> {
        let settings = [
            ("enabled", enabled),
            ("sample_rate", sample_rate),
            ("verify_interval", verify_interval),
            ("auto_repair", auto_repair),
            ("score_window", score_window),
            ("source_timeout", source_timeout),
            ("source_concurrency", source_concurrency),
            ("max_prefixes", max_prefixes),
            ("max_drift_events", max_drift_events),
            ("max_samples", max_samples),
            ("fleet_verify", fleet_verify),
            ("fleet_verify_lease", fleet_verify_lease),
            ("fleet_verify_scan_budget", fleet_verify_scan_budget),
        ];
        self.healing.set(py, &settings)
    }

    /// The healing settings under the keywords of `set_healing` (durations in seconds).
    fn healing_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.healing.config(py)
    }

    /// Sets one setting by its name (`"healing.sample_rate"`, ...), validated by the core.
    #[pyo3(signature = (name, value, /))]
    fn config_set(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::name)] name: String,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.healing.config_set(py, &name, value)
    }

    /// One setting by its name, as text.
    #[pyo3(signature = (name, /))]
    fn config_get(&self, py: Python<'_>, #[pyo3(from_py_with = arg::name)] name: String) -> PyResult<String> {
        self.healing.config_get(py, &name)
    }

    /// Ends background work for good (the healing loop) and waits for it; with a shared tier,
    /// waits (the GIL released) until the L2 writes under way are sent, `timeout` seconds at
    /// most (`None`: the core's default), then closes its connections. Returns the writes still
    /// under way at the deadline. The cache stays usable (from L1 alone when it had a shared tier).
    #[pyo3(signature = (timeout=None))]
    fn close(&self, py: Python<'_>, #[pyo3(from_py_with = arg::timeout)] timeout: Option<Seconds>) -> PyResult<usize> {
        let d = healcache::close_timeout_ms(timeout.map(|s| s.ms()), healcache::DEFAULT_CLOSE_TIMEOUT)
            .map_err(|e| to_pyerr(py, e))?;
        self.healing.close(py)?;
        Ok(runtime::block_detached(py, self.inner.close_shared(d)))
    }

    /// What the collector must see to collect a cycle through the cache: the healing objects, a
    /// weigher, and every stored value, as a dict shows its values.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        self.healing.traverse(&visit)?;
        if let Weigh::Custom(f) = &*self.weigh {
            visit.call(f)?;
        }
        // A shard's read lock, not a try: every pass of one collection must see the same
        // references. It is never held by this thread here, since no Python code runs under a
        // store lock, and other threads hold it without waiting for the GIL. One stored value
        // under two keys is one reference, so each is visited once; only a value held elsewhere
        // too can be under two keys, so only those are remembered.
        let mut seen = std::collections::HashSet::new();
        self.inner.for_each_value(|v| {
            if Arc::strong_count(v) == 1 || seen.insert(Arc::as_ptr(v)) {
                visit.call(&v.obj)
            } else {
                Ok(())
            }
        })
    }

    /// The cache is garbage: drops the healing objects and every stored value (a cycle through an
    /// object that cannot be cleared itself, such as a tuple, ends here).
    fn __clear__(&self) {
        self.healing.clear();
        self.inner.clear();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py, None)?;
        Ok(false)
    }

    /// `async with Cache(...) as cache:` gives the cache itself.
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        runtime::bridge(slf.py())?.getattr(pyo3::intern!(slf.py(), "entered"))?.call1((slf,))
    }

    /// The end of `async with`: `close()`, awaited without blocking the event loop.
    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(slf: &Bound<'py, Self>, _exc: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
        runtime::bridge(slf.py())?.getattr(pyo3::intern!(slf.py(), "closed"))?.call1((slf,))
    }

    /// A cache holds live objects, locks and threads of this process, so it cannot be pickled
    /// or copied into another; processes share entries through a shared tier instead.
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "healcache.Cache cannot be pickled or copied: it holds live objects, locks and threads of this \
             process; each process makes its own cache (share entries between processes through a shared tier)",
        ))
    }

    /// `Cache[User]`, for annotations evaluated at runtime (the type checkers read the stubs).
    #[classmethod]
    fn __class_getitem__<'py>(cls: &Bound<'py, PyType>, item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        py.import("types")?.getattr("GenericAlias")?.call1((cls, item))
    }

    fn __repr__(&self) -> String {
        format!("Cache(max_entries={}, entries={})", self.inner.config().max_entries, self.inner.len())
    }
}

impl PyCache {
    fn batch_load(&self, loader: Py<PyAny>, event_loop: &Bound<'_, PyAny>, context: Bound<'_, PyAny>) -> BatchLoad {
        BatchLoad {
            loader,
            event_loop: event_loop.clone().unbind(),
            context: context.unbind(),
            weigh: Arc::clone(&self.weigh),
        }
    }

    /// One asyncio call of the core's `fetch`: the asyncio future of its `Reply`.
    fn call<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        loader: Py<PyAny>,
        opts: FetchOptions,
        tags: Option<Vec<String>>,
        fetched: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_str(key)?.to_owned();
        check_callable(loader.bind(slf.py()))?;
        // refused when called, not when awaited (and on a hit too, as the core refuses them)
        let tag_list: Vec<&str> = tags.iter().flatten().map(String::as_str).collect();
        slf.borrow().inner.check_fetch(&key, &opts, &tag_list).map_err(|e| to_pyerr(slf.py(), e))?;
        on_loop(slf, move |this, event_loop, context| {
            let py = event_loop.py();
            if runtime::bridge(py)?.getattr(pyo3::intern!(py, "recursive"))?.call1((&key,))?.is_truthy()? {
                return Err(to_pyerr(py, Error::RecursiveLoad));
            }
            let load = AsyncLoad {
                loader: loader.clone_ref(py),
                event_loop: event_loop.clone().unbind(),
                context: context.unbind(),
                weigh: Arc::clone(&this.weigh),
                key: Some(key.clone()),
                want: Want::Value,
            };
            let (cache, key, tags) = (this.inner.clone(), key.clone(), tags.clone());
            let fut: WaitFuture = Box::pin(async move {
                let f = match &tags {
                    None => cache.fetch(&key, opts, move || load.start()).await?,
                    Some(t) => {
                        let t: Vec<&str> = t.iter().map(String::as_str).collect();
                        cache.fetch_tagged(&key, opts, &t, move || load.start()).await?
                    }
                };
                if fetched {
                    Ok(Reply::Fetched(f))
                } else {
                    f.into_value().map(Reply::Value)
                }
            });
            drive(py, event_loop, fut)
        })
    }
}

/// Why `get_or_load_sync` refuses `tags`: the core has no blocking load of tagged values.
const NO_TAGGED_SYNC: &str = "is not supported by get_or_load_sync: use `await cache.get_or_load(...)`";

/// The `KeyError` of a missing key. Keys are data: a KeyError is logged with its traceback, so
/// it does not carry the key as a dict's does (a key may be an email address or a token).
fn missing() -> PyErr {
    PyKeyError::new_err("the key is not in the cache (keys are not shown in errors)")
}

/// `healcache.prometheus_join`: the expositions of several caches as one (each family's HELP
/// and TYPE lines once).
#[pyfunction]
#[pyo3(signature = (texts, /))]
pub(crate) fn prometheus_join(py: Python<'_>, texts: Vec<String>) -> PyResult<String> {
    healcache::prometheus_join(&texts).map_err(|e| to_pyerr(py, e))
}
