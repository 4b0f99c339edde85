//! What the fleet features cost where it matters, against one real redis-server on loopback,
//! interleaved rounds in one run; prints medians and ratios.
//! `cargo bench -p healcache-redis --bench fleet`
//!
//! 1. An L1 hit on a cache backed by Redis (bus subscribed, so every read-through hit checks the
//!    "trusted since" stamp) beside an L1 hit on a cache without a shared tier: `get_or_load`
//!    and `get` on 2,000 keys held in L1. Bar: 1.05x.
//! 2. A fenced write (the WRITE script: fence record, token, value and expiry in one call) beside a
//!    plain `SET` of the same envelope bytes with `PX`, each awaited one at a time on the same
//!    kind of multiplexed connection through the same runtime. Bar: SET + 5 us. Also the write
//!    script called directly like the SET (its cost in Redis, apart from the transport's work).
//! 3. The same two writes awaited in turn by one task on the I/O runtime, with no thread hop
//!    per write (how an async Rust caller meets them, and how the design reference measured):
//!    the mean write, and the median write of each round (the design reference gave p50s).
//! 4. The same two writes alternating write by write (which of the pair goes first alternates
//!    too): the median of the paired differences, fenced minus the `SET` beside it. Two writes
//!    a few microseconds apart meet the same state of this VM, whose drifts move whole series
//!    by more than the bar; this is the row the bar is read from. A third write in each turn,
//!    the same `SET` made by a script that does nothing else, shows what running any script
//!    costs on this server, and a fourth, the write script sent directly as the `SET` is, what
//!    the fence's own work adds; the rest is the transport's own (a write with none waiting
//!    before it goes straight to the connection, without the write queue's hop).
//!
//! Every write names its slot's fence epoch as last seen, as a cache's tier does (the first
//! round, which learns them, is not counted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use healcache::codec::{self, Kind, Limits, PayloadCodec, Token};
use healcache::tier::epochs::EpochHints;
use healcache::tier::scripts::{seen_token, split_envelope};
use healcache::tier::{Expect, MsgPack, Transport, WriteReply, WriteRequest};
use healcache::Cache;
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::RedisServer;
use serde_json::{json, Value};

const KEYS: usize = 2000;
const PASSES: usize = 50;
const WRITES: usize = 2000;
const ROUNDS: usize = 11;

/// The fence epochs seen per prefix, as a cache's tier keeps them for its prefix: every write
/// names its slot's, as the tier's do.
fn epochs(prefix: &str) -> Arc<EpochHints> {
    static SEEN: Mutex<Option<HashMap<String, Arc<EpochHints>>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap();
    Arc::clone(seen.get_or_insert_with(HashMap::new).entry(prefix.to_string()).or_default())
}

/// Keeps the epoch of a written token, as the tier does.
fn learn(prefix: &str, i: usize, reply: &WriteReply) {
    if let WriteReply::Written(t) = reply {
        epochs(prefix).learn(EpochHints::slot_of(&format!("w{i}")), t.epoch);
    }
}

/// Keeps the epoch a WRITE_SEEN reply names (a bare counter: the one the envelope named).
fn learn_reply(prefix: &str, i: usize, envelope: &[u8], reply: &redis::Value) {
    let token = match reply {
        redis::Value::Int(c) => seen_token(envelope, *c),
        redis::Value::Array(a) => match a.as_slice() {
            [_, redis::Value::Int(e), redis::Value::Int(c)] => Some(Token { epoch: *e as u64, counter: *c as u64 }),
            _ => None,
        },
        _ => None,
    };
    learn(prefix, i, &WriteReply::Written(token.expect("a written token")));
}

/// The L2 keys of write `i` under `prefix`, and the envelope of `payload` for them, naming the
/// slot's fence epoch as last seen.
fn envelope(prefix: &str, i: usize, payload: &[u8]) -> (healcache::keys::L2Keys, Vec<u8>) {
    let key = format!("w{i}");
    let keys = healcache::keys::l2_keys(prefix, &key);
    let e = codec::encode(
        keys.value.as_bytes(),
        Kind::Value,
        PayloadCodec::Raw,
        Token { epoch: epochs(prefix).get(EpochHints::slot_of(&key)), counter: 0 },
        60_000,
        0,
        0,
        payload,
        &Limits::default(),
    );
    (keys, e.unwrap())
}

/// Write `i` under `prefix` of `payload` as the transport takes it: unconditional, 60 s to live.
fn write_request(prefix: &str, i: usize, payload: &[u8]) -> WriteRequest {
    let (keys, envelope) = envelope(prefix, i, payload);
    WriteRequest { keys, envelope, px_ms: 60_000, expect: Expect::Any, deadline: Duration::from_secs(5), release: None }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn builder() -> healcache::CacheBuilder<Value> {
    Cache::builder().timer(IoTimer).spawner(IoSpawner).max_entries(100_000)
}

/// Nanoseconds per L1 hit over every key, `PASSES` times: read-through and plain `get`.
fn hits(c: &Cache<Value>, keys: &[String]) -> (f64, f64) {
    let t = Instant::now();
    for _ in 0..PASSES {
        for k in keys {
            let v = c
                .get_or_load(k, || async { Err::<Value, _>(std::io::Error::other("must be an L1 hit")) })
                .now_or_never()
                .expect("an L1 hit answers at once")
                .unwrap();
            std::hint::black_box(v);
        }
    }
    let through = t.elapsed().as_nanos() as f64 / (PASSES * keys.len()) as f64;
    let t = Instant::now();
    for _ in 0..PASSES {
        for k in keys {
            std::hint::black_box(c.get(k));
        }
    }
    (through, t.elapsed().as_nanos() as f64 / (PASSES * keys.len()) as f64)
}

fn main() {
    let r = RedisServer::start().expect("redis-server");
    let url = r.url();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();

    // 1. L1 hits
    let backed = builder().shared_tier(RedisTransport::connect(&url).unwrap(), MsgPack::new()).build().unwrap();
    let plain = builder().build().unwrap();
    for (i, k) in keys.iter().enumerate() {
        let v = json!({"id": i, "name": "a name of some length"});
        backed.set(k, v.clone()).unwrap();
        plain.set(k, v).unwrap();
    }
    while backed.stats().l2_writes < KEYS as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (mut through, mut get) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // alternate which side goes first, so neither always runs on a warmer cache
        let (b, p) = if round % 2 == 0 {
            let b = hits(&backed, &keys);
            (b, hits(&plain, &keys))
        } else {
            let p = hits(&plain, &keys);
            (hits(&backed, &keys), p)
        };
        if round > 0 {
            through.push(b.0 / p.0);
            get.push(b.1 / p.1);
        }
    }
    assert_eq!(backed.stats().l2_hits, 0, "every read was an L1 hit");
    println!(
        "L1 hit, Redis-backed / plain: get_or_load {:.3}x, get {:.3}x (median of {} interleaved rounds; bar 1.05x)",
        median(through),
        median(get),
        ROUNDS - 1
    );

    // 2. fenced write against SET
    let transport = RedisTransport::connect(&url).unwrap();
    futures::executor::block_on(transport.probe()).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = futures::executor::block_on(healcache_rt::spawn(async move {
        client.get_multiplexed_async_connection().await.unwrap()
    }))
    .unwrap();
    let payload = vec![b'x'; 64]; // 64 bytes, as the design's figures use
    let script = redis::Script::new(healcache::tier::scripts::WRITE_SEEN);
    let (mut ours, mut peer, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..WRITES {
            let r = futures::executor::block_on(transport.write(write_request("bench", i, &payload))).unwrap();
            learn("bench", i, &r);
        }
        let o = t.elapsed().as_nanos() as f64 / WRITES as f64;
        let t = Instant::now();
        for i in 0..WRITES {
            // the same work on the caller's side: the key and the envelope built, then sent
            let (keys, envelope) = envelope("peer", i, &payload);
            let mut cn = conn.clone();
            futures::executor::block_on(healcache_rt::spawn(async move {
                redis::cmd("SET").arg(keys.value).arg(envelope).arg("PX").arg(60_000).query_async::<()>(&mut cn).await
            }))
            .unwrap()
            .unwrap();
        }
        let p = t.elapsed().as_nanos() as f64 / WRITES as f64;
        // the write script called directly, as the SET is: what the script costs in Redis,
        // apart from the transport's work
        let t = Instant::now();
        for i in 0..WRITES {
            let (keys, envelope) = envelope("direct", i, &payload);
            let mut cn = conn.clone();
            let script = script.clone();
            let reply = futures::executor::block_on(healcache_rt::spawn(async move {
                let (head, tail) = split_envelope(&envelope);
                let r = script
                    .key(keys.value)
                    .key(keys.fence)
                    .arg("")
                    .arg(head)
                    .arg(tail)
                    .arg(60_000)
                    .invoke_async::<redis::Value>(&mut cn)
                    .await;
                r.map(|r| (r, envelope))
            }))
            .unwrap()
            .unwrap();
            learn_reply("direct", i, &reply.1, &reply.0);
        }
        let d = t.elapsed().as_nanos() as f64 / WRITES as f64;
        if round > 0 {
            ours.push(o);
            peer.push(p);
            direct.push(d);
        }
    }
    // 3. the same writes awaited one at a time by a task on the I/O runtime (as an async caller
    //    awaits them, and as the design reference measured them): no thread hop per write
    let (mut ours_rt, mut peer_rt, mut ours_p50, mut peer_p50) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (t, c) = (transport.clone(), conn.clone());
        let pl = payload.clone();
        let (o, p) = futures::executor::block_on(healcache_rt::spawn(async move {
            // alternate which goes first, so neither always runs on a warmer connection
            let mut o = (0.0, 0.0);
            if round % 2 == 0 {
                o = in_runtime_fenced(&t, &pl).await;
            }
            let p = in_runtime_set(&c, &pl).await;
            if round % 2 == 1 {
                o = in_runtime_fenced(&t, &pl).await;
            }
            (o, p)
        }))
        .unwrap();
        if round > 0 {
            ours_rt.push(o.0);
            peer_rt.push(p.0);
            ours_p50.push(o.1);
            peer_p50.push(p.1);
        }
    }
    // 4. write by write
    let (mut diffs, mut floor_diffs, mut direct_diffs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fenced_p50, mut set_p50) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (t, c) = (transport.clone(), conn.clone());
        let pl = payload.clone();
        let r = futures::executor::block_on(healcache_rt::spawn(async move { paired(&t, &c, &pl).await })).unwrap();
        if round > 0 {
            diffs.push(r.diff);
            floor_diffs.push(r.floor_diff);
            direct_diffs.push(r.direct_diff);
            fenced_p50.push(r.fenced);
            set_p50.push(r.set);
        }
    }
    let (d_lo, d_hi) = diffs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    let (o_rt, p_rt) = (median(ours_rt), median(peer_rt));
    let (o_p50, p_p50) = (median(ours_p50), median(peer_p50));
    let (o, p, d) = (median(ours), median(peer), median(direct));
    println!(
        "L2 write: fenced {:.1} us, SET {:.1} us, difference {:+.1} us, ratio {:.2}x (bar: SET + 5 us); \
         the write script called directly {:.1} us",
        o / 1e3,
        p / 1e3,
        (o - p) / 1e3,
        o / p,
        d / 1e3
    );
    println!(
        "L2 write, awaited on the I/O runtime: fenced {:.1} us, SET {:.1} us, difference {:+.1} us, ratio {:.2}x \
         (bar: SET + 5 us); median write: fenced {:.1} us, SET {:.1} us, difference {:+.1} us",
        o_rt / 1e3,
        p_rt / 1e3,
        (o_rt - p_rt) / 1e3,
        o_rt / p_rt,
        o_p50 / 1e3,
        p_p50 / 1e3,
        (o_p50 - p_p50) / 1e3
    );
    println!(
        "L2 write, alternating write by write on the I/O runtime: fenced minus SET {:+.1} us \
         (median over rounds of each round's median paired difference; rounds {:+.1} to {:+.1} us; bar: \
         SET + 5 us); median write: fenced {:.1} us, SET {:.1} us; minus SET, a script that only SETs {:+.1} us \
         (what any script costs here), the write script sent directly {:+.1} us (the fence's work; the rest is \
         the transport's)",
        median(diffs) / 1e3,
        d_lo / 1e3,
        d_hi / 1e3,
        median(fenced_p50) / 1e3,
        median(set_p50) / 1e3,
        median(floor_diffs) / 1e3,
        median(direct_diffs) / 1e3
    );
}

/// A fenced write, a plain `SET ... PX` of the same bytes, the same `SET` made by a script that
/// does nothing else, and the write script sent directly as the `SET` is (not through the
/// transport), in turn write by write (the order rotating), each timed alone
/// (requests built before the clock starts): the medians of the paired differences with the
/// `SET` (ns), and the median fenced and `SET` write.
async fn paired(transport: &RedisTransport, conn: &redis::aio::MultiplexedConnection, payload: &[u8]) -> Paired {
    let mut cn = conn.clone();
    let floor = redis::Script::new(SET_ONLY);
    let script = redis::Script::new(healcache::tier::scripts::WRITE_SEEN);
    let (mut fenced, mut set, mut diff, mut floor_diff, mut direct_diff) = (
        Vec::with_capacity(WRITES),
        Vec::with_capacity(WRITES),
        Vec::with_capacity(WRITES),
        Vec::with_capacity(WRITES),
        Vec::with_capacity(WRITES),
    );
    for i in 0..WRITES {
        let mut request = Some(write_request("pair", i, payload));
        let (floor_keys, _) = envelope("pair-floor", i, payload);
        let (keys, bytes) = envelope("pair-set", i, payload);
        let cmd = redis::cmd("SET").arg(keys.value).arg(&bytes).arg("PX").arg(60_000).clone();
        let mut floor_call = floor.key(floor_keys.value);
        floor_call.arg(&bytes).arg(60_000);
        let (direct_keys, direct_bytes) = envelope("pair-direct", i, payload);
        let mut direct_call = script.key(direct_keys.value);
        let (head, tail) = split_envelope(&direct_bytes);
        direct_call.key(direct_keys.fence).arg("").arg(head).arg(tail).arg(60_000);
        let mut took = [0.0; 4];
        for turn in 0..4 {
            let which = (i + turn) % 4;
            let t = Instant::now();
            match which {
                0 => {
                    let r = transport.write(request.take().expect("written once")).await.unwrap();
                    learn("pair", i, &r);
                }
                1 => cmd.query_async::<()>(&mut cn).await.unwrap(),
                2 => floor_call.invoke_async::<()>(&mut cn).await.unwrap(),
                _ => {
                    let r = direct_call.invoke_async::<redis::Value>(&mut cn).await.unwrap();
                    learn_reply("pair-direct", i, &direct_bytes, &r);
                }
            }
            took[which] = t.elapsed().as_nanos() as f64;
        }
        fenced.push(took[0]);
        set.push(took[1]);
        diff.push(took[0] - took[1]);
        floor_diff.push(took[2] - took[1]);
        direct_diff.push(took[3] - took[1]);
    }
    Paired {
        diff: median(diff),
        floor_diff: median(floor_diff),
        direct_diff: median(direct_diff),
        fenced: median(fenced),
        set: median(set),
    }
}

/// What [`paired`] gives for one round (ns).
struct Paired {
    diff: f64,
    floor_diff: f64,
    direct_diff: f64,
    fenced: f64,
    set: f64,
}

/// The least script that writes: one `SET ... PX`, nothing else. What it costs beyond the same
/// `SET` sent alone is what any script costs on this server, before the fence's own work.
const SET_ONLY: &str = "return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])";

/// Nanoseconds per fenced write (the WRITE script through the ordered queue), awaited in turn:
/// the mean and the median write.
async fn in_runtime_fenced(transport: &RedisTransport, payload: &[u8]) -> (f64, f64) {
    let mut each = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let t = Instant::now();
        let r = transport.write(write_request("bench-rt", i, payload)).await.unwrap();
        learn("bench-rt", i, &r);
        each.push(t.elapsed().as_nanos() as f64);
    }
    (each.iter().sum::<f64>() / WRITES as f64, median(each))
}

/// Nanoseconds per plain `SET ... PX` of the same bytes, awaited in turn: the mean and the median.
async fn in_runtime_set(conn: &redis::aio::MultiplexedConnection, payload: &[u8]) -> (f64, f64) {
    let mut cn = conn.clone();
    let mut each = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let t = Instant::now();
        let (keys, envelope) = envelope("peer-rt", i, payload);
        redis::cmd("SET").arg(keys.value).arg(envelope).arg("PX").arg(60_000).query_async::<()>(&mut cn).await.unwrap();
        each.push(t.elapsed().as_nanos() as f64);
    }
    (each.iter().sum::<f64>() / WRITES as f64, median(each))
}
