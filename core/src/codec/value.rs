//! The value model of the shared tier, and its payload codecs: MessagePack (the default), JSON,
//! UTF-8 text and raw bytes. One model in every language: nil, bool, integers, floats, text, bytes,
//! arrays and maps with text keys, nested at most [`MAX_DEPTH`] deep; anything else is refused
//! when written and is a codec error when read. Nothing here ever executes a payload.

use std::fmt;

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CodecError, PayloadCodec, MAX_DEPTH};

/// The shape of a MessagePack value, owned ([`Value`]) or borrowed ([`rmpv::ValueRef`]), so one
/// model check serves both.
enum Shape<'a, N> {
    Scalar,
    Float(f64),
    Text(bool),
    Bytes,
    Ext,
    Array(&'a [N]),
    Map(&'a [(N, N)]),
}

trait Node: Sized {
    fn shape(&self) -> Shape<'_, Self>;
}

impl Node for Value {
    fn shape(&self) -> Shape<'_, Self> {
        match self {
            Value::Nil | Value::Boolean(_) | Value::Integer(_) => Shape::Scalar,
            Value::F32(f) => Shape::Float(*f as f64),
            Value::F64(f) => Shape::Float(*f),
            Value::String(s) => Shape::Text(s.is_str()),
            Value::Binary(_) => Shape::Bytes,
            Value::Ext(..) => Shape::Ext,
            Value::Array(a) => Shape::Array(a),
            Value::Map(m) => Shape::Map(m),
        }
    }
}

impl Node for rmpv::ValueRef<'_> {
    fn shape(&self) -> Shape<'_, Self> {
        use rmpv::ValueRef as R;
        match self {
            R::Nil | R::Boolean(_) | R::Integer(_) => Shape::Scalar,
            R::F32(f) => Shape::Float(*f as f64),
            R::F64(f) => Shape::Float(*f),
            R::String(s) => Shape::Text(s.as_str().is_some()),
            R::Binary(_) => Shape::Bytes,
            R::Ext(..) => Shape::Ext,
            R::Array(a) => Shape::Array(a),
            R::Map(m) => Shape::Map(m),
        }
    }
}

/// Checks that `v` is inside the model (see the module doc); `json` also refuses bytes and
/// non-finite floats, which JSON cannot carry.
fn check_value<N: Node>(v: &N, depth: usize, json: bool) -> Result<(), CodecError> {
    match v.shape() {
        Shape::Scalar | Shape::Text(true) => Ok(()),
        Shape::Float(f) if json && !f.is_finite() => Err(CodecError::NotEncodable("a non-finite float in JSON")),
        Shape::Float(_) => Ok(()),
        Shape::Text(false) => Err(CodecError::NotEncodable("text that is not UTF-8")),
        Shape::Bytes if json => Err(CodecError::NotEncodable("bytes in JSON")),
        Shape::Bytes => Ok(()),
        Shape::Ext => Err(CodecError::NotEncodable("a MessagePack extension type")),
        Shape::Array(_) | Shape::Map(_) if depth >= MAX_DEPTH => Err(CodecError::Depth),
        Shape::Array(items) => items.iter().try_for_each(|i| check_value(i, depth + 1, json)),
        Shape::Map(entries) => entries.iter().try_for_each(|(k, v)| match k.shape() {
            Shape::Text(true) => check_value(v, depth + 1, json),
            _ => Err(CodecError::NotEncodable("a map key that is not text")),
        }),
    }
}

/// Encodes a value as MessagePack; a value outside the model is refused.
pub fn encode_msgpack(v: &Value) -> Result<Vec<u8>, CodecError> {
    check_value(v, 0, false)?;
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).map_err(|e| CodecError::Payload(e.to_string()))?;
    Ok(out)
}

/// Decodes one MessagePack value that must fill `b` exactly; a value outside the model (or
/// nested deeper than [`MAX_DEPTH`]) is refused. Memory is bounded by the input: no declared
/// length is allocated ahead of the bytes that fill it.
pub fn decode_msgpack(b: &[u8]) -> Result<Value, CodecError> {
    // owned directly: borrowing first and copying took 1.1-1.3x as long (in-process, 1.3 KB
    // document of 20 records)
    msgpack_checked(b, |rd| rmpv::decode::read_value_with_max_depth(rd, RMPV_DEPTH))
}

/// The value of `b`, borrowed from it and checked: what [`from_msgpack`] and [`to_msgpack`]
/// validate without building an owned value.
fn checked_msgpack(b: &[u8]) -> Result<rmpv::ValueRef<'_>, CodecError> {
    msgpack_checked(b, |rd| rmpv::decode::read_value_ref_with_max_depth(rd, RMPV_DEPTH))
}

/// rmpv spends about two units of its depth budget per nesting level; this bound only keeps its
/// recursion (stack) in check, `check_value` enforces [`MAX_DEPTH`] exactly.
const RMPV_DEPTH: usize = 2 * MAX_DEPTH + 8;

/// Reads one value with `read`, which must consume all of `b`, and checks it against the model.
fn msgpack_checked<'a, N: Node>(
    b: &'a [u8],
    read: impl FnOnce(&mut &'a [u8]) -> Result<N, rmpv::decode::Error>,
) -> Result<N, CodecError> {
    let mut rd = b;
    let v = read(&mut rd).map_err(|e| match e {
        rmpv::decode::Error::DepthLimitExceeded => CodecError::Depth,
        e => CodecError::Payload(e.to_string()),
    })?;
    if !rd.is_empty() {
        return Err(CodecError::Payload(format!("{} bytes after the value", rd.len())));
    }
    check_value(&v, 0, false)?;
    Ok(v)
}

/// Serializes a Rust value to MessagePack with named fields (structs become maps with text keys,
/// which every language reads). Refused like [`encode_msgpack`] when outside the model (a map
/// with integer keys, say).
pub fn to_msgpack<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, CodecError> {
    let out = rmp_serde::to_vec_named(v).map_err(|e| CodecError::Payload(e.to_string()))?;
    checked_msgpack(&out)?;
    Ok(out)
}

/// Deserializes a Rust value from MessagePack, after the bounds and model checks of
/// [`decode_msgpack`] (made on a borrowed view: no value is built twice).
pub fn from_msgpack<T: DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
    checked_msgpack(b)?;
    rmp_serde::from_slice(b).map_err(|e| CodecError::Payload(e.to_string()))
}

/// Encodes a value as JSON text; bytes and non-finite floats are refused (never base64-guessed).
/// Map entries keep their order.
pub fn encode_json(v: &Value) -> Result<Vec<u8>, CodecError> {
    check_value(v, 0, true)?;
    serde_json::to_vec(&JsonOut(v)).map_err(|e| CodecError::Payload(e.to_string()))
}

/// Decodes JSON text into the value model (nesting bounded by [`MAX_DEPTH`]); map entries keep
/// the document's order.
pub fn decode_json(b: &[u8]) -> Result<Value, CodecError> {
    let mut de = serde_json::Deserializer::from_slice(b);
    // serde_json refuses nesting past 128 levels itself; JsonIn refuses past MAX_DEPTH first
    let v = serde::de::DeserializeSeed::deserialize(JsonIn(0), &mut de).map_err(|e| {
        if e.to_string().starts_with(DEPTH_MSG) {
            CodecError::Depth
        } else {
            CodecError::Payload(e.to_string())
        }
    })?;
    de.end().map_err(|e| CodecError::Payload(e.to_string()))?;
    Ok(v)
}

/// Serializes a value already checked by `check_value(.., json = true)` straight to JSON, in
/// order (a `serde_json::Value` would sort the keys).
struct JsonOut<'a>(&'a Value);

impl Serialize for JsonOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap, SerializeSeq};
        match self.0 {
            Value::Nil => s.serialize_unit(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
                (Some(n), _) => s.serialize_i64(n),
                (None, Some(n)) => s.serialize_u64(n),
                _ => Err(S::Error::custom("an integer out of range")),
            },
            Value::F32(f) => s.serialize_f64(*f as f64),
            Value::F64(f) => s.serialize_f64(*f),
            Value::String(t) => s.serialize_str(t.as_str().unwrap_or_default()),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                items.iter().try_for_each(|i| seq.serialize_element(&JsonOut(i)))?;
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k.as_str().unwrap_or_default(), &JsonOut(v))?;
                }
                map.end()
            }
            Value::Binary(_) | Value::Ext(..) => Err(S::Error::custom("bytes in JSON")),
        }
    }
}

const DEPTH_MSG: &str = "nested deeper than the bound";

/// Builds a value from JSON in document order, refusing nesting past [`MAX_DEPTH`]; the `usize`
/// is the depth of the containers around the value.
#[derive(Clone, Copy)]
struct JsonIn(usize);

impl<'de> serde::de::DeserializeSeed<'de> for JsonIn {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonIn {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Boolean(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::F64(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::from(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested::<A::Error>()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested::<A::Error>()?;
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            entries.push((Value::from(k), map.next_value_seed(inner)?));
        }
        Ok(Value::Map(entries))
    }
}

impl JsonIn {
    fn nested<E: serde::de::Error>(self) -> Result<JsonIn, E> {
        if self.0 >= MAX_DEPTH {
            return Err(E::custom(DEPTH_MSG));
        }
        Ok(JsonIn(self.0 + 1))
    }
}

/// Encodes a value under `codec`: `Raw` and application codecs take bytes, `Utf8` takes text.
pub fn encode_value(codec: PayloadCodec, v: &Value) -> Result<Vec<u8>, CodecError> {
    match (codec, v) {
        (PayloadCodec::MsgPack, v) => encode_msgpack(v),
        (PayloadCodec::Json, v) => encode_json(v),
        (PayloadCodec::Utf8, Value::String(s)) if s.is_str() => Ok(s.as_bytes().to_vec()),
        (PayloadCodec::Utf8, _) => Err(CodecError::NotEncodable("the UTF-8 codec takes text")),
        (PayloadCodec::Raw | PayloadCodec::App(_), Value::Binary(b)) => Ok(b.clone()),
        (PayloadCodec::Raw | PayloadCodec::App(_), _) => Err(CodecError::NotEncodable("the raw codec takes bytes")),
    }
}

/// Decodes a payload under `codec`: `Raw` and application codecs give bytes, `Utf8` text.
pub fn decode_value(codec: PayloadCodec, b: &[u8]) -> Result<Value, CodecError> {
    match codec {
        PayloadCodec::MsgPack => decode_msgpack(b),
        PayloadCodec::Json => decode_json(b),
        PayloadCodec::Utf8 => match std::str::from_utf8(b) {
            Ok(s) => Ok(Value::from(s)),
            Err(_) => Err(CodecError::Payload("text that is not UTF-8".into())),
        },
        PayloadCodec::Raw | PayloadCodec::App(_) => Ok(Value::Binary(b.to_vec())),
    }
}
