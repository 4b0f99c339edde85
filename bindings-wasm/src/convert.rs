//! The one conversion of a shared [`Js`] value into a `JsValue`.

use healcache_js_common::Js;
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::JsValue;

/// `v` as a JS value.
pub fn to_js(v: Js) -> JsValue {
    match v {
        Js::Undefined => JsValue::UNDEFINED,
        Js::Bool(b) => JsValue::from_bool(b),
        Js::Num(n) => JsValue::from_f64(n),
        Js::Str(s) => JsValue::from_str(&s),
        Js::Nums(v) => v.into_iter().map(JsValue::from_f64).collect::<Array>().into(),
        Js::List(v) => v.into_iter().map(to_js).collect::<Array>().into(),
        Js::Obj(fields) => object(fields),
        Js::Named(fields) => object(fields),
    }
}

fn object<K: AsRef<str>>(fields: Vec<(K, Js)>) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &JsValue::from_str(k.as_ref()), &to_js(v));
    }
    o.into()
}
