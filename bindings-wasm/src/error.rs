//! The one conversion of a core error into a JS `Error` with a stable `code` and the fields of
//! its variant (`healcache_js_common::error_props`), the same as Node's.

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::convert::to_js;

/// A core error as a JS error.
pub fn into_js_error(e: healcache::Error) -> JsValue {
    let err = js_sys::Error::new(&healcache_js_common::error_message(&e));
    for (k, v) in healcache_js_common::error_props(&e) {
        let _ = Reflect::set(&err, &JsValue::from_str(k), &to_js(v));
    }
    err.into()
}
