//! Envelope v1 and the value model: round trips, every bound at the bound, malformed input as
//! typed errors (never a panic), and the pinned vectors in `tests/vectors/envelope.json`.

use healcache::codec::{
    self, decode, decode_header, decode_json, decode_msgpack, decode_value, encode, encode_json, encode_msgpack,
    encode_tagged, encode_value, flags, from_msgpack, offsets, to_msgpack, CodecError, Kind, Limits, PayloadCodec, Tag,
    Token, HEADER_LEN, MAX_DEPTH, MAX_RATIO, MAX_TAGS, NEVER,
};
use proptest::prelude::*;
use rmpv::Value;

const KEY: &[u8] = b"hc1:{0b2c}:v:user:42";

fn limits() -> Limits {
    Limits::default()
}

fn enc(kind: Kind, codec: PayloadCodec, payload: &[u8], limits: &Limits) -> Result<Vec<u8>, CodecError> {
    encode(KEY, kind, codec, Token { epoch: 7, counter: 9 }, 60_000, 5_000, 1234, payload, limits)
}

/// Re-seals an envelope whose bytes a test changed: recomputes the checksum so that the check
/// under test, not the checksum, is what refuses it.
fn reseal(mut env: Vec<u8>, key: &[u8]) -> Vec<u8> {
    let sum = xxhash_rust::xxh3::xxh3_64(&[key, &env[HEADER_LEN..]].concat());
    env[offsets::CHECKSUM..HEADER_LEN].copy_from_slice(&sum.to_be_bytes());
    env
}

#[test]
fn header_layout_is_fixed() {
    let env = encode(
        KEY,
        Kind::Value,
        PayloadCodec::Utf8,
        Token { epoch: 0x0102030405060708, counter: 0x1112131415161718 },
        NEVER,
        0x2122232425262728,
        0x31323334,
        b"hi",
        &limits(),
    )
    .unwrap();
    assert_eq!(env.len(), HEADER_LEN + 2);
    assert_eq!(&env[..8], &[b'h', b'c', 1, 0, 1, 0, 0, 0]);
    assert_eq!(&env[8..16], &0x0102030405060708u64.to_be_bytes());
    assert_eq!(&env[16..24], &0x1112131415161718u64.to_be_bytes());
    assert_eq!(&env[24..32], &[0xff; 8]);
    assert_eq!(&env[32..40], &0x2122232425262728u64.to_be_bytes());
    assert_eq!(&env[40..44], &0x31323334u32.to_be_bytes());
    assert_eq!(&env[44..48], &2u32.to_be_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&[KEY, b"hi"].concat());
    assert_eq!(&env[48..56], &sum.to_be_bytes());
    assert_eq!(&env[56..], b"hi");
}

#[test]
fn value_read_under_another_key_is_refused() {
    let env = enc(Kind::Value, PayloadCodec::Raw, b"secret of user 42", &limits()).unwrap();
    assert!(decode(KEY, &env, &limits()).is_ok());
    assert_eq!(decode(b"hc1:{0b2c}:v:user:43", &env, &limits()), Err(CodecError::Checksum));
}

#[test]
fn negative_entries_and_tombstones_carry_no_payload() {
    for kind in [Kind::NotFound, Kind::Tombstone] {
        let env = enc(kind, PayloadCodec::Raw, b"", &limits()).unwrap();
        assert_eq!(env.len(), HEADER_LEN);
        let d = decode(KEY, &env, &limits()).unwrap();
        assert_eq!((d.header.kind, d.payload.len()), (kind, 0));
        assert!(matches!(enc(kind, PayloadCodec::Raw, b"x", &limits()), Err(CodecError::Unexpected(_))));
        // a payload planted behind the header is refused too
        let mut planted = env.clone();
        planted.push(b'x');
        let planted = reseal(planted, KEY);
        assert_eq!(decode(KEY, &planted, &limits()), Err(CodecError::Length { declared: 0, stored: 1 }));
    }
    let mut both = enc(Kind::NotFound, PayloadCodec::Raw, b"", &limits()).unwrap();
    both[offsets::FLAGS] |= flags::TOMBSTONE;
    assert_eq!(decode(KEY, &both, &limits()), Err(CodecError::Flags(flags::NOT_FOUND | flags::TOMBSTONE)));
}

#[test]
fn unknown_flags_versions_codecs_and_reserved_bytes_are_refused() {
    let env = enc(Kind::Value, PayloadCodec::Raw, b"abc", &limits()).unwrap();
    for bit in [flags::HMAC, 1 << 5, 1 << 6, 1 << 7] {
        let mut e = env.clone();
        e[offsets::FLAGS] |= bit;
        assert_eq!(decode(KEY, &e, &limits()), Err(CodecError::Flags(bit)));
    }
    let mut e = env.clone();
    e[offsets::VERSION] = 2;
    assert_eq!(decode(KEY, &e, &limits()), Err(CodecError::Version(2)));
    for b in [4u8, 64, 127] {
        let mut e = env.clone();
        e[offsets::CODEC] = b;
        assert_eq!(decode(KEY, &e, &limits()), Err(CodecError::Codec(b)));
    }
    let mut e = env.clone();
    e[offsets::CODEC] = 128;
    assert_eq!(decode(KEY, &e, &limits()).unwrap().header.codec, PayloadCodec::App(128));
    for at in 5..8 {
        let mut e = env.clone();
        e[at] = 1;
        assert_eq!(decode(KEY, &e, &limits()), Err(CodecError::Reserved));
    }
    let mut e = env.clone();
    e[0] = b'H';
    assert_eq!(decode(KEY, &e, &limits()), Err(CodecError::BadMagic));
    assert_eq!(
        encode(KEY, Kind::Value, PayloadCodec::App(127), Token::default(), 1, 0, 0, b"", &limits()),
        Err(CodecError::Codec(127))
    );
}

#[test]
fn short_input_is_refused_at_every_length_below_the_header() {
    let env = enc(Kind::Value, PayloadCodec::Raw, b"", &limits()).unwrap();
    for len in 0..HEADER_LEN {
        assert_eq!(decode(KEY, &env[..len], &limits()), Err(CodecError::Short { len }));
    }
    assert!(decode(KEY, &env[..HEADER_LEN], &limits()).is_ok());
}

#[test]
fn truncated_or_extended_payload_is_refused() {
    let env = enc(Kind::Value, PayloadCodec::Raw, b"0123456789", &limits()).unwrap();
    let cut = reseal(env[..env.len() - 1].to_vec(), KEY);
    assert_eq!(decode(KEY, &cut, &limits()), Err(CodecError::Length { declared: 10, stored: 9 }));
    let mut long = env.clone();
    long.push(0);
    let long = reseal(long, KEY);
    assert_eq!(decode(KEY, &long, &limits()), Err(CodecError::Length { declared: 10, stored: 11 }));
}

#[test]
fn max_entry_bytes_holds_at_the_bound_on_both_sides() {
    let lim = Limits { max_entry_bytes: 100, compress_min_bytes: 1 << 20 };
    let at = vec![7u8; 100];
    let env = enc(Kind::Value, PayloadCodec::Raw, &at, &lim).unwrap();
    assert_eq!(decode(KEY, &env, &lim).unwrap().payload, at);
    assert_eq!(
        enc(Kind::Value, PayloadCodec::Raw, &[7u8; 101], &lim),
        Err(CodecError::TooLarge { len: 101, max: 100 })
    );
    // an envelope written under a larger bound is refused from its header, before the payload is
    // looked at
    let big = enc(Kind::Value, PayloadCodec::Raw, &[7u8; 101], &limits()).unwrap();
    assert_eq!(decode(KEY, &big, &lim), Err(CodecError::TooLarge { len: 101, max: 100 }));
    assert_eq!(decode_header(&big, &lim), Err(CodecError::TooLarge { len: 101, max: 100 }));
}

#[test]
fn declared_length_of_four_gibibytes_allocates_nothing() {
    // payload_len 2^32 - 1 (the field's maximum; 2^32 itself does not fit in it) with lz4 and 56
    // stored bytes: refused by the bound, then by the ratio, before any allocation
    let mut env = enc(Kind::Value, PayloadCodec::Raw, &[1u8; 56], &limits()).unwrap();
    env[offsets::FLAGS] |= flags::LZ4;
    env[offsets::PAYLOAD_LEN..offsets::PAYLOAD_LEN + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let env = reseal(env, KEY);
    let unbounded = Limits { max_entry_bytes: usize::MAX, compress_min_bytes: 1024 };
    assert_eq!(decode(KEY, &env, &limits()), Err(CodecError::TooLarge { len: u32::MAX as u64, max: 64 << 20 }));
    assert_eq!(decode(KEY, &env, &unbounded), Err(CodecError::Ratio { declared: u32::MAX as u64, stored: 56 }));
}

#[test]
fn compression_ratio_bound_holds_at_the_bound() {
    let stored = 20u64;
    let make = |declared: u64| {
        let mut env = enc(Kind::Value, PayloadCodec::Raw, &[0u8; 20], &limits()).unwrap();
        env[offsets::FLAGS] |= flags::LZ4;
        env[offsets::PAYLOAD_LEN..offsets::PAYLOAD_LEN + 4].copy_from_slice(&(declared as u32).to_be_bytes());
        reseal(env, KEY)
    };
    // at the bound the ratio passes and the (bogus) block is what fails; one above, the ratio
    assert_eq!(decode(KEY, &make(MAX_RATIO * stored), &limits()), Err(CodecError::Decompress));
    assert_eq!(
        decode(KEY, &make(MAX_RATIO * stored + 1), &limits()),
        Err(CodecError::Ratio { declared: MAX_RATIO * stored + 1, stored })
    );
}

#[test]
fn checksum_is_verified_before_decompressing() {
    let payload = vec![b'a'; 4096];
    let mut env = enc(Kind::Value, PayloadCodec::Raw, &payload, &limits()).unwrap();
    assert_ne!(env[offsets::FLAGS] & flags::LZ4, 0);
    env.truncate(env.len() - 2);
    assert!(decode(KEY, &env, &limits()) == Err(CodecError::Checksum));
    // the same corruption, resealed, reaches the decompressor, which refuses it
    let env = reseal(env, KEY);
    assert!(decode(KEY, &env, &limits()) == Err(CodecError::Decompress));
}

#[test]
fn compression_threshold_holds_at_the_bound() {
    let lim = Limits { max_entry_bytes: 1 << 20, compress_min_bytes: 1024 };
    let below = enc(Kind::Value, PayloadCodec::Raw, &[b'x'; 1023], &lim).unwrap();
    assert_eq!(below[offsets::FLAGS] & flags::LZ4, 0);
    assert_eq!(below.len(), HEADER_LEN + 1023);
    let at = enc(Kind::Value, PayloadCodec::Raw, &[b'x'; 1024], &lim).unwrap();
    assert_eq!(at[offsets::FLAGS] & flags::LZ4, flags::LZ4);
    assert!(at.len() < HEADER_LEN + 100);
    assert_eq!(decode(KEY, &at, &lim).unwrap().payload, vec![b'x'; 1024]);
}

#[test]
fn compression_is_kept_only_when_it_saves_an_eighth() {
    // pseudo-random bytes do not compress: stored raw
    let mut x = 0x9e3779b97f4a7c15u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let env = enc(Kind::Value, PayloadCodec::Raw, &noise, &limits()).unwrap();
    assert_eq!(env[offsets::FLAGS] & flags::LZ4, 0);
    // find, by mixing noise and runs, payloads on either side of the 12.5% line: the flag must
    // follow the rule exactly
    let mut seen = (false, false);
    for run in (0..4096).step_by(16) {
        let mut p = noise.clone();
        p[..run].fill(b'z');
        let c = lz4_flex::block::compress(&p).len();
        let env = enc(Kind::Value, PayloadCodec::Raw, &p, &limits()).unwrap();
        let compressed = env[offsets::FLAGS] & flags::LZ4 != 0;
        assert_eq!(compressed, c * 8 <= p.len() * 7, "run {run}");
        if compressed {
            seen.0 = true;
        } else {
            seen.1 = true;
        }
        assert_eq!(decode(KEY, &env, &limits()).unwrap().payload, p);
    }
    assert_eq!(seen, (true, true));
}

#[test]
fn tags_round_trip_and_are_bounded() {
    let tags: Vec<Tag> = (0..MAX_TAGS as u64).map(|i| Tag { name: format!("tag-{i}"), version: i * 1000 }).collect();
    let env =
        encode_tagged(KEY, Kind::Value, PayloadCodec::Utf8, Token::default(), 1, 2, 3, &tags, b"v", &limits()).unwrap();
    let d = decode(KEY, &env, &limits()).unwrap();
    assert_eq!((d.tags, d.payload), (tags.clone(), b"v".to_vec()));
    let mut more = tags.clone();
    more.push(Tag { name: "one-too-many".into(), version: 0 });
    assert!(matches!(
        encode_tagged(KEY, Kind::Value, PayloadCodec::Utf8, Token::default(), 1, 2, 3, &more, b"v", &limits()),
        Err(CodecError::Tags(_))
    ));
    // a tag section declaring 17 tags, or running past the end, is refused
    let mut e = env.clone();
    e[HEADER_LEN] = 17;
    assert!(matches!(decode(KEY, &reseal(e, KEY), &limits()), Err(CodecError::Tags(_))));
    let mut e = env[..HEADER_LEN + 1].to_vec();
    e[HEADER_LEN] = 1;
    e.extend_from_slice(&[0xff, 0xff, b'a']);
    assert!(matches!(decode(KEY, &reseal(e, KEY), &limits()), Err(CodecError::Tags(_))));
}

// ---------------------------------------------------------------------------------------------
// the value model

fn nest(depth: usize) -> Value {
    (0..depth)
        .fold(Value::from(1), |v, i| if i % 2 == 0 { Value::Array(vec![v]) } else { Value::Map(vec![("k".into(), v)]) })
}

#[test]
fn depth_bound_holds_at_the_bound() {
    let ok = nest(MAX_DEPTH);
    let bytes = encode_msgpack(&ok).unwrap();
    assert_eq!(decode_msgpack(&bytes).unwrap(), ok);
    assert_eq!(decode_json(&encode_json(&ok).unwrap()).unwrap(), ok);
    let deep = nest(MAX_DEPTH + 1);
    assert_eq!(encode_msgpack(&deep), Err(CodecError::Depth));
    assert_eq!(encode_json(&deep), Err(CodecError::Depth));
    let mut raw = Vec::new();
    rmpv::encode::write_value(&mut raw, &deep).unwrap();
    assert_eq!(decode_msgpack(&raw), Err(CodecError::Depth));
    let json = format!("{}1{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert_eq!(decode_json(json.as_bytes()), Err(CodecError::Depth));
    // far past the bound: refused, no stack overflow
    let bomb = [vec![0x91u8; 100_000], vec![0xc0]].concat();
    assert_eq!(decode_msgpack(&bomb), Err(CodecError::Depth));
}

#[test]
fn values_outside_the_model_are_refused() {
    let int_key = Value::Map(vec![(Value::from(1), Value::Nil)]);
    assert_eq!(encode_msgpack(&int_key), Err(CodecError::NotEncodable("a map key that is not text")));
    let mut raw = Vec::new();
    rmpv::encode::write_value(&mut raw, &int_key).unwrap();
    assert_eq!(decode_msgpack(&raw), Err(CodecError::NotEncodable("a map key that is not text")));
    let ext = Value::Ext(1, vec![1, 2]);
    assert!(matches!(encode_msgpack(&ext), Err(CodecError::NotEncodable(_))));
    let bytes = Value::Binary(vec![1, 2, 3]);
    assert_eq!(encode_json(&bytes), Err(CodecError::NotEncodable("bytes in JSON")));
    assert!(matches!(encode_json(&Value::F64(f64::NAN)), Err(CodecError::NotEncodable(_))));
    // invalid UTF-8 in a msgpack str
    assert!(matches!(decode_msgpack(&[0xa2, 0xff, 0xfe]), Err(CodecError::NotEncodable(_))));
    // trailing bytes after one value
    assert!(matches!(decode_msgpack(&[0xc0, 0xc0]), Err(CodecError::Payload(_))));
    // an array header declaring 2^32 - 1 elements with none present: an error, no allocation
    assert!(matches!(decode_msgpack(&[0xdd, 0xff, 0xff, 0xff, 0xff]), Err(CodecError::Payload(_))));
    assert!(matches!(decode_msgpack(&[0xc6, 0xff, 0xff, 0xff, 0xff, 0]), Err(CodecError::Payload(_))));
    // the user-facing error of a refused value
    let e = CodecError::NotEncodable("bytes in JSON").to_user_error();
    assert_eq!(e.code(), "ValueNotEncodable");
    assert_eq!(e.to_string(), "value cannot be stored in the shared tier: bytes in JSON");
    assert_eq!(CodecError::TooLarge { len: 9, max: 8 }.to_user_error().code(), "ValueTooLarge");
}

#[test]
fn payload_codecs_take_their_kind_of_value() {
    assert_eq!(encode_value(PayloadCodec::Utf8, &Value::from("é")).unwrap(), "é".as_bytes());
    assert!(encode_value(PayloadCodec::Utf8, &Value::from(1)).is_err());
    assert_eq!(encode_value(PayloadCodec::Raw, &Value::Binary(vec![0, 255])).unwrap(), vec![0, 255]);
    assert!(encode_value(PayloadCodec::Raw, &Value::from("x")).is_err());
    assert_eq!(decode_value(PayloadCodec::App(200), b"\x00").unwrap(), Value::Binary(vec![0]));
    assert!(matches!(decode_value(PayloadCodec::Utf8, b"\xff"), Err(CodecError::Payload(_))));
    assert!(matches!(decode_value(PayloadCodec::Json, b"{"), Err(CodecError::Payload(_))));
    // a pickle is not a value of any codec: raw bytes at most, never executed
    let pickle = b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x04true\x85R.";
    assert!(decode_value(PayloadCodec::MsgPack, pickle).is_err());
    assert!(decode_value(PayloadCodec::Json, pickle).is_err());
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
    manager: Option<Box<User>>,
}

#[test]
fn typed_structs_round_trip_as_maps_with_text_keys() {
    let u = User {
        id: 42,
        name: "Ada".into(),
        tags: vec!["a".into()],
        score: -1.5,
        manager: Some(Box::new(User { id: 1, name: "B".into(), tags: vec![], score: 0.0, manager: None })),
    };
    let b = to_msgpack(&u).unwrap();
    let v = decode_msgpack(&b).unwrap();
    assert_eq!(v["name"].as_str(), Some("Ada"));
    assert_eq!(v["manager"]["id"].as_u64(), Some(1));
    assert_eq!(from_msgpack::<User>(&b).unwrap(), u);
    let m: std::collections::BTreeMap<u32, u32> = [(1, 2)].into();
    assert!(matches!(to_msgpack(&m), Err(CodecError::NotEncodable(_))));
}

// ---------------------------------------------------------------------------------------------
// properties

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::F64),
        ".{0,12}".prop_map(|s: String| Value::from(s)),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((".{0,6}", inner), 0..6)
                .prop_map(|kv| Value::Map(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect())),
        ]
    })
}

fn has_bytes(v: &Value) -> bool {
    match v {
        Value::Binary(_) => true,
        Value::Array(a) => a.iter().any(has_bytes),
        Value::Map(m) => m.iter().any(|(_, v)| has_bytes(v)),
        _ => false,
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Value), Just(Kind::NotFound), Just(Kind::Tombstone)]
}

fn payload_codec() -> impl Strategy<Value = PayloadCodec> {
    prop_oneof![
        Just(PayloadCodec::Raw),
        Just(PayloadCodec::Utf8),
        Just(PayloadCodec::Json),
        Just(PayloadCodec::MsgPack),
        (128u8..=255).prop_map(PayloadCodec::App)
    ]
}

/// Payloads that are sometimes compressible: runs of a few symbols, or noise.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'{')], 0..6000),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn envelopes_round_trip(
        key in proptest::collection::vec(any::<u8>(), 0..40),
        kind in kind(),
        codec in payload_codec(),
        epoch in any::<u64>(),
        counter in any::<u64>(),
        fresh in any::<u64>(),
        grace in any::<u64>(),
        load_us in any::<u32>(),
        payload in payload(),
        compress_min in 0usize..4096,
    ) {
        let payload = if kind == Kind::Value { payload } else { Vec::new() };
        let lim = Limits { max_entry_bytes: 1 << 20, compress_min_bytes: compress_min };
        let token = Token { epoch, counter };
        let env = encode(&key, kind, codec, token, fresh, grace, load_us, &payload, &lim).unwrap();
        let d = decode(&key, &env, &lim).unwrap();
        prop_assert_eq!(d.header.kind, kind);
        prop_assert_eq!(d.header.codec, codec);
        prop_assert_eq!(d.header.token, token);
        prop_assert_eq!((d.header.fresh_ms, d.header.grace_ms, d.header.load_us), (fresh, grace, load_us));
        prop_assert_eq!(d.header.payload_len as usize, payload.len());
        prop_assert_eq!(&d.payload, &payload);
        let compressed = env[offsets::FLAGS] & flags::LZ4 != 0;
        if compressed {
            prop_assert!(payload.len() >= compress_min);
            prop_assert!((env.len() - HEADER_LEN) * 8 <= payload.len() * 7);
        } else {
            prop_assert_eq!(env.len(), HEADER_LEN + payload.len());
        }
        // the token bytes are outside the checksum: the WRITE script rewrites them
        let mut retoken = env.clone();
        retoken[offsets::EPOCH..offsets::EPOCH + 16].copy_from_slice(&Token { epoch: 1, counter: 2 }.to_bytes());
        prop_assert_eq!(decode(&key, &retoken, &lim).unwrap().header.token, Token { epoch: 1, counter: 2 });
    }

    #[test]
    fn any_flipped_body_byte_is_caught(payload in payload(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let env = enc(Kind::Value, PayloadCodec::Raw, &payload, &limits()).unwrap();
        prop_assume!(env.len() > HEADER_LEN);
        let i = HEADER_LEN + at.index(env.len() - HEADER_LEN);
        let mut bad = env.clone();
        bad[i] ^= 1 << bit;
        prop_assert_eq!(decode(KEY, &bad, &limits()), Err(CodecError::Checksum));
    }

    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), header in any::<bool>()) {
        // half the cases start with a plausible header so the later checks are reached
        let mut b = bytes;
        if header && b.len() >= 4 {
            let fl = b[3] & flags::KNOWN;
            b[..4].copy_from_slice(&[b'h', b'c', 1, fl]);
        }
        let _ = decode(KEY, &b, &limits());
        let _ = decode(KEY, &reseal_if_long(b.clone()), &limits());
        let _ = decode_msgpack(&b);
        let _ = decode_json(&b);
    }

    #[test]
    fn msgpack_values_round_trip(v in value()) {
        let b = encode_msgpack(&v).unwrap();
        prop_assert_eq!(decode_msgpack(&b).unwrap(), v.clone());
        if !has_bytes(&v) {
            let j = encode_json(&v).unwrap();
            prop_assert_eq!(decode_json(&j).unwrap(), v);
        } else {
            prop_assert_eq!(encode_json(&v), Err(CodecError::NotEncodable("bytes in JSON")));
        }
    }
}

fn reseal_if_long(b: Vec<u8>) -> Vec<u8> {
    if b.len() >= HEADER_LEN {
        reseal(b, KEY)
    } else {
        b
    }
}

#[test]
fn codec_error_codes_are_stable() {
    assert_eq!(CodecError::Checksum.code(), "Checksum");
    assert_eq!(CodecError::Short { len: 0 }.code(), "Short");
    assert_eq!(codec::VERSION, 1);
}

/// `decode` refuses a stored value longer than `max_envelope_bytes` by its length alone (the
/// bound the READ script applies in Redis), and takes one at the bound to its other checks.
#[test]
fn an_envelope_past_the_stored_bound_is_too_large_by_its_length() {
    let lim = Limits { max_entry_bytes: 100, compress_min_bytes: 1024 };
    let max = codec::max_envelope_bytes(&lim);
    assert_eq!(max, 56 + 1 + 16 * (2 + 65_535 + 8) + 100);
    let env = enc(Kind::Value, PayloadCodec::MsgPack, b"v", &lim).unwrap();
    let mut long = env.clone();
    long.resize(max as usize, 0);
    assert!(!matches!(codec::decode(KEY, &long, &lim), Err(CodecError::TooLarge { .. })), "at the bound");
    long.push(0);
    assert_eq!(codec::decode(KEY, &long, &lim).unwrap_err(), CodecError::TooLarge { len: max + 1, max });
    assert!(codec::decode(KEY, &env, &lim).is_ok());
}
