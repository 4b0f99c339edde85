//! The shared tier's wire protocol: envelope encode and decode (MessagePack payload) for 64 B,
//! 1 KiB and 64 KiB JSON-like documents, and `KeySpace::key`. `cargo bench -p healcache --bench codec`.
//! Prints the lz4 ratio of each document first (stored bytes / payload bytes).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use healcache::codec::{self, Kind, Limits, PayloadCodec, Token};
use healcache::keys::{l2_keys, KeySpace};
use rmpv::Value;

/// The typed twin of a `document` row, for the serde helpers.
#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    id: u64,
    name: String,
    email: String,
    active: bool,
    score: f64,
}

/// A list of user records, about `bytes` long as MessagePack.
fn document(bytes: usize) -> Value {
    let row = |i: usize| {
        Value::Map(vec![
            ("id".into(), Value::from(i as u64)),
            ("name".into(), Value::from(format!("user-{i}"))),
            ("email".into(), Value::from(format!("user-{i}@example.com"))),
            ("active".into(), Value::Boolean(!i.is_multiple_of(3))),
            ("score".into(), Value::F64(i as f64 * 0.5)),
        ])
    };
    let mut rows = Vec::new();
    while codec::encode_msgpack(&Value::Array(rows.clone())).unwrap().len() < bytes {
        rows.push(row(rows.len()));
    }
    if bytes < 64 {
        rows.truncate(1);
    }
    Value::Array(rows)
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let key = l2_keys("hc1", "shop:user:v3:id=42:locale=en-GB").value;
    let mut g = c.benchmark_group("codec");
    g.sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for (name, size) in [("64B", 64), ("1KiB", 1024), ("64KiB", 64 * 1024)] {
        let doc = document(size);
        let payload = codec::encode_msgpack(&doc).unwrap();
        let env = codec::encode(
            key.as_bytes(),
            Kind::Value,
            PayloadCodec::MsgPack,
            Token::default(),
            60_000,
            5_000,
            0,
            &payload,
            &limits,
        )
        .unwrap();
        let stored = env.len() - codec::HEADER_LEN;
        println!(
            "codec/{name}: payload {} B, stored {stored} B, ratio {:.3}",
            payload.len(),
            stored as f64 / payload.len() as f64
        );
        g.throughput(Throughput::Bytes(payload.len() as u64));
        g.bench_function(format!("encode_value_and_envelope/{name}"), |b| {
            b.iter(|| {
                let p = codec::encode_msgpack(black_box(&doc)).unwrap();
                codec::encode(
                    key.as_bytes(),
                    Kind::Value,
                    PayloadCodec::MsgPack,
                    Token::default(),
                    60_000,
                    5_000,
                    0,
                    &p,
                    &limits,
                )
                .unwrap()
            })
        });
        g.bench_function(format!("decode_envelope_and_value/{name}"), |b| {
            b.iter(|| {
                let d = codec::decode(key.as_bytes(), black_box(&env), &limits).unwrap();
                codec::decode_msgpack(&d.payload).unwrap()
            })
        });
        g.bench_function(format!("from_msgpack_typed/{name}"), |b| {
            b.iter(|| codec::from_msgpack::<Vec<Row>>(black_box(&payload)).unwrap())
        });
        g.bench_function(format!("decode_envelope_only/{name}"), |b| {
            b.iter(|| codec::decode(key.as_bytes(), black_box(&env), &limits).unwrap())
        });
    }
    g.finish();
    let users = KeySpace::new("shop").unwrap().entity("user", 3).unwrap().dims(["id", "locale"]).unwrap();
    c.bench_function("keys/key", |b| {
        b.iter(|| users.key(&[("id", black_box(42u64).into()), ("locale", black_box("en-GB").into())]).unwrap())
    });
    c.bench_function("keys/l2_keys", |b| b.iter(|| l2_keys("hc1", black_box("shop:user:v3:id=42:locale=en-GB"))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
