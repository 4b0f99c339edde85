//! The shared tier from Node: `new Cache({ redis: "redis://..." })` connects the core's L2
//! through `healcache-redis`, and JS values cross as the core's neutral value model
//! (MessagePack): `null`, booleans, numbers (integers up to 2^53 as integers), BigInts in 64
//! bits, strings, `Uint8Array`/`Buffer` (read back as `Buffer`), arrays, and plain objects
//! (properties holding `undefined` are left out, as JSON does). Anything else (functions,
//! symbols, `Date`, `Map`, class instances, and strings or property names that are not
//! well-formed UTF-16: a lone surrogate has no UTF-8 form) has no neutral form: `set` refuses it
//! with `ValueNotEncodable`, and a loaded one stays in this process only. Maps read back are
//! objects whose keys are own data properties, as `JSON.parse` makes them: a `"__proto__"` key
//! is a property, never the object's prototype.
//!
//! Written by hand on napi's raw calls: napi's serde bridge turns a large number into a
//! saturated i64 and a `Date` into an empty map, and walks cycles without bound.

use std::ptr;
use std::sync::Arc;

use healcache::codec::{self, MAX_DEPTH};
use healcache::ConfigProblem;
use healcache_js_common::{Backend, Payload};
use napi::bindgen_prelude::{ArrayBuffer, External, FromNapiValue, PromiseRaw, TypeName, ValueType};
use napi::{check_status, sys, Env};
use napi_derive::napi;

use crate::cache::with_row;
use crate::convert::Key;
use crate::error::into_js_error;

/// Integers in this range cross as MessagePack integers; other numbers as floats.
const SAFE: f64 = 9_007_199_254_740_991.0;

/// `Backend::write_shared`: `set` on a cache with a shared tier, with the value converted.
#[napi(
    ts_args_type = "c: ExternalObject<'Backend'>, key: string, handle: number, weight: number, ttl: number | undefined, ifVersion: number | undefined, value: unknown"
)]
#[allow(clippy::too_many_arguments)]
pub fn set_shared(
    env: &Env,
    c: &External<Backend>,
    key: Key,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    if_version: Option<f64>,
    value: Converted,
) -> napi::Result<f64> {
    let payload = value.payload(env)?;
    with_row(|out| c.write_shared(key.as_str(), handle, weight, ttl, if_version, payload, out))
        .map_err(|e| into_js_error(env, e))
}

/// `Backend::write_tagged` on a cache without a shared tier.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn set_tagged(
    env: &Env,
    c: &External<Backend>,
    key: Key,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    if_version: Option<f64>,
    tags: Vec<Tag>,
) -> napi::Result<f64> {
    let tags = Tag::all(env, tags)?;
    with_row(|out| c.write_tagged(key.as_str(), handle, weight, ttl, if_version, &tags, None, out))
        .map_err(|e| into_js_error(env, e))
}

/// `Backend::write_tagged` on a cache with a shared tier, with the value converted.
#[napi(
    ts_args_type = "c: ExternalObject<'Backend'>, key: string, handle: number, weight: number, ttl: number | undefined, ifVersion: number | undefined, tags: string[], value: unknown"
)]
#[allow(clippy::too_many_arguments)]
pub fn set_shared_tagged(
    env: &Env,
    c: &External<Backend>,
    key: Key,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    if_version: Option<f64>,
    tags: Vec<Tag>,
    value: Converted,
) -> napi::Result<f64> {
    let tags = Tag::all(env, tags)?;
    let payload = value.payload(env)?;
    with_row(|out| c.write_tagged(key.as_str(), handle, weight, ttl, if_version, &tags, Some(payload), out))
        .map_err(|e| into_js_error(env, e))
}

/// `Backend::invalidate_tag`, resolving to how many entries of this process it invalidated.
#[napi(ts_return_type = "Promise<number>")]
pub fn invalidate_tag<'env>(
    env: &'env Env,
    c: &External<Backend>,
    tag: Tag,
    hard: bool,
) -> napi::Result<PromiseRaw<'env, f64>> {
    let fut = c.invalidate_tag(tag.text(env)?, hard);
    env.spawn_future_with_callback(async move { Ok(fut.await) }, |env, r| r.map_err(|e| into_js_error(env, e)))
}

/// `Backend::l2_value`: the JS value of handle `id` read from L2, as `[value]`, or `undefined`
/// once the core has dropped it.
#[napi(ts_return_type = "[unknown] | undefined")]
pub fn l2_value(c: &External<Backend>, id: f64) -> Option<Vec<FromL2>> {
    c.l2_value(id).map(|p| vec![FromL2(p)])
}

/// `Backend::local_generation` as a 4-byte `ArrayBuffer` over the core's counter itself, so the
/// wrapper's read mirror checks it on every hit without a call; `null` without a shared tier,
/// or where the runtime copies external buffers instead (the wrapper then asks the core on
/// every read of a shared cache).
#[napi(ts_return_type = "ArrayBuffer | null")]
pub fn local_generation<'env>(env: &'env Env, c: &External<Backend>) -> napi::Result<Option<ArrayBuffer<'env>>> {
    let Some(cell) = c.local_generation() else { return Ok(None) };
    let at = Arc::as_ptr(&cell).cast::<u8>().cast_mut();
    // SAFETY: 4 bytes, aligned, alive while `cell` is, and the buffer owns `cell` until it is
    // collected. JS reads the counter without atomics: an aligned 32-bit load is not torn, and
    // a read that misses a bump by a moment is one a call would have missed too.
    let buffer = unsafe { ArrayBuffer::from_external(env, at, 4, cell, |_, cell| drop(cell)) }?;
    Ok((buffer.as_ptr() == at.cast_const()).then_some(buffer))
}

/// A tag as given, `None` when it is not well-formed UTF-16 (napi's UTF-8 conversion would turn
/// each lone surrogate into U+FFFD, making distinct tags one).
pub struct Tag(Option<String>);

impl Tag {
    /// The tag's text, or the `InvalidConfig` error (field `tags`) to throw.
    fn text(self, env: &Env) -> napi::Result<String> {
        self.0.ok_or_else(|| {
            let rule = ConfigProblem::Rule("each tag must be well-formed UTF-16 (this one has a lone surrogate)");
            into_js_error(env, healcache::Error::invalid_config("tags", rule, None))
        })
    }

    fn all(env: &Env, tags: Vec<Tag>) -> napi::Result<Vec<String>> {
        tags.into_iter().map(|t| t.text(env)).collect()
    }
}

impl TypeName for Tag {
    fn type_name() -> &'static str {
        "string"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl FromNapiValue for Tag {
    unsafe fn from_napi_value(env: sys::napi_env, v: sys::napi_value) -> napi::Result<Self> {
        // SAFETY: the live `env` and value napi passed in.
        Ok(Tag(unsafe { text(env, v) }?))
    }
}

/// The JS string `v` as Rust text, `None` when it is not well-formed UTF-16. One UTF-8 read, as
/// `String`'s conversion does; only text holding U+FFFD (the replacement of a lone surrogate, or
/// a real one) is read again as UTF-16 to tell which.
unsafe fn text(env: sys::napi_env, v: sys::napi_value) -> napi::Result<Option<String>> {
    // SAFETY: the live `env` and value napi gave.
    let s = unsafe { String::from_napi_value(env, v) }?;
    if !s.contains('\u{FFFD}') {
        return Ok(Some(s));
    }
    let mut len = 0usize;
    // SAFETY (both calls): the live `env` and string napi gave; `units` holds `len + 1` units.
    unsafe {
        status(sys::napi_get_value_string_utf16(env, v, ptr::null_mut(), 0, &mut len))?;
        let mut units = vec![0u16; len + 1];
        status(sys::napi_get_value_string_utf16(env, v, units.as_mut_ptr(), len + 1, &mut len))?;
        units.truncate(len);
        Ok(String::from_utf16(&units).ok())
    }
}

/// A JS value's MessagePack bytes, or why it has none.
pub struct Converted(pub Result<Vec<u8>, String>);

impl Converted {
    /// The value as it crosses to L2, or the `ValueNotEncodable` error to throw.
    pub(crate) fn payload(self, env: &Env) -> napi::Result<Payload> {
        self.0
            .map(Payload::Encoded)
            .map_err(|reason| into_js_error(env, healcache::Error::ValueNotEncodable { reason }))
    }
}

impl TypeName for Converted {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl FromNapiValue for Converted {
    unsafe fn from_napi_value(env: sys::napi_env, v: sys::napi_value) -> napi::Result<Self> {
        // SAFETY: the live `env` and value napi passed in.
        let neutral = unsafe { to_neutral(env, v, 0) }?;
        Ok(Converted(neutral.and_then(|n| codec::encode_msgpack(&n).map_err(|e| e.to_string()))))
    }
}

/// The answer row of a loader (`loaded_from`), and on a shared cache the loaded value itself
/// (a third element), converted here on the JS thread.
pub struct LoaderRow {
    pub nums: Vec<f64>,
    pub payload: Option<Payload>,
}

impl TypeName for LoaderRow {
    fn type_name() -> &'static str {
        "Array<unknown>"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl FromNapiValue for LoaderRow {
    unsafe fn from_napi_value(env: sys::napi_env, v: sys::napi_value) -> napi::Result<Self> {
        // SAFETY (every call below): the live `env` and the array napi passed in.
        unsafe {
            let mut len = 0u32;
            check_status!(sys::napi_get_array_length(env, v, &mut len))?;
            let mut row = LoaderRow { nums: Vec::with_capacity(2), payload: None };
            for i in 0..len.min(3) {
                let mut e = ptr::null_mut();
                check_status!(sys::napi_get_element(env, v, i, &mut e))?;
                if i < 2 {
                    row.nums.push(f64::from_napi_value(env, e)?);
                } else {
                    let c = Converted::from_napi_value(env, e)?;
                    row.payload = Some(match c.0 {
                        Ok(b) => Payload::Encoded(b),
                        Err(why) => Payload::Unencodable(why),
                    });
                }
            }
            Ok(row)
        }
    }
}

/// A value read from L2 on its way to JS.
pub struct FromL2(std::sync::Arc<Payload>);

impl TypeName for FromL2 {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl napi::bindgen_prelude::ToNapiValue for FromL2 {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let Payload::Decoded(v) = &*val.0 else {
            return Err(napi::Error::from_reason("not a value read from L2"));
        };
        // SAFETY: the live `env` napi passed in.
        unsafe { from_neutral(env, v) }
    }
}

fn status(s: sys::napi_status) -> napi::Result<()> {
    check_status!(s)
}

/// `v` in the neutral model; the outer `Err` is napi failing, the inner one a value with no
/// neutral form (its reason).
unsafe fn to_neutral(
    env: sys::napi_env,
    v: sys::napi_value,
    depth: usize,
) -> napi::Result<Result<rmpv::Value, String>> {
    use rmpv::Value as V;
    use sys::ValueType as T;
    if depth > MAX_DEPTH {
        return Ok(Err(format!("nested deeper than {MAX_DEPTH} levels (or a cycle)")));
    }
    // SAFETY (every call below): the live `env` and values napi gave.
    unsafe {
        let mut t = 0;
        status(sys::napi_typeof(env, v, &mut t))?;
        Ok(Ok(match t {
            T::napi_undefined | T::napi_null => V::Nil,
            T::napi_boolean => V::Boolean(bool::from_napi_value(env, v)?),
            T::napi_number => {
                let n = f64::from_napi_value(env, v)?;
                if n.fract() == 0.0 && n.abs() <= SAFE {
                    V::from(n as i64)
                } else {
                    V::F64(n)
                }
            }
            T::napi_string => match text(env, v)? {
                Some(s) => V::String(s.into()),
                None => return Ok(Err("a string with a lone surrogate (not well-formed UTF-16)".into())),
            },
            T::napi_bigint => {
                let (mut i, mut lossless) = (0i64, false);
                status(sys::napi_get_value_bigint_int64(env, v, &mut i, &mut lossless))?;
                if lossless {
                    V::from(i)
                } else {
                    let mut u = 0u64;
                    status(sys::napi_get_value_bigint_uint64(env, v, &mut u, &mut lossless))?;
                    if !lossless {
                        return Ok(Err("a BigInt outside the 64-bit range".into()));
                    }
                    V::from(u)
                }
            }
            T::napi_object => return object_to_neutral(env, v, depth),
            T::napi_function => return Ok(Err("a function".into())),
            T::napi_symbol => return Ok(Err("a symbol".into())),
            _ => return Ok(Err("a native object".into())),
        }))
    }
}

unsafe fn object_to_neutral(
    env: sys::napi_env,
    v: sys::napi_value,
    depth: usize,
) -> napi::Result<Result<rmpv::Value, String>> {
    use rmpv::Value as V;
    // SAFETY (every call below): the live `env` and values napi gave.
    unsafe {
        let mut is = false;
        status(sys::napi_is_array(env, v, &mut is))?;
        if is {
            let mut len = 0u32;
            status(sys::napi_get_array_length(env, v, &mut len))?;
            let mut items = Vec::with_capacity(len as usize);
            for i in 0..len {
                let mut e = ptr::null_mut();
                status(sys::napi_get_element(env, v, i, &mut e))?;
                match to_neutral(env, e, depth + 1)? {
                    Ok(x) => items.push(x),
                    Err(why) => return Ok(Err(why)),
                }
            }
            return Ok(Ok(V::Array(items)));
        }
        status(sys::napi_is_typedarray(env, v, &mut is))?;
        if is {
            let (mut ty, mut len, mut data, mut ab, mut off) = (0, 0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
            status(sys::napi_get_typedarray_info(env, v, &mut ty, &mut len, &mut data, &mut ab, &mut off))?;
            if ty != sys::TypedarrayType::uint8_array {
                return Ok(Err("a typed array other than Uint8Array".into()));
            }
            let bytes = if len == 0 { Vec::new() } else { std::slice::from_raw_parts(data as *const u8, len).to_vec() };
            return Ok(Ok(V::Binary(bytes)));
        }
        status(sys::napi_is_date(env, v, &mut is))?;
        if is {
            return Ok(Err("a Date (store its ISO string or its time in ms)".into()));
        }
        if !plain(env, v)? {
            return Ok(Err("an object that is not a plain object (a Map, a Set, a class instance)".into()));
        }
        let mut names = ptr::null_mut();
        status(sys::napi_get_all_property_names(
            env,
            v,
            sys::KeyCollectionMode::own_only,
            sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
            sys::KeyConversion::numbers_to_strings,
            &mut names,
        ))?;
        let mut len = 0u32;
        status(sys::napi_get_array_length(env, names, &mut len))?;
        let mut map = Vec::with_capacity(len as usize);
        for i in 0..len {
            let mut k = ptr::null_mut();
            status(sys::napi_get_element(env, names, i, &mut k))?;
            let mut x = ptr::null_mut();
            status(sys::napi_get_property(env, v, k, &mut x))?;
            let mut t = 0;
            status(sys::napi_typeof(env, x, &mut t))?;
            if t == sys::ValueType::napi_undefined {
                continue; // as JSON.stringify leaves it out
            }
            let Some(name) = text(env, k)? else {
                return Ok(Err("a property name with a lone surrogate (not well-formed UTF-16)".into()));
            };
            match to_neutral(env, x, depth + 1)? {
                Ok(x) => map.push((V::String(name.into()), x)),
                Err(why) => return Ok(Err(why)),
            }
        }
        Ok(Ok(V::Map(map)))
    }
}

/// Whether `v`'s prototype is `Object.prototype` or `null`.
unsafe fn plain(env: sys::napi_env, v: sys::napi_value) -> napi::Result<bool> {
    // SAFETY (every call below): the live `env` and values napi gave.
    unsafe {
        let mut proto = ptr::null_mut();
        status(sys::napi_get_prototype(env, v, &mut proto))?;
        let mut t = 0;
        status(sys::napi_typeof(env, proto, &mut t))?;
        if t == sys::ValueType::napi_null {
            return Ok(true);
        }
        let (mut global, mut object, mut object_proto) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        status(sys::napi_get_global(env, &mut global))?;
        status(sys::napi_get_named_property(env, global, c"Object".as_ptr(), &mut object))?;
        status(sys::napi_get_named_property(env, object, c"prototype".as_ptr(), &mut object_proto))?;
        let mut same = false;
        status(sys::napi_strict_equals(env, proto, object_proto, &mut same))?;
        Ok(same)
    }
}

/// `v` as a JS value: integers beyond 2^53 as BigInts, bytes as a `Buffer`, maps as objects
/// (number and boolean keys as their text) whose keys are own data properties, defined as
/// `JSON.parse` defines them: an assignment would call the inherited `__proto__` setter, making
/// a `"__proto__"` key the object's prototype (or dropping it).
unsafe fn from_neutral(env: sys::napi_env, v: &rmpv::Value) -> napi::Result<sys::napi_value> {
    use rmpv::Value as V;
    let mut out = ptr::null_mut();
    // SAFETY (every call below): the live `env` napi gave; `out` receives each new value.
    unsafe {
        match v {
            V::Nil => status(sys::napi_get_null(env, &mut out))?,
            V::Boolean(b) => status(sys::napi_get_boolean(env, *b, &mut out))?,
            V::Integer(i) => match (i.as_i64(), i.as_u64()) {
                (Some(n), _) if (n as f64).abs() <= SAFE => status(sys::napi_create_double(env, n as f64, &mut out))?,
                (Some(n), _) => status(sys::napi_create_bigint_int64(env, n, &mut out))?,
                (_, Some(n)) => status(sys::napi_create_bigint_uint64(env, n, &mut out))?,
                _ => status(sys::napi_get_null(env, &mut out))?,
            },
            V::F32(f) => status(sys::napi_create_double(env, f64::from(*f), &mut out))?,
            V::F64(f) => status(sys::napi_create_double(env, *f, &mut out))?,
            V::String(s) => {
                let s = s.as_str().unwrap_or_default(); // checked UTF-8 when read
                status(sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out))?
            }
            V::Binary(b) => {
                let mut data = ptr::null_mut();
                status(sys::napi_create_buffer_copy(env, b.len(), b.as_ptr().cast(), &mut data, &mut out))?
            }
            V::Array(a) => {
                status(sys::napi_create_array_with_length(env, a.len() as u32 as _, &mut out))?;
                for (i, x) in a.iter().enumerate() {
                    status(sys::napi_set_element(env, out, i as u32, from_neutral(env, x)?))?;
                }
            }
            V::Map(m) => {
                status(sys::napi_create_object(env, &mut out))?;
                let mut props = Vec::with_capacity(m.len());
                for (k, x) in m {
                    let name = match k {
                        V::String(s) => s.as_str().unwrap_or_default().to_string(),
                        V::Nil => "null".to_string(),
                        other => other.to_string(),
                    };
                    let mut key = ptr::null_mut();
                    status(sys::napi_create_string_utf8(env, name.as_ptr().cast(), name.len() as isize, &mut key))?;
                    props.push(sys::napi_property_descriptor {
                        utf8name: ptr::null(),
                        name: key,
                        method: None,
                        getter: None,
                        setter: None,
                        value: from_neutral(env, x)?,
                        // napi_default_jsproperty: as an assignment or JSON.parse makes it
                        attributes: sys::PropertyAttributes::writable
                            | sys::PropertyAttributes::enumerable
                            | sys::PropertyAttributes::configurable,
                        data: ptr::null_mut(),
                    });
                }
                if !props.is_empty() {
                    // a duplicate key is defined again: the last one wins, as with JSON.parse
                    status(sys::napi_define_properties(env, out, props.len(), props.as_ptr()))?;
                }
            }
            V::Ext(..) => status(sys::napi_get_null(env, &mut out))?, // refused when read
        }
    }
    Ok(out)
}
