//! The one conversion of a core error into a JS `Error` with a stable `code` and the fields of
//! its variant (`healcache_js_common::error_props`).

use napi::bindgen_prelude::ToNapiValue;
use napi::{Env, Status};

use crate::convert::ToJs;

/// A core error as a JS error.
pub fn into_js_error(env: &Env, e: healcache::Error) -> napi::Error {
    let build = || -> napi::Result<napi::Error> {
        let mut obj =
            env.create_error(napi::Error::new(Status::GenericFailure, healcache_js_common::error_message(&e)))?;
        for (k, v) in healcache_js_common::error_props(&e) {
            obj.set(k, ToJs(v))?;
        }
        Ok(napi::Error::from(obj.into_unknown(env)?))
    };
    build().unwrap_or_else(|_| napi::Error::new(Status::GenericFailure, format!("{}: {e}", e.code())))
}
