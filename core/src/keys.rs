//! Keys: the typed key builder, the L2 key layout, and glob patterns for pattern delete.
//!
//! A [`KeySpace`] declares a namespace, an entity, a schema version and an ordered list of
//! dimensions once; [`KeySpace::key`] then writes `shop:user:v3:id=42:locale=en-GB`. Every name
//! and value is percent-encoded over the unreserved set `[A-Za-z0-9-._~]`, so `:`, `=`, `%`,
//! glob metacharacters (`* ? [ ] \`), braces and control bytes never appear raw: the encoding is
//! injective (two different tuples never make one key), [`KeySpace::parse`] inverts it, and a key
//! never widens a glob pattern or changes a hash tag.
//!
//! The key is text: an integer value is written as its canonical decimal, so `id = 42` and
//! `id = "42"` name the same entity (a number read back from a URL or a form keeps its key).
//!
//! L2 layout, for any cache key (built with [`KeySpace`] or not): value `<prefix>:{<b>}:v:<key>`,
//! lock `<prefix>:{<b>}:l:<key>`, fence hash `<prefix>:{<b>}:f`, where `<b>` is the Redis Cluster
//! slot of the whole key, CRC16-XMODEM mod 16384, as 4 lowercase hex digits. Redis hashes only the
//! first `{...}` of a key, and ours comes first, so value, lock and fence share one slot whatever
//! braces the user's key holds. Tag versions live at `<prefix>:{<b>}:t:<ns>:<tag>` ([`tag_key`])
//! and a namespace's bus channel is `<prefix>:{<ns>}:bus` ([`bus_channel`]).

use std::fmt::Write as _;

use crate::error::Error;

/// The default L2 key prefix; the `1` is the layout version, so a layout change reads a fresh
/// keyspace during a rolling upgrade.
pub const DEFAULT_PREFIX: &str = "hc1";
/// Longest L2 key prefix accepted, in bytes.
pub const MAX_PREFIX_LEN: usize = 64;
/// Most dimensions a [`KeySpace`] may declare.
pub const MAX_DIMS: usize = 16;
/// Number of Redis Cluster hash slots.
pub const SLOTS: u16 = 16384;

/// The three L2 keys of one cache key; all share one hash tag, so one Redis Cluster slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct L2Keys {
    /// The value key: `<prefix>:{<b>}:v:<key>`.
    pub value: String,
    /// The fleet lock key: `<prefix>:{<b>}:l:<key>`.
    pub lock: String,
    /// The slot's fence hash: `<prefix>:{<b>}:f`.
    pub fence: String,
}

/// The Redis Cluster hash slot of `key` taken whole (CRC16-XMODEM mod 16384; braces inside the
/// key are not treated as a hash tag).
pub fn slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(key) % SLOTS
}

/// The hash tag of `key`'s slot: `{` + 4 lowercase hex digits + `}`.
fn bucket(key: &[u8]) -> String {
    format!("{{{:04x}}}", slot(key))
}

/// Checks an L2 key prefix: 1 to [`MAX_PREFIX_LEN`] bytes of `[A-Za-z0-9._:-]`. Braces would move
/// the hash tag, glob metacharacters would widen patterns, spaces and control bytes corrupt logs.
pub fn check_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err(Error::InvalidKey { reason: "the L2 key prefix must be 1 to 64 bytes" });
    }
    if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) {
        return Err(Error::InvalidKey { reason: "the L2 key prefix may hold only A-Z a-z 0-9 . _ : -" });
    }
    Ok(())
}

/// The L2 keys of a cache key. `prefix` is assumed checked by [`check_prefix`].
pub fn l2_keys(prefix: &str, cache_key: &str) -> L2Keys {
    let b = bucket(cache_key.as_bytes());
    L2Keys {
        value: format!("{prefix}:{b}:v:{cache_key}"),
        lock: format!("{prefix}:{b}:l:{cache_key}"),
        fence: format!("{prefix}:{b}:f"),
    }
}

/// The key holding a tag's version: `<prefix>:{<b>}:t:<ns>:<tag>`, with `ns` and `tag`
/// percent-encoded and `<b>` the slot of `<ns>:<tag>` as encoded. `prefix` is assumed checked.
pub fn tag_key(prefix: &str, namespace: &str, tag: &str) -> String {
    let mut name = String::new();
    percent_encode(namespace, &mut name);
    name.push(':');
    percent_encode(tag, &mut name);
    format!("{prefix}:{}:t:{name}", bucket(name.as_bytes()))
}

/// The invalidation bus channel of a namespace: `<prefix>:{<ns>}:bus`, `ns` percent-encoded (so
/// braces in it cannot move the hash tag; a sharded channel's slot is the namespace's).
pub fn bus_channel(prefix: &str, namespace: &str) -> String {
    let mut ns = String::new();
    percent_encode(namespace, &mut ns);
    format!("{prefix}:{{{ns}}}:bus")
}

/// The fleet verifier's keys of a healing prefix: its lease `<prefix>:{<b>}:hl:<p>` and its
/// score record `<prefix>:{<b>}:hs:<p>`, with `p` the healing prefix percent-encoded and `<b>`
/// the slot of `p` as encoded (one slot for both, so the record's write can check the lease).
/// `prefix` is assumed checked.
pub fn verifier_keys(prefix: &str, healing_prefix: &str) -> (String, String) {
    let mut p = String::new();
    percent_encode(healing_prefix, &mut p);
    let b = bucket(p.as_bytes());
    (format!("{prefix}:{b}:hl:{p}"), format!("{prefix}:{b}:hs:{p}"))
}

/// The `SCAN MATCH` glob of every L2 value key whose cache key starts with `key_prefix`,
/// taken literally (P8: a key is never a pattern). `prefix` is assumed checked.
pub fn value_glob(prefix: &str, key_prefix: &str) -> String {
    format!("{prefix}:{{????}}:v:{}*", glob_escape(key_prefix))
}

/// The cache key of an L2 value key built by [`l2_keys`] with `prefix`; `None` for any other key.
pub fn cache_key_of<'a>(prefix: &str, value_key: &'a str) -> Option<&'a str> {
    let rest = value_key.strip_prefix(prefix)?.strip_prefix(":{")?;
    let (b, key) = (rest.get(..4)?, rest.get(4..)?.strip_prefix("}:v:")?);
    (b == &bucket(key.as_bytes())[1..5]).then_some(key)
}

/// Escapes the glob metacharacters of Redis `MATCH`/`KEYS` patterns (`* ? [ ] \`) with a
/// backslash, so `literal` matches only itself.
pub fn glob_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A value of a key dimension: text, or an integer written as its canonical decimal. Floats and
/// booleans are not dimension values (their text is not canonical across languages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DimValue<'a> {
    /// Text, any UTF-8.
    Str(&'a str),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer (above `i64::MAX` too).
    Uint(u64),
}

impl<'a> From<&'a str> for DimValue<'a> {
    fn from(s: &'a str) -> Self {
        DimValue::Str(s)
    }
}

impl<'a> From<&'a String> for DimValue<'a> {
    fn from(s: &'a String) -> Self {
        DimValue::Str(s)
    }
}

macro_rules! dim_from_int {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for DimValue<'_> {
            fn from(n: $t) -> Self {
                DimValue::$v(n.into())
            }
        }
    )*};
}
dim_from_int!(i64 => Int, i32 => Int, i16 => Int, i8 => Int, u64 => Uint, u32 => Uint, u16 => Uint, u8 => Uint);

impl DimValue<'_> {
    fn write_encoded(&self, out: &mut String) {
        match self {
            DimValue::Str(s) => percent_encode(s, out),
            DimValue::Int(n) => write!(out, "{n}").expect("write to a String"),
            DimValue::Uint(n) => write!(out, "{n}").expect("write to a String"),
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `s` percent-encoded over the unreserved set, with uppercase hex digits.
fn percent_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Inverts [`percent_encode`]; refuses any text it would not have written (a raw reserved byte,
/// an escaped unreserved byte, lowercase hex, invalid UTF-8), so decoding is injective too.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            };
            let byte = hex(*b.get(i + 1)?)? << 4 | hex(*b.get(i + 2)?)?;
            if is_unreserved(byte) {
                return None;
            }
            out.push(byte);
            i += 3;
        } else if is_unreserved(b[i]) {
            out.push(b[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

fn invalid(reason: &'static str) -> Error {
    Error::InvalidKey { reason }
}

/// A declared family of keys: namespace, entity, schema version and ordered dimensions.
///
/// ```
/// use healcache::keys::KeySpace;
///
/// let users = KeySpace::new("shop")?.entity("user", 3)?.dims(["id", "locale"])?;
/// let key = users.key(&[("id", 42.into()), ("locale", "en-GB".into())])?;
/// assert_eq!(key, "shop:user:v3:id=42:locale=en-GB");
/// assert_eq!(users.parse(&key)?, vec!["42".to_string(), "en-GB".to_string()]);
/// # Ok::<(), healcache::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpace {
    namespace: String,
    entity: Option<(String, u32)>,
    dims: Vec<String>,
    /// `ns:entity:vN:`, encoded, once.
    head: String,
}

impl KeySpace {
    /// A key space in `namespace` (non-empty text).
    pub fn new(namespace: &str) -> Result<Self, Error> {
        if namespace.is_empty() {
            return Err(invalid("the namespace is empty"));
        }
        Ok(KeySpace { namespace: namespace.to_owned(), entity: None, dims: Vec::new(), head: String::new() }.rehead())
    }

    /// Sets the entity (non-empty text) and its schema version; bumping the version invalidates
    /// every key of the entity at once (the old keys are simply never read again).
    pub fn entity(mut self, name: &str, version: u32) -> Result<Self, Error> {
        if name.is_empty() {
            return Err(invalid("the entity name is empty"));
        }
        self.entity = Some((name.to_owned(), version));
        Ok(self.rehead())
    }

    /// Declares the dimensions, in the order keys write them: 1 to [`MAX_DIMS`] distinct,
    /// non-empty names. Every key must give all of them, no others.
    pub fn dims<I, S>(mut self, names: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if names.is_empty() || names.len() > MAX_DIMS {
            return Err(invalid("a key space needs 1 to 16 dimensions"));
        }
        if names.iter().any(String::is_empty) {
            return Err(invalid("a dimension name is empty"));
        }
        if (1..names.len()).any(|i| names[..i].contains(&names[i])) {
            return Err(invalid("a dimension is declared twice"));
        }
        self.dims = names;
        Ok(self)
    }

    fn rehead(mut self) -> Self {
        let mut head = String::new();
        percent_encode(&self.namespace, &mut head);
        head.push(':');
        if let Some((name, version)) = &self.entity {
            percent_encode(name, &mut head);
            write!(head, ":v{version}:").expect("write to a String");
        }
        self.head = head;
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The dimensions, in order.
    pub fn dim_names(&self) -> &[String] {
        &self.dims
    }

    fn check_ready(&self) -> Result<(), Error> {
        if self.entity.is_none() {
            return Err(invalid("the key space has no entity"));
        }
        if self.dims.is_empty() {
            return Err(invalid("the key space has no dimensions"));
        }
        Ok(())
    }

    /// The position of each declared dimension in `values`; every one once, no others.
    fn order<'v, T>(&self, values: &'v [(&str, T)]) -> Result<Vec<Option<&'v T>>, Error> {
        let mut slots: Vec<Option<&T>> = vec![None; self.dims.len()];
        for (name, v) in values {
            let i = self.dims.iter().position(|d| d == name).ok_or_else(|| invalid("a dimension is not declared"))?;
            if slots[i].replace(v).is_some() {
                return Err(invalid("a dimension is given twice"));
            }
        }
        Ok(slots)
    }

    /// The key of one entity: every declared dimension exactly once, in any order.
    pub fn key(&self, values: &[(&str, DimValue<'_>)]) -> Result<String, Error> {
        self.check_ready()?;
        let slots = self.order(values)?;
        let mut out = self.head.clone();
        for (i, (name, v)) in self.dims.iter().zip(slots).enumerate() {
            let v = v.ok_or_else(|| invalid("a dimension is missing"))?;
            if i > 0 {
                out.push(':');
            }
            percent_encode(name, &mut out);
            out.push('=');
            v.write_encoded(&mut out);
        }
        Ok(out)
    }

    /// The dimension values of a key this key space wrote, in declared order (integers come back
    /// as their decimal text). Any other text is refused.
    pub fn parse(&self, key: &str) -> Result<Vec<String>, Error> {
        self.check_ready()?;
        let rest = key.strip_prefix(self.head.as_str()).ok_or_else(|| invalid("the key is not of this key space"))?;
        let mut out = Vec::with_capacity(self.dims.len());
        let mut parts = rest.split(':');
        for name in &self.dims {
            let part = parts.next().ok_or_else(|| invalid("the key lacks a dimension"))?;
            let (n, v) = part.split_once('=').ok_or_else(|| invalid("a key part has no `=`"))?;
            if percent_decode(n).as_deref() != Some(name.as_str()) {
                return Err(invalid("a key part names another dimension"));
            }
            out.push(percent_decode(v).ok_or_else(|| invalid("a key part is not canonically encoded"))?);
        }
        if parts.next().is_some() {
            return Err(invalid("the key has more parts than dimensions"));
        }
        Ok(out)
    }

    /// A pattern over this key space's keys: the dimensions given are fixed, the others match
    /// anything.
    pub fn pattern(&self, fixed: &[(&str, DimValue<'_>)]) -> Result<KeyPattern, Error> {
        self.check_ready()?;
        let slots = self.order(fixed)?;
        let values = slots
            .into_iter()
            .map(|v| {
                v.map(|v| {
                    let mut s = String::new();
                    v.write_encoded(&mut s);
                    percent_decode(&s).expect("an encoded value decodes")
                })
            })
            .collect();
        Ok(KeyPattern { space: self.clone(), fixed: values })
    }
}

/// Keys of one [`KeySpace`] with some dimensions fixed: a glob for `SCAN MATCH` over the L2 value
/// keys, and a matcher for local (L1) keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    space: KeySpace,
    /// Per declared dimension, the fixed value (decoded text), or `None` for any.
    fixed: Vec<Option<String>>,
}

impl KeyPattern {
    /// The glob over cache keys: fixed parts literal (escaped), free values `*`.
    pub fn glob(&self) -> String {
        let mut out = glob_escape(&self.space.head);
        for (i, (name, v)) in self.space.dims.iter().zip(&self.fixed).enumerate() {
            let mut part = String::new();
            if i > 0 {
                part.push(':');
            }
            percent_encode(name, &mut part);
            part.push('=');
            out.push_str(&glob_escape(&part));
            match v {
                Some(v) => {
                    let mut enc = String::new();
                    percent_encode(v, &mut enc);
                    out.push_str(&glob_escape(&enc));
                }
                None => out.push('*'),
            }
        }
        out
    }

    /// The glob over the L2 value keys under `prefix` (any slot): `<prefix>:{????}:v:<glob>`.
    pub fn l2_glob(&self, prefix: &str) -> String {
        format!("{}:{{????}}:v:{}", glob_escape(prefix), self.glob())
    }

    /// Whether a cache key belongs to the pattern (a key of the key space with every fixed
    /// dimension equal).
    pub fn matches(&self, key: &str) -> bool {
        match self.space.parse(key) {
            Ok(values) => values.iter().zip(&self.fixed).all(|(v, f)| f.as_ref().is_none_or(|f| f == v)),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P5: fence records are one per Redis Cluster slot, so at most 16,384 whatever the number of
    /// keys: 300,000 keys reach every slot from 0 to 16,383 and no fence key beyond them, and the
    /// edge slots are written as four hex digits.
    #[test]
    fn fence_records_are_at_most_16_384() {
        let mut fences = std::collections::HashSet::new();
        let mut at_edges = [None, None];
        for i in 0..300_000u32 {
            let key = format!("user:{i}");
            let s = slot(key.as_bytes());
            assert!(s < SLOTS, "{key}: slot {s}");
            let k = l2_keys("hc1", &key);
            if s == 0 {
                at_edges[0] = Some(k.fence.clone());
            } else if s == SLOTS - 1 {
                at_edges[1] = Some(k.fence.clone());
            }
            fences.insert(k.fence);
        }
        assert_eq!(fences.len(), usize::from(SLOTS), "every slot reached, none beyond");
        assert_eq!(at_edges, [Some("hc1:{0000}:f".to_string()), Some("hc1:{3fff}:f".to_string())]);
        let expected: std::collections::HashSet<String> = (0..SLOTS).map(|s| format!("hc1:{{{s:04x}}}:f")).collect();
        assert_eq!(fences, expected);
    }
}
