//! The one conversion of a core error into a JS `Error` with a stable `code` (same as Node).

use js_sys::Reflect;
use wasm_bindgen::JsValue;

/// A core error as a JS error: `err.code` is [`healcache::Error::code`]; `err.field` names a bad
/// option (core name, the wrapper maps it to camelCase); `err.loadId` lets the wrapper hand back
/// the loader's own rejection value; `expected`/`current` for a version mismatch.
pub fn into_js_error(e: healcache::Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(&err, &JsValue::from_str(k), &v);
    };
    set("code", JsValue::from_str(e.code()));
    match &e {
        healcache::Error::InvalidConfig { field, .. } => set("field", JsValue::from_str(field)),
        healcache::Error::VersionMismatch { expected, current } => {
            set("expected", JsValue::from_f64(*expected as f64));
            set("current", JsValue::from_f64(*current as f64));
        }
        healcache::Error::Loader(le) => {
            if let Some(id) = le.downcast_ref::<f64>() {
                set("loadId", JsValue::from_f64(*id));
            }
        }
        _ => {}
    }
    err.into()
}
