//! The one conversion of a core error into a JS `Error` with a stable `code`.

use napi::bindgen_prelude::ToNapiValue;
use napi::{Env, Status};

/// A core error as a JS error: `err.code` is [`healcache::Error::code`]; `err.field` names a bad
/// option (core name, the JS wrapper maps it to camelCase); `err.loadId` lets the wrapper hand
/// back the loader's own rejection value; `expected`/`current` for a version mismatch.
pub fn into_js_error(env: &Env, e: healcache::Error) -> napi::Error {
    match build(env, &e) {
        Ok(err) => err,
        Err(_) => napi::Error::new(Status::GenericFailure, format!("{}: {e}", e.code())),
    }
}

fn build(env: &Env, e: &healcache::Error) -> napi::Result<napi::Error> {
    let mut obj = env.create_error(napi::Error::new(Status::GenericFailure, e.to_string()))?;
    obj.set("code", e.code())?;
    match e {
        healcache::Error::InvalidConfig { field, .. } => obj.set("field", *field)?,
        healcache::Error::VersionMismatch { expected, current } => {
            obj.set("expected", *expected as f64)?;
            obj.set("current", *current as f64)?;
        }
        healcache::Error::Loader(le) => {
            if let Some(id) = le.downcast_ref::<f64>() {
                obj.set("loadId", *id)?;
            }
        }
        _ => {}
    }
    Ok(napi::Error::from(obj.into_unknown(env)?))
}
