//! An L2 hit (L1 cold) beside a raw redis-crate GET of the same bytes, against one real
//! redis-server on loopback, interleaved rounds in one run; prints each side's median per
//! operation and the ratio. `cargo bench -p healcache-redis --bench l2_hit`
//!
//! The healcache side is a `get_or_load` from a cache whose L1 does not hold the key: one READ
//! script call (value and PTTL), the envelope's checks (checksum over key and payload), the
//! MessagePack decode, and the L1 insert. The peer is a plain `GET` on a multiplexed
//! connection awaited from the same thread with the same runtime, then nothing else.

use std::time::{Duration, Instant};

use healcache::tier::MsgPack;
use healcache::Cache;
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::RedisServer;
use serde_json::{json, Value};

const KEYS: usize = 2000;
const ROUNDS: usize = 15;

fn cache(url: &str) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .max_entries(1_000_000)
        .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let r = RedisServer::start().expect("redis-server");
    let url = r.url();
    let writer = cache(&url);
    // 64-byte payloads, as the design's figures use
    for i in 0..KEYS {
        writer.set(&format!("k{i}"), json!({"id": i, "name": "a name of some length", "pad": "xxxxxxxx"})).unwrap();
    }
    while writer.stats().l2_writes < KEYS as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = futures::executor::block_on(healcache_rt::spawn(async move {
        client.get_multiplexed_async_connection().await.unwrap()
    }))
    .unwrap();
    let value_keys: Vec<String> = (0..KEYS).map(|i| healcache::keys::l2_keys("hc1", &format!("k{i}")).value).collect();
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // healcache: a fresh cache each round, so every read is an L1 miss and an L2 hit
        let c = cache(&url);
        let t = Instant::now();
        for i in 0..KEYS {
            let v = futures::executor::block_on(c.get_or_load(&format!("k{i}"), || async {
                Err::<Value, _>(std::io::Error::other("must be an L2 hit"))
            }))
            .unwrap();
            std::hint::black_box(v);
        }
        let o = t.elapsed().as_nanos() as f64 / KEYS as f64;
        assert_eq!(c.stats().l2_hits, KEYS as u64);
        let t = Instant::now();
        for k in &value_keys {
            let mut cn = conn.clone();
            let k = k.clone();
            let v: Vec<u8> = futures::executor::block_on(healcache_rt::spawn(async move {
                redis::cmd("GET").arg(k).query_async::<Vec<u8>>(&mut cn).await.unwrap()
            }))
            .unwrap();
            std::hint::black_box(v);
        }
        let p = t.elapsed().as_nanos() as f64 / KEYS as f64;
        if round > 0 {
            ours.push(o);
            peer.push(p);
        }
    }
    let _ = &mut conn;
    let (o, p) = (median(ours), median(peer));
    println!(
        "L2 hit, L1 cold (64 B value): healcache {:.1} us, redis GET {:.1} us, ratio {:.2}x (bar 1.5x)",
        o / 1e3,
        p / 1e3,
        o / p
    );
}
