//! Conversions between Python objects and the core's types: keys, stored values and their
//! weights, loader answers, settings and durations (seconds or `datetime.timedelta` in Python,
//! milliseconds in the core), plain data (reports, stats) and the replies of asyncio calls.
//!
//! Values are stored as the Python objects themselves (`Arc<Stored>`): a hit returns the very
//! object that was stored, with one reference-count increment and no serialization.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use healcache::settings::{setting, Setting, Unit};
use healcache::{ConfigProblem, Error, FetchOptions, Fetched, IntervalReport, Loaded, WarmReport};
use pyo3::exceptions::{PyOverflowError, PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyModule, PySequence, PyString, PyType,
};

use crate::error::{config_error, invalid, key_not_str, to_pyerr, type_name, Spelling};

extern "C" {
    // Part of the stable ABI since 3.10 and exported by CPython 3.9 as well (pyo3-ffi hides it
    // under abi3-py39). It borrows the str's cached UTF-8 buffer: no allocation per call.
    fn PyUnicode_AsUTF8AndSize(unicode: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const c_char;
}

/// Borrows a key's UTF-8 text from the Python `str` (the buffer lives as long as the str).
#[inline]
pub(crate) fn key_str<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `key` is a valid object and the GIL is held; on success the buffer is owned by the
    // str object, which `key` keeps alive for 'a.
    let p = unsafe { PyUnicode_AsUTF8AndSize(key.as_ptr(), &mut size) };
    if p.is_null() {
        let py = key.py();
        // the UnicodeEncodeError names the key's characters, and keys are data
        drop(PyErr::fetch(py));
        if key.is_instance_of::<PyString>() {
            return Err(to_pyerr(py, Error::InvalidKey { reason: NOT_UTF8 }));
        }
        return Err(key_not_str(py, &type_name(key)));
    }
    // SAFETY: CPython returns valid UTF-8 of `size` bytes.
    Ok(unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(p.cast::<u8>(), size as usize)) })
}

/// Why a str holding lone surrogates is refused as a key: it has no UTF-8 form.
const NOT_UTF8: &str = "the key is not valid Unicode text (a lone surrogate cannot be encoded as UTF-8)";

/// A list of str an argument takes: any sequence of them but a `str`, itself a sequence (of its
/// characters) that would otherwise be taken apart into one-letter items.
fn str_list(
    obj: &Bound<'_, PyAny>,
    field: &str,
    each: impl Fn(&Bound<'_, PyAny>) -> PyResult<String>,
) -> PyResult<Vec<String>> {
    let not_a_list = |t: &str| PyTypeError::new_err(format!("`{field}` must be a sequence of str, not {t}"));
    if obj.is_instance_of::<PyString>() {
        return Err(not_a_list("str"));
    }
    let seq = obj.cast::<PySequence>().map_err(|_| not_a_list(&type_name(obj)))?;
    let mut out = Vec::with_capacity(seq.len().unwrap_or(0));
    for item in seq.try_iter()? {
        out.push(each(&item?)?);
    }
    Ok(out)
}

/// Keys given as a list (`get_many`, `warm`): each checked as any key is.
pub(crate) fn key_list(obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    str_list(obj, "keys", |k| key_str(k).map(str::to_owned))
}

/// One tag of a `tags` list; a tag with no UTF-8 form is refused as the core refuses a bad tag.
fn tag(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if !obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!("`tags` items must be str, not {}", type_name(obj))));
    }
    text(obj, "tags", |py| invalid(py, "tags", NOT_UTF8_TEXT))
}

/// Whole numbers of a Rust type, with its bound as Python writes it.
pub(crate) trait Whole {
    const RANGE: &'static str;
}

impl Whole for u64 {
    const RANGE: &'static str = "must be an int between 0 and 2**64-1";
}

impl Whole for usize {
    #[cfg(target_pointer_width = "64")]
    const RANGE: &'static str = "must be an int between 0 and 2**64-1";
    #[cfg(not(target_pointer_width = "64"))]
    const RANGE: &'static str = "must be an int between 0 and 2**32-1";
}

impl Whole for u32 {
    const RANGE: &'static str = "must be an int between 0 and 2**32-1";
}

impl<T: Whole> Whole for Option<T> {
    const RANGE: &'static str = T::RANGE;
}

/// A whole-number argument: an int out of the type's range, or a bool, is `InvalidConfig` naming
/// `field`, as its other out-of-range values are (pyo3's own `OverflowError` names nothing);
/// another type is a `TypeError` naming it.
fn whole<'a, 'py, T>(obj: &'a Bound<'py, PyAny>, field: &'static str) -> PyResult<T>
where
    T: Whole + FromPyObject<'a, 'py>,
    T::Error: Into<PyErr>,
{
    let py = obj.py();
    // a bool is an int to Python, but `True` given for a count or a version is a mistake
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid(py, field, NOT_A_BOOL_INT));
    }
    obj.extract::<T>().map_err(|e| {
        let e: PyErr = e.into();
        if e.is_instance_of::<PyOverflowError>(py) {
            invalid(py, field, T::RANGE)
        } else if e.is_instance_of::<PyTypeError>(py) {
            PyTypeError::new_err(format!("`{field}` must be an int, not {}", type_name(obj)))
        } else {
            e
        }
    })
}

/// Extractors of arguments whose errors name the argument (`#[pyo3(from_py_with = ...)]`): pyo3's
/// own extraction errors only carry the name in a note.
pub(crate) mod arg {
    use super::*;

    macro_rules! whole_args {
        ($($name:ident: $t:ty),* $(,)?) => {$(
            pub(crate) fn $name(obj: &Bound<'_, PyAny>) -> PyResult<$t> {
                whole(obj, stringify!($name))
            }
        )*};
    }

    whole_args!(
        k: usize,
        concurrency: usize,
        max_keys: usize,
        max_queue: usize,
        attempts: u32,
    );

    /// `if_version=`: an int, or None; a float is refused as a version out of range is (as JS
    /// refuses `ifVersion: 1.5`), a str is a `TypeError`.
    pub(crate) fn if_version(obj: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        if obj.is_instance_of::<PyFloat>() {
            return Err(invalid(obj.py(), "if_version", u64::RANGE));
        }
        whole(obj, "if_version")
    }

    /// `max_body_bytes=` of an HTTP source: a whole number of bytes, or None for the default.
    pub(crate) fn max_body_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
        whole(obj, "max_body_bytes")
    }

    macro_rules! seconds_args {
        ($($name:ident),* $(,)?) => {$(
            pub(crate) fn $name(obj: &Bound<'_, PyAny>) -> PyResult<Option<Seconds>> {
                if obj.is_none() {
                    return Ok(None);
                }
                seconds(obj, stringify!($name)).map(Some)
            }
        )*};
    }

    // per-call durations: seconds or a timedelta, None for the default
    seconds_args!(ttl, negative_ttl, soft_timeout, timeout);

    /// `ManualClock.advance`'s `seconds`.
    pub(crate) fn advance(obj: &Bound<'_, PyAny>) -> PyResult<Seconds> {
        seconds(obj, "seconds")
    }

    macro_rules! number_args {
        ($($name:ident),* $(,)?) => {$(
            pub(crate) fn $name(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
                number(obj, stringify!($name))
            }
        )*};
    }

    number_args!(min_share);

    macro_rules! write_behind_seconds_args {
        ($($name:ident),* $(,)?) => {$(
            pub(crate) fn $name(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
                seconds(obj, stringify!($name)).map(|s| s.0)
            }
        )*};
    }

    // the write-behind durations: seconds or a timedelta, as seconds (a number is their default)
    write_behind_seconds_args!(flush_interval, retry_min, retry_max);

    /// `WriteBehind.close`'s `timeout`.
    pub(crate) fn wb_timeout(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
        seconds(obj, "timeout").map(|s| s.0)
    }

    /// The wait of `on_full=("block", wait)`.
    pub(crate) fn block_wait(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
        seconds(obj, "on_full").map(|s| s.0)
    }

    macro_rules! flag_args {
        ($($name:ident),* $(,)?) => {$(
            pub(crate) fn $name(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
                flag(obj, stringify!($name))
            }
        )*};
    }

    flag_args!(hard, invalidate, take);

    macro_rules! optional_flag_args {
        ($($name:ident),* $(,)?) => {$(
            pub(crate) fn $name(obj: &Bound<'_, PyAny>) -> PyResult<Option<bool>> {
                if obj.is_none() {
                    return Ok(None);
                }
                flag(obj, stringify!($name)).map(Some)
            }
        )*};
    }

    optional_flag_args!(stale_while_revalidate, xfetch);

    /// `warm`'s and `WriteBehind`'s `batch=`: an int, or None for the core's default.
    pub(crate) fn batch(obj: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
        whole(obj, "batch")
    }

    /// `tags=`: a list of str, or None.
    pub(crate) fn tags(obj: &Bound<'_, PyAny>) -> PyResult<Option<Vec<String>>> {
        if obj.is_none() {
            return Ok(None);
        }
        str_list(obj, "tags", super::tag).map(Some)
    }

    /// `keys`: a list of keys.
    pub(crate) fn keys(obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        key_list(obj)
    }

    /// `invalidate_tag`'s tag: refused as a tag of `set` is when it has no UTF-8 form.
    pub(crate) fn tag(obj: &Bound<'_, PyAny>) -> PyResult<String> {
        text(obj, "tag", |py| invalid(py, "tag", NOT_UTF8_TEXT))
    }

    /// A source's prefix: a key prefix, so one with no UTF-8 form is refused as such a key is.
    pub(crate) fn prefix(obj: &Bound<'_, PyAny>) -> PyResult<String> {
        text(obj, "prefix", |py| to_pyerr(py, Error::InvalidKey { reason: PREFIX_NOT_UTF8 }))
    }

    /// A setting's name (`config_set`, `config_get`).
    pub(crate) fn name(obj: &Bound<'_, PyAny>) -> PyResult<String> {
        text(obj, "name", |py| invalid(py, "name", NOT_UTF8_TEXT))
    }

    macro_rules! optional_text_args {
        ($($name:ident),* $(,)?) => {$(
            pub(crate) fn $name(obj: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
                if obj.is_none() {
                    return Ok(None);
                }
                text(obj, stringify!($name), |py| invalid(py, stringify!($name), NOT_UTF8_TEXT)).map(Some)
            }
        )*};
    }

    // `decode=` of an HTTP source, and the shared tier's text keywords of `Cache(...)`; or None
    optional_text_args!(decode, redis, l2_prefix, fleet_lock);
}

/// Why a str holding lone surrogates is refused where text is needed.
const NOT_UTF8_TEXT: &str = "must be valid Unicode text (a lone surrogate cannot be encoded as UTF-8)";

/// Why a source's prefix holding lone surrogates is refused.
const PREFIX_NOT_UTF8: &str = "the prefix is not valid Unicode text (a lone surrogate cannot be encoded as UTF-8)";

/// A str argument as Rust text: one with no UTF-8 form gets `refused` (a typed error naming the
/// argument) rather than pyo3's `UnicodeEncodeError`, which quotes the text; another type is a
/// `TypeError` naming it.
fn text(obj: &Bound<'_, PyAny>, field: &str, refused: impl Fn(Python<'_>) -> PyErr) -> PyResult<String> {
    let s = obj
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("`{field}` must be str, not {}", type_name(obj))))?;
    match s.to_cow() {
        Ok(t) => Ok(t.into_owned()),
        Err(_) => Err(refused(obj.py())),
    }
}

/// Why a bool is refused where an int is expected.
const NOT_A_BOOL_INT: &str = "must be an int, not a bool";

/// A duration argument named `field`: seconds (an int or a float) or a `timedelta`; a bool is
/// refused as the argument's bad numbers are, another type is a `TypeError` naming it, as
/// `Cache(ttl="5")`'s.
fn seconds(obj: &Bound<'_, PyAny>, field: &'static str) -> PyResult<Seconds> {
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid(obj.py(), field, "must be a number of seconds or a timedelta, not a bool"));
    }
    if is_timedelta(obj)? {
        return obj.extract();
    }
    float(obj).map(Seconds).map_err(|_| {
        PyTypeError::new_err(format!("`{field}` must be a number of seconds or a timedelta, not {}", type_name(obj)))
    })
}

/// A number argument named `field`; a bool is refused as its bad numbers are, another type is a
/// `TypeError` naming it.
fn number(obj: &Bound<'_, PyAny>, field: &'static str) -> PyResult<f64> {
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid(obj.py(), field, "must be a number, not a bool"));
    }
    float(obj).map_err(|_| PyTypeError::new_err(format!("`{field}` must be a number, not {}", type_name(obj))))
}

/// A flag argument named `field`: a bool only (`1` is no flag), else a `TypeError` naming it.
fn flag(obj: &Bound<'_, PyAny>, field: &'static str) -> PyResult<bool> {
    obj.cast::<PyBool>()
        .map(|b| b.is_true())
        .map_err(|_| PyTypeError::new_err(format!("`{field}` must be a bool, not {}", type_name(obj))))
}

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
    /// No byte bound set: str and bytes-likes weigh their length (the default entry bound holds
    /// for them, and the `weight` counter reads as Node's), other objects nothing (as in Node).
    Lengths,
    /// A byte bound set: as [`Weigh::Lengths`], and `sys.getsizeof` for other objects.
    Default,
    /// The user's `weigher(value) -> int`.
    Custom(Py<PyAny>),
}

impl Weigh {
    /// Wraps `obj` as a cache value with its weight (GIL held).
    pub fn value(&self, obj: Bound<'_, PyAny>) -> PyResult<Value> {
        let py = obj.py();
        let weight = match self {
            Weigh::Custom(f) => {
                let w = f.bind(py).call1((&obj,))?;
                w.extract::<u64>().map_err(|_| invalid(py, "weigher", "must return an int between 0 and 2**64-1"))?
            }
            _ => {
                if let Ok(s) = obj.cast::<PyString>() {
                    s.len()? as u64
                } else if let Ok(b) = obj.cast::<PyBytes>() {
                    b.as_bytes().len() as u64
                } else if let Ok(b) = obj.cast::<PyByteArray>() {
                    b.len() as u64
                } else if matches!(self, Weigh::Default) {
                    static GETSIZEOF: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
                    let f = GETSIZEOF.import(py, "sys", "getsizeof")?;
                    f.call1((&obj,))?.extract::<u64>()?
                } else {
                    0
                }
            }
        };
        Ok(Arc::new(Stored { obj: obj.unbind(), weight }))
    }
}

static FETCH: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn fetch_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    FETCH.get_or_try_init(py, || Ok(py.import("healcache._fetch")?.unbind())).map(|m| m.bind(py))
}

/// Whether `obj` is the `NOT_FOUND` sentinel.
fn is_not_found(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    static NOT_FOUND: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = obj.py();
    let nf = NOT_FOUND.get_or_try_init(py, || Ok::<_, PyErr>(fetch_module(py)?.getattr("NOT_FOUND")?.unbind()))?;
    Ok(obj.is(nf.bind(py)))
}

/// A loader's answer: `NOT_FOUND` is the core's `Loaded::NotFound`, anything else a value.
pub(crate) fn loaded(weigh: &Weigh, obj: Bound<'_, PyAny>) -> PyResult<Loaded<Value>> {
    if is_not_found(&obj)? {
        return Ok(Loaded::NotFound);
    }
    weigh.value(obj).map(Loaded::Value)
}

/// A batch loader's answer: a mapping of keys (str) to values; a key it leaves out, or gives
/// `NOT_FOUND`, is not found.
pub(crate) fn found(weigh: &Weigh, obj: Bound<'_, PyAny>) -> PyResult<std::collections::HashMap<String, Value>> {
    let py = obj.py();
    let items = obj.call_method0(pyo3::intern!(py, "items")).map_err(|_| {
        PyTypeError::new_err(format!("a batch loader must return a mapping of keys to values, not {}", type_name(&obj)))
    })?;
    let mut out = std::collections::HashMap::new();
    for item in items.try_iter()? {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let key = key_str(&k)?;
        if !is_not_found(&v)? {
            out.insert(key.to_owned(), weigh.value(v)?);
        }
    }
    Ok(out)
}

/// `datetime.timedelta` (not in the stable ABI's C API: looked up once).
fn is_timedelta(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    static TIMEDELTA: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let py = obj.py();
    let class = TIMEDELTA.import(py, "datetime", "timedelta")?;
    obj.is_instance(class)
}

/// A duration as Python gives it: seconds (an int or a float) or a `datetime.timedelta`.
#[derive(Clone, Copy)]
pub(crate) struct Seconds(pub f64);

impl<'a, 'py> FromPyObject<'a, 'py> for Seconds {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if is_timedelta(&obj)? {
            return Ok(Seconds(obj.call_method0(pyo3::intern!(obj.py(), "total_seconds"))?.extract()?));
        }
        Ok(Seconds(float(&obj)?))
    }
}

/// A number as an `f64`; an int too large for one is the largest finite `f64` of its sign, so the
/// core refuses it under the setting's name as out of range (and never reads it as `math.inf`,
/// which means "no expiry" for a TTL) rather than pyo3 raising a bare `OverflowError`.
fn float(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    obj.extract::<f64>().or_else(|e| {
        let py = obj.py();
        if e.is_instance_of::<PyOverflowError>(py) && obj.is_instance_of::<PyInt>() {
            Ok(if obj.lt(0)? { -f64::MAX } else { f64::MAX })
        } else {
            Err(e)
        }
    })
}

impl Seconds {
    /// In the core's unit (milliseconds).
    pub fn ms(self) -> f64 {
        // finite seconds stay finite: infinity means "no expiry" where a TTL is read
        let ms = self.0 * 1000.0;
        if ms.is_infinite() && self.0.is_finite() {
            f64::MAX.copysign(self.0)
        } else {
            ms
        }
    }
}

/// The value of a setting's keyword argument: a flag, a number, or a duration.
pub(crate) enum Given {
    Flag(bool),
    Number(f64),
    Span(Seconds),
    /// Anything else: refused by [`Given::to_core`] naming the setting (the type's name).
    Other(String),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Given {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Given::Flag(b.is_true()));
        }
        if is_timedelta(&obj)? {
            return Seconds::extract(obj).map(Given::Span);
        }
        Ok(float(&obj).map_or_else(|_| Given::Other(type_name(&obj)), Given::Number))
    }
}

impl Given {
    /// The value in the core's unit for `setting`, given as the keyword `keyword` (named in an
    /// `InvalidConfig` as `spelling` says): seconds to milliseconds for durations; flags only
    /// from `bool`, and a `bool` only for flags; a timedelta only for durations.
    pub fn to_core(&self, py: Python<'_>, setting: &Setting, keyword: &str, spelling: Spelling<'_>) -> PyResult<f64> {
        let flag = |b: bool| f64::from(u8::from(b));
        let number = |n: f64| if setting.unit == Unit::Duration { Seconds(n).ms() } else { n };
        match (setting.unit, self) {
            (Unit::Flag, Given::Flag(b)) => Ok(flag(*b)),
            (Unit::Flag, Given::Other(t)) => Err(PyTypeError::new_err(format!("`{keyword}` must be a bool, not {t}"))),
            (Unit::Flag, _) => Err(PyTypeError::new_err(format!("`{keyword}` must be a bool"))),
            (Unit::Duration, Given::Other(t)) => {
                Err(PyTypeError::new_err(format!("`{keyword}` must be a number of seconds or a timedelta, not {t}")))
            }
            (_, Given::Other(t)) => Err(PyTypeError::new_err(format!("`{keyword}` must be a number, not {t}"))),
            (Unit::Duration, Given::Span(s)) => Ok(s.ms()),
            (_, Given::Span(_)) => Err(PyTypeError::new_err(format!("`{keyword}` must be a number, not timedelta"))),
            // a bool is an int to Python, but `max_entries=True` is a mistake, not one entry
            (unit, Given::Flag(_)) => {
                let rule = if unit == Unit::Duration {
                    "must be a number of seconds or a timedelta, not a bool"
                } else {
                    "must be a number, not a bool"
                };
                Err(config_error(py, Error::invalid_config(setting.name, ConfigProblem::Rule(rule), None), spelling))
            }
            (_, Given::Number(n)) => Ok(number(*n)),
        }
    }
}

/// A setting's value from the core (its unit) to Python: a bool, seconds, an int or a float.
pub(crate) fn setting_to_py<'py>(py: Python<'py>, setting: &Setting, v: f64) -> PyResult<Bound<'py, PyAny>> {
    Ok(match setting.unit {
        Unit::Flag => PyBool::new(py, v != 0.0).to_owned().into_any(),
        Unit::Duration => PyFloat::new(py, v / 1000.0).into_any(),
        Unit::Count | Unit::Bytes => (v as u64).into_pyobject(py)?.into_any(),
        _ => PyFloat::new(py, v).into_any(),
    })
}

/// Whether Python gives `name`'s value in seconds: a duration called by its name in the table
/// (a former `_ms` name keeps milliseconds).
pub(crate) fn in_seconds(name: &str) -> bool {
    setting(name).is_some_and(|s| s.unit == Unit::Duration && !s.aliases.contains(&name))
}

/// Whether `name` is a duration under any of its names.
pub(crate) fn is_duration(name: &str) -> bool {
    setting(name).is_some_and(|s| s.unit == Unit::Duration)
}

/// A per-write TTL: `None` keeps the cache's TTL, `math.inf` never expires.
pub(crate) fn write_ttl(py: Python<'_>, ttl: Option<Seconds>) -> PyResult<healcache::Ttl> {
    match ttl {
        None => Ok(healcache::Ttl::Default),
        Some(s) if s.0 == f64::INFINITY => Ok(healcache::Ttl::Never),
        Some(s) => duration(py, "ttl", s).map(healcache::Ttl::For),
    }
}

/// The per-call options of `fetch` and `get_or_load` (seconds to durations, validated by the
/// core under each option's name).
pub(crate) fn fetch_options(
    py: Python<'_>,
    ttl: Option<Seconds>,
    negative_ttl: Option<Seconds>,
    stale_while_revalidate: Option<bool>,
    xfetch: Option<bool>,
    soft_timeout: Option<Seconds>,
) -> PyResult<FetchOptions> {
    let seconds = |field, s: Option<Seconds>| s.map(|s| duration(py, field, s)).transpose();
    Ok(FetchOptions {
        ttl: write_ttl(py, ttl)?,
        negative_ttl: seconds("negative_ttl", negative_ttl)?,
        stale_while_revalidate,
        xfetch,
        soft_timeout: seconds("soft_timeout", soft_timeout)?,
    })
}

/// A per-call duration, validated by the core under the option's name.
pub(crate) fn duration(py: Python<'_>, field: &'static str, s: Seconds) -> PyResult<Duration> {
    healcache::duration_ms(field, s.ms()).map_err(|e| to_pyerr(py, e))
}

/// `(value, version, seconds_left)` of `Cache.get_entry`.
pub(crate) type EntryTuple = (Py<PyAny>, u64, Option<f64>);

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

/// Plain data of the core (reports, scores, stats) to Python.
pub(crate) fn to_py<'py, T: serde::Serialize>(py: Python<'py>, v: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(v).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    json_to_py(py, &v)
}

/// What an asyncio call resolves to.
pub(crate) enum Reply {
    /// `get_or_load`: the value.
    Value(Value),
    /// `fetch`: a `Fetched(value, status)` named tuple.
    Fetched(Fetched<Value>),
    /// `verify_now`: the interval's report, as a dict.
    Report(IntervalReport),
    /// `get_many`: the keys found, in the order asked, as a dict.
    Many(Vec<(String, Value)>),
    /// `write_through`: the new version.
    Version(u64),
    /// `warm`: what it did, as a dict.
    Warm(WarmReport),
}

impl Reply {
    pub fn into_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        match self {
            Reply::Value(v) => Ok(v.obj.bind(py).clone()),
            Reply::Fetched(f) => {
                static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
                let class =
                    CLASS.get_or_try_init(py, || Ok::<_, PyErr>(fetch_module(py)?.getattr("Fetched")?.unbind()))?;
                let value = f.value.map_or_else(|| py.None(), |v| v.obj.clone_ref(py));
                class.bind(py).call1((value, PyString::intern(py, f.status.as_str())))
            }
            Reply::Report(r) => to_py(py, &r),
            Reply::Many(found) => {
                let d = PyDict::new(py);
                for (k, v) in found {
                    d.set_item(k, v.obj.bind(py))?;
                }
                Ok(d.into_any())
            }
            Reply::Version(v) => Ok(v.into_pyobject(py)?.into_any()),
            Reply::Warm(r) => {
                let d = PyDict::new(py);
                d.set_item("total", r.total)?;
                d.set_item("found", r.found)?;
                d.set_item("not_found", r.not_found)?;
                d.set_item("failed", r.failed)?;
                d.set_item("error", r.error)?;
                Ok(d.into_any())
            }
        }
    }
}
