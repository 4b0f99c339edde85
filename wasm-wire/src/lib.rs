//! The fleet's wire format for edge workers, as a module of its own (opt-in, so the cache's
//! module keeps its size budget): the L2 key of a cache key, and the decoding of what Redis
//! holds there into a JS value with its freshness. A worker reads entries the fleet wrote
//! through whatever HTTP-to-Redis service it uses (a `GET` and a `PTTL` of the value key), and
//! gets exactly what the fleet's caches would: the same envelope checks (magic, version, key
//! binding, lengths, checksum), the same payload model, the same freshness rule.

use healcache::codec::{self, Kind, Limits};
use healcache::keys;
use js_sys::{Array, BigInt, JsString, Object, Reflect, Uint8Array};
use rmpv::Value;
use wasm_bindgen::prelude::*;

/// `[value key, lock key, fence key]` of `key` under the cache prefix `prefix` (the `l2_prefix`
/// setting, `hc1` by default); throws on a prefix the caches would refuse, and on a key or prefix
/// that is not well-formed UTF-16 (the caches refuse such keys; as UTF-8 a lone surrogate would
/// become U+FFFD, the layout of another key).
#[wasm_bindgen(js_name = l2Keys)]
pub fn l2_keys(prefix: &JsString, key: &JsString) -> Result<Array, JsValue> {
    let (prefix, key) = (text(prefix, "the prefix")?, text(key, "the key")?);
    keys::check_prefix(&prefix).map_err(|e| match e {
        healcache::Error::InvalidKey { reason } => key_error(reason),
        e => key_error(&e.to_string()),
    })?;
    let k = keys::l2_keys(&prefix, &key);
    Ok([k.value, k.lock, k.fence].iter().map(|s| JsValue::from_str(s)).collect())
}

/// What the fleet stored under `valueKey` (its bytes, and the key's `PTTL` in ms: -1 no expiry,
/// -2 gone), as `{ kind, value, fresh, freshMs, graceMs, token, tags }`: `kind` "value",
/// "not-found" (a cached "not found") or "tombstone" (deleted); `fresh` whether a cache would
/// serve it as fresh, `freshMs` the time left fresh (`Infinity`: never stale). Throws an Error
/// with code `CodecError` when the bytes are not an envelope written for that key.
#[wasm_bindgen(js_name = decodeEntry)]
pub fn decode_entry(value_key: &JsString, stored: &[u8], pttl_ms: f64) -> Result<Object, JsValue> {
    let value_key = text(value_key, "the value key")?;
    let decoded = codec::decode(value_key.as_bytes(), stored, &Limits::default()).map_err(codec_error)?;
    let h = &decoded.header;
    let kind = match h.kind {
        Kind::Value => "value",
        Kind::NotFound => "not-found",
        Kind::Tombstone => "tombstone",
    };
    let value = match h.kind {
        Kind::Value => {
            let v = codec::decode_value(h.codec, &decoded.payload).map_err(codec_error)?;
            to_js(&v)?
        }
        _ => JsValue::UNDEFINED,
    };
    let pttl = if pttl_ms.is_finite() { pttl_ms as i64 } else { -2 };
    let left = codec::fresh_left(pttl, h);
    let fresh_ms = match left {
        Some(None) => f64::INFINITY,
        Some(Some(d)) => d.as_millis() as f64,
        None => 0.0,
    };
    let tags: Array = decoded
        .tags
        .iter()
        .map(|t| Array::of2(&JsValue::from_str(&t.name), &JsValue::from_f64(t.version as f64)))
        .collect();
    let out = Object::new();
    set(&out, "kind", &JsValue::from_str(kind))?;
    set(&out, "value", &value)?;
    set(&out, "fresh", &JsValue::from_bool(left.is_some() && h.kind != Kind::Tombstone))?;
    set(&out, "freshMs", &JsValue::from_f64(fresh_ms))?;
    set(&out, "graceMs", &JsValue::from_f64(h.grace_ms as f64))?;
    let token = h.token.to_bytes();
    set(&out, "token", &Uint8Array::from(&token[..]))?;
    set(&out, "tags", &tags)?;
    Ok(out)
}

/// `s` as Rust text; an error when it is not a string or has a lone surrogate. The conversion to
/// UTF-8 replaces each lone surrogate with U+FFFD, so only text holding U+FFFD (a replacement, or
/// a real one) is checked unit by unit.
fn text(s: &JsString, what: &str) -> Result<String, JsValue> {
    let Some(t) = s.as_string() else {
        return Err(key_error(&format!("{what} must be a string")));
    };
    if t.contains('\u{FFFD}') && !s.is_valid_utf16() {
        return Err(key_error(&format!("{what} must be well-formed UTF-16 (this one has a lone surrogate)")));
    }
    Ok(t)
}

/// A key or prefix refused as the cache refuses one: a TypeError with code `InvalidKey` and its
/// reason.
fn key_error(reason: &str) -> JsValue {
    let err: js_sys::Object = js_sys::TypeError::new(&format!("invalid key: {reason}")).into();
    let _ = set(&err, "code", &JsValue::from_str("InvalidKey"));
    let _ = set(&err, "reason", &JsValue::from_str(reason));
    err.into()
}

fn set(o: &Object, k: &str, v: &JsValue) -> Result<(), JsValue> {
    Reflect::set(o, &JsValue::from_str(k), v).map(drop)
}

fn codec_error(e: codec::CodecError) -> JsValue {
    let err = js_sys::Error::new(&format!("not a healcache envelope for this key: {e}"));
    let _ = set(&err, "code", &JsValue::from_str("CodecError"));
    let _ = set(&err, "reason", &JsValue::from_str(e.code()));
    err.into()
}

/// A payload value as JS, as the Node package gives it: integers beyond 2^53 as BigInt, bytes
/// as Uint8Array, maps as plain objects (their keys are text in the payload model) built with
/// `Object.fromEntries`, so each key is an own data property as `JSON.parse` makes it: an
/// assignment would call the inherited `__proto__` setter, making a `"__proto__"` key the
/// object's prototype (or dropping it).
fn to_js(v: &Value) -> Result<JsValue, JsValue> {
    const SAFE: u64 = (1 << 53) - 1;
    Ok(match v {
        Value::Nil => JsValue::NULL,
        Value::Boolean(b) => JsValue::from_bool(*b),
        Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) if n.unsigned_abs() <= SAFE => JsValue::from_f64(n as f64),
            (Some(n), _) => BigInt::from(n).into(),
            (None, Some(n)) => BigInt::from(n).into(),
            (None, None) => return Err(codec_error(codec::CodecError::Payload("an integer out of range".into()))),
        },
        Value::F32(f) => JsValue::from_f64(f64::from(*f)),
        Value::F64(f) => JsValue::from_f64(*f),
        Value::String(s) => match s.as_str() {
            Some(s) => JsValue::from_str(s),
            None => return Err(codec_error(codec::CodecError::Payload("text that is not UTF-8".into()))),
        },
        Value::Binary(b) => Uint8Array::from(&b[..]).into(),
        Value::Array(a) => a.iter().map(to_js).collect::<Result<Array, _>>()?.into(),
        Value::Map(m) => {
            let entries = Array::new_with_length(m.len() as u32);
            for (i, (k, v)) in m.iter().enumerate() {
                let Some(k) = k.as_str() else {
                    return Err(codec_error(codec::CodecError::Payload("a map key that is not text".into())));
                };
                entries.set(i as u32, Array::of2(&JsValue::from_str(k), &to_js(v)?).into());
            }
            Object::from_entries(&entries)?.into()
        }
        Value::Ext(..) => return Err(codec_error(codec::CodecError::Payload("an extension type".into()))),
    })
}
