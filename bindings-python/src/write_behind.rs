//! `healcache.WriteBehind`: the core's write-behind queue with a Python writer. Queueing,
//! coalescing, batching, retries and close are the core's [`WriteBehind`].
//!
//! Threads. The core's drainer is polled by a Python daemon thread (`healcache-write-behind`,
//! a `runtime::HealLoop` started by `healcache._healing.start_healer`), GIL held. Each batch goes
//! to `healcache._write_behind.submit`, which runs a sync writer on a Python daemon thread of its
//! own (`healcache-writer`) and an async writer on the event loop captured at construction; it
//! answers through a [`WriteReply`], whose methods only send on a channel. So no thread Rust
//! started runs Python code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::BoxFuture;
use healcache::{BatchWriter, OnFull, Op, WriteBehind, WriteBehindConfig, WriteOptions};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyModule, PyTuple};

use crate::cache::PyCache;
use crate::convert::{arg, key_str, write_ttl, Seconds, Value};
use crate::error::{invalid, to_pyerr};
use crate::healing::Held;
use crate::runtime::{block_detached, relock, HealLoop, TokioTimer};

static GLUE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn glue(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    GLUE.get_or_try_init(py, || Ok(py.import("healcache._write_behind")?.unbind())).map(|m| m.bind(py))
}

/// The answer slot of one writer call: `ok()` or `fail(text)`; only sends on a channel.
#[pyclass(frozen, name = "_WriteReply", module = "healcache._healcache")]
pub(crate) struct WriteReply {
    tx: Mutex<Option<oneshot::Sender<Result<(), String>>>>,
}

#[pymethods]
impl WriteReply {
    fn ok(&self) {
        if let Some(tx) = relock(&self.tx).take() {
            let _ = tx.send(Ok(()));
        }
    }

    fn fail(&self, error: String) {
        if let Some(tx) = relock(&self.tx).take() {
            let _ = tx.send(Err(error));
        }
    }
}

/// A Python writer (sync or async callable taking a list of `(op, key, value)` tuples).
struct PyWriter {
    writer: Held,
    event_loop: Option<Py<PyAny>>,
    is_async: bool,
}

impl PyWriter {
    fn submit(&self, py: Python<'_>, batch: Vec<Op<Value>>) -> PyResult<oneshot::Receiver<Result<(), String>>> {
        let items = PyList::empty(py);
        for op in batch {
            let t = match op {
                Op::Put { key, value } => PyTuple::new(
                    py,
                    [
                        "put".into_pyobject(py)?.into_any(),
                        key.into_pyobject(py)?.into_any(),
                        value.obj.bind(py).clone(),
                    ],
                )?,
                Op::Delete { key } => PyTuple::new(
                    py,
                    [
                        "delete".into_pyobject(py)?.into_any(),
                        key.into_pyobject(py)?.into_any(),
                        py.None().into_bound(py),
                    ],
                )?,
            };
            items.append(t)?;
        }
        let writer = relock(&self.writer).as_ref().map(|w| w.clone_ref(py)).ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("the write-behind queue was garbage collected with its writer")
        })?;
        let (tx, rx) = oneshot::channel();
        let reply = Py::new(py, WriteReply { tx: Mutex::new(Some(tx)) })?;
        let event_loop = self.event_loop.as_ref().map(|l| l.clone_ref(py));
        glue(py)?.getattr(pyo3::intern!(py, "submit"))?.call1((writer, items, event_loop, self.is_async, reply))?;
        Ok(rx)
    }
}

impl BatchWriter<Value> for PyWriter {
    fn write(&self, batch: Vec<Op<Value>>) -> BoxFuture<'static, Result<(), String>> {
        let submitted = Python::attach(|py| self.submit(py, batch).map_err(|e| e.to_string()));
        Box::pin(async move {
            match submitted {
                Ok(rx) => rx.await.unwrap_or_else(|_| Err("the writer call was dropped".into())),
                Err(e) => Err(e),
            }
        })
    }
}

/// `WriteBehind(cache, writer, *, max_queue=10_000, batch=None, flush_interval=0.1,
/// retry_min=0.1, retry_max=5.0, attempts=10, on_full="reject")`.
#[pyclass(frozen, name = "WriteBehind", module = "healcache")]
pub(crate) struct PyWriteBehind {
    wb: Arc<WriteBehind<Value>>,
    /// The cache it writes to, kept alive while the queue is.
    cache: Py<PyCache>,
    writer: Held,
    /// The drainer's loop; it ends once the queue is closed (the core closes it when dropped) and empty.
    _drainer: Py<HealLoop>,
    /// The event loop an async writer runs on (the one running at construction).
    writer_loop: Option<Py<PyAny>>,
}

fn seconds(py: Python<'_>, field: &'static str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| invalid(py, field, "must be a non-negative finite number of seconds"))
}

fn on_full(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<OnFull> {
    if let Ok(s) = v.extract::<String>() {
        if s == "reject" {
            return Ok(OnFull::Reject);
        }
    } else if let Ok((kind, wait)) = v.extract::<(String, Bound<'_, PyAny>)>() {
        if kind == "block" {
            return Ok(OnFull::Block(seconds(py, "on_full", arg::block_wait(&wait)?)?));
        }
    }
    Err(invalid(py, "on_full", "must be \"reject\" or (\"block\", seconds)"))
}

#[pymethods]
impl PyWriteBehind {
    #[new]
    #[pyo3(signature = (cache, writer, *, max_queue=10_000, batch=None, flush_interval=0.1, retry_min=0.1,
                        retry_max=5.0, attempts=10, on_full=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        cache: &Bound<'_, PyCache>,
        writer: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = arg::max_queue)] max_queue: usize,
        #[pyo3(from_py_with = arg::batch)] batch: Option<usize>,
        #[pyo3(from_py_with = arg::flush_interval)] flush_interval: f64,
        #[pyo3(from_py_with = arg::retry_min)] retry_min: f64,
        #[pyo3(from_py_with = arg::retry_max)] retry_max: f64,
        #[pyo3(from_py_with = arg::attempts)] attempts: u32,
        on_full: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if !writer.is_callable() {
            return Err(invalid(py, "writer", "must be callable"));
        }
        let cfg = WriteBehindConfig {
            max_queue,
            batch,
            flush_interval: seconds(py, "flush_interval", flush_interval)?,
            retry_min: seconds(py, "retry_min", retry_min)?,
            retry_max: seconds(py, "retry_max", retry_max)?,
            attempts,
            on_full: match on_full {
                None => OnFull::Reject,
                Some(v) => self::on_full(py, v)?,
            },
        };
        let (is_async, event_loop): (bool, Option<Py<PyAny>>) =
            glue(py)?.getattr("prepare")?.call1((writer,))?.extract()?;
        let writer_loop = if is_async { event_loop.as_ref().map(|l| l.clone_ref(py)) } else { None };
        let held: Held = Arc::new(Mutex::new(Some(writer.clone().unbind())));
        let w = PyWriter { writer: Arc::clone(&held), event_loop, is_async };
        let c = cache.get();
        let (wb, drain) =
            WriteBehind::detached(c.inner.clone(), w, cfg, Arc::new(TokioTimer)).map_err(|e| to_pyerr(py, e))?;
        let wb = Arc::new(wb);
        // weak: the queue closes when its last handle goes, which this must not keep
        let again = Arc::downgrade(&wb);
        let remake = move || match again.upgrade() {
            Some(wb) => wb.after_fork(),
            None => Box::pin(futures::future::ready(())),
        };
        let drainer = Py::new(py, HealLoop::background(drain, Box::new(remake))?)?;
        glue(py)?.getattr("start")?.call1((&drainer,))?;
        Ok(PyWriteBehind { wb, cache: cache.clone().unbind(), writer: held, _drainer: drainer, writer_loop })
    }

    /// Writes to the cache at once and queues the write; returns the entry's version.
    #[pyo3(signature = (key, value, ttl=None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: Bound<'_, PyAny>,
        #[pyo3(from_py_with = arg::ttl)] ttl: Option<Seconds>,
    ) -> PyResult<u64> {
        let k = key_str(key)?;
        let opts = WriteOptions { ttl: write_ttl(py, ttl)?, if_version: None };
        let v = self.cache.get().weigh.value(value)?;
        let wb = &self.wb;
        block_detached(py, async move { wb.set_async(k, v, opts).await }).map_err(|e| to_pyerr(py, e))
    }

    /// Removes the key from the cache at once and queues its deletion; whether it was there.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = key_str(key)?;
        let wb = &self.wb;
        block_detached(py, async move { wb.delete_async(k).await }).map_err(|e| to_pyerr(py, e))
    }

    /// Stops accepting writes, flushes for at most `timeout` seconds; returns the items left.
    #[pyo3(signature = (timeout=5.0))]
    fn close(&self, py: Python<'_>, #[pyo3(from_py_with = arg::wb_timeout)] timeout: f64) -> PyResult<usize> {
        let d = seconds(py, "timeout", timeout)?;
        // waiting on the thread of the loop an async writer runs on would keep the writer from
        // running until the deadline, and every item would be left
        let on_writer_loop = match (&self.writer_loop, crate::runtime::running_loop(py)) {
            (Some(l), Ok((running, _))) => running.is(l.bind(py)),
            _ => false,
        };
        if on_writer_loop {
            return Err(crate::error::loop_would_block(
                py,
                "WriteBehind.close() would block the event loop its async writer runs on, so the writer could \
                 not run: use `await wb.aclose(timeout)` there",
            ));
        }
        let wb = &self.wb;
        let left = block_detached(py, async move { wb.close(d).await });
        Ok(left)
    }

    /// `await wb.aclose(timeout=5.0)`: `close` on a worker thread, so the event loop (and an
    /// async writer on it) runs meanwhile.
    #[pyo3(signature = (timeout=5.0))]
    fn aclose<'py>(
        slf: &Bound<'py, Self>,
        #[pyo3(from_py_with = arg::wb_timeout)] timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let close = slf.getattr("close")?;
        slf.py().import("asyncio")?.getattr("to_thread")?.call1((close, timeout))
    }

    /// The cache, the drainer and the event loop are always shown to the collector; the writer
    /// only once the queue is closed. An open queue is live work, as a running thread is: it
    /// keeps its writer, and what refers to it, until closed.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.cache)?;
        visit.call(&self._drainer)?;
        visit.call(&self.writer_loop)?;
        if self.wb.is_closed() {
            // never held here: `submit` holds it with the GIL, which the collector has
            if let Ok(w) = self.writer.try_lock() {
                visit.call(&*w)?;
            }
        }
        Ok(())
    }

    /// The queue is garbage (so closed): drops its writer.
    fn __clear__(&self) {
        if self.wb.is_closed() {
            let w = relock(&self.writer).take();
            drop(w);
        }
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.wb.is_closed()
    }

    /// Items given up (attempts exhausted, or left at close), oldest first; `take=True` removes them.
    #[pyo3(signature = (take=false))]
    fn failed<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = arg::take)] take: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let items = if take { self.wb.take_failed() } else { self.wb.errors() };
        let out = PyList::empty(py);
        for f in items {
            let d = PyDict::new(py);
            match f.op {
                Op::Put { key, value } => {
                    d.set_item("op", "put")?;
                    d.set_item("key", &*key)?;
                    d.set_item("value", value.obj.bind(py))?;
                }
                Op::Delete { key } => {
                    d.set_item("op", "delete")?;
                    d.set_item("key", &*key)?;
                    d.set_item("value", py.None())?;
                }
            }
            d.set_item("attempts", f.attempts)?;
            d.set_item("error", &*f.error)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Counters and gauges (`lag` in seconds, `batch_sizes` per bucket of `batch_size_buckets`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.wb.stats();
        let d = PyDict::new(py);
        d.set_item("queue_depth", s.queue_depth)?;
        d.set_item("queue_capacity", s.queue_capacity)?;
        d.set_item("lag", s.lag.as_secs_f64())?;
        d.set_item("batches", s.batches)?;
        d.set_item("flushed_items", s.flushed_items)?;
        d.set_item("failures", s.failures)?;
        d.set_item("failed", s.failed)?;
        d.set_item("superseded", s.superseded)?;
        d.set_item("failed_dropped", s.failed_dropped)?;
        d.set_item("batch_sizes", s.batch_sizes.to_vec())?;
        d.set_item("batch_size_buckets", healcache::BATCH_SIZE_BUCKETS.to_vec())?;
        d.set_item("closed", s.closed)?;
        Ok(d)
    }

    /// The metrics in the Prometheus text format, labelled `cache="<name>"`.
    fn prometheus(&self, #[pyo3(from_py_with = arg::name)] name: String) -> String {
        self.wb.prometheus(&name)
    }
}

/// `healcache::close_all_write_behind` within the core's exit timeout, for the exit hook of
/// `healcache._closing`: every write-behind queue still running sends what it holds (waited for
/// with the GIL released, so Python writers run); returns the line to report on stderr for the
/// items left at the deadline, if any.
#[pyfunction]
pub(crate) fn _close_all_write_behind(py: Python<'_>) -> Option<String> {
    let left = crate::runtime::block_detached(py, healcache::close_all_write_behind(healcache::EXIT_CLOSE_TIMEOUT));
    healcache::write_behind_exit_report(left)
}
