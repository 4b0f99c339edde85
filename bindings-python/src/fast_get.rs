//! `Cache.get` as a `METH_FASTCALL` method descriptor.
//!
//! Under `abi3-py39` PyO3 can only register methods with the tuple-and-dict calling convention
//! (vectorcall methods entered the stable ABI in 3.10), which costs a tuple per call: about 30 ns
//! on a ~65 ns hit. `METH_FASTCALL` itself has worked in every CPython since 3.7, so the hottest
//! method is installed by hand over the PyO3 one (which stays as the fallback if the type refuses
//! the attribute). Its behaviour is that of `PyCache::get`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::Borrowed;

use crate::cache::PyCache;
use crate::convert::key_str;

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
