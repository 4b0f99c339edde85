//! The shared tier's wire format: envelope v1 around a payload, and the payload codecs.
//!
//! An L2 value is one Redis string: a fixed 56-byte big-endian header (so a Lua script can read or
//! rewrite fields with `GETRANGE` and `string.sub`), an optional tag section, then the payload,
//! lz4-block compressed when that pays. Every language reads and writes these same bytes; the
//! layout is `docs/wire-format.md`, pinned by `tests/vectors/envelope.json`.
//!
//! Bytes read from Redis are untrusted. [`decode`] is a pure, bounded function: every declared
//! length is checked against the bytes present and against [`Limits`] before anything is
//! allocated, the checksum (which also covers the Redis key, so a value read under another key is
//! refused) is verified before decompressing, and every failure is a typed [`CodecError`], never a
//! panic. A payload is never executed: the value model is MessagePack, JSON, UTF-8 or raw bytes.
//!
//! The neutral value model is [`rmpv::Value`] restricted to nil, bool, integers, floats, text,
//! bytes, arrays and maps with text keys, nested at most [`MAX_DEPTH`] deep.

use std::fmt;

use xxhash_rust::xxh3::Xxh3Default;

use crate::error::Error;

mod value;

pub use value::{
    decode_json, decode_msgpack, decode_value, encode_json, encode_msgpack, encode_value, from_msgpack, to_msgpack,
};

/// Size of the fixed header, in bytes.
pub const HEADER_LEN: usize = 56;
/// The first two bytes of every envelope: `"hc"`.
pub const MAGIC: [u8; 2] = *b"hc";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// `fresh_ms` of an entry that never goes stale.
pub const NEVER: u64 = u64::MAX;
/// Most tags an envelope's tag section may hold.
pub const MAX_TAGS: usize = 16;
/// Deepest nesting of arrays and maps in a value (a scalar alone has depth 0).
pub const MAX_DEPTH: usize = 64;
/// A compressed payload may expand at most this many times (a decompression bomb is refused
/// before anything is allocated).
pub const MAX_RATIO: u64 = 1000;

/// The flag bits of header byte 3.
pub mod flags {
    /// The stored payload is one lz4 block.
    pub const LZ4: u8 = 1 << 0;
    /// A cached "not found" (negative entry): no payload.
    pub const NOT_FOUND: u8 = 1 << 1;
    /// A tombstone left by a delete: no payload.
    pub const TOMBSTONE: u8 = 1 << 2;
    /// A tag section follows the header.
    pub const TAGS: u8 = 1 << 3;
    /// An HMAC trailer ends the envelope (reserved: refused by this version).
    pub const HMAC: u8 = 1 << 4;
    /// The bits this version reads; any other bit makes the envelope unreadable.
    pub const KNOWN: u8 = LZ4 | NOT_FOUND | TOMBSTONE | TAGS;
}

/// Header offsets, for readers of single fields (the Lua scripts use the same numbers, 1-based).
pub mod offsets {
    /// Format version byte.
    pub const VERSION: usize = 2;
    /// Flags byte.
    pub const FLAGS: usize = 3;
    /// Payload codec byte.
    pub const CODEC: usize = 4;
    /// Fence epoch (u64).
    pub const EPOCH: usize = 8;
    /// Fence counter (u64).
    pub const COUNTER: usize = 16;
    /// `fresh_ms` (u64).
    pub const FRESH_MS: usize = 24;
    /// `grace_ms` (u64).
    pub const GRACE_MS: usize = 32;
    /// `load_us` (u32).
    pub const LOAD_US: usize = 40;
    /// `payload_len` (u32), uncompressed.
    pub const PAYLOAD_LEN: usize = 44;
    /// xxh3-64 of the Redis key followed by every byte after the header.
    pub const CHECKSUM: usize = 48;
}

/// A fence token: the epoch of the slot's fence state and a counter within it. Only equality of
/// epochs is ever tested (no clock ordering across processes); counters order writes within one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Token {
    /// Epoch of the fence hash (set by Redis `TIME` when the hash was created).
    pub epoch: u64,
    /// Counter within the epoch.
    pub counter: u64,
}

impl Token {
    /// The 16 bytes as stored at header offset 8 (what the REVALIDATE script returns).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.epoch.to_be_bytes());
        b[8..].copy_from_slice(&self.counter.to_be_bytes());
        b
    }

    /// Reads 16 stored token bytes; `None` unless exactly 16.
    pub fn from_bytes(b: &[u8]) -> Option<Token> {
        let b: &[u8; 16] = b.try_into().ok()?;
        Some(Token { epoch: be_u64(&b[..8]), counter: be_u64(&b[8..]) })
    }
}

/// How the payload bytes are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadCodec {
    /// Bytes, passed through.
    Raw,
    /// UTF-8 text.
    Utf8,
    /// JSON text (cannot carry bytes).
    Json,
    /// MessagePack, the default for structured values.
    MsgPack,
    /// A codec registered by the application, 128-255; healcache passes the bytes through.
    App(u8),
}

impl PayloadCodec {
    /// The header byte.
    pub fn to_byte(self) -> u8 {
        match self {
            PayloadCodec::Raw => 0,
            PayloadCodec::Utf8 => 1,
            PayloadCodec::Json => 2,
            PayloadCodec::MsgPack => 3,
            PayloadCodec::App(b) => b,
        }
    }

    /// The codec of a header byte; 4-127 are unassigned and refused.
    pub fn from_byte(b: u8) -> Result<Self, CodecError> {
        match b {
            0 => Ok(PayloadCodec::Raw),
            1 => Ok(PayloadCodec::Utf8),
            2 => Ok(PayloadCodec::Json),
            3 => Ok(PayloadCodec::MsgPack),
            128..=255 => Ok(PayloadCodec::App(b)),
            _ => Err(CodecError::Codec(b)),
        }
    }
}

/// What an envelope holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A value.
    Value,
    /// A cached "not found" (negative entry).
    NotFound,
    /// A delete's tombstone: the key was invalidated; a rebuild begun before it is fenced out.
    Tombstone,
}

/// The bounds of encoding and decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest uncompressed payload written or read. Defaults to: 64 MiB (the default
    /// `max_entry_bytes`); at most `u32::MAX`, the width of the length field.
    pub max_entry_bytes: usize,
    /// Payloads at least this long are lz4-compressed, and kept so only when that saves at least
    /// 12.5%. Defaults to: 1024.
    pub compress_min_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_entry_bytes: 64 << 20, compress_min_bytes: 1024 }
    }
}

/// One tag of the tag section: a name and the tag's version when the value was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The tag's name (UTF-8).
    pub name: String,
    /// The tag's version at write time.
    pub version: u64,
}

/// The fixed header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Value, negative entry or tombstone.
    pub kind: Kind,
    /// How to read the payload.
    pub codec: PayloadCodec,
    /// The fence token the write carried.
    pub token: Token,
    /// Logical TTL at write time, in ms ([`NEVER`] = never stale).
    pub fresh_ms: u64,
    /// Stale window after `fresh_ms`, in ms.
    pub grace_ms: u64,
    /// Duration of the load that produced the value, in µs (0 for plain writes).
    pub load_us: u32,
    /// Uncompressed payload length.
    pub payload_len: u32,
}

/// What is left fresh of an envelope whose Redis key has `pttl_ms` left (Redis `PTTL`: -1 no
/// expiry, -2 gone): the key lives fresh + grace, so what is left beyond the grace is fresh.
/// `Some(None)`: fresh for ever; `None`: not fresh (stale or gone), whatever its kind.
pub fn fresh_left(pttl_ms: i64, header: &Header) -> Option<Option<std::time::Duration>> {
    match (pttl_ms, header.fresh_ms) {
        (-1, NEVER) => Some(None),
        (p, _) if p < 0 => None,
        (p, _) => match (p as u64).checked_sub(header.grace_ms) {
            Some(left) if left > 0 => Some(Some(std::time::Duration::from_millis(left))),
            _ => None,
        },
    }
}

/// A decoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The header.
    pub header: Header,
    /// The tag section (empty without one).
    pub tags: Vec<Tag>,
    /// The payload, uncompressed.
    pub payload: Vec<u8>,
}

/// Why bytes could not be read as an envelope or a payload, or a value not written as one.
/// Internal: the tier counts these as `l2_codec_errors` and treats the read as a miss.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// Shorter than the 56-byte header.
    #[error("envelope too short: {len} bytes")]
    Short {
        /// Bytes present.
        len: usize,
    },
    /// Not an envelope (no `hc` magic).
    #[error("not a healcache envelope")]
    BadMagic,
    /// A format version this code does not read.
    #[error("unknown envelope version {0}")]
    Version(u8),
    /// Unknown flag bits, or flags that contradict each other.
    #[error("unsupported or contradictory flags {0:#04x}")]
    Flags(u8),
    /// Reserved header bytes are not zero.
    #[error("reserved header bytes are not zero")]
    Reserved,
    /// A payload codec byte that is not assigned (4-127).
    #[error("unknown payload codec {0}")]
    Codec(u8),
    /// The payload is larger than `max_entry_bytes` (or than the 32-bit length field).
    #[error("payload of {len} bytes over the limit of {max}")]
    TooLarge {
        /// Declared or given length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A compressed payload would expand more than [`MAX_RATIO`] times.
    #[error("declared length {declared} is over {MAX_RATIO} times the {stored} stored bytes")]
    Ratio {
        /// Declared uncompressed length.
        declared: u64,
        /// Stored (compressed) length.
        stored: u64,
    },
    /// An uncompressed payload whose stored length is not the declared one.
    #[error("declared length {declared}, stored {stored}")]
    Length {
        /// Declared length.
        declared: u64,
        /// Stored length.
        stored: u64,
    },
    /// The checksum does not match (corrupt, or read under another key than it was written for).
    #[error("checksum mismatch")]
    Checksum,
    /// The lz4 block is malformed or does not give the declared length.
    #[error("lz4 block is malformed")]
    Decompress,
    /// The tag section is malformed or holds more than [`MAX_TAGS`] tags.
    #[error("bad tag section: {0}")]
    Tags(&'static str),
    /// A negative entry or tombstone with a payload, or a kind that cannot carry the codec.
    #[error("a {0} carries no payload")]
    Unexpected(&'static str),
    /// The payload does not parse under its codec.
    #[error("payload does not parse: {0}")]
    Payload(String),
    /// A value nested deeper than [`MAX_DEPTH`].
    #[error("value nested deeper than {MAX_DEPTH}")]
    Depth,
    /// A value outside the model: a map key that is not text, an extension type, invalid UTF-8
    /// text, bytes in JSON, a non-finite float in JSON.
    #[error("value not encodable: {0}")]
    NotEncodable(&'static str),
}

impl CodecError {
    /// A stable name of the variant, as the test vectors spell it.
    pub fn code(&self) -> &'static str {
        match self {
            CodecError::Short { .. } => "Short",
            CodecError::BadMagic => "BadMagic",
            CodecError::Version(_) => "Version",
            CodecError::Flags(_) => "Flags",
            CodecError::Reserved => "Reserved",
            CodecError::Codec(_) => "Codec",
            CodecError::TooLarge { .. } => "TooLarge",
            CodecError::Ratio { .. } => "Ratio",
            CodecError::Length { .. } => "Length",
            CodecError::Checksum => "Checksum",
            CodecError::Decompress => "Decompress",
            CodecError::Tags(_) => "Tags",
            CodecError::Unexpected(_) => "Unexpected",
            CodecError::Payload(_) => "Payload",
            CodecError::Depth => "Depth",
            CodecError::NotEncodable(_) => "NotEncodable",
        }
    }
}

impl CodecError {
    /// The user-facing error for a failure to *encode* a caller's value (decode failures are
    /// misses plus a counter, never user errors): [`Error::ValueTooLarge`] for a payload over the
    /// bound, else [`Error::ValueNotEncodable`].
    pub fn to_user_error(&self) -> Error {
        match self {
            CodecError::TooLarge { len, max } => Error::ValueTooLarge { weight: *len, max: *max },
            CodecError::NotEncodable(reason) => Error::ValueNotEncodable { reason: reason.to_string() },
            CodecError::Depth => Error::ValueNotEncodable { reason: "nested deeper than 64 levels".into() },
            CodecError::Tags(reason) => Error::ValueNotEncodable { reason: reason.to_string() },
            _ => Error::ValueNotEncodable { reason: "the serializer refused it".into() },
        }
    }
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

fn checksum(redis_key: &[u8], body: &[u8]) -> u64 {
    let mut h = Xxh3Default::new();
    h.update(redis_key);
    h.update(body);
    h.digest()
}

pub(crate) fn max_payload(limits: &Limits) -> u64 {
    (limits.max_entry_bytes as u64).min(u32::MAX as u64)
}

/// The longest tag section: the count byte, then per tag a 2-byte length, a name of at most
/// 65,535 bytes and an 8-byte version.
const MAX_TAG_SECTION: u64 = 1 + MAX_TAGS as u64 * (2 + u16::MAX as u64 + 8);

/// The longest stored envelope [`decode`] accepts: the header, the longest tag section and the
/// largest payload. The READ script refuses a longer value by its length, inside Redis, so its
/// bytes never cross the network.
pub fn max_envelope_bytes(limits: &Limits) -> u64 {
    HEADER_LEN as u64 + MAX_TAG_SECTION + max_payload(limits)
}

/// Builds an envelope. `redis_key` is the L2 value key the envelope is written under (the
/// checksum binds the two). A negative entry or tombstone must have an empty payload. The token
/// is usually [`Token::default`]: the WRITE script sets bytes 8-23 to the token it allocates or
/// checks.
#[allow(clippy::too_many_arguments)]
pub fn encode(
    redis_key: &[u8],
    kind: Kind,
    codec: PayloadCodec,
    token: Token,
    fresh_ms: u64,
    grace_ms: u64,
    load_us: u32,
    payload: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, CodecError> {
    encode_tagged(redis_key, kind, codec, token, fresh_ms, grace_ms, load_us, &[], payload, limits)
}

/// [`encode`] with a tag section (at most [`MAX_TAGS`] tags, names at most 65,535 bytes).
#[allow(clippy::too_many_arguments)]
pub fn encode_tagged(
    redis_key: &[u8],
    kind: Kind,
    codec: PayloadCodec,
    token: Token,
    fresh_ms: u64,
    grace_ms: u64,
    load_us: u32,
    tags: &[Tag],
    payload: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, CodecError> {
    let mut fl = match kind {
        Kind::Value => 0,
        Kind::NotFound => flags::NOT_FOUND,
        Kind::Tombstone => flags::TOMBSTONE,
    };
    if kind != Kind::Value && !payload.is_empty() {
        return Err(CodecError::Unexpected(kind_name(kind)));
    }
    if let PayloadCodec::App(b) = codec {
        if b < 128 {
            return Err(CodecError::Codec(b));
        }
    }
    let max = max_payload(limits);
    if payload.len() as u64 > max {
        return Err(CodecError::TooLarge { len: payload.len() as u64, max });
    }
    if tags.len() > MAX_TAGS {
        return Err(CodecError::Tags("more than 16 tags"));
    }
    if tags.iter().any(|t| t.name.len() > u16::MAX as usize) {
        return Err(CodecError::Tags("tag name over 65535 bytes"));
    }
    let compressed = if payload.len() >= limits.compress_min_bytes && !payload.is_empty() {
        let c = lz4_flex::block::compress(payload);
        lz4_pays(c.len(), payload.len()).then_some(c)
    } else {
        None
    };
    if compressed.is_some() {
        fl |= flags::LZ4;
    }
    if !tags.is_empty() {
        fl |= flags::TAGS;
    }
    let stored: &[u8] = compressed.as_deref().unwrap_or(payload);
    let tag_len: usize = if tags.is_empty() { 0 } else { 1 + tags.iter().map(|t| 2 + t.name.len() + 8).sum::<usize>() };
    let mut out = Vec::with_capacity(HEADER_LEN + tag_len + stored.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(fl);
    out.push(codec.to_byte());
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&token.to_bytes());
    out.extend_from_slice(&fresh_ms.to_be_bytes());
    out.extend_from_slice(&grace_ms.to_be_bytes());
    out.extend_from_slice(&load_us.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0; 8]); // checksum, written below
    if !tags.is_empty() {
        out.push(tags.len() as u8);
        for t in tags {
            out.extend_from_slice(&(t.name.len() as u16).to_be_bytes());
            out.extend_from_slice(t.name.as_bytes());
            out.extend_from_slice(&t.version.to_be_bytes());
        }
    }
    out.extend_from_slice(stored);
    let sum = checksum(redis_key, &out[HEADER_LEN..]);
    out[offsets::CHECKSUM..HEADER_LEN].copy_from_slice(&sum.to_be_bytes());
    Ok(out)
}

/// Whether `compressed` bytes are kept for a payload of `raw` bytes: only if they save at least
/// 12.5% (one eighth); below that the decompression costs more than the bytes saved on the wire.
fn lz4_pays(compressed: usize, raw: usize) -> bool {
    compressed as u64 * 8 <= raw as u64 * 7
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Value => "value",
        Kind::NotFound => "negative entry",
        Kind::Tombstone => "tombstone",
    }
}

/// Reads the fixed header only, with every check that needs no more than the header (magic,
/// version, flags, reserved bytes, codec, the length bound). What the REVALIDATE and ACQUIRE
/// paths use; [`decode`] starts with it.
pub fn decode_header(stored: &[u8], limits: &Limits) -> Result<Header, CodecError> {
    if stored.len() < HEADER_LEN {
        return Err(CodecError::Short { len: stored.len() });
    }
    if stored[..2] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    if stored[offsets::VERSION] != VERSION {
        return Err(CodecError::Version(stored[offsets::VERSION]));
    }
    let fl = stored[offsets::FLAGS];
    let kind = match fl & (flags::NOT_FOUND | flags::TOMBSTONE) {
        0 => Kind::Value,
        flags::NOT_FOUND => Kind::NotFound,
        flags::TOMBSTONE => Kind::Tombstone,
        _ => return Err(CodecError::Flags(fl)),
    };
    if fl & !flags::KNOWN != 0 || (kind != Kind::Value && fl & flags::LZ4 != 0) {
        return Err(CodecError::Flags(fl));
    }
    let codec = PayloadCodec::from_byte(stored[offsets::CODEC])?;
    if stored[5..8] != [0, 0, 0] {
        return Err(CodecError::Reserved);
    }
    let payload_len = be_u32(&stored[offsets::PAYLOAD_LEN..]);
    if kind != Kind::Value && payload_len != 0 {
        return Err(CodecError::Unexpected(kind_name(kind)));
    }
    let max = max_payload(limits);
    if payload_len as u64 > max {
        return Err(CodecError::TooLarge { len: payload_len as u64, max });
    }
    Ok(Header {
        kind,
        codec,
        token: Token { epoch: be_u64(&stored[offsets::EPOCH..]), counter: be_u64(&stored[offsets::COUNTER..]) },
        fresh_ms: be_u64(&stored[offsets::FRESH_MS..]),
        grace_ms: be_u64(&stored[offsets::GRACE_MS..]),
        load_us: be_u32(&stored[offsets::LOAD_US..]),
        payload_len,
    })
}

/// Reads an envelope stored under `redis_key`. Pure and bounded: see the module doc.
pub fn decode(redis_key: &[u8], stored: &[u8], limits: &Limits) -> Result<Decoded, CodecError> {
    // the bound the READ script applies, so that both paths refuse the same envelopes
    let max = max_envelope_bytes(limits);
    if stored.len() as u64 > max {
        return Err(CodecError::TooLarge { len: stored.len() as u64, max });
    }
    let header = decode_header(stored, limits)?;
    let fl = stored[offsets::FLAGS];
    let body = &stored[HEADER_LEN..];
    let (tag_len, tag_count) = if fl & flags::TAGS != 0 { scan_tags(body)? } else { (0, 0) };
    let data = &body[tag_len..];
    let declared = header.payload_len as u64;
    let kept = data.len() as u64;
    if fl & flags::LZ4 != 0 {
        if declared > MAX_RATIO * kept {
            return Err(CodecError::Ratio { declared, stored: kept });
        }
    } else if declared != kept {
        return Err(CodecError::Length { declared, stored: kept });
    }
    let expected = be_u64(&stored[offsets::CHECKSUM..]);
    if checksum(redis_key, body) != expected {
        return Err(CodecError::Checksum);
    }
    let tags = read_tags(&body[..tag_len], tag_count);
    let payload = if fl & flags::LZ4 != 0 {
        // `declared` is bounded above by max_entry_bytes and by 1000x the bytes present
        let mut out = vec![0u8; declared as usize];
        match lz4_flex::block::decompress_into(data, &mut out) {
            Ok(n) if n as u64 == declared => out,
            _ => return Err(CodecError::Decompress),
        }
    } else {
        data.to_vec()
    };
    Ok(Decoded { header, tags, payload })
}

/// Checks the tag section at the start of `body` without allocating; returns its length and
/// its number of tags.
fn scan_tags(body: &[u8]) -> Result<(usize, usize), CodecError> {
    let Some(&count) = body.first() else { return Err(CodecError::Tags("truncated")) };
    if count as usize > MAX_TAGS {
        return Err(CodecError::Tags("more than 16 tags"));
    }
    let mut at = 1usize;
    for _ in 0..count {
        let len = body.get(at..at + 2).ok_or(CodecError::Tags("truncated"))?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let name = body.get(at + 2..at + 2 + len).ok_or(CodecError::Tags("truncated"))?;
        if std::str::from_utf8(name).is_err() {
            return Err(CodecError::Tags("tag name is not UTF-8"));
        }
        at += 2 + len + 8;
        if at > body.len() {
            return Err(CodecError::Tags("truncated"));
        }
    }
    Ok((at, count as usize))
}

/// Reads a tag section already checked by [`scan_tags`].
fn read_tags(section: &[u8], count: usize) -> Vec<Tag> {
    let mut tags = Vec::with_capacity(count);
    let mut at = 1;
    for _ in 0..count {
        let len = u16::from_be_bytes([section[at], section[at + 1]]) as usize;
        let name = String::from_utf8_lossy(&section[at + 2..at + 2 + len]).into_owned();
        let version = be_u64(&section[at + 2 + len..]);
        tags.push(Tag { name, version });
        at += 2 + len + 8;
    }
    tags
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(kind_name(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P5: lz4 is kept when it saves exactly one eighth, and not when it saves one byte less
    /// (the boundary numbers themselves, for payloads of a length divisible by 8 and not).
    #[test]
    fn lz4_is_kept_at_exactly_an_eighth_saved() {
        assert!(lz4_pays(896, 1024) && !lz4_pays(897, 1024));
        // 1001 * 7 / 8 = 875.875: 875 saves more than an eighth, 876 less
        assert!(lz4_pays(875, 1001) && !lz4_pays(876, 1001));
        assert!(lz4_pays(0, 0) && lz4_pays(7, 8) && !lz4_pays(8, 8));
    }

    /// P5: the same boundary through the envelope, with real lz4 output: a payload whose block
    /// compresses to exactly 7/8 of it is stored compressed, one a byte longer is stored raw; both
    /// read back whole.
    #[test]
    fn an_envelope_stores_lz4_only_when_it_saves_an_eighth() {
        const LEN: usize = 1024;
        // random bytes then zeros: the compressed size grows with the random part, byte by byte
        let mut rng = 0x9e37_79b9_u64;
        let noise: Vec<u8> = (0..LEN)
            .map(|_| {
                rng = crate::xfetch::splitmix64(rng);
                rng as u8
            })
            .collect();
        let payload = |random: usize| {
            let mut p = noise[..random].to_vec();
            p.resize(LEN, 0);
            p
        };
        let with = |target: usize| {
            (0..LEN)
                .map(payload)
                .find(|p| lz4_flex::block::compress(p).len() == target)
                .unwrap_or_else(|| panic!("no payload of {LEN} bytes compresses to exactly {target}"))
        };
        let limits = Limits::default();
        for (target, kept) in [(LEN / 8 * 7, true), (LEN / 8 * 7 + 1, false)] {
            let p = with(target);
            let e = encode(b"k", Kind::Value, PayloadCodec::Raw, Token::default(), 1, 0, 0, &p, &limits).unwrap();
            assert_eq!(e[offsets::FLAGS] & flags::LZ4 != 0, kept, "compressed to {target} of {LEN}");
            let stored = if kept { target } else { LEN };
            assert_eq!(e.len(), HEADER_LEN + stored);
            assert_eq!(decode(b"k", &e, &limits).unwrap().payload, p);
        }
    }
}
