//! Self-healing from Python: sources of truth (sync and async callables, URL templates), the
//! background loop, and the conversion of settings. Sampling, verification, repair, scores and
//! backoff are the core's [`Healer`]; the background loop and `verify_now_sync` are polled by
//! `runtime.rs`.
//!
//! Threads. An interval is always polled with the GIL held, on a thread Python created: the event
//! loop's thread (`await verify_now()`, through the loop's `LoopDriver`), the caller's thread
//! (`verify_now_sync()`, which waits between polls with the GIL released), or the cache's
//! background thread (`healcache-healer`, a Python daemon thread that polls `runtime::HealLoop`
//! and waits in `os.read`). Sources never run on those threads: `healcache._healing.submit` hands a
//! sync source to a pool of Python worker threads and an async source's coroutine to its event
//! loop, and each call answers through a [`SourceReply`], whose methods only send on a channel.
//! So no thread Rust started ever runs Python code (the tokio timer thread and the HTTP thread
//! only wake wakers), and every call of a Python source starts from a Python frame: a daemon
//! thread that interpreter exit stops is never inside Rust frames, which would abort the process
//! (test_shutdown.py). The background threads themselves are stopped and joined at exit.
//!
//! Digests. The core computes a drift event's digests outside its locks, on the thread polling
//! the interval (GIL held), so the digest function calls Python directly: [`content_digest`].

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use futures::future::{self, BoxFuture, FutureExt};
use healcache::{Cache, ConfigProblem, Healer, HealingConfig, Loaded, Source, SourceAnswer, SourceError};
use healcache_http::{AllowPrivate, HttpOptions, HttpSource};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDelta, PyDict, PyFloat, PyInt, PyModule, PyString};
use pyo3::{PyTraverseError, PyVisit};

use crate::config::{self, Settings};
use crate::convert::{in_seconds, is_duration, loaded, Seconds, Value, Weigh};
use crate::error::{config_error, invalid, to_pyerr, type_name, unknown_setting, Spelling};
use crate::runtime::{relock, HealLoop};

type Answer = Result<SourceAnswer<Value>, SourceError>;

static HEALING: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn glue(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    HEALING.get_or_try_init(py, || Ok(py.import("healcache._healing")?.unbind())).map(|m| m.bind(py))
}

/// A digest of a value's content that never raises and is the same in every process: the bytes
/// of `bytes`/`bytearray`/`str`, else the text of `repr()`, else the object's address.
fn content_digest(obj: &Bound<'_, PyAny>) -> u64 {
    // SipHash with fixed keys: no per-process seed, unlike Python's `hash()` of str and bytes.
    let mut h = std::hash::DefaultHasher::new();
    if let Ok(b) = obj.cast::<PyBytes>() {
        h.write_u8(b'b');
        h.write(b.as_bytes());
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        h.write_u8(b'b');
        h.write(&b.to_vec());
    } else if let Some(s) = obj.cast::<PyString>().ok().and_then(|s| s.to_cow().ok().map(|c| c.into_owned())) {
        h.write_u8(b's');
        h.write(s.as_bytes());
    } else if let Some(r) = obj.repr().ok().and_then(|r| r.to_cow().ok().map(|c| c.into_owned())) {
        h.write_u8(b'r');
        h.write(r.as_bytes());
    } else {
        h.write_u8(b'i');
        h.write_usize(obj.as_ptr() as usize);
    }
    h.finish()
}

/// The core comparator: `comparator(cached, fresh)` if given, else `cached == fresh` (identity
/// first, as Python containers do). An exception goes to `sys.unraisablehook` and counts as a
/// mismatch.
fn comparator(custom: Held) -> healcache::Comparator<Value> {
    Arc::new(move |cached: &Value, fresh: &Value| {
        if Arc::ptr_eq(cached, fresh) {
            return true;
        }
        Python::attach(|py| {
            let (a, b) = (cached.obj.bind(py), fresh.obj.bind(py));
            if a.is(b) {
                return true;
            }
            let custom = relock(&custom).as_ref().map(|f| f.clone_ref(py));
            let same = match &custom {
                None => a.eq(b),
                Some(f) => f.bind(py).call1((a, b)).and_then(|r| r.is_truthy()),
            };
            same.unwrap_or_else(|e| {
                e.write_unraisable(py, custom.as_ref().map(|f| f.bind(py)));
                false
            })
        })
    })
}

/// What a source call answered, sent by [`SourceReply`].
enum Reply {
    Value(Py<PyAny>),
    Refused,
    Failed,
}

struct ReplyState {
    tx: Option<oneshot::Sender<Reply>>,
    /// Cancels an async source's task, called if the answer is no longer wanted (a timeout, or
    /// the interval was dropped).
    cancel: Option<Py<PyAny>>,
    cancelled: bool,
}

/// The answer slot of one source call, handed to `healcache._healing.submit`. Its methods only
/// send on a channel, so a worker thread never runs Python code inside Rust frames.
#[pyclass(frozen, name = "_SourceReply", module = "healcache._healcache")]
pub(crate) struct SourceReply {
    state: Mutex<ReplyState>,
}

impl SourceReply {
    fn send(&self, reply: Reply) {
        let (tx, cancel) = {
            let mut s = relock(&self.state);
            (s.tx.take(), s.cancel.take())
        };
        if let Some(tx) = tx {
            // Unwanted answers are dropped here; the caller's frame still holds the object.
            let _ = tx.send(reply);
        }
        drop(cancel);
    }

    /// The answer is no longer wanted: how to cancel its task, if it has one.
    fn abandon(&self) -> Option<Py<PyAny>> {
        let mut s = relock(&self.state);
        s.cancelled = true;
        s.tx = None;
        s.cancel.take()
    }
}

#[pymethods]
impl SourceReply {
    /// The source's answer: a value, or `NOT_FOUND`.
    fn ok(&self, value: &Bound<'_, PyAny>) {
        self.send(Reply::Value(value.clone().unbind()))
    }

    /// The source raised: unavailable (a source failure, skipped).
    fn fail(&self) {
        self.send(Reply::Failed)
    }

    /// The source raised `InvalidKey`: the key cannot be asked of it (skipped, not a failure).
    fn refuse(&self) {
        self.send(Reply::Refused)
    }

    /// Whether the answer is no longer wanted (a queued call is then not made).
    fn cancelled(&self) -> bool {
        relock(&self.state).cancelled
    }

    /// Keeps `cancel()`, which cancels an async source's task; false when the answer is no
    /// longer wanted already (the caller then cancels the task itself).
    fn set_task(&self, cancel: &Bound<'_, PyAny>) -> bool {
        let mut s = relock(&self.state);
        if s.cancelled {
            return false;
        }
        if s.tx.is_some() {
            s.cancel = Some(cancel.clone().unbind());
        }
        true
    }
}

/// Cancels the call (and its task) when its answer is dropped unread.
struct Asked(Option<Py<SourceReply>>);

impl Asked {
    /// Answered: nothing to cancel.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Asked {
    fn drop(&mut self) {
        let Some(reply) = self.0.take() else { return };
        if let Some(cancel) = reply.get().abandon() {
            Python::try_attach(|py| {
                if let Err(e) = cancel.bind(py).call0() {
                    e.write_unraisable(py, None);
                }
            });
        }
    }
}

/// A Python callable as a source, called through `healcache._healing.submit`. The callable and
/// its event loop are [`Held`]: their only reference, shared with the cache's GC methods.
struct PySource {
    callable: Held,
    event_loop: Held,
    is_async: bool,
    weigh: Arc<Weigh>,
}

impl PySource {
    /// `None` once the garbage collector cleared the cache.
    fn submit(&self, py: Python<'_>, key: &str) -> PyResult<Option<(Asked, oneshot::Receiver<Reply>)>> {
        let held = |h: &Held| relock(h).as_ref().map(|o| o.clone_ref(py));
        let Some(callable) = held(&self.callable) else { return Ok(None) };
        let (tx, rx) = oneshot::channel();
        let state = ReplyState { tx: Some(tx), cancel: None, cancelled: false };
        let reply = Py::new(py, SourceReply { state: Mutex::new(state) })?;
        let asked = Asked(Some(reply.clone_ref(py)));
        glue(py)?.getattr(pyo3::intern!(py, "submit"))?.call1((
            callable,
            key,
            held(&self.event_loop),
            self.is_async,
            reply,
        ))?;
        Ok(Some((asked, rx)))
    }
}

impl Source<Value> for PySource {
    fn fetch(&self, key: &str) -> BoxFuture<'static, Answer> {
        // Called while an interval is polled, GIL held (see the module docs).
        let submitted = Python::attach(|py| self.submit(py, key).map_err(|e| e.write_unraisable(py, None)));
        let Ok(Some((mut asked, rx))) = submitted else {
            return future::ready(Err(SourceError::Unavailable)).boxed();
        };
        let weigh = Arc::clone(&self.weigh);
        async move {
            let reply = rx.await;
            asked.disarm();
            match reply {
                Ok(Reply::Value(obj)) => Python::attach(|py| match loaded(&weigh, obj.into_bound(py)) {
                    Ok(Loaded::Value(v)) => Ok(SourceAnswer::Value(v)),
                    Ok(Loaded::NotFound) => Ok(SourceAnswer::NotFound),
                    Err(_) => Err(SourceError::Unavailable), // the weigher raised
                }),
                Ok(Reply::Refused) => Err(SourceError::Refused),
                Ok(Reply::Failed) | Err(_) => Err(SourceError::Unavailable),
            }
        }
        .boxed()
    }
}

/// The keywords of `register_source` that apply to URL-template sources only.
pub(crate) struct UrlOptions<'a, 'py> {
    pub decode: Option<&'a str>,
    pub allow_private: Option<&'a Bound<'py, PyAny>>,
    pub max_body_bytes: Option<usize>,
}

/// How the body of an HTTP source becomes a Python value.
#[derive(Clone, Copy)]
enum Decode {
    Bytes,
    Text,
    Json,
}

impl Decode {
    fn parse(py: Python<'_>, decode: Option<&str>) -> PyResult<Self> {
        match decode.unwrap_or("bytes") {
            "bytes" => Ok(Decode::Bytes),
            "text" => Ok(Decode::Text),
            "json" => Ok(Decode::Json),
            _ => Err(invalid(py, "decode", "must be \"bytes\", \"text\" or \"json\"")),
        }
    }

    /// The body as a Python value (GIL held: the future is polled by an interval's poller).
    /// Decoding never runs code (no pickle); a malformed body is an unavailable answer.
    fn apply<'py>(self, py: Python<'py>, body: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        match self {
            Decode::Bytes => Ok(PyBytes::new(py, &body).into_any()),
            Decode::Text => {
                let text = String::from_utf8(body).map_err(PyErr::from)?;
                Ok(PyString::new(py, &text).into_any())
            }
            Decode::Json => {
                let loads =
                    LOADS.get_or_try_init(py, || Ok::<_, PyErr>(py.import("json")?.getattr("loads")?.unbind()))?;
                loads.bind(py).call1((PyBytes::new(py, &body),))
            }
        }
    }
}

/// A Python object held by the healer or a write-behind queue, shared with the GC methods of
/// its owner, which show it to the collector and drop it when the owner is garbage.
pub(crate) type Held = Arc<Mutex<Option<Py<PyAny>>>>;

/// The self-healing state of one `Cache`: its core healer and its background thread.
pub(crate) struct Healing {
    pub healer: Healer<Value>,
    background: Mutex<Background>,
    /// The Python objects each prefix's source holds (its callable, its event loop), and the
    /// comparator: visited by the `Cache`'s `__traverse__`, released by its `__clear__`, so a
    /// source that refers back to its cache (a bound method of an object holding the cache)
    /// does not keep the cycle alive.
    held: Mutex<HashMap<String, [Held; 2]>>,
    comparator: Held,
}

enum Background {
    Idle,
    Running(Py<HealLoop>),
    Closed,
}

impl Healing {
    /// The healer of `cache` with the healing keywords of `Cache(...)`; starts the background
    /// thread when `healing_enabled` is set.
    pub fn new(
        py: Python<'_>,
        cache: &Cache<Value>,
        given: &Settings,
        custom: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if let Some(f) = &custom {
            if !f.is_callable() {
                return Err(invalid(py, "healing_comparator", "must be callable"));
            }
        }
        let config = config::healing(py, HealingConfig::default(), given, KEYWORD_PREFIX)?;
        let custom: Held = Arc::new(Mutex::new(custom.map(Bound::unbind)));
        let healer = Healer::with_comparator(
            cache.clone(),
            config,
            comparator(Arc::clone(&custom)),
            Arc::new(|v: &Value| Python::attach(|py| content_digest(v.obj.bind(py)))),
        )
        .map_err(|e| config_error(py, e, Spelling::Keyword(KEYWORD_PREFIX)))?;
        let healing = Healing {
            healer,
            background: Mutex::new(Background::Idle),
            held: Mutex::new(HashMap::new()),
            comparator: custom,
        };
        healing.follow_enabled(py)?;
        Ok(healing)
    }

    /// Starts the background thread the first time healing is enabled (it then runs until the
    /// cache is closed or dropped, idle while healing is disabled).
    fn follow_enabled(&self, py: Python<'_>) -> PyResult<()> {
        if !self.healer.config().enabled {
            return Ok(());
        }
        let heal_loop = {
            let mut bg = relock(&self.background);
            if !matches!(*bg, Background::Idle) {
                return Ok(());
            }
            let heal_loop = Py::new(py, HealLoop::new(self.healer.clone())?)?;
            *bg = Background::Running(heal_loop.clone_ref(py));
            heal_loop
        };
        // Outside the lock: starting a thread releases the GIL.
        if let Err(e) = glue(py)?.getattr("start_healer")?.call1((&heal_loop,)) {
            heal_loop.get().stop();
            let mut bg = relock(&self.background);
            if matches!(*bg, Background::Running(_)) {
                *bg = Background::Idle;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Ends the background thread for good and waits for it (at most 10 s).
    pub fn close(&self, py: Python<'_>) -> PyResult<()> {
        let bg = std::mem::replace(&mut *relock(&self.background), Background::Closed);
        // the settings say what runs: nothing in the background from now on
        self.healer.stop();
        if let Background::Running(heal_loop) = bg {
            glue(py)?.getattr("stop_healer")?.call1((heal_loop,))?;
        }
        Ok(())
    }

    /// Stops the background thread without waiting (the cache is being dropped).
    pub fn drop_background(&self) {
        let bg = std::mem::replace(&mut *relock(&self.background), Background::Closed);
        if let Background::Running(heal_loop) = bg {
            heal_loop.get().stop();
        }
    }

    pub fn register_source(
        &self,
        py: Python<'_>,
        prefix: &str,
        source: &Bound<'_, PyAny>,
        url: UrlOptions<'_, '_>,
        weigh: &Arc<Weigh>,
    ) -> PyResult<()> {
        let UrlOptions { decode, allow_private, max_body_bytes } = url;
        let mut held: Option<[Held; 2]> = None;
        let registered = if let Ok(template) = source.cast::<PyString>() {
            let decode = Decode::parse(py, decode)?;
            // the cache has a timer: a later change of `source_timeout` applies to this source too
            let mut options =
                HttpOptions { allow_private: allow_private_arg(allow_private)?, ..HttpOptions::bounded_by_healer() };
            if let Some(max) = max_body_bytes {
                options.max_body_bytes = max;
            }
            let http = HttpSource::new(&template.to_cow()?, options).map_err(|e| to_pyerr(py, e))?;
            let weigh = Arc::clone(weigh);
            let source = http.map(move |body: Vec<u8>| {
                Python::attach(|py| decode.apply(py, body).and_then(|v| weigh.value(v)))
                    .map_err(|_| SourceError::Unavailable)
            });
            self.healer.register_source(prefix, source)
        } else if source.is_callable() {
            if allow_private.is_some() {
                return Err(PyTypeError::new_err(
                    "register_source: `allow_private` applies to URL-template sources only",
                ));
            }
            if decode.is_some() {
                return Err(PyTypeError::new_err("register_source: `decode` applies to URL-template sources only"));
            }
            if max_body_bytes.is_some() {
                return Err(PyTypeError::new_err(
                    "register_source: `max_body_bytes` applies to URL-template sources only",
                ));
            }
            let (is_async, event_loop): (bool, Option<Bound<'_, PyAny>>) =
                glue(py)?.getattr("prepare")?.call1((source,))?.extract()?;
            let source = PySource {
                callable: Arc::new(Mutex::new(Some(source.clone().unbind()))),
                event_loop: Arc::new(Mutex::new(event_loop.map(Bound::unbind))),
                is_async,
                weigh: Arc::clone(weigh),
            };
            held = Some([Arc::clone(&source.callable), Arc::clone(&source.event_loop)]);
            self.healer.register_source(prefix, source)
        } else {
            return Err(PyTypeError::new_err(format!(
                "register_source: a source is a callable or a URL template (str), not {}",
                type_name(source)
            )));
        };
        registered.map_err(|e| to_pyerr(py, e))?;
        let replaced = match held {
            Some(h) => relock(&self.held).insert(prefix.to_owned(), h),
            None => relock(&self.held).remove(prefix),
        };
        drop(replaced); // outside the lock
        Ok(())
    }

    pub fn unregister_source(&self, prefix: &str) -> bool {
        let removed = self.healer.unregister_source(prefix);
        let held = relock(&self.held).remove(prefix);
        drop(held);
        removed
    }

    /// `Cache.__traverse__`: the Python objects of the sources and the comparator.
    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(held) = self.held.try_lock() {
            for h in held.values().flatten() {
                if let Ok(obj) = h.try_lock() {
                    visit.call(&*obj)?;
                }
            }
        }
        if let Ok(c) = self.comparator.try_lock() {
            visit.call(&*c)?;
        }
        Ok(())
    }

    /// `Cache.__clear__`: the cache is garbage: stops its background loop, drops every source and
    /// the comparator.
    pub fn clear(&self) {
        self.drop_background();
        let held = std::mem::take(&mut *relock(&self.held));
        for (prefix, objects) in &held {
            self.healer.unregister_source(prefix);
            for h in objects {
                let obj = relock(h).take();
                drop(obj);
            }
        }
        drop(held);
        let comparator = relock(&self.comparator).take();
        drop(comparator);
    }

    /// `set_healing(...)`: every given setting at once, validated by the core; nothing changes
    /// on error.
    pub fn set(&self, py: Python<'_>, given: &Settings) -> PyResult<()> {
        let config = config::healing(py, self.healer.config(), given, "")?;
        if config.enabled && self.is_closed() {
            return Err(closed(py));
        }
        self.healer.set_config(config).map_err(|e| config_error(py, e, Spelling::Keyword("")))?;
        self.follow_enabled(py)
    }

    fn is_closed(&self) -> bool {
        matches!(*relock(&self.background), Background::Closed)
    }

    /// `config_set(name, value)`: the core parses and validates the text. A duration called by
    /// its name in the table is in seconds, as everywhere in Python (its former `_ms` names keep
    /// milliseconds).
    pub fn config_set(&self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let before = self.healer.config();
        let set = match seconds_given(name, value)? {
            Some(s) => self.healer.config_set_number(name, s.ms()),
            None => self.healer.config_set(name, &setting_text(value)?),
        };
        set.map_err(|e| named_error(py, e, name))?;
        if self.healer.config().enabled && self.is_closed() {
            // the call changes nothing: the settings go back as they were
            let _ = self.healer.set_config(before);
            return Err(closed(py));
        }
        self.follow_enabled(py)
    }

    /// `config_get(name)`: the core's text (durations in seconds under the table's names).
    pub fn config_get(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let got = if in_seconds(name) {
            self.healer.config_get_number(name).map(|ms| (ms / 1000.0).to_string())
        } else {
            self.healer.config_get(name)
        };
        got.map_err(|e| named_error(py, e, name))
    }

    /// Every healing setting under its name, durations in seconds.
    pub fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        config::healing_dict(py, &self.healer.config())
    }
}

/// The keywords of healing settings in `Cache(...)` are the table's names with this prefix.
pub(crate) const KEYWORD_PREFIX: &str = "healing_";

/// The duration `config_set` was given for a setting Python gives in seconds (an int, a float,
/// a `timedelta` or their text) or a `timedelta` for one under its former `_ms` name; `None` for
/// other settings, for text that is no number (the
/// core then refuses it by name) and for other types (refused by `setting_text`).
fn seconds_given(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Option<Seconds>> {
    // a bool goes as its text, which the core refuses by name for a duration
    if value.is_instance_of::<PyBool>() {
        return Ok(None);
    }
    if !in_seconds(name) {
        // a timedelta carries its unit: a duration under its former `_ms` name takes it too
        return Ok(if is_duration(name) && value.is_instance_of::<PyDelta>() { value.extract().ok() } else { None });
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_cow()?.trim().parse().ok().map(Seconds));
    }
    // another type goes on to `setting_text`, whose TypeError names `value`
    Ok(value.extract().ok())
}

/// A setting's value as the core's text: `str` as given, booleans as `true`/`false`, numbers
/// as Python writes them.
fn setting_text(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.to_string());
    }
    if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
        return Ok(value.repr()?.to_cow()?.into_owned());
    }
    Err(PyTypeError::new_err(format!(
        "`value` must be a str, bool, int, float or, for a duration, a timedelta, not {}",
        type_name(value)
    )))
}

/// A core error of `config_set`/`config_get`, naming the setting as it was asked for; an
/// unknown setting names what was asked.
fn named_error(py: Python<'_>, e: healcache::Error, name: &str) -> PyErr {
    match &e {
        healcache::Error::InvalidConfig { field: "name", problem: ConfigProblem::Unknown, .. } => {
            unknown_setting(py, name)
        }
        _ => config_error(py, e, Spelling::Asked(name)),
    }
}

/// `allow_private=`: None or False (public destinations only), True (any), or an iterable of hosts.
fn allow_private_arg(arg: Option<&Bound<'_, PyAny>>) -> PyResult<AllowPrivate> {
    let Some(arg) = arg else { return Ok(AllowPrivate::No) };
    if let Ok(flag) = arg.cast::<pyo3::types::PyBool>() {
        return Ok(if flag.is_true() { AllowPrivate::All } else { AllowPrivate::No });
    }
    if arg.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "register_source: `allow_private` takes a bool or a list of hosts, not a str",
        ));
    }
    let hosts_of = arg.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "register_source: `allow_private` takes a bool or a list of hosts, not {}",
            type_name(arg)
        ))
    })?;
    let mut hosts = Vec::new();
    for h in hosts_of {
        hosts.push(
            h?.extract::<String>()
                .map_err(|_| PyTypeError::new_err("register_source: `allow_private` hosts must be str"))?,
        );
    }
    Ok(AllowPrivate::hosts(hosts))
}

/// `Closed`: the background healing of a closed cache does not start again.
fn closed(py: Python<'_>) -> PyErr {
    to_pyerr(py, healcache::Error::healing_closed())
}
