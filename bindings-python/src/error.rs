//! Core errors to Python exceptions, and Python loader exceptions through the core unchanged.
//!
//! The exception classes are plain Python classes in `healcache/_errors.py`, one per core
//! [`Error::code`] (multiple inheritance from `ValueError`, `TimeoutError`... is natural there);
//! this file looks them up by that code and fills their structured fields. Messages are the
//! core's, written for Python (`Error::message_for(Host::Python)`: durations in seconds).

use healcache::settings::{setting, Scope};
use healcache::{ConfigProblem, Error, Host, LoaderError};
use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

pub(crate) fn errors(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS.get_or_try_init(py, || Ok(py.import("healcache._errors")?.unbind())).map(|m| m.bind(py))
}

/// The name of an object's type, for error messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
}

/// A Python loader's exception, carried inside [`LoaderError`] so that every waiter of the flight
/// raises this very object, with the traceback it had when the loader raised it.
pub(crate) struct PyLoadFailure {
    exc: Py<PyBaseException>,
    traceback: Py<PyAny>,
}

/// Wraps the exception a loader raised (GIL held).
pub(crate) fn loader_error(py: Python<'_>, err: PyErr) -> LoaderError {
    let exc = err.into_value(py);
    let b = exc.bind(py);
    let traceback = b.getattr("__traceback__").map(Bound::unbind).unwrap_or_else(|_| py.None());
    let name = type_name(b);
    let message = match b.str() {
        Ok(s) => format!("{name}: {s}"),
        Err(_) => name,
    };
    LoaderError::new(PyLoadFailure { exc, traceback }, message)
}

/// How an `InvalidConfig` exception names its setting in `field`: the way the caller wrote it.
#[derive(Clone, Copy)]
pub(crate) enum Spelling<'a> {
    /// By name: a cache setting as the settings table names it, a healing setting as
    /// `healing.<name>` (its name in `config_set`), anything else as the core names it.
    ByName,
    /// A keyword argument: `prefix` + the table's name (`healing_sample_rate` in `Cache(...)`,
    /// `sample_rate` in `set_healing`).
    Keyword(&'static str),
    /// The name the caller asked for (`config_set("healing.verify_interval_ms", ...)`).
    Asked(&'a str),
}

impl Spelling<'_> {
    /// The unit a value is written in: seconds, or milliseconds under a former `_ms` name.
    fn host(self) -> Host {
        match self {
            Spelling::Asked(name) if setting(name).is_some_and(|s| s.aliases.contains(&name)) => Host::Rust,
            _ => Host::Python,
        }
    }

    fn field(self, field: &'static str) -> String {
        let Some(s) = setting(field) else { return field.to_string() };
        match self {
            Spelling::Keyword(prefix) => format!("{prefix}{}", s.name),
            Spelling::Asked(name) if setting(name).is_some_and(|asked| asked.name == s.name) => name.to_string(),
            Spelling::Asked(_) | Spelling::ByName if s.scope == Scope::Healing => format!("healing.{}", s.name),
            Spelling::Asked(_) | Spelling::ByName => s.name.to_string(),
        }
    }
}

/// Converts a core error (GIL held). A loader's own exception comes back as it was raised.
pub(crate) fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    config_error(py, e, Spelling::ByName)
}

/// Converts a core error whose `InvalidConfig` names its setting as `spelling` says.
pub(crate) fn config_error(py: Python<'_>, e: Error, spelling: Spelling<'_>) -> PyErr {
    if let Error::Loader(le) = &e {
        if let Some(f) = le.downcast_ref::<PyLoadFailure>() {
            let exc = f.exc.bind(py);
            // Each waiter re-raises the same object: start every traceback from the loader's.
            let _ = exc.setattr("__traceback__", f.traceback.bind(py));
            return PyErr::from_value(exc.clone().into_any());
        }
    }
    build(py, &e, spelling).unwrap_or_else(|err| err)
}

fn build(py: Python<'_>, e: &Error, spelling: Spelling<'_>) -> PyResult<PyErr> {
    let module = errors(py)?;
    let class = module.getattr(e.code()).or_else(|_| module.getattr("HealcacheError"))?;
    // a setting is named in the message as in `field`: as the caller wrote it, in its unit
    let message = match e {
        Error::InvalidConfig { field, problem, value, unit } => {
            format!("invalid config: `{}` {}", spelling.field(field), problem.text(spelling.host(), *unit, *value))
        }
        _ => e.message_for(Host::Python),
    };
    let exc = class.call1((message,))?;
    match e {
        Error::InvalidConfig { field, problem, value, unit } => {
            exc.setattr("field", spelling.field(field))?;
            exc.setattr("reason", problem.text(spelling.host(), *unit, *value))?;
        }
        Error::KeyTooLong { len, max } => {
            exc.setattr("len", len)?;
            exc.setattr("max", max)?;
        }
        Error::ValueTooLarge { weight, max } => {
            exc.setattr("weight", weight)?;
            exc.setattr("max", max)?;
        }
        Error::VersionMismatch { expected, current } => {
            exc.setattr("expected", expected)?;
            exc.setattr("current", current)?;
        }
        Error::LoadTimeout { after_ms } => exc.setattr("after_ms", after_ms)?,
        Error::TooManyLoads { max } | Error::QueueFull { max } => exc.setattr("max", max)?,
        Error::InvalidKey { reason } => exc.setattr("reason", reason)?,
        Error::ValueNotEncodable { reason } | Error::L2Unavailable { reason } => exc.setattr("reason", reason)?,
        _ => {}
    }
    Ok(PyErr::from_value(exc))
}

/// An `InvalidConfig` exception with this message, `field` and `reason` (a name no setting has:
/// the core's error does not carry the name asked for).
pub(crate) fn unknown_setting(py: Python<'_>, name: &str) -> PyErr {
    let reason = ConfigProblem::Unknown.text(Host::Python, healcache::settings::Unit::Number, None);
    let made = (|| -> PyResult<PyErr> {
        let message = format!("invalid config: {reason} {name:?}");
        let exc = errors(py)?.getattr("InvalidConfig")?.call1((message,))?;
        exc.setattr("field", "name")?;
        exc.setattr("reason", reason)?;
        Ok(PyErr::from_value(exc))
    })();
    made.unwrap_or_else(|err| err)
}

/// An [`Error::InvalidConfig`] found by the binding itself (a value the core never sees).
pub(crate) fn invalid(py: Python<'_>, field: &'static str, rule: &'static str) -> PyErr {
    to_pyerr(py, Error::invalid_config(field, ConfigProblem::Rule(rule), None))
}

/// `InvalidKey` for a key that is not a `str`: an instance of `InvalidKeyType`, which is also a
/// `TypeError`, so `except TypeError` written for a wrong key type still catches it.
pub(crate) fn key_not_str(py: Python<'_>, type_name: &str) -> PyErr {
    let reason = format!("cache keys must be str, not {type_name}");
    let made = (|| -> PyResult<PyErr> {
        let exc = errors(py)?.getattr("InvalidKeyType")?.call1((format!("invalid key: {reason}"),))?;
        exc.setattr("reason", &reason)?;
        Ok(PyErr::from_value(exc))
    })();
    made.unwrap_or_else(|err| err)
}

/// The `RuntimeError` of a wait refused on a thread running an event loop, which it would block:
/// a `healcache._errors._LoopWouldBlock`, so `@cache.cached` tells it from its function's own
/// `RuntimeError` and names that function instead of the method it calls.
pub(crate) fn loop_would_block(py: Python<'_>, message: &str) -> PyErr {
    let made = errors(py).and_then(|m| m.getattr("_LoopWouldBlock")).and_then(|class| class.call1((message,)));
    made.map_or_else(|err| err, PyErr::from_value)
}
