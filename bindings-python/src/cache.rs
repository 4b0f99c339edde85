//! `healcache.Cache`: the core cache of Python objects, with its sync, threaded and asyncio faces.
//!
//! Values are stored as the Python objects themselves (`Arc<Stored>`): a hit returns the very
//! object that was stored, with one reference-count increment and no serialization.
//!
//! Loads go through core flights, shared by `get_or_load` (asyncio) and `get_or_load_sync`
//! (threads). A core flight runs its loader lazily at its first poll, on whichever thread polls
//! it, so the loader adapters attach to the interpreter themselves; an async loader's awaitable
//! runs as a task on the event loop of the call that started the flight (loop and contextvars
//! captured when the call is made), and that task is cancelled if every waiter goes away.
//!
//! `fetch` is the same call returning the core's `Fetched` (value and status); background work
//! the core spawns from it (refreshes of stale-while-revalidate, XFetch and refresh-ahead, the
//! tail of a soft-timed-out load) is handed by [`DriverSpawner`] to the driver of the loop whose
//! call started it, so a refresh's Python loader also runs on that loop, awaited by nobody.
//!
//! An async waiter is polled on its event loop's own thread by a [`LoopDriver`]: wakers (called on
//! any thread) only queue the waiter and write a byte to a socket the loop watches, so no foreign
//! thread ever runs Python code to hand a result back. (A thread that does so while the interpreter
//! shuts down is killed by CPython with `pthread_exit`, which aborts the process when it unwinds
//! through Rust frames: seen with a runtime-thread completion scheme.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_char;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use futures::channel::oneshot;
use futures::future::{self, BoxFuture, FutureExt};
use healcache::{Cache, Error, FetchOptions, Fetched, IntervalReport, Loaded, LoaderError, Spawner, WriteOptions};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyModule, PyString};

use crate::config::{self, Options, Value, Weigh};
use crate::error::{loader_error, to_pyerr};
use crate::healing::{self, Healing, HealingOptions};

extern "C" {
    // Part of the stable ABI since 3.10 and exported by CPython 3.9 as well (pyo3-ffi hides it
    // under abi3-py39). It borrows the str's cached UTF-8 buffer: no allocation per call.
    fn PyUnicode_AsUTF8AndSize(unicode: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const c_char;
}

/// Borrows a key's UTF-8 text from the Python `str` (the buffer lives as long as the str).
#[inline]
fn key_str<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `key` is a valid object and the GIL is held; on success the buffer is owned by the
    // str object, which `key` keeps alive for 'a.
    let p = unsafe { PyUnicode_AsUTF8AndSize(key.as_ptr(), &mut size) };
    if p.is_null() {
        let err = PyErr::fetch(key.py());
        if key.is_instance_of::<PyString>() {
            return Err(err); // a str with lone surrogates: UnicodeEncodeError
        }
        let name = key.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        return Err(PyTypeError::new_err(format!("cache keys must be str, not {name}")));
    }
    // SAFETY: CPython returns valid UTF-8 of `size` bytes.
    Ok(unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(p.cast::<u8>(), size as usize)) })
}

/// A bounded, concurrent in-memory cache from `str` keys to Python objects.
#[pyclass(name = "Cache", module = "healcache", frozen, mapping)]
pub(crate) struct PyCache {
    inner: Cache<Value>,
    weigh: Arc<Weigh>,
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
        healing_enabled=None,
        healing_sample_rate=None,
        healing_verify_interval=None,
        healing_auto_repair=None,
        healing_score_window=None,
        healing_source_timeout=None,
        healing_comparator=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
        max_entries: Option<f64>,
        max_bytes: Option<f64>,
        ttl: Option<f64>,
        max_key_len: Option<f64>,
        max_entry_bytes: Option<f64>,
        max_in_flight: Option<f64>,
        load_timeout: Option<f64>,
        shards: Option<f64>,
        seed: Option<Bound<'py, PyAny>>,
        weigher: Option<Bound<'py, PyAny>>,
        grace: Option<f64>,
        stale_while_revalidate: Option<bool>,
        load_soft_timeout: Option<f64>,
        xfetch: Option<bool>,
        xfetch_beta: Option<f64>,
        refresh_after: Option<f64>,
        ttl_jitter: Option<f64>,
        negative_ttl: Option<f64>,
        max_negative_share: Option<f64>,
        healing_enabled: Option<bool>,
        healing_sample_rate: Option<f64>,
        healing_verify_interval: Option<f64>,
        healing_auto_repair: Option<bool>,
        healing_score_window: Option<f64>,
        healing_source_timeout: Option<f64>,
        healing_comparator: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let options = Options {
            max_entries,
            max_bytes,
            ttl,
            max_key_len,
            max_entry_bytes,
            max_in_flight,
            load_timeout,
            shards,
            seed,
            weigher,
            grace,
            stale_while_revalidate,
            load_soft_timeout,
            xfetch,
            xfetch_beta,
            refresh_after,
            ttl_jitter,
            negative_ttl,
            max_negative_share,
        };
        let (inner, weigh) = config::build(py, options)?;
        let healing_options = HealingOptions {
            enabled: healing_enabled,
            sample_rate: healing_sample_rate,
            verify_interval: healing_verify_interval,
            auto_repair: healing_auto_repair,
            score_window: healing_score_window,
            source_timeout: healing_source_timeout,
        };
        let healing = Healing::new(py, &inner, &healing_options, healing_comparator)?;
        Ok(PyCache { inner, weigh: Arc::new(weigh), healing })
    }

    /// The live value of `key`, else `default`.
    #[pyo3(signature = (key, default=None, /))]
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.inner.get(key_str(key)?) {
            Some(v) => Ok(v.obj.clone_ref(py)),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match self.inner.get(key_str(key)?) {
            Some(v) => Ok(v.obj.clone_ref(py)),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Stores `value`; returns the entry's new version. `ttl` in seconds (`None`: the cache's
    /// TTL, `math.inf`: never expires); `if_version`: write only if the live version is this
    /// (0: only if absent), else raise `VersionMismatch`.
    #[pyo3(signature = (key, value, /, *, ttl=None, if_version=None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: Bound<'_, PyAny>,
        ttl: Option<f64>,
        if_version: Option<u64>,
    ) -> PyResult<u64> {
        let k = key_str(key)?;
        let ttl = config::write_ttl(py, ttl)?;
        let v = self.weigh.value(value)?;
        self.inner.write(k, v, WriteOptions { ttl, if_version }).map_err(|e| to_pyerr(py, e))
    }

    fn __setitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: Bound<'_, PyAny>) -> PyResult<()> {
        let k = key_str(key)?;
        let v = self.weigh.value(value)?;
        self.inner.set(k, v).map(drop).map_err(|e| to_pyerr(py, e))
    }

    /// Removes `key`; returns whether a live entry was removed. With `if_version`, removes only
    /// if the live version is this one, else raises `VersionMismatch`.
    #[pyo3(signature = (key, /, *, if_version=None))]
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>, if_version: Option<u64>) -> PyResult<bool> {
        let k = key_str(key)?;
        match if_version {
            None => Ok(self.inner.remove(k).is_some()),
            Some(v) => self.inner.remove_if_version(k, v).map(|()| true).map_err(|e| to_pyerr(py, e)),
        }
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        match self.inner.remove(key_str(key)?) {
            Some(_) => Ok(()),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.contains(key_str(key)?))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The version of `key`'s live entry, 0 if it has none.
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
    fn sample_keys(&self, k: usize) -> Vec<String> {
        self.inner.sample_keys(k).iter().map(str::to_owned).collect()
    }

    /// Every counter of the cache, as a plain dict (the core's `Stats`, field for field), with
    /// the healer's totals under `"healing"` (as `healing_stats()`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::to_value(self.inner.stats()).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let stats = json_to_py(py, &v)?;
        stats.set_item("healing", self.healing_stats(py)?)?;
        Ok(stats)
    }

    /// `await cache.get_or_load(key, loader)`: the live value of `key`, or the result of one
    /// `loader()` call shared by every concurrent caller of this key (async or threaded).
    /// `ttl`: seconds the loaded value lives (`None`: the cache's TTL, `math.inf`: forever).
    /// A "not found" answer (`NOT_FOUND`, loaded or cached) raises `NotFound`.
    #[pyo3(signature = (key, loader, /, *, ttl=None))]
    fn get_or_load<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        loader: Py<PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = FetchOptions { ttl: config::write_ttl(py, ttl)?, ..FetchOptions::default() };
        self.call(py, key, loader, opts, false)
    }

    /// `await cache.fetch(key, loader)`: `Fetched(value, status)`, the read-through call with
    /// every stampede layer of the cache; `status` is the core's `Status::as_str()`. A loader
    /// answers "not found" with `NOT_FOUND` (then `value` is `None`). Per-call options override
    /// the cache's: `ttl`, `negative_ttl` and `soft_timeout` in seconds, `stale_while_revalidate`
    /// and `xfetch` as booleans.
    #[pyo3(signature = (
        key,
        loader,
        /,
        *,
        ttl=None,
        negative_ttl=None,
        stale_while_revalidate=None,
        xfetch=None,
        soft_timeout=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn fetch<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        loader: Py<PyAny>,
        ttl: Option<f64>,
        negative_ttl: Option<f64>,
        stale_while_revalidate: Option<bool>,
        xfetch: Option<bool>,
        soft_timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let seconds = |field, s: Option<f64>| {
            s.map(|s| healcache::duration_ms(field, s * 1000.0)).transpose().map_err(|e| to_pyerr(py, e))
        };
        let opts = FetchOptions {
            ttl: config::write_ttl(py, ttl)?,
            negative_ttl: seconds("negative_ttl_ms", negative_ttl)?,
            stale_while_revalidate,
            xfetch,
            soft_timeout: seconds("soft_timeout_ms", soft_timeout)?,
        };
        self.call(py, key, loader, opts, true)
    }

    /// Every counter in the Prometheus text exposition format, labelled `cache="<name>"`,
    /// the healing metrics included.
    #[pyo3(signature = (name, /))]
    fn prometheus(&self, name: &str) -> String {
        self.inner.prometheus(name) + &self.healing.healer.prometheus(name)
    }

    /// The threaded twin of `get_or_load`: blocks with the GIL released while another thread
    /// or task loads `key`; `loader` must be a plain (sync) callable.
    #[pyo3(signature = (key, loader, /, *, ttl=None))]
    fn get_or_load_sync(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        loader: Py<PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let k = key_str(key)?;
        check_callable(loader.bind(py))?;
        let opts = FetchOptions { ttl: config::write_ttl(py, ttl)?, ..FetchOptions::default() };
        let weigh = Arc::clone(&self.weigh);
        let load = move || Python::attach(|py| call_sync(py, &loader, &weigh).map_err(|e| loader_error(py, e)));
        let cache = &self.inner;
        match py.detach(|| cache.get_or_load_blocking_with(k, opts, load)) {
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
        ttl: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        config::write_ttl(py, ttl)?; // a bad ttl fails at decoration time
        py.import("healcache._decorator")?.getattr("cached")?.call1((slf, func, key, ttl))
    }

    /// Registers (or replaces) the source of truth of keys starting with `prefix` (the longest
    /// registered prefix of a key wins): a sync callable `source(key)`, an async one, or a URL
    /// template (`str`) fetched over HTTP whose body is `decode`d (`"bytes"`, `"text"`, `"json"`).
    #[pyo3(signature = (prefix, source, /, *, decode=None))]
    fn register_source(
        &self,
        py: Python<'_>,
        prefix: &str,
        source: &Bound<'_, PyAny>,
        decode: Option<&str>,
    ) -> PyResult<()> {
        self.healing.register_source(py, prefix, source, decode, &self.weigh)
    }

    /// Removes a prefix's source and its score; returns whether it was registered.
    #[pyo3(signature = (prefix, /))]
    fn unregister_source(&self, prefix: &str) -> bool {
        self.healing.unregister_source(prefix)
    }

    /// `await cache.verify_now()`: one healing interval now; its report as a dict.
    fn verify_now<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (event_loop, _) = running_loop(py)?;
        let healer = self.healing.healer.clone();
        let fut: WaitFuture = Box::pin(async move { Ok(Reply::Report(healer.run_interval().await)) });
        drive(py, &event_loop, fut)
    }

    /// One healing interval now, on this thread (the GIL is released while sources answer);
    /// raises `RuntimeError` inside a running event loop, which it would block.
    fn verify_now_sync<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if running_loop(py).is_ok() {
            return Err(PyRuntimeError::new_err(
                "verify_now_sync() would block the running event loop: use `await cache.verify_now()`",
            ));
        }
        let report = healing::block_on_attached(py, self.healing.healer.run_interval())?;
        healing::to_py(py, &report)
    }

    /// The score report of one prefix, or `None` if it has no source.
    #[pyo3(signature = (prefix, /))]
    fn score<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Bound<'py, PyAny>> {
        healing::to_py(py, &self.healing.healer.score(prefix))
    }

    /// The score reports of every prefix, sorted by prefix.
    fn scores<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        healing::to_py(py, &self.healing.healer.scores())
    }

    /// The healer's totals.
    fn healing_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        healing::to_py(py, &self.healing.healer.stats())
    }

    /// The most recent drift events, newest last.
    fn drift_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        healing::to_py(py, &self.healing.healer.drift_events())
    }

    /// Changes healing settings at runtime, all validated before any changes.
    #[pyo3(signature = (
        *,
        enabled=None,
        sample_rate=None,
        verify_interval=None,
        auto_repair=None,
        score_window=None,
        source_timeout=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn set_healing(
        &self,
        py: Python<'_>,
        enabled: Option<bool>,
        sample_rate: Option<f64>,
        verify_interval: Option<f64>,
        auto_repair: Option<bool>,
        score_window: Option<f64>,
        source_timeout: Option<f64>,
    ) -> PyResult<()> {
        let options =
            HealingOptions { enabled, sample_rate, verify_interval, auto_repair, score_window, source_timeout };
        self.healing.set(py, &options)
    }

    /// The healing settings under the keywords of `set_healing` (durations in seconds).
    fn healing_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.healing.config(py)
    }

    /// Sets one setting by its name (`"healing.sample_rate"`, ...), validated by the core.
    #[pyo3(signature = (name, value, /))]
    fn config_set(&self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.healing.config_set(py, name, value)
    }

    /// One setting by its name, as text.
    #[pyo3(signature = (name, /))]
    fn config_get(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        self.healing.config_get(py, name)
    }

    /// Ends background work for good (the healing loop) and waits for it; the cache stays usable.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.healing.close(py)
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        self.healing.traverse(&visit)
    }

    fn __clear__(&self) {
        self.healing.clear()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("Cache(max_entries={}, entries={})", self.inner.config().max_entries, self.inner.len())
    }
}

impl PyCache {
    /// One asyncio call of the core's `fetch`: the asyncio future of its `Reply`.
    fn call<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        loader: Py<PyAny>,
        opts: FetchOptions,
        fetched: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_str(key)?.to_owned();
        check_callable(loader.bind(py))?;
        let (event_loop, context) = running_loop(py)?;
        let load = AsyncLoad {
            loader,
            event_loop: event_loop.clone().unbind(),
            context: context.unbind(),
            weigh: Arc::clone(&self.weigh),
        };
        let cache = self.inner.clone();
        let fut: WaitFuture = Box::pin(async move {
            let f = cache.fetch(&key, opts, move || load.start()).await?;
            if fetched {
                Ok(Reply::Fetched(f))
            } else {
                f.value.map(Reply::Value).ok_or(Error::NotFound)
            }
        });
        drive(py, &event_loop, fut)
    }
}

/// Hands a call's future to asyncio: the asyncio future it settles, polled first right here (on
/// the loop's thread) and then by the loop's driver.
fn drive<'py>(py: Python<'py>, event_loop: &Bound<'py, PyAny>, mut fut: WaitFuture) -> PyResult<Bound<'py, PyAny>> {
    let done = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
    // First poll here, on the loop's thread: a hit (or a sync loader) completes at once
    // without the driver, and a new flight's loader starts right here. Background work the
    // core spawns meanwhile (a refresh) goes to the loop's driver.
    let (poll, spawned) = collect_spawned(|| fut.as_mut().poll(&mut Context::from_waker(Waker::noop())));
    let driver = if poll.is_pending() || !spawned.is_empty() {
        Some(bridge(py)?.getattr(pyo3::intern!(py, "driver"))?.call1((event_loop,))?)
    } else {
        None
    };
    if let Some(d) = &driver {
        let d = d.cast::<LoopDriver>()?.get();
        for job in spawned {
            d.spawn(job);
        }
    }
    match poll {
        Poll::Ready(r) => complete(py, &done, r)?,
        Poll::Pending => {
            if let Some(d) = &driver {
                LoopDriver::adopt(d.cast::<LoopDriver>()?, fut, &done)?;
            }
        }
    }
    Ok(done)
}

/// `(value, version, seconds_left)` of `Cache.get_entry`.
type EntryTuple = (Py<PyAny>, u64, Option<f64>);

/// Plain data (the core's serde view) to Python dicts, lists, ints and floats.
pub(crate) fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => py.None().into_bound(py),
        J::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, Some(i)) => i.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        J::String(s) => s.into_pyobject(py)?.into_any(),
        J::Array(a) => {
            let items = a.iter().map(|x| json_to_py(py, x)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        J::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

static BRIDGE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn bridge(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    BRIDGE.get_or_try_init(py, || Ok(py.import("healcache._bridge")?.unbind())).map(|m| m.bind(py))
}

fn check_callable(loader: &Bound<'_, PyAny>) -> PyResult<()> {
    if loader.is_callable() {
        return Ok(());
    }
    let name = loader.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    Err(PyTypeError::new_err(format!("loader must be callable, not {name}")))
}

/// Calls a loader for `get_or_load_sync` (GIL held). The core's blocking load takes values
/// only, so a `NOT_FOUND` answer raises `NotFound` to every waiter (and is not cached).
fn call_sync(py: Python<'_>, loader: &Py<PyAny>, weigh: &Weigh) -> PyResult<Value> {
    let r = loader.bind(py).call0()?;
    if r.hasattr(pyo3::intern!(py, "__await__"))? {
        bridge(py)?.getattr("refuse_awaitable")?.call1((&r,))?;
    }
    match loaded(weigh, r)? {
        Loaded::Value(v) => Ok(v),
        Loaded::NotFound => Err(to_pyerr(py, Error::NotFound)),
    }
}

static FETCH: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn fetch_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    FETCH.get_or_try_init(py, || Ok(py.import("healcache._fetch")?.unbind())).map(|m| m.bind(py))
}

/// A loader's answer: `NOT_FOUND` is the core's `Loaded::NotFound`, anything else a value.
pub(crate) fn loaded(weigh: &Weigh, obj: Bound<'_, PyAny>) -> PyResult<Loaded<Value>> {
    static NOT_FOUND: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = obj.py();
    let nf = NOT_FOUND.get_or_try_init(py, || Ok::<_, PyErr>(fetch_module(py)?.getattr("NOT_FOUND")?.unbind()))?;
    if obj.is(nf.bind(py)) {
        return Ok(Loaded::NotFound);
    }
    weigh.value(obj).map(Loaded::Value)
}

/// The running loop and a copy of the caller's contextvars (`RuntimeError` outside a loop).
pub(crate) fn running_loop(py: Python<'_>) -> PyResult<(Bound<'_, PyAny>, Bound<'_, PyAny>)> {
    static GET_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static COPY_CONTEXT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get_loop =
        GET_LOOP.get_or_try_init(py, || Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind()))?;
    let copy = COPY_CONTEXT
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("contextvars")?.getattr("copy_context")?.unbind()))?;
    Ok((get_loop.bind(py).call0()?, copy.bind(py).call0()?))
}

/// What an asyncio call resolves to.
enum Reply {
    /// `get_or_load`: the value.
    Value(Value),
    /// `fetch`: a `Fetched(value, status)` named tuple.
    Fetched(Fetched<Value>),
    /// `verify_now`: the interval's report, as a dict.
    Report(IntervalReport),
}

impl Reply {
    fn into_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        match self {
            Reply::Value(v) => Ok(v.obj.bind(py).clone()),
            Reply::Fetched(f) => {
                static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
                let class =
                    CLASS.get_or_try_init(py, || Ok::<_, PyErr>(fetch_module(py)?.getattr("Fetched")?.unbind()))?;
                let value = f.value.map_or_else(|| py.None(), |v| v.obj.clone_ref(py));
                class.bind(py).call1((value, PyString::intern(py, f.status.as_str())))
            }
            Reply::Report(r) => healing::to_py(py, &r),
        }
    }
}

/// Hands a waiter's outcome to its asyncio future (loop thread), unless it was cancelled.
fn complete(py: Python<'_>, done: &Bound<'_, PyAny>, r: healcache::Result<Reply>) -> PyResult<()> {
    if done.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    match r {
        Ok(reply) => done.call_method1(pyo3::intern!(py, "set_result"), (reply.into_py(py)?,))?,
        Err(e) => done.call_method1(pyo3::intern!(py, "set_exception"), (to_pyerr(py, e).into_value(py),))?,
    };
    Ok(())
}

/// The loader of an async `get_or_load`, started by the flight's first poll on any thread.
struct AsyncLoad {
    loader: Py<PyAny>,
    event_loop: Py<PyAny>,
    context: Py<PyAny>,
    weigh: Arc<Weigh>,
}

type LoadResult = Result<Loaded<Value>, LoaderError>;

impl AsyncLoad {
    fn start(self) -> BoxFuture<'static, LoadResult> {
        Python::attach(|py| match self.try_start(py) {
            Ok(f) => f,
            Err(e) => future::ready(Err(loader_error(py, e))).boxed(),
        })
    }

    fn try_start(self, py: Python<'_>) -> PyResult<BoxFuture<'static, LoadResult>> {
        let (tx, rx) = oneshot::channel();
        let done = Done { tx: Mutex::new(Some(tx)), weigh: Arc::clone(&self.weigh) };
        // In the caller's contextvars: call the loader; an awaitable it returns becomes a task
        // on the caller's loop, which reports to `done`.
        let start = bridge(py)?.getattr("start")?;
        let r =
            self.context.bind(py).call_method1("run", (start, self.loader.bind(py), self.event_loop.bind(py), done))?;
        let (pending, obj): (bool, Bound<'_, PyAny>) = r.extract()?;
        if !pending {
            return Ok(future::ready(Ok(loaded(&self.weigh, obj)?)).boxed());
        }
        let mut guard = CancelOnDrop { task: Some(obj.unbind()), event_loop: self.event_loop };
        Ok(async move {
            let r = rx.await;
            guard.disarm();
            r.unwrap_or_else(|_| Err(LoaderError::new((), "the loader's task ended without a result")))
        }
        .boxed())
    }
}

/// Cancels the loader's task when the flight is dropped before it finished (every waiter gone,
/// or the load timed out).
struct CancelOnDrop {
    task: Option<Py<PyAny>>,
    event_loop: Py<PyAny>,
}

impl CancelOnDrop {
    /// The task finished: nothing to cancel.
    fn disarm(&mut self) {
        self.task = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            Python::attach(|py| {
                if let Ok(cancel) = bridge(py).and_then(|b| b.getattr("cancel")) {
                    let _ = cancel.call1((self.event_loop.bind(py), task));
                }
            });
        }
    }
}

/// Done-callback of the loader's task (or concurrent future): sends its outcome to the flight.
#[pyclass(frozen)]
struct Done {
    tx: Mutex<Option<oneshot::Sender<LoadResult>>>,
    weigh: Arc<Weigh>,
}

#[pymethods]
impl Done {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) {
        let outcome = (|| -> PyResult<Loaded<Value>> {
            let exc = task.call_method0(pyo3::intern!(py, "exception"))?; // raises if cancelled
            if !exc.is_none() {
                return Err(PyErr::from_value(exc));
            }
            loaded(&self.weigh, task.call_method0(pyo3::intern!(py, "result"))?)
        })();
        let outcome = outcome.map_err(|e| loader_error(py, e));
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = tx {
            let _ = tx.send(outcome);
        }
    }
}

/// The wait of one `get_or_load` or `fetch` call: a core future, polled on the event loop's thread.
type WaitFuture = Pin<Box<dyn Future<Output = healcache::Result<Reply>> + Send>>;

/// What a driver polls: a call with its asyncio future, or background work of the core.
enum Job {
    Call(WaitFuture, Py<PyAny>),
    Background(BoxFuture<'static, ()>),
}

thread_local! {
    /// Background work the core spawned while a call was polled on this thread (see
    /// [`collect_spawned`]); `None` outside such a poll.
    static SPAWNED: RefCell<Option<Vec<BoxFuture<'static, ()>>>> = const { RefCell::new(None) };
}

/// The core's [`Spawner`]: background refreshes (stale-while-revalidate, XFetch, refresh-ahead,
/// the tail of a soft-timed-out load) run on the driver of the event loop whose call started them.
///
/// The core spawns only from inside `fetch`, which is polled only on an event loop's thread, by
/// [`PyCache::call`] or a [`LoopDriver`], both inside [`collect_spawned`]; they hand what was
/// spawned to that loop's driver once the poll is over. So a refresh calls its Python loader on
/// the loop that made the call, runs to completion whether or not anyone awaits it, and never
/// touches Python from a foreign thread (nothing to kill at interpreter exit).
pub(crate) struct DriverSpawner;

impl Spawner for DriverSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        let rejected = SPAWNED.with(|s| match &mut *s.borrow_mut() {
            Some(jobs) => {
                jobs.push(fut);
                None
            }
            None => Some(fut),
        });
        // Not reached (see above); were it, dropping the refresh only ends its flight early.
        drop(rejected);
    }
}

/// Runs `poll` collecting what the core spawns meanwhile (nested calls collect their own).
fn collect_spawned<T>(poll: impl FnOnce() -> T) -> (T, Vec<BoxFuture<'static, ()>>) {
    struct Restore(Option<Option<Vec<BoxFuture<'static, ()>>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                let mine = SPAWNED.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
                drop(mine); // a panic unwinds through here: the jobs are dropped
            }
        }
    }
    let mut restore = Restore(Some(SPAWNED.with(|s| s.borrow_mut().replace(Vec::new()))));
    let r = poll();
    let outer = restore.0.take().unwrap_or_default();
    let mine = SPAWNED.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    (r, mine.unwrap_or_default())
}

/// Polls the waiting `get_or_load` / `fetch` calls and the background refreshes of one event
/// loop, on that loop's thread.
///
/// `healcache._bridge.driver(loop)` makes one per loop and registers `run` as the reader of
/// `fileno()`. A waker, on any thread, queues its call's id and writes one byte (only when none
/// is pending); `run` then polls the queued calls and settles their asyncio futures.
#[pyclass(frozen, name = "_LoopDriver", module = "healcache._healcache")]
pub(crate) struct LoopDriver {
    wake: Arc<Wakeup>,
    reader: UnixStream,
    next_id: AtomicU64,
    /// Calls still waiting; only the loop's thread touches them.
    waiting: Mutex<HashMap<u64, Job>>,
}

struct Wakeup {
    ready: Mutex<Vec<u64>>,
    armed: AtomicBool,
    writer: UnixStream,
}

struct CallWaker {
    id: u64,
    wake: Arc<Wakeup>,
}

impl Wake for CallWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        relock(&self.wake.ready).push(self.id);
        if !self.wake.armed.swap(true, Ordering::AcqRel) {
            // Non-blocking: a full socket already holds a pending wake-up.
            let _ = (&self.wake.writer).write(&[1]);
        }
    }
}

pub(crate) fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[pymethods]
impl LoopDriver {
    #[new]
    fn new() -> PyResult<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(LoopDriver {
            wake: Arc::new(Wakeup { ready: Mutex::new(Vec::new()), armed: AtomicBool::new(false), writer }),
            reader,
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// The file descriptor the loop watches.
    fn fileno(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// Polls every woken call (the loop's reader callback).
    fn run(&self, py: Python<'_>) {
        let mut buf = [0u8; 256];
        while matches!((&self.reader).read(&mut buf), Ok(n) if n > 0) {}
        self.wake.armed.store(false, Ordering::Release);
        let ids = std::mem::take(&mut *relock(&self.wake.ready));
        for id in ids {
            self.poll(py, id);
        }
    }
}

impl LoopDriver {
    fn adopt(slf: &Bound<'_, LoopDriver>, fut: WaitFuture, done: &Bound<'_, PyAny>) -> PyResult<()> {
        let this = slf.get();
        let id = this.next_id.fetch_add(1, Ordering::Relaxed);
        done.call_method1("add_done_callback", (Forget { driver: slf.clone().unbind(), id },))?;
        relock(&this.waiting).insert(id, Job::Call(fut, done.clone().unbind()));
        this.poll(slf.py(), id);
        Ok(())
    }

    /// Takes background work of the core; it is first polled at the loop's next turn.
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        relock(&self.waiting).insert(id, Job::Background(fut));
        Arc::new(CallWaker { id, wake: Arc::clone(&self.wake) }).wake_by_ref();
    }

    fn poll(&self, py: Python<'_>, id: u64) {
        // Taken out while polled: polling may run Python code that calls back into this driver.
        let Some(job) = relock(&self.waiting).remove(&id) else { return };
        let waker = Waker::from(Arc::new(CallWaker { id, wake: Arc::clone(&self.wake) }));
        let mut cx = Context::from_waker(&waker);
        let (pending, spawned) = collect_spawned(|| match job {
            Job::Call(mut fut, done) => match fut.as_mut().poll(&mut cx) {
                Poll::Pending => Some(Job::Call(fut, done)),
                Poll::Ready(r) => {
                    if let Err(e) = complete(py, done.bind(py), r) {
                        e.write_unraisable(py, Some(done.bind(py)));
                    }
                    None
                }
            },
            Job::Background(mut fut) => fut.as_mut().poll(&mut cx).is_pending().then_some(Job::Background(fut)),
        });
        if let Some(job) = pending {
            relock(&self.waiting).insert(id, job);
        }
        for job in spawned {
            self.spawn(job);
        }
    }
}

/// Done-callback of a call's asyncio future: a cancelled call stops waiting (others go on).
#[pyclass(frozen)]
struct Forget {
    driver: Py<LoopDriver>,
    id: u64,
}

#[pymethods]
impl Forget {
    fn __call__(&self, py: Python<'_>, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0(pyo3::intern!(py, "cancelled"))?.is_truthy()? {
            let call = relock(&self.driver.get().waiting).remove(&self.id);
            drop(call); // leaves the flight, outside the lock
        }
        Ok(())
    }
}

/// `Cache.get` as a `METH_FASTCALL` method descriptor.
///
/// Under `abi3-py39` PyO3 can only register methods with the tuple-and-dict calling convention
/// (vectorcall methods entered the stable ABI in 3.10), which costs a tuple per call: about 30 ns
/// on a ~65 ns hit. `METH_FASTCALL` itself has worked in every CPython since 3.7, so the hottest
/// method is installed by hand over the PyO3 one (which stays as the fallback if the type refuses
/// the attribute). Its behaviour is that of `PyCache::get`.
mod fast_get {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::ptr::null_mut;

    use pyo3::exceptions::{PyRuntimeError, PyTypeError};
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyType;
    use pyo3::Borrowed;

    use super::{key_str, PyCache};

    const METH_FASTCALL: std::ffi::c_int = 0x0080;

    type FastCall =
        unsafe extern "C" fn(*mut ffi::PyObject, *const *mut ffi::PyObject, ffi::Py_ssize_t) -> *mut ffi::PyObject;

    struct Def(ffi::PyMethodDef);
    // SAFETY: the definition is immutable and only read by CPython.
    unsafe impl Sync for Def {}

    static GET: Def = Def(ffi::PyMethodDef {
        ml_name: c"get".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            // SAFETY: CPython calls a METH_FASTCALL function with the fastcall signature; the
            // union only lacks that variant under abi3-py39 (C code casts the same way).
            PyCFunction: unsafe { std::mem::transmute::<FastCall, ffi::PyCFunction>(get as FastCall) },
        },
        ml_flags: METH_FASTCALL,
        ml_doc: c"get($self, key, default=None, /)\n--\n\nThe live value of `key`, else `default`.".as_ptr(),
    });

    unsafe extern "C" fn get(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython calls methods attached to the interpreter.
        let py = unsafe { Python::assume_attached() };
        let r = catch_unwind(AssertUnwindSafe(|| -> PyResult<*mut ffi::PyObject> {
            if !(1..=2).contains(&nargs) {
                return Err(PyTypeError::new_err(format!("get() takes 1 or 2 positional arguments ({nargs} given)")));
            }
            // SAFETY: the method descriptor checked that `slf` is a `Cache`; `args` holds `nargs`
            // borrowed objects.
            let (cache, key) =
                unsafe { (Borrowed::from_ptr(py, slf).cast_unchecked::<PyCache>(), Borrowed::from_ptr(py, *args)) };
            match cache.get().inner.get(key_str(&key)?) {
                Some(v) => Ok(v.obj.clone_ref(py).into_ptr()),
                None => {
                    let default = if nargs == 2 { unsafe { *args.add(1) } } else { py.None().into_ptr() };
                    if nargs == 2 {
                        // SAFETY: a borrowed argument, returned as a new reference.
                        unsafe { ffi::Py_IncRef(default) };
                    }
                    Ok(default)
                }
            }
        }));
        match r {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                e.restore(py);
                null_mut()
            }
            Err(_) => {
                PyRuntimeError::new_err("healcache: panic in Cache.get").restore(py);
                null_mut()
            }
        }
    }

    /// Puts the fastcall `get` on the class.
    pub(crate) fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
        let py = ty.py();
        // SAFETY: `GET` is 'static; CPython only reads it.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_ptr().cast(), (&raw const GET.0).cast_mut()))
        }?;
        if ty.setattr("get", descr).is_err() {
            PyErr::take(py); // an immutable type keeps PyO3's `get`
        }
        Ok(())
    }
}

pub(crate) use fast_get::install as install_fast_get;
