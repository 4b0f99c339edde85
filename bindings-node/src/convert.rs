//! The one conversion of a shared [`Js`] value into a napi value.

use healcache_js_common::Js;
use napi::bindgen_prelude::{Array, JsValue, Object, ToNapiValue, TypeName, Undefined, ValueType};
use napi::{sys, Env};

/// A [`Js`] value on its way to JS.
pub struct ToJs(pub Js);

impl TypeName for ToJs {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for ToJs {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        // SAFETY (every call below): `env` is the live environment napi passed to this conversion.
        unsafe {
            match val.0 {
                Js::Undefined => Undefined::to_napi_value(env, ()),
                Js::Bool(b) => bool::to_napi_value(env, b),
                Js::Num(n) => f64::to_napi_value(env, n),
                Js::Str(s) => String::to_napi_value(env, s),
                Js::Nums(v) => Vec::<f64>::to_napi_value(env, v),
                Js::List(v) => {
                    let e = Env::from_raw(env);
                    let mut arr = e.create_array(v.len() as u32)?;
                    for (i, x) in v.into_iter().enumerate() {
                        arr.set(i as u32, ToJs(x))?;
                    }
                    Array::to_napi_value(env, arr)
                }
                Js::Obj(fields) => object(env, fields),
                Js::Named(fields) => object(env, fields),
            }
        }
    }
}

unsafe fn object<K: AsRef<str>>(env: sys::napi_env, fields: Vec<(K, Js)>) -> napi::Result<sys::napi_value> {
    let env = Env::from_raw(env);
    let mut o = Object::new(&env)?;
    for (k, v) in fields {
        o.set(k, ToJs(v))?;
    }
    Ok(o.raw())
}
