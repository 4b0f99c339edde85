//! The wire vectors in `tests/vectors/`: every surface and the independent Python reader check
//! the same bytes. Normal runs read the files and fail when the encoder's output or the key layout
//! changes; `HEALCACHE_WRITE_VECTORS=1 cargo test -p healcache --test vectors` writes them again
//! (only for a deliberate format change, which also needs a new envelope version or key prefix).

use std::path::PathBuf;

use healcache::codec::{self, CodecError, Kind, Limits, PayloadCodec, Tag, Token, HEADER_LEN, NEVER};
use healcache::keys::{bus_channel, l2_keys, slot, tag_key, DimValue, KeySpace};
use rmpv::Value;
use serde_json::{json, Value as J};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors").join(name)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A value as the vectors write it: JSON, with bytes as `{"$bytes": "<hex>"}`.
fn typed(v: &Value) -> J {
    match v {
        Value::Nil => J::Null,
        Value::Boolean(b) => json!(b),
        Value::Integer(i) => i.as_i64().map_or_else(|| json!(i.as_u64().unwrap()), |n| json!(n)),
        Value::F32(f) => json!(*f as f64),
        Value::F64(f) => json!(f),
        Value::String(s) => json!(s.as_str().unwrap()),
        Value::Binary(b) => json!({ "$bytes": hex(b) }),
        Value::Array(a) => J::Array(a.iter().map(typed).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.as_str().unwrap().to_owned(), typed(v))).collect()),
        Value::Ext(..) => unreachable!("not in the model"),
    }
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
}

struct Case {
    name: &'static str,
    cache_key: &'static str,
    kind: Kind,
    codec: PayloadCodec,
    token: Token,
    fresh_ms: u64,
    grace_ms: u64,
    load_us: u32,
    tags: Vec<Tag>,
    value: Option<Value>,
}

fn case(name: &'static str, codec: PayloadCodec, value: Value) -> Case {
    Case {
        name,
        cache_key: "shop:user:v3:id=42:locale=en-GB",
        kind: Kind::Value,
        codec,
        token: Token { epoch: 1_733_250_000_123_456, counter: 7 },
        fresh_ms: 60_000,
        grace_ms: 5_000,
        load_us: 1_200,
        tags: Vec::new(),
        value: Some(value),
    }
}

fn cases() -> Vec<Case> {
    let user = map(vec![
        ("id", Value::from(42)),
        ("name", Value::from("Ada")),
        ("tags", Value::Array(vec!["admin".into(), "ops".into()])),
        ("score", Value::F64(1.5)),
        ("active", Value::Boolean(true)),
        ("manager", Value::Nil),
        ("avatar", Value::Binary(vec![0x00, 0xff, 0x10])),
    ]);
    let rows = Value::Array(
        (0..200)
            .map(|i| {
                map(vec![
                    ("id", Value::from(i)),
                    ("name", Value::from(format!("user-{i}"))),
                    ("ok", Value::Boolean(true)),
                ])
            })
            .collect(),
    );
    let mut out = vec![
        case("msgpack-map", PayloadCodec::MsgPack, user),
        case("raw-bytes", PayloadCodec::Raw, Value::Binary(vec![0, 1, 0xfe, 0xff])),
        case("raw-empty", PayloadCodec::Raw, Value::Binary(vec![])),
        case("utf8-text", PayloadCodec::Utf8, Value::from("héllo, 世界")),
        case(
            "json-document",
            PayloadCodec::Json,
            map(vec![
                ("b", Value::Array(vec![1.into(), Value::F64(2.5), "x".into(), Value::Nil, false.into()])),
                ("a", Value::from(-3)),
            ]),
        ),
        case(
            "msgpack-integers",
            PayloadCodec::MsgPack,
            Value::Array(vec![
                Value::from(0),
                Value::from(-1),
                Value::from(-128),
                Value::from(-32769),
                Value::from(i64::MIN),
                Value::from(u64::MAX),
                Value::from(1u64 << 53),
                Value::F64(-0.25),
            ]),
        ),
        case("compressed-msgpack", PayloadCodec::MsgPack, rows),
        case("compressed-utf8", PayloadCodec::Utf8, Value::from("healcache ".repeat(300))),
        case("app-codec-200", PayloadCodec::App(200), Value::Binary(b"\x01app-defined".to_vec())),
    ];
    let mut never = case("never-expiring", PayloadCodec::Utf8, Value::from("forever"));
    (never.fresh_ms, never.grace_ms, never.load_us) = (NEVER, 0, 0);
    out.push(never);
    let mut tagged = case("tagged", PayloadCodec::Utf8, Value::from("with tags"));
    tagged.tags = vec![Tag { name: "user:42".into(), version: 3 }, Tag { name: "org:7".into(), version: 0 }];
    out.push(tagged);
    for (name, kind) in [("negative-entry", Kind::NotFound), ("tombstone", Kind::Tombstone)] {
        let mut c = case(name, PayloadCodec::Raw, Value::Nil);
        (c.kind, c.value, c.grace_ms) = (kind, None, 0);
        out.push(c);
    }
    out
}

fn payload_of(c: &Case) -> Vec<u8> {
    c.value.as_ref().map_or_else(Vec::new, |v| codec::encode_value(c.codec, v).unwrap())
}

fn encode_case(c: &Case) -> Vec<u8> {
    let key = l2_keys("hc1", c.cache_key).value;
    codec::encode_tagged(
        key.as_bytes(),
        c.kind,
        c.codec,
        c.token,
        c.fresh_ms,
        c.grace_ms,
        c.load_us,
        &c.tags,
        &payload_of(c),
        &Limits::default(),
    )
    .unwrap()
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Value => "value",
        Kind::NotFound => "not_found",
        Kind::Tombstone => "tombstone",
    }
}

/// Changes bytes of a good envelope, then (when `reseal`) recomputes its checksum so that the
/// check under test is the one that refuses it.
fn broken(name: &'static str, error: &str, reseal: bool, f: impl Fn(&mut Vec<u8>)) -> (J, Vec<u8>, String) {
    let c = &cases()[3]; // utf8-text
    let key = l2_keys("hc1", c.cache_key).value;
    let mut env = encode_case(c);
    f(&mut env);
    if reseal && env.len() >= HEADER_LEN {
        let sum = xxhash_rust::xxh3::xxh3_64(&[key.as_bytes(), &env[HEADER_LEN..]].concat());
        env[48..56].copy_from_slice(&sum.to_be_bytes());
    }
    (json!({ "name": name, "key": key, "hex": hex(&env), "stage": "envelope", "error": error }), env, key)
}

fn malformed() -> Vec<J> {
    let mut out: Vec<J> = vec![
        broken("short", "Short", false, |e| e.truncate(10)).0,
        broken("bad-magic", "BadMagic", false, |e| e[0] = b'H').0,
        broken("version-2", "Version", false, |e| e[2] = 2).0,
        broken("hmac-flag-refused", "Flags", false, |e| e[3] |= 1 << 4).0,
        broken("unknown-flag-bit-7", "Flags", false, |e| e[3] |= 1 << 7).0,
        broken("not-found-and-tombstone", "Flags", false, |e| e[3] |= 0b110).0,
        broken("reserved-byte-set", "Reserved", false, |e| e[6] = 1).0,
        broken("unassigned-codec-4", "Codec", false, |e| e[4] = 4).0,
        broken("payload-len-2^32-1", "TooLarge", true, |e| e[44..48].copy_from_slice(&[0xff; 4])).0,
        broken("lz4-ratio-over-1000", "Ratio", true, |e| {
            e.truncate(HEADER_LEN + 10);
            e[3] |= 1;
            e[44..48].copy_from_slice(&10_001u32.to_be_bytes());
        })
        .0,
        broken("truncated-payload", "Length", true, |e| {
            e.pop();
        })
        .0,
        broken("flipped-payload-bit", "Checksum", false, |e| {
            let last = e.len() - 1;
            e[last] ^= 1;
        })
        .0,
        broken("bad-lz4-block", "Decompress", true, |e| {
            e[3] |= 1;
            e[44..48].copy_from_slice(&100u32.to_be_bytes());
            e[HEADER_LEN] = 0xff;
        })
        .0,
        broken("tombstone-with-payload", "Unexpected", true, |e| e[3] |= 0b100).0,
        broken("seventeen-tags", "Tags", true, |e| {
            e[3] |= 0b1000;
            e.insert(HEADER_LEN, 17);
        })
        .0,
    ];
    // a good envelope read under another key: the checksum binds value and key
    let (mut v, _, _) = broken("read-under-another-key", "Checksum", false, |_| {});
    v["key"] = json!(l2_keys("hc1", "shop:user:v3:id=43:locale=en-GB").value);
    out.push(v);
    // envelopes that are fine but whose payload is not a value of their codec
    let key = l2_keys("hc1", "planted").value;
    let pickle = b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x8c\x04true\x94\x85\x94R\x94.";
    let int_key = {
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &Value::Map(vec![(Value::from(1), Value::from("x"))])).unwrap();
        b
    };
    let deep = [vec![0x91u8; 65], vec![0xc0]].concat();
    for (name, codec, payload, error) in [
        ("pickle-as-msgpack", PayloadCodec::MsgPack, pickle.to_vec(), "Payload"),
        ("msgpack-int-map-key", PayloadCodec::MsgPack, int_key, "NotEncodable"),
        ("msgpack-nested-65", PayloadCodec::MsgPack, deep, "Depth"),
        ("utf8-invalid", PayloadCodec::Utf8, vec![0xc3, 0x28], "Payload"),
        ("json-truncated", PayloadCodec::Json, b"{\"a\": [1, 2".to_vec(), "Payload"),
    ] {
        let env = codec::encode(
            key.as_bytes(),
            Kind::Value,
            codec,
            Token::default(),
            1000,
            0,
            0,
            &payload,
            &Limits::default(),
        )
        .unwrap();
        out.push(json!({ "name": name, "key": key, "hex": hex(&env), "stage": "payload", "error": error }));
    }
    out
}

fn envelope_vectors() -> J {
    let valid: Vec<J> = cases()
        .iter()
        .map(|c| {
            let env = encode_case(c);
            let payload = payload_of(c);
            json!({
                "name": c.name,
                "key": l2_keys("hc1", c.cache_key).value,
                "hex": hex(&env),
                "kind": kind_name(c.kind),
                "codec": c.codec.to_byte(),
                "epoch": c.token.epoch,
                "counter": c.token.counter,
                "fresh_ms": c.fresh_ms,
                "grace_ms": c.grace_ms,
                "load_us": c.load_us,
                "payload_len": payload.len(),
                "compressed": env[3] & codec::flags::LZ4 != 0,
                "tags": c.tags.iter().map(|t| json!({ "name": t.name, "version": t.version })).collect::<Vec<_>>(),
                "value": c.value.as_ref().map_or(J::Null, typed),
            })
        })
        .collect();
    json!({
        "about": "healcache envelope v1 test vectors (docs/wire-format.md). `key` is the Redis key the envelope is stored under; `value` is JSON with bytes as {\"$bytes\": hex}; a malformed vector's `error` names the refusal and `stage` says whether the envelope or its payload is refused.",
        "limits": { "max_entry_bytes": Limits::default().max_entry_bytes, "compress_min_bytes": Limits::default().compress_min_bytes },
        "valid": valid,
        "malformed": malformed(),
    })
}

fn key_vectors() -> J {
    let users = KeySpace::new("shop").unwrap().entity("user", 3).unwrap().dims(["id", "locale"]).unwrap();
    let odd = KeySpace::new("a:b").unwrap().entity("e=f", 0).unwrap().dims(["x y", "z"]).unwrap();
    let mut spaces = Vec::new();
    for (ks, ns, entity, version, dims, rows) in [
        (
            &users,
            "shop",
            "user",
            3,
            vec!["id", "locale"],
            vec![
                vec![json!(42), json!("en-GB")],
                vec![json!("42"), json!("en-GB")],
                vec![json!(-7), json!("")],
                vec![json!(u64::MAX), json!("*?[]\\{}")],
                vec![json!("a:b=c%d"), json!("é 世界\n")],
            ],
        ),
        (&odd, "a:b", "e=f", 0, vec!["x y", "z"], vec![vec![json!("1"), json!(2)]]),
    ] {
        let cases: Vec<J> = rows
            .iter()
            .map(|row| {
                let vals: Vec<(&str, DimValue)> = dims
                    .iter()
                    .zip(row)
                    .map(|(d, v)| {
                        let dv = match v {
                            J::String(s) => DimValue::Str(s),
                            J::Number(n) if n.is_i64() => DimValue::Int(n.as_i64().unwrap()),
                            J::Number(n) => DimValue::Uint(n.as_u64().unwrap()),
                            _ => unreachable!(),
                        };
                        (*d, dv)
                    })
                    .collect();
                let key = ks.key(&vals).unwrap();
                let l2 = l2_keys("hc1", &key);
                json!({ "values": row, "key": key, "slot": slot(key.as_bytes()), "l2_value": l2.value, "l2_lock": l2.lock, "l2_fence": l2.fence })
            })
            .collect();
        let pattern = ks.pattern(&[(dims[1], DimValue::Str("en-GB"))]).unwrap();
        spaces.push(json!({
            "namespace": ns, "entity": entity, "version": version, "dims": dims, "cases": cases,
            "pattern": { "fixed": { dims[1]: "en-GB" }, "glob": pattern.glob(), "l2_glob": pattern.l2_glob("hc1") },
        }));
    }
    let plain: Vec<J> = ["123456789", "user:42", "", "{user1}:cart", "é", "a b\tc"]
        .iter()
        .map(|k| {
            let l2 = l2_keys("hc1", k);
            json!({ "prefix": "hc1", "cache_key": k, "slot": slot(k.as_bytes()), "value": l2.value, "lock": l2.lock, "fence": l2.fence })
        })
        .collect();
    let tags: Vec<J> = [("shop", "user:42"), ("a:b", "{c}")]
        .iter()
        .map(|(ns, tag)| json!({ "prefix": "hc1", "namespace": ns, "tag": tag, "key": tag_key("hc1", ns, tag) }))
        .collect();
    let bus: Vec<J> = ["shop", "{x}*"]
        .iter()
        .map(|ns| json!({ "prefix": "hc1", "namespace": ns, "channel": bus_channel("hc1", ns) }))
        .collect();
    json!({
        "about": "healcache key vectors (docs/wire-format.md): KeySpace keys (percent-encoding over A-Z a-z 0-9 - . _ ~, integers as decimal) and the L2 layout <prefix>:{<slot as 4 hex>}:v|l:<key>, fence <prefix>:{<slot>}:f, slot = CRC16-XMODEM(key) mod 16384; tag version keys <prefix>:{<slot of ns:tag>}:t:<ns>:<tag> and bus channels <prefix>:{<ns>}:bus, ns and tag percent-encoded.",
        "spaces": spaces,
        "plain": plain,
        "tags": tags,
        "bus": bus,
    })
}

/// Writes the file in write mode; otherwise checks that it holds exactly what the code makes now.
fn check_or_write(name: &str, made: &J) -> J {
    let p = path(name);
    if std::env::var_os("HEALCACHE_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, serde_json::to_string_pretty(made).unwrap() + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let file: J = serde_json::from_str(&text).unwrap();
    assert!(
        &file == made,
        "{name} differs from what the code writes now: a wire change needs a new version; if intended, rerun with HEALCACHE_WRITE_VECTORS=1"
    );
    file
}

#[test]
fn envelope_vectors_hold() {
    let file = check_or_write("envelope.json", &envelope_vectors());
    let lim = Limits::default();
    // and decode what the file says, independently of how it was made
    for v in file["valid"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let d = codec::decode(v["key"].as_str().unwrap().as_bytes(), &unhex(v["hex"].as_str().unwrap()), &lim)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(kind_name(d.header.kind), v["kind"], "{name}");
        assert_eq!(d.header.codec.to_byte() as u64, v["codec"].as_u64().unwrap(), "{name}");
        assert_eq!(d.header.token.epoch, v["epoch"].as_u64().unwrap(), "{name}");
        assert_eq!(d.header.token.counter, v["counter"].as_u64().unwrap(), "{name}");
        assert_eq!(d.header.fresh_ms, v["fresh_ms"].as_u64().unwrap(), "{name}");
        assert_eq!(d.header.payload_len as u64, v["payload_len"].as_u64().unwrap(), "{name}");
        assert_eq!(d.tags.len(), v["tags"].as_array().unwrap().len(), "{name}");
        if d.header.kind == Kind::Value {
            let value = codec::decode_value(d.header.codec, &d.payload).unwrap();
            assert_eq!(typed(&value), v["value"], "{name}");
        }
    }
    let compressed = file["valid"].as_array().unwrap().iter().filter(|v| v["compressed"] == true).count();
    assert_eq!(compressed, 2);
    for v in file["malformed"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let got = codec::decode(v["key"].as_str().unwrap().as_bytes(), &unhex(v["hex"].as_str().unwrap()), &lim)
            .and_then(|d| codec::decode_value(d.header.codec, &d.payload).map(|_| ()));
        let err: CodecError = got.expect_err(name);
        assert_eq!(err.code(), v["error"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn key_vectors_hold() {
    let file = check_or_write("keys.json", &key_vectors());
    for p in file["plain"].as_array().unwrap() {
        let l2 = l2_keys(p["prefix"].as_str().unwrap(), p["cache_key"].as_str().unwrap());
        assert_eq!(
            (l2.value.as_str(), l2.lock.as_str(), l2.fence.as_str()),
            (p["value"].as_str().unwrap(), p["lock"].as_str().unwrap(), p["fence"].as_str().unwrap())
        );
    }
    assert_eq!(file["plain"][0]["slot"], 0x31c3);
}
