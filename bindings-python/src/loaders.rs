//! Python loaders as the core's loaders: a plain callable for `get_or_load_sync`, and a sync or
//! async callable for `get_or_load` / `fetch`.
//!
//! A core flight runs its loader lazily at its first poll, on whichever thread polls it, so the
//! adapters attach to the interpreter themselves. An async loader's awaitable runs as a task on
//! the event loop of the call that started the flight (loop and contextvars captured when the
//! call is made), and that task is cancelled if every waiter goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use futures::future::{self, BoxFuture, FutureExt};
use healcache::{Loaded, LoaderError};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::convert::{found, loaded, Value, Weigh};
use crate::error::{errors, loader_error, type_name};
use crate::runtime::{bridge, relock};

/// A loader must be callable; checked when the call is made, before any flight starts.
pub(crate) fn check_callable(loader: &Bound<'_, PyAny>) -> PyResult<()> {
    if loader.is_callable() {
        return Ok(());
    }
    Err(PyTypeError::new_err(format!("loader must be callable, not {}", type_name(loader))))
}

/// The loader of `get_or_load_sync`, called on the thread that leads the flight: a value or
/// `NOT_FOUND`, as the async loader answers.
pub(crate) fn sync_loader(
    loader: Py<PyAny>,
    weigh: Arc<Weigh>,
) -> impl FnOnce() -> Result<Loaded<Value>, LoaderError> + Send {
    move || Python::attach(|py| call_sync(py, &loader, &weigh).map_err(|e| loader_error(py, e)))
}

fn call_sync(py: Python<'_>, loader: &Py<PyAny>, weigh: &Weigh) -> PyResult<Loaded<Value>> {
    let r = loader.bind(py).call0()?;
    // the protocol is the type's (as `inspect.isawaitable` checks): an instance whose
    // `__getattr__` answers every name is a plain value
    if r.get_type().hasattr(pyo3::intern!(py, "__await__"))? {
        bridge(py)?.getattr("refuse_awaitable")?.call1((&r,))?;
    }
    loaded(weigh, r)
}

/// What a Python callback's answer is converted to.
#[derive(Clone, Copy)]
pub(crate) enum Want {
    /// A loader's: a value or `NOT_FOUND`.
    Value,
    /// A batch loader's: a mapping of the keys found to their values.
    Batch,
    /// A writer's: nothing (its answer is ignored).
    Nothing,
}

/// A Python callback's answer, converted as its [`Want`] says.
pub(crate) enum Outcome {
    Value(Loaded<Value>),
    Batch(HashMap<String, Value>),
    Nothing,
}

type Answer = Result<Outcome, LoaderError>;

/// The loader of an async `get_or_load` (and the batch loader or writer of the other async
/// calls), started by the flight's first poll on any thread.
pub(crate) struct AsyncLoad {
    pub loader: Py<PyAny>,
    pub event_loop: Py<PyAny>,
    pub context: Py<PyAny>,
    pub weigh: Arc<Weigh>,
    /// The key marked as loading while the callback runs (none for a batch or a writer).
    pub key: Option<String>,
    pub want: Want,
}

type LoadResult = Result<Loaded<Value>, LoaderError>;

impl AsyncLoad {
    pub fn start(self) -> BoxFuture<'static, LoadResult> {
        self.answer()
            .map(|r| match r? {
                Outcome::Value(v) => Ok(v),
                _ => Err(LoaderError::new((), "a loader's answer was converted as another kind")),
            })
            .boxed()
    }

    /// Calls the callback and converts its answer as `want` says.
    pub fn answer(self) -> BoxFuture<'static, Answer> {
        Python::attach(|py| match self.try_start(py) {
            Ok(f) => f,
            Err(e) => future::ready(Err(loader_error(py, e))).boxed(),
        })
    }

    fn try_start(self, py: Python<'_>) -> PyResult<BoxFuture<'static, Answer>> {
        let (tx, rx) = oneshot::channel();
        let done = Done { tx: Mutex::new(Some(tx)), weigh: Arc::clone(&self.weigh), want: self.want };
        // In the caller's contextvars: call the loader; an awaitable it returns becomes a task
        // on the caller's loop, which reports to `done`.
        let start = bridge(py)?.getattr("start")?;
        let r = self
            .context
            .bind(py)
            .call_method1("run", (start, self.loader.bind(py), self.event_loop.bind(py), done, &self.key))?;
        let (pending, obj): (bool, Bound<'_, PyAny>) = r.extract()?;
        if !pending {
            return Ok(future::ready(Ok(convert(self.want, &self.weigh, obj)?)).boxed());
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

fn convert(want: Want, weigh: &Weigh, obj: Bound<'_, PyAny>) -> PyResult<Outcome> {
    Ok(match want {
        Want::Value => Outcome::Value(loaded(weigh, obj)?),
        Want::Batch => Outcome::Batch(found(weigh, obj)?),
        Want::Nothing => Outcome::Nothing,
    })
}

/// A batch loader, called with a list of keys each time the core asks (once per batch, and
/// once per key refreshed later on its own).
pub(crate) struct BatchLoad {
    pub loader: Py<PyAny>,
    pub event_loop: Py<PyAny>,
    pub context: Py<PyAny>,
    pub weigh: Arc<Weigh>,
}

impl BatchLoad {
    pub fn call(&self, keys: Vec<String>) -> BoxFuture<'static, Result<HashMap<String, Value>, LoaderError>> {
        let load = Python::attach(|py| AsyncLoad {
            loader: self.loader.clone_ref(py),
            event_loop: self.event_loop.clone_ref(py),
            // every call runs in a copy of the caller's context, as a loader's does
            context: self
                .context
                .bind(py)
                .call_method0("copy")
                .map_or_else(|_| self.context.clone_ref(py), Bound::unbind),
            weigh: Arc::clone(&self.weigh),
            key: None,
            want: Want::Batch,
        });
        let args = keys;
        Python::attach(|py| {
            let partial = py
                .import("functools")
                .and_then(|f| f.getattr("partial"))
                .and_then(|p| p.call1((load.loader.bind(py), args)));
            match partial {
                Ok(p) => AsyncLoad { loader: p.unbind(), ..load }.answer(),
                Err(e) => future::ready(Err(loader_error(py, e))).boxed(),
            }
        })
        .map(|r| match r? {
            Outcome::Batch(m) => Ok(m),
            _ => Err(LoaderError::new((), "a batch loader's answer was converted as another kind")),
        })
        .boxed()
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
    tx: Mutex<Option<oneshot::Sender<Answer>>>,
    weigh: Arc<Weigh>,
    want: Want,
}

#[pymethods]
impl Done {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) {
        let outcome = (|| -> PyResult<Outcome> {
            if task.call_method0(pyo3::intern!(py, "cancelled"))?.is_truthy()? {
                // asyncio's CancelledError is a BaseException no waiter asked for (they may be
                // threads): the task was cancelled under them, as when its event loop stopped
                let exc = errors(py)?.getattr("Cancelled")?.call1((
                    "the loader's task was cancelled before it answered (its event loop stopped, or the task was cancelled)",
                ))?;
                return Err(PyErr::from_value(exc));
            }
            let exc = task.call_method0(pyo3::intern!(py, "exception"))?;
            if !exc.is_none() {
                return Err(PyErr::from_value(exc));
            }
            convert(self.want, &self.weigh, task.call_method0(pyo3::intern!(py, "result"))?)
        })();
        let outcome = outcome.map_err(|e| loader_error(py, e));
        let tx = relock(&self.tx).take();
        if let Some(tx) = tx {
            let _ = tx.send(outcome);
        }
    }
}
