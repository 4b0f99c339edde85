//! Core errors to Python exceptions, and Python loader exceptions through the core unchanged.
//!
//! The exception classes are plain Python classes in `healcache/_errors.py`, one per core
//! [`Error::code`] (multiple inheritance from `ValueError`, `TimeoutError`... is natural there);
//! this file looks them up by that code and fills their structured fields.

use healcache::{Error, LoaderError};
use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
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

/// The name a config field has in Python, where durations are seconds.
fn python_field(field: &'static str) -> &'static str {
    match field {
        "ttl_ms" => "ttl",
        "load_timeout_ms" => "load_timeout",
        "grace_ms" => "grace",
        "load_soft_timeout_ms" => "load_soft_timeout",
        "refresh_after_ms" => "refresh_after",
        "negative_ttl_ms" => "negative_ttl",
        "soft_timeout_ms" => "soft_timeout",
        f => f,
    }
}

/// A core reason in Python names ("needs grace_ms" reads "needs grace").
fn python_reason(reason: &str) -> String {
    ["load_soft_timeout_ms", "load_timeout_ms", "grace_ms", "refresh_after_ms", "negative_ttl_ms"]
        .iter()
        .fold(reason.to_string(), |r, f| r.replace(f, python_field(f)))
}

/// Converts a core error (GIL held). A loader's own exception comes back as it was raised.
pub(crate) fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    if let Error::Loader(le) = &e {
        if let Some(f) = le.downcast_ref::<PyLoadFailure>() {
            let exc = f.exc.bind(py);
            // Each waiter re-raises the same object: start every traceback from the loader's.
            let _ = exc.setattr("__traceback__", f.traceback.bind(py));
            return PyErr::from_value(exc.clone().into_any());
        }
    }
    build(py, &e).unwrap_or_else(|err| err)
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let module = errors(py)?;
    let class = module.getattr(e.code()).or_else(|_| module.getattr("HealcacheError"))?;
    let message = match e {
        Error::InvalidConfig { field, .. } if python_field(field) != *field => {
            format!("{e} (`{}` is given in seconds in Python)", python_field(field))
        }
        Error::InvalidConfig { .. } => python_reason(&e.to_string()),
        _ => e.to_string(),
    };
    let exc = class.call1((message,))?;
    match e {
        Error::InvalidConfig { field, reason } => {
            exc.setattr("field", python_field(field))?;
            exc.setattr("reason", python_reason(reason))?;
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
        Error::TooManyLoads { max } => exc.setattr("max", max)?,
        Error::InvalidKey { reason } => exc.setattr("reason", reason)?,
        _ => {}
    }
    Ok(PyErr::from_value(exc))
}

/// The Python keyword of a healing setting (`healing.sample_rate` -> `sample_rate`) and whether
/// Python gives it in seconds (the core takes milliseconds).
fn healing_keyword(field: &str) -> Option<(&'static str, bool)> {
    Some(match field {
        "healing.enabled" => ("enabled", false),
        "healing.sample_rate" => ("sample_rate", false),
        "healing.verify_interval_ms" => ("verify_interval", true),
        "healing.auto_repair" => ("auto_repair", false),
        "healing.score_window" => ("score_window", false),
        "healing.source_timeout_ms" => ("source_timeout", true),
        _ => return None,
    })
}

/// Converts a core error of a typed healing setter: an invalid healing setting names the Python
/// keyword (`prefix` + `sample_rate`: `healing_sample_rate` in `Cache(...)`, `sample_rate` in
/// `set_healing`). Settings by name (`config_set`) keep the core's names: use [`to_pyerr`].
pub(crate) fn healing_kw_error(py: Python<'_>, e: Error, prefix: &str) -> PyErr {
    let Error::InvalidConfig { field, reason } = &e else { return to_pyerr(py, e) };
    let Some((keyword, seconds)) = healing_keyword(field) else { return to_pyerr(py, e) };
    let name = format!("{prefix}{keyword}");
    let hint = if seconds { format!(" (`{name}` is given in seconds in Python)") } else { String::new() };
    invalid_config(py, &format!("invalid config: `{name}` {reason}{hint}"), &name, reason)
}

/// An `InvalidConfig` exception with this message, `field` and `reason`.
pub(crate) fn invalid_config(py: Python<'_>, message: &str, field: &str, reason: &str) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let exc = errors(py)?.getattr("InvalidConfig")?.call1((message,))?;
        exc.setattr("field", field)?;
        exc.setattr("reason", reason)?;
        Ok(PyErr::from_value(exc))
    })();
    made.unwrap_or_else(|err| err)
}

/// An [`Error::InvalidConfig`] raised by the binding itself (a value the core never sees).
pub(crate) fn invalid(py: Python<'_>, field: &'static str, reason: &str) -> PyErr {
    let e = Error::InvalidConfig { field, reason: reason.to_string() };
    to_pyerr(py, e)
}
