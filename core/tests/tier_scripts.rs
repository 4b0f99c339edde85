//! The Lua scripts against a real redis-server (the test kit's: a child on a free loopback port,
//! stopped by its pid), spoken to with a minimal RESP2 client: the core has no Redis client, and
//! these tests need nothing but `EVAL`.
//!
//! Needs `redis-server` on PATH (`bash .ci/setup-server.sh` installs it; CI runs that first).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use healcache::codec::{self, Kind, Limits, PayloadCodec, Token};
use healcache::keys::{l2_keys, L2Keys};
use healcache::tier::scripts::{self, write_result};

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Status(String),
    Error(String),
    Array(Vec<Reply>),
}

impl Reply {
    fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("not an integer: {other:?}"),
        }
    }
    fn bytes(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(b) => b.clone(),
            other => panic!("not a bulk string: {other:?}"),
        }
    }
    fn items(&self) -> Vec<Reply> {
        match self {
            Reply::Array(a) => a.clone(),
            other => panic!("not an array: {other:?}"),
        }
    }
}

struct Redis {
    // the server, stopped by its own pid when dropped (the test kit: a free port picked and held
    // until the server has it, so tests running at once never race for one)
    _server: healcache_testkit::RedisServer,
    conn: BufReader<TcpStream>,
}

impl Redis {
    fn start() -> Redis {
        let server = healcache_testkit::RedisServer::start()
            .expect("redis-server on PATH (install it with `bash .ci/setup-server.sh`)");
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = Redis { _server: server, conn: BufReader::new(stream) };
        assert_eq!(r.cmd(&[b"PING"]), Reply::Status("PONG".into()));
        r
    }

    fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.conn.get_mut().write_all(&out).unwrap();
        self.read()
    }

    fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.conn.read_line(&mut line).unwrap();
        let (kind, rest) = line.trim_end().split_at(1);
        match kind {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" if rest == "-1" => Reply::Nil,
            "$" => {
                let mut b = vec![0; rest.parse::<usize>().unwrap() + 2];
                self.conn.read_exact(&mut b).unwrap();
                b.truncate(b.len() - 2);
                Reply::Bulk(b)
            }
            "*" if rest == "-1" => Reply::Nil,
            "*" => Reply::Array((0..rest.parse::<usize>().unwrap()).map(|_| self.read()).collect()),
            _ => panic!("unexpected reply line {line:?}"),
        }
    }

    fn eval(&mut self, script: &str, keys: &[&str], args: &[&[u8]]) -> Reply {
        let n = keys.len().to_string();
        let mut all: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), n.as_bytes()];
        all.extend(keys.iter().map(|k| k.as_bytes()));
        all.extend_from_slice(args);
        self.cmd(&all)
    }

    /// WRITE; `token` `None` = a plain write.
    fn write(&mut self, k: &L2Keys, token: Option<Token>, env: &[u8], px: &str, lockval: &str) -> Reply {
        let (e, c) = token.map_or((String::new(), String::new()), |t| (t.epoch.to_string(), t.counter.to_string()));
        self.eval(
            scripts::WRITE,
            &[&k.value, &k.fence, &k.lock],
            &[e.as_bytes(), c.as_bytes(), env, px.as_bytes(), lockval.as_bytes()],
        )
    }

    /// WRITE_SEEN of `env` under `cond` (`""`, `absent`, or the token bytes expected).
    fn write_seen(&mut self, k: &L2Keys, cond: &[u8], env: &[u8], px: &str) -> Reply {
        let (head, tail) = scripts::split_envelope(env);
        self.eval(scripts::WRITE_SEEN, &[&k.value, &k.fence], &[cond, head, tail, px.as_bytes()])
    }

    /// The fence record's fields and values.
    fn fence(&mut self, k: &L2Keys) -> Vec<Vec<u8>> {
        self.cmd(&[b"HGETALL", k.fence.as_bytes()]).items().iter().map(Reply::bytes).collect()
    }

    /// ACQUIRE: the token and lock value, or `None` when the lock is held.
    fn acquire(&mut self, k: &L2Keys, owner: &str, lease_ms: u64) -> Option<(Token, String)> {
        let r = self
            .eval(
                scripts::ACQUIRE,
                &[&k.lock, &k.fence, &k.value],
                &[owner.as_bytes(), lease_ms.to_string().as_bytes()],
            )
            .items();
        if r[0].int() == 0 {
            return None;
        }
        let t = Token { epoch: r[1].int() as u64, counter: r[2].int() as u64 };
        Some((t, String::from_utf8(r[3].bytes()).unwrap()))
    }

    /// READ with the default bound.
    fn read_value(&mut self, k: &L2Keys) -> (Option<Vec<u8>>, i64) {
        self.read_within(k, codec::max_envelope_bytes(&Limits::default()))
    }

    /// READ of at most `max` bytes (a longer value answers its length, as an integer).
    fn read_within(&mut self, k: &L2Keys, max: u64) -> (Option<Vec<u8>>, i64) {
        let r = self.eval(scripts::READ, &[&k.value], &[max.to_string().as_bytes()]).items();
        if let Reply::Int(n) = r[0] {
            return (Some(format!("length {n}").into_bytes()), r[1].int());
        }
        let v = match &r[0] {
            Reply::Nil => None,
            b => Some(b.bytes()),
        };
        (v, r[1].int())
    }
}

fn envelope(k: &L2Keys, kind: Kind, payload: &[u8]) -> Vec<u8> {
    codec::encode(
        k.value.as_bytes(),
        kind,
        PayloadCodec::Utf8,
        Token::default(),
        60_000,
        5_000,
        10,
        payload,
        &Limits::default(),
    )
    .unwrap()
}

/// An envelope naming `epoch` as its slot's (what a tier that saw it last sends).
fn naming(k: &L2Keys, epoch: u64, payload: &[u8]) -> Vec<u8> {
    let mut env = envelope(k, Kind::Value, payload);
    env[8..16].copy_from_slice(&epoch.to_be_bytes());
    env
}

/// The token stored under `k`.
fn stored_token(r: &mut Redis, k: &L2Keys) -> Token {
    let (v, _) = r.read_value(k);
    codec::decode(k.value.as_bytes(), &v.unwrap(), &Limits::default()).unwrap().header.token
}

fn written(r: &Reply) -> Token {
    let r = r.items();
    assert_eq!(r[0].int(), write_result::WRITTEN, "{r:?}");
    Token { epoch: r[1].int() as u64, counter: r[2].int() as u64 }
}

fn status(r: &Reply) -> i64 {
    r.items()[0].int()
}

#[test]
fn scripts_against_a_real_redis_server() {
    let mut r = Redis::start();
    let lim = Limits::default();

    // READ of an absent key
    let k = l2_keys("hc1", "user:1");
    assert_eq!(r.read_value(&k), (None, -2));

    // a plain write allocates a token, stamps it into the envelope, sets PX
    let t1 = written(&r.write(&k, None, &envelope(&k, Kind::Value, b"one"), "65000", ""));
    assert!(t1.epoch > 1_600_000_000_000_000, "epoch is TIME in microseconds: {}", t1.epoch);
    assert_eq!(t1.counter, 1);
    let (v, pttl) = r.read_value(&k);
    assert!(pttl > 60_000 && pttl <= 65_000, "{pttl}");
    let d = codec::decode(k.value.as_bytes(), &v.unwrap(), &lim).unwrap();
    assert_eq!((d.header.token, d.payload.as_slice()), (t1, &b"one"[..]));

    // the next plain write: same epoch, next counter
    let t2 = written(&r.write(&k, None, &envelope(&k, Kind::Value, b"two"), "65000", ""));
    assert_eq!((t2.epoch, t2.counter), (t1.epoch, 2));

    // READ refuses a value longer than its bound by its length; at the bound it reads it
    let stored = r.read_value(&k).0.unwrap();
    let n = stored.len() as u64;
    assert_eq!(r.read_within(&k, n).0, Some(stored.clone()), "at the bound");
    assert_eq!(r.read_within(&k, n - 1).0, Some(format!("length {n}").into_bytes()), "past the bound");
    assert_eq!(r.read_within(&l2_keys("hc1", "absent"), 0), (None, -2), "absent, bound 0");

    // REVALIDATE: the 16 token bytes and the PTTL
    let rv = r.eval(scripts::REVALIDATE, &[&k.value], &[]).items();
    assert_eq!(Token::from_bytes(&rv[0].bytes()), Some(t2));
    assert!(rv[1].int() > 0);

    // a rebuild under a lock token writes and releases its lock
    let (ta, lockval) = r.acquire(&k, "node-a", 5000).unwrap();
    assert_eq!((ta.epoch, ta.counter), (t1.epoch, 3));
    assert_eq!(lockval, format!("node-a:{}:3", ta.epoch));
    assert_eq!(r.acquire(&k, "node-b", 5000), None, "the lock is held");
    assert_eq!(written(&r.write(&k, Some(ta), &envelope(&k, Kind::Value, b"rebuilt"), "65000", &lockval)), ta);
    assert_eq!(r.cmd(&[b"EXISTS", k.lock.as_bytes()]), Reply::Int(0));

    // a slow rebuild loses to a plain write made after its token was taken
    let (slow, lockval) = r.acquire(&k, "node-a", 5000).unwrap();
    let newer = written(&r.write(&k, None, &envelope(&k, Kind::Value, b"set meanwhile"), "65000", ""));
    assert!(newer.counter > slow.counter);
    assert_eq!(
        status(&r.write(&k, Some(slow), &envelope(&k, Kind::Value, b"stale"), "65000", &lockval)),
        write_result::NEWER_STORED
    );
    let (v, _) = r.read_value(&k);
    assert_eq!(codec::decode(k.value.as_bytes(), &v.unwrap(), &lim).unwrap().payload, b"set meanwhile");
    // a fenced write leaves the lock alone
    assert_eq!(r.cmd(&[b"GET", k.lock.as_bytes()]), Reply::Bulk(lockval.clone().into_bytes()));
    assert_eq!(r.eval(scripts::RELEASE, &[&k.lock], &[b"someone-else"]), Reply::Int(0));
    assert_eq!(r.eval(scripts::RELEASE, &[&k.lock], &[lockval.as_bytes()]), Reply::Int(1));

    // a delete's tombstone beats a rebuild that began before it
    let (before_delete, lockval) = r.acquire(&k, "node-a", 5000).unwrap();
    written(&r.write(&k, None, &envelope(&k, Kind::Tombstone, b""), "10000", ""));
    assert_eq!(
        status(&r.write(&k, Some(before_delete), &envelope(&k, Kind::Value, b"late"), "65000", &lockval)),
        write_result::NEWER_STORED
    );
    let (v, pttl) = r.read_value(&k);
    assert!(pttl <= 10_000);
    assert_eq!(codec::decode(k.value.as_bytes(), &v.unwrap(), &lim).unwrap().header.kind, Kind::Tombstone);
    r.eval(scripts::RELEASE, &[&k.lock], &[lockval.as_bytes()]);

    // lost fence state (DEL, eviction, restart without persistence) fences out every older token
    let (old, lockval) = r.acquire(&k, "node-a", 5000).unwrap();
    r.cmd(&[b"DEL", k.fence.as_bytes()]);
    assert_eq!(
        status(&r.write(&k, Some(old), &envelope(&k, Kind::Value, b"x"), "65000", &lockval)),
        write_result::EPOCH_CHANGED
    );
    r.eval(scripts::RELEASE, &[&k.lock], &[lockval.as_bytes()]);
    // a token of the new epoch overwrites what was stored under the old one, whatever its counter
    let (renewed, lockval) = r.acquire(&k, "node-b", 5000).unwrap();
    assert_ne!(renewed.epoch, old.epoch);
    assert_eq!(renewed.counter, 1);
    assert!(old.counter > renewed.counter);
    assert_eq!(
        written(&r.write(&k, Some(renewed), &envelope(&k, Kind::Value, b"after loss"), "65000", &lockval)),
        renewed
    );
    let fresh = written(&r.write(&k, None, &envelope(&k, Kind::Value, b"plain"), "65000", ""));
    assert_eq!((fresh.epoch, fresh.counter), (renewed.epoch, 2));

    // no PX: no expiry
    let k2 = l2_keys("hc1", "forever");
    written(&r.write(&k2, None, &envelope(&k2, Kind::Value, b"v"), "", ""));
    assert_eq!(r.read_value(&k2).1, -1);

    // RENEW extends only the holder's lease
    let (_, lockval) = r.acquire(&k2, "node-a", 1000).unwrap();
    assert_eq!(r.eval(scripts::RENEW, &[&k2.lock], &[b"not-mine", b"60000"]), Reply::Int(0));
    assert_eq!(r.eval(scripts::RENEW, &[&k2.lock], &[lockval.as_bytes(), b"60000"]), Reply::Int(1));
    assert!(r.cmd(&[b"PTTL", k2.lock.as_bytes()]).int() > 1000);

    // refused arguments are script errors, and change nothing
    let k3 = l2_keys("hc1", "refused");
    assert!(matches!(r.write(&k3, None, b"not an envelope", "1000", ""), Reply::Error(_)));
    let bad = envelope(&k3, Kind::Value, b"v");
    for (e, c) in [("1", "x"), ("1", "9007199254740992"), ("-1", "1"), ("1.5", "1")] {
        let reply = r.eval(
            scripts::WRITE,
            &[&k3.value, &k3.fence, &k3.lock],
            &[e.as_bytes(), c.as_bytes(), &bad, b"1000", b""],
        );
        assert!(matches!(reply, Reply::Error(_)), "{e} {c}: {reply:?}");
    }
    assert_eq!(r.cmd(&[b"EXISTS", k3.value.as_bytes()]), Reply::Int(0));
}

#[test]
fn tokens_compare_as_numbers_across_byte_boundaries_and_up_to_2_pow_53() {
    let mut r = Redis::start();
    for start in [254u64, 65_534, (1 << 32) - 2, (1 << 53) - 4] {
        let k = l2_keys("hc1", &format!("boundary:{start}"));
        written(&r.write(&k, None, &envelope(&k, Kind::Value, b"seed"), "60000", ""));
        let epoch = written(&r.write(&k, None, &envelope(&k, Kind::Value, b"seed"), "60000", "")).epoch;
        r.cmd(&[b"HSET", k.fence.as_bytes(), &epoch.to_be_bytes(), start.to_string().as_bytes()]);
        // A takes start+1, B takes start+2 (a byte boundary lies between for the first three)
        let (a, la) = r.acquire(&k, "a", 5000).unwrap();
        r.eval(scripts::RELEASE, &[&k.lock], &[la.as_bytes()]);
        let (b, lb) = r.acquire(&k, "b", 5000).unwrap();
        assert_eq!((a.counter, b.counter), (start + 1, start + 2));
        // A writes first (older stored), then B (higher) wins, then A again is fenced out
        assert_eq!(written(&r.write(&k, Some(a), &envelope(&k, Kind::Value, b"a"), "60000", "")), a);
        assert_eq!(written(&r.write(&k, Some(b), &envelope(&k, Kind::Value, b"b"), "60000", &lb)), b);
        assert_eq!(
            status(&r.write(&k, Some(a), &envelope(&k, Kind::Value, b"a"), "60000", "")),
            write_result::NEWER_STORED
        );
        // equal counters are fenced too (a retried write is not applied twice)
        assert_eq!(
            status(&r.write(&k, Some(b), &envelope(&k, Kind::Value, b"b"), "60000", "")),
            write_result::NEWER_STORED
        );
        let (v, _) = r.read_value(&k);
        let d = codec::decode(k.value.as_bytes(), &v.unwrap(), &Limits::default()).unwrap();
        assert_eq!((d.header.token, d.payload.as_slice()), (b, &b"b"[..]));
    }
}

#[test]
fn a_foreign_value_under_the_key_is_overwritten_by_a_token_write() {
    let mut r = Redis::start();
    let k = l2_keys("hc1", "foreign");
    let (t, lockval) = r.acquire(&k, "a", 5000).unwrap();
    // a value some other program left (not an envelope): no token to compare, so it is replaced
    r.cmd(&[b"SET", k.value.as_bytes(), b"hc\x01 plain text from someone else, long enough"]);
    assert_eq!(written(&r.write(&k, Some(t), &envelope(&k, Kind::Value, b"ours"), "60000", &lockval)), t);
    let (v, _) = r.read_value(&k);
    assert_eq!(codec::decode(k.value.as_bytes(), &v.unwrap(), &Limits::default()).unwrap().payload, b"ours");
}

/// The fence record is one field named by the epoch: a write that names the slot's epoch gets
/// its token from one `HINCRBY` and a bare counter back; a write that names none or a stale one
/// is still given a token of the current epoch (and learns it), and leaves no field behind.
#[test]
fn a_write_naming_the_epoch_takes_the_next_counter_and_any_other_is_told_the_epoch() {
    let mut r = Redis::start();
    let k = l2_keys("hc1", "seen:1");
    // no epoch named, no record: a new epoch, counter 1, told in full
    let first = written(&r.write_seen(&k, b"", &naming(&k, 0, b"a"), "60000"));
    assert!(first.epoch > 1_600_000_000_000_000, "TIME in microseconds: {}", first.epoch);
    assert_eq!(first.counter, 1);
    assert_eq!(r.fence(&k), vec![first.epoch.to_be_bytes().to_vec(), b"1".to_vec()]);
    assert_eq!(stored_token(&mut r, &k), first);
    // naming it: the next counter, as a bare integer
    assert_eq!(r.write_seen(&k, b"", &naming(&k, first.epoch, b"b"), "60000"), Reply::Int(2));
    assert_eq!(stored_token(&mut r, &k), Token { epoch: first.epoch, counter: 2 });
    assert_eq!(scripts::seen_token(&naming(&k, first.epoch, b"b"), 2), Some(Token { epoch: first.epoch, counter: 2 }));
    // naming a wrong one: the slot's epoch and the next counter, and no stray field
    let wrong = written(&r.write_seen(&k, b"", &naming(&k, first.epoch + 1, b"c"), "60000"));
    assert_eq!(wrong, Token { epoch: first.epoch, counter: 3 });
    assert_eq!(r.fence(&k), vec![first.epoch.to_be_bytes().to_vec(), b"3".to_vec()]);
    assert_eq!(stored_token(&mut r, &k), wrong);
    let (v, pttl) = r.read_value(&k);
    assert!(pttl > 55_000 && pttl <= 60_000, "{pttl}");
    assert_eq!(codec::decode(k.value.as_bytes(), &v.unwrap(), &Limits::default()).unwrap().payload, b"c");
    // the record lost: a new epoch, even for a writer naming the old one
    r.cmd(&[b"DEL", k.fence.as_bytes()]);
    let after = written(&r.write_seen(&k, b"", &naming(&k, first.epoch, b"d"), "0"));
    assert_ne!(after.epoch, first.epoch);
    assert_eq!(after.counter, 1);
    assert_eq!(r.read_value(&k).1, -1, "px 0: no expiry");
    // a record of another layout (fields e and c) is replaced by a new epoch
    r.cmd(&[b"DEL", k.fence.as_bytes()]);
    r.cmd(&[b"HSET", k.fence.as_bytes(), b"e", b"5", b"c", b"9"]);
    let relaid = written(&r.write_seen(&k, b"", &naming(&k, 5, b"e"), "60000"));
    assert_eq!(relaid.counter, 1);
    assert_eq!(r.fence(&k), vec![relaid.epoch.to_be_bytes().to_vec(), b"1".to_vec()]);
    // the counter's bytes across 2^32 and up to 2^53 - 1
    for c in [(1u64 << 32) - 1, (1 << 53) - 2] {
        r.cmd(&[b"HSET", k.fence.as_bytes(), &relaid.epoch.to_be_bytes(), c.to_string().as_bytes()]);
        assert_eq!(r.write_seen(&k, b"", &naming(&k, relaid.epoch, b"f"), "60000"), Reply::Int(c as i64 + 1));
        assert_eq!(stored_token(&mut r, &k), Token { epoch: relaid.epoch, counter: c + 1 });
    }
    // the next counter would be 2^53, past what tokens compare exactly: a new epoch instead
    let rolled = written(&r.write_seen(&k, b"", &naming(&k, relaid.epoch, b"f"), "60000"));
    assert_ne!(rolled.epoch, relaid.epoch);
    assert_eq!(rolled.counter, 1);
    assert_eq!(r.fence(&k), vec![rolled.epoch.to_be_bytes().to_vec(), b"1".to_vec()]);
    // the conditions hold as before: absent refuses over a value; token refuses a wrong token
    assert_eq!(r.write_seen(&k, b"absent", &naming(&k, rolled.epoch, b"g"), "60000").items()[0].int(), 0);
    let held = stored_token(&mut r, &k);
    let other = Token { epoch: held.epoch, counter: held.counter - 1 };
    assert_eq!(r.write_seen(&k, &other.to_bytes(), &naming(&k, rolled.epoch, b"h"), "60000").items()[0].int(), 0);
    assert!(matches!(r.write_seen(&k, &held.to_bytes(), &naming(&k, rolled.epoch, b"i"), "60000"), Reply::Int(_)));
    // not an envelope: refused, nothing written
    let k2 = l2_keys("hc1", "seen:2");
    assert!(matches!(r.write_seen(&k2, b"", b"hc short", "60000"), Reply::Error(_)));
    assert_eq!(r.cmd(&[b"EXISTS", k2.value.as_bytes(), k2.fence.as_bytes()]), Reply::Int(0));
}

/// The server's clock in microseconds.
fn server_micros(r: &mut Redis) -> u64 {
    let t = r.cmd(&[b"TIME"]).items();
    let part = |i: usize| String::from_utf8(t[i].bytes()).unwrap().parse::<u64>().unwrap();
    part(0) * 1_000_000 + part(1)
}

fn version_of(reply: &Reply) -> (u64, i64) {
    let items = reply.items();
    (String::from_utf8(items[0].bytes()).unwrap().parse().unwrap(), items[1].int())
}

/// A tag key lost in Redis must never come back as a version a value recorded: an absent key is
/// set from the server's clock (even), and a bump moves past both that clock and the old version
/// (odd), so a reader tells a version an invalidation set, and when, from one a read made.
#[test]
fn tag_versions_come_from_the_server_clock_and_never_repeat_after_a_loss() {
    let mut r = Redis::start();
    let key = healcache::keys::tag_key("hc1", "cache", "t");
    let before = server_micros(&mut r);
    // absent: set by this read, from the clock, even
    let (v1, how) = version_of(&r.eval(scripts::TAG_READ, &[&key], &[]));
    assert_eq!(how, -2, "set by this read");
    assert!(v1 + 1 >= before && v1 <= server_micros(&mut r) && v1 % 2 == 0, "{v1} from the clock");
    assert_eq!(r.cmd(&[b"GET", key.as_bytes()]), Reply::Bulk(v1.to_string().into_bytes()));
    // present: the same version, set by an earlier read
    assert_eq!(version_of(&r.eval(scripts::TAG_READ, &[&key], &[])), (v1, -3));
    // a bump takes the clock, odd; two bumps in one microsecond still differ
    let b1 = r.eval(scripts::TAG_BUMP, &[&key], &[]).int() as u64;
    let b2 = r.eval(scripts::TAG_BUMP, &[&key], &[]).int() as u64;
    assert!(b1 > v1 && b2 > b1 && b1 % 2 == 1 && b2 % 2 == 1, "{v1} {b1} {b2}");
    // read: set by an invalidation, this long ago by the server's clock
    std::thread::sleep(Duration::from_millis(20));
    let (again, ago) = version_of(&r.eval(scripts::TAG_READ, &[&key], &[]));
    assert_eq!(again, b2);
    assert!((20_000..10_000_000).contains(&ago), "set {ago} µs ago");
    // a version ahead of the clock is bumped past, and when it was set is not known
    let ahead = server_micros(&mut r) + 3_600_000_001;
    let ahead = ahead + 1 - ahead % 2;
    r.cmd(&[b"SET", key.as_bytes(), ahead.to_string().as_bytes()]);
    assert_eq!(version_of(&r.eval(scripts::TAG_READ, &[&key], &[])), (ahead, -1));
    assert_eq!(r.eval(scripts::TAG_BUMP, &[&key], &[]).int() as u64, ahead + 2);
    // a version an older release counted up from 1 is bumped to the clock; how it was set is
    // not known
    for old in ["3", "4"] {
        r.cmd(&[b"SET", key.as_bytes(), old.as_bytes()]);
        assert_eq!(version_of(&r.eval(scripts::TAG_READ, &[&key], &[])), (old.parse().unwrap(), -1));
    }
    assert!(r.eval(scripts::TAG_BUMP, &[&key], &[]).int() as u64 >= before);
    // lost and read again: a version none before held
    let last = r.eval(scripts::TAG_BUMP, &[&key], &[]).int() as u64;
    r.cmd(&[b"DEL", key.as_bytes()]);
    let (made, how) = version_of(&r.eval(scripts::TAG_READ, &[&key], &[]));
    assert_eq!(how, -2);
    assert!(![v1, b1, b2, 3, 4, last].contains(&made), "{made}");
    // lost and bumped: the same
    r.cmd(&[b"DEL", key.as_bytes()]);
    let bumped = r.eval(scripts::TAG_BUMP, &[&key], &[]).int() as u64;
    assert!(bumped > made && bumped % 2 == 1, "{bumped} after {made}");
    // text that is no version is read as it is (the client calls it unreadable) and replaced
    // by a bump; a TTL on the key is kept, as INCR keeps it
    r.cmd(&[b"SET", key.as_bytes(), b"garbage", b"EX", b"1000"]);
    assert_eq!(r.eval(scripts::TAG_READ, &[&key], &[]).items()[1], Reply::Int(-1));
    assert!(r.eval(scripts::TAG_BUMP, &[&key], &[]).int() as u64 >= before);
    assert!(r.cmd(&[b"TTL", key.as_bytes()]).int() > 900);
    // a number past 2^52 no cache wrote: a bump replaces it with the clock (2^53 - 1 + 1 would
    // be past what Lua counts exactly, and the tag could never be invalidated again)
    r.cmd(&[b"SET", key.as_bytes(), b"9007199254740991"]);
    let fresh = r.eval(scripts::TAG_BUMP, &[&key], &[]).int() as u64;
    assert!(fresh >= before && fresh < healcache::tier::TAG_VERSION_END, "{fresh}");
    // another type: an error, as GET and INCR answer
    r.cmd(&[b"DEL", key.as_bytes()]);
    r.cmd(&[b"HSET", key.as_bytes(), b"f", b"1"]);
    assert!(matches!(r.eval(scripts::TAG_READ, &[&key], &[]), Reply::Error(e) if e.contains("WRONGTYPE")));
    assert!(matches!(r.eval(scripts::TAG_BUMP, &[&key], &[]), Reply::Error(e) if e.contains("WRONGTYPE")));
}
