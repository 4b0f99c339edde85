//! The shared tier from Python: `Cache(redis="redis://...")` connects the core's L2 through
//! `healcache-redis`, and Python objects cross as the core's neutral value model (MessagePack):
//! `None`, `bool`, `int` (64-bit), `float`, `str`, `bytes`, `list`/`tuple` (read back as `list`),
//! and `dict` with `str` keys. Anything else is `ValueNotEncodable`: there is no `repr()` or
//! pickle fallback, so no value read from Redis can run code.

use std::sync::Arc;

use healcache::codec::{self, PayloadCodec};
use healcache::tier::ValueCodec;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::convert::{Value, Weigh};
use crate::error::type_name;
use crate::runtime;

/// Nesting deeper than this is refused (as the core's decoder refuses it).
const MAX_DEPTH: usize = codec::MAX_DEPTH;

/// `healcache::tier::close_all` within the core's exit timeout, for the exit hook of
/// `healcache._closing`: the shared tier of every cache still open sends what it queued
/// (waited for with the GIL released), then closes; returns the writes still under way at the
/// deadline.
#[pyfunction]
pub(crate) fn _close_all_shared(py: Python<'_>) -> usize {
    runtime::block_detached(py, healcache::tier::close_all(healcache::EXIT_CLOSE_TIMEOUT))
}

/// The codec of Python values: conversion to and from [`rmpv::Value`], weighed as any value.
pub(crate) struct PyCodec {
    pub weigh: Arc<Weigh>,
}

impl ValueCodec<Value> for PyCodec {
    fn encode(&self, value: &Value) -> Result<(PayloadCodec, Vec<u8>), String> {
        let neutral = Python::attach(|py| to_neutral(value.obj.bind(py), 0))?;
        codec::encode_msgpack(&neutral).map(|b| (PayloadCodec::MsgPack, b)).map_err(|e| e.to_string())
    }

    fn decode(&self, pc: PayloadCodec, payload: &[u8]) -> Result<Value, String> {
        let neutral = codec::decode_value(pc, payload).map_err(|e| e.to_string())?;
        Python::attach(|py| {
            let obj = from_neutral(py, &neutral).map_err(|e| e.to_string())?;
            self.weigh.value(obj).map_err(|e| e.to_string())
        })
    }
}

fn to_neutral(obj: &Bound<'_, PyAny>, depth: usize) -> Result<rmpv::Value, String> {
    use rmpv::Value as V;
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    if obj.is_none() {
        return Ok(V::Nil);
    }
    // bool before int: a Python bool is an int
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(V::Boolean(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(V::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(V::from(u));
        }
        return Err("an int outside the 64-bit range".into());
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(V::F64(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(V::String(s.to_cow().map_err(|_| "a str that is not valid UTF-8")?.into_owned().into()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(V::Binary(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(V::Binary(b.to_vec()));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l.iter().map(|x| to_neutral(&x, depth + 1)).collect::<Result<_, _>>().map(V::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t.iter().map(|x| to_neutral(&x, depth + 1)).collect::<Result<_, _>>().map(V::Array);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                return Err(format!("a dict key of type {} (keys must be str)", type_name(&k)));
            };
            let k = k.to_cow().map_err(|_| "a str that is not valid UTF-8")?;
            map.push((V::String(k.into_owned().into()), to_neutral(&v, depth + 1)?));
        }
        return Ok(V::Map(map));
    }
    Err(format!("a value of type {}", type_name(obj)))
}

fn from_neutral<'py>(py: Python<'py>, v: &rmpv::Value) -> PyResult<Bound<'py, PyAny>> {
    use rmpv::Value as V;
    Ok(match v {
        V::Nil => py.None().into_bound(py),
        V::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        V::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => n.into_pyobject(py)?.into_any(),
            (_, Some(n)) => n.into_pyobject(py)?.into_any(),
            _ => unreachable!("a MessagePack integer is an i64 or a u64"),
        },
        V::F32(f) => PyFloat::new(py, f64::from(*f)).into_any(),
        V::F64(f) => PyFloat::new(py, *f).into_any(),
        V::String(s) => match s.as_str() {
            Some(s) => PyString::new(py, s).into_any(),
            None => return Err(pyo3::exceptions::PyValueError::new_err("a string that is not valid UTF-8")),
        },
        V::Binary(b) => PyBytes::new(py, b).into_any(),
        V::Array(a) => {
            let items = a.iter().map(|x| from_neutral(py, x)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        V::Map(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(from_neutral(py, k)?, from_neutral(py, x)?)?;
            }
            d.into_any()
        }
        V::Ext(..) => return Err(pyo3::exceptions::PyValueError::new_err("a MessagePack extension type")),
    })
}
