//! The conversions of this binding: a shared [`Js`] value into a napi value, and a key argument
//! into a [`Key`].

use healcache_js_common::Js;
use napi::bindgen_prelude::{
    Array, FromNapiValue, JsValue, Object, ToNapiValue, TypeName, Undefined, ValidateNapiValue, ValueType,
};
use napi::{check_status, sys, Env};

/// Bytes of a key read on the stack; longer keys take the allocating path.
const KEY_BUF: usize = 128;

/// A key argument, read into a stack buffer when short: the calls of every read and write
/// allocate nothing for their key (napi's `String` asks for the length, allocates, then copies).
pub struct Key {
    len: usize,
    buf: [u8; KEY_BUF],
    long: Option<String>,
}

impl Key {
    pub fn as_str(&self) -> &str {
        match &self.long {
            Some(s) => s,
            // napi writes whole UTF-8 characters only; checked anyway (fast for ASCII)
            None => std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default(),
        }
    }
}

impl TypeName for Key {
    fn type_name() -> &'static str {
        "string"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl ValidateNapiValue for Key {}

impl FromNapiValue for Key {
    unsafe fn from_napi_value(env: sys::napi_env, v: sys::napi_value) -> napi::Result<Self> {
        let mut key = Key { len: 0, buf: [0; KEY_BUF], long: None };
        // SAFETY: `buf` is writable for KEY_BUF bytes; napi writes at most that many, NUL included.
        check_status!(unsafe {
            sys::napi_get_value_string_utf8(env, v, key.buf.as_mut_ptr().cast(), KEY_BUF, &mut key.len)
        })?;
        // a key that may have been cut (napi stops before a character that does not fit)
        if key.len + 4 >= KEY_BUF - 1 {
            // SAFETY: the same live `env` and value napi passed in.
            key.long = Some(unsafe { String::from_napi_value(env, v) }?);
        }
        Ok(key)
    }
}

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
