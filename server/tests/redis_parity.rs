//! The same commands sent to healcache-server and to a real redis-server (7.0 in CI) on loopback,
//! replies compared word for word. Where the server differs on purpose (the engine's 100-year TTL
//! bound, INFO keyspace fields it does not track), the test states the difference docs/server.md
//! gives.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, multibulk, Raw, Server, PASSWORD};
use healcache_testkit::RedisServer;
use serde_json::json;

/// The words of a command: split on spaces, `""` standing for an empty argument.
fn words(cmd: &str) -> Vec<Vec<u8>> {
    cmd.split(' ').map(|w| if w == "\"\"" { Vec::new() } else { w.as_bytes().to_vec() }).collect()
}

fn ask(c: &mut Raw, cmd: &str) -> String {
    c.send(&multibulk(&words(cmd)));
    c.value()
}

/// Sends `cmd` to both; the replies must be the same. Returns the reply.
fn same(ours: &mut Raw, redis: &mut Raw, cmd: &str) -> String {
    let (a, b) = (ask(ours, cmd), ask(redis, cmd));
    assert_eq!(a, b, "`{cmd}`: healcache-server answered {a:?}, redis-server {b:?}");
    a
}

fn redis() -> RedisServer {
    RedisServer::start().expect("redis-server (run .ci/setup-server.sh)")
}

fn pair(config: serde_json::Value) -> (Server, RedisServer) {
    (Server::start(config, &[]), redis())
}

/// Without a password, the `default` user takes any password (Redis's `nopass`): `AUTH default x`
/// and `HELLO 3 AUTH default x` succeed; the one-argument `AUTH x` is the configuration mistake
/// Redis reports; any other user does not exist.
#[test]
fn auth_without_a_password_is_as_in_redis() {
    let (s, r) = pair(json!({}));
    let (mut h, mut r) = (s.connect(), Raw::connect(r.port()));
    for cmd in [
        "AUTH default x",
        "AUTH default \"\"",
        "AUTH x",
        "AUTH other x",
        "AUTH",
        "AUTH a b c",
        "AUTH a b c d",
        "HELLO 2 AUTH default",
        "HELLO 2 AUTH other x",
        "GET k",
    ] {
        same(&mut h, &mut r, cmd);
    }
    // The HELLO map names each server: compared by shape.
    let (a, b) = (ask(&mut h, "HELLO 3 AUTH default x"), ask(&mut r, "HELLO 3 AUTH default x"));
    assert!(a.starts_with("{server: healcache, version: 7.0.0, ") && a.contains("proto: :3"), "{a}");
    assert!(b.starts_with("{server: redis, ") && b.contains("proto: :3"), "{b}");
    same(&mut h, &mut r, "HELLO 3 AUTH other x");
    same(&mut h, &mut r, "PING");
}

/// With a password: refusals of AUTH and HELLO leave the client unauthenticated, as in Redis.
/// HELLO applies its options in order, as Redis 7.0 does: an AUTH before a bad name has
/// authenticated the client already, a bad name before AUTH stops the HELLO first.
#[test]
fn auth_and_hello_refusals_are_as_in_redis() {
    let s = Server::start(json!({}), &["--requirepass", PASSWORD]);
    let r = redis();
    let mut admin = Raw::connect(r.port());
    assert_eq!(ask(&mut admin, &format!("CONFIG SET requirepass {PASSWORD}")), "+OK");
    let (mut h, mut r) = (s.connect(), Raw::connect(r.port()));
    for cmd in [
        format!("HELLO 3 SETNAME a\u{1}b AUTH default {PASSWORD}"),
        "GET k".to_string(),
        "HELLO 3 AUTH default wrong".to_string(),
        "GET k".to_string(),
        format!("AUTH default {PASSWORD} extra"),
        "GET k".to_string(),
        "AUTH wrong".to_string(),
        "GET k".to_string(),
        format!("HELLO 3 AUTH default {PASSWORD} SETNAME a\u{1}b"),
        "GET k".to_string(),
    ] {
        same(&mut h, &mut r, &cmd);
    }
    for c in [&mut h, &mut r] {
        assert!(ask(c, &format!("HELLO 2 AUTH default {PASSWORD} SETNAME n")).starts_with('['));
    }
    same(&mut h, &mut r, "CLIENT GETNAME");
}

const INVALID_EXPIRE: &str = "-ERR invalid expire time in 'set' command";

/// Expire times Redis refuses get Redis's reply word for word; the engine's own bound (a TTL of
/// at most 100 years) gets the same error with the bound stated, never the client's number
/// multiplied or saturated.
#[test]
fn set_expire_times_are_refused_as_in_redis() {
    let (s, r) = pair(json!({}));
    let (mut h, mut r) = (s.connect(), Raw::connect(r.port()));
    for cmd in [
        "SET k v EX 0",
        "SET k v EX -1",
        "SET k v PX 0",
        "SET k v PX -5",
        "SET k v EXAT 0",
        "SET k v PXAT -1",
        "SET k v EX abc",
        "SET k v EX 9223372036854775808",
        "SET k v EX 1.5",
        "SET k v EX 9223372036854775807",
        "SET k v EX 9223372036854776",
        "SET k v PX 9223372036854775807",
    ] {
        let reply = ask(&mut h, cmd);
        let theirs = ask(&mut r, cmd);
        assert!(reply.starts_with(&theirs), "`{cmd}`: {reply:?}, redis-server {theirs:?}");
        assert!(!reply.contains("18446744073709552000") && !reply.contains("milliseconds"), "{reply}");
        if reply != theirs {
            assert_eq!(reply, format!("{theirs}: at most 100 years (EX 3153600000, PX 3153600000000)"));
        }
    }
    // Exactly 100 years is taken; a second or a millisecond more is not (Redis takes them).
    for (cmd, ttl) in [("SET k v EX 3153600000", "3153600000"), ("SET k v PX 3153600000000", "3153600000")] {
        assert_eq!(ask(&mut h, cmd), "+OK", "{cmd}");
        assert_eq!(ask(&mut h, "TTL k"), format!(":{ttl}"));
    }
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    for cmd in [
        "SET k v EX 3153600001".to_string(),
        "SET k v PX 3153600000001".to_string(),
        "SET k v EX 4000000000".to_string(),
        format!("SET k v EXAT {}", now_s + 3_153_600_000 + 10),
    ] {
        assert_eq!(
            ask(&mut h, &cmd),
            format!("{INVALID_EXPIRE}: at most 100 years (EX 3153600000, PX 3153600000000)"),
            "{cmd}"
        );
        assert_eq!(ask(&mut r, &cmd), "+OK", "redis-server takes `{cmd}`");
    }
    assert_eq!(ask(&mut h, "TTL k"), ":3153600000", "a refused SET changes nothing");
}

/// Repeated and conflicting SET options: accepted and refused exactly where Redis 7.0 accepts
/// and refuses them, with the same effect on the key.
#[test]
fn set_option_combinations_are_as_in_redis() {
    let (s, r) = pair(json!({}));
    let (mut h, mut r) = (s.connect(), Raw::connect(r.port()));
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut script: Vec<String> = [
        "SET k v EX 10 EX 20",
        "TTL k",
        "SET k v EX 10 PX 20",
        "SET k v PX 10 EX 20",
        "SET k v PX 10000 PX 20000",
        "TTL k",
        "SET k v NX NX",
        "SET k v2 XX XX",
        "GET k",
        "SET k v NX XX",
        "SET k v XX NX",
        "SET k v KEEPTTL EX 10",
        "SET k v EX 10 KEEPTTL",
        "SET k v KEEPTTL PX 10",
        "SET k v KEEPTTL EXAT 10",
        "SET k v EXAT 10 PXAT 10",
        "SET k v3 KEEPTTL KEEPTTL",
        "TTL k",
        "GET k",
        "SET k v4 GET NX",
        "GET k",
        "SET k2 v2 GET NX",
        "GET k2",
        "SET k v5 GET GET",
        "SET k v6 XX GET",
        "SET absent v XX GET",
        "EXISTS absent",
        "SET k v7 GET EX 100",
        "TTL k",
        "SET k v8 GET KEEPTTL",
        "TTL k",
        "SET k v9",
        "TTL k",
        "SET k v",
        "SET k v EX",
        "SET k v EX 10 EX",
        "SET k v ex 5 px",
        "SET k v EX 0 NX XX",
        "SET k v EX abc NX XX",
        "SET k v EX 0 GET",
        "SET k v EX abc GET",
        "SET k v nx",
        "SET k v FOO",
        "SET k v GET EXAT 1",
        "GET k",
        "EXISTS k",
        "SET k v PXAT 1 NX",
        "EXISTS k",
        "SET k v EXAT 1 XX",
        "EXISTS k",
        "SET k v",
        "SET k v EXAT 1 XX GET",
        "EXISTS k",
        "SET k v KEEPTTL",
        "TTL k",
        "DBSIZE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    script.push(format!("SET t v EXAT {}", now_s + 1000));
    script.push(format!("SET u v PXAT {}", (now_s + 1000) * 1000));
    for cmd in &script {
        same(&mut h, &mut r, cmd);
    }
    // A second may pass between the two servers' replies: compared within one.
    for key in ["t", "u"] {
        for c in [&mut h, &mut r] {
            let ttl: u64 = ask(c, &format!("TTL {key}"))[1..].parse().unwrap();
            assert!((998..=1000).contains(&ttl), "TTL {key}: {ttl}");
        }
    }
}

/// Every command's argument count is checked against Redis's arity, the same error word for word.
#[test]
fn argument_counts_are_checked_as_in_redis() {
    let (s, r) = pair(json!({}));
    let (mut h, mut r) = (s.connect(), Raw::connect(r.port()));
    for cmd in [
        "DBSIZE x",
        "DBSIZE",
        "GET",
        "GET a b",
        "SET a",
        "PING a b",
        "ECHO",
        "ECHO a b",
        "SELECT",
        "SELECT 0 1",
        "DEL",
        "EXISTS",
        "TTL",
        "TTL a b",
        "PTTL",
        "PTTL a b",
        "AUTH",
        "AUTH a b c",
        "CLIENT",
        "CLIENT FOO",
        "CLIENT SETNAME",
        "CLIENT SETNAME a b",
        "CLIENT GETNAME x",
        "CLIENT ID x",
        "CONFIG",
        "CONFIG FOO",
        "CONFIG GET",
        "CONFIG SET a",
        "CONFIG SET a b c",
        "CONFIG RESETSTAT x",
        "CONFIG RESETSTAT",
        "HELLO 4",
        "HELLO x",
        "QUIT a b",
    ] {
        same(&mut h, &mut r, cmd);
    }
}

/// `HELLO ... SETNAME ""` clears the name, as `CLIENT SETNAME ""` does.
#[test]
fn an_empty_name_clears_the_name() {
    let (s, r) = pair(json!({}));
    let (mut h, mut r) = (s.connect(), Raw::connect(r.port()));
    for cmd in ["CLIENT SETNAME abc", "CLIENT GETNAME", "CLIENT SETNAME \"\"", "CLIENT GETNAME", "CLIENT SETNAME abc"] {
        same(&mut h, &mut r, cmd);
    }
    for c in [&mut h, &mut r] {
        assert!(ask(c, "HELLO 2 SETNAME \"\"").starts_with('['));
    }
    same(&mut h, &mut r, "CLIENT GETNAME");
    for c in [&mut h, &mut r] {
        assert!(ask(c, "HELLO 3 SETNAME n2").starts_with('{'));
    }
    same(&mut h, &mut r, "CLIENT GETNAME");
    for c in [&mut h, &mut r] {
        assert!(ask(c, "HELLO 3 SETNAME \"\"").starts_with('{'));
    }
    same(&mut h, &mut r, "CLIENT GETNAME");
}

/// P5: a key one byte over `max_key_len` is refused with the typed error on every SET path, also
/// where the key's absence (XX) or presence (NX) would otherwise answer nil.
#[test]
fn a_key_over_the_limit_is_refused_on_every_set_path() {
    let s = Server::start(json!({}), &[]);
    let mut c = s.connect();
    let long = "k".repeat(4097);
    for opts in ["", " NX", " XX", " GET", " XX GET", " NX GET", " KEEPTTL", " XX KEEPTTL", " EX 10 XX", " PXAT 1 XX"] {
        let reply = ask(&mut c, &format!("SET {long} v{opts}"));
        assert_eq!(reply, "-KEYTOOLONG key is 4097 bytes, over the limit of 4096", "SET <4097 bytes> v{opts}");
    }
    let at = "k".repeat(4096);
    assert_eq!(ask(&mut c, &format!("SET {at} v XX")), "nil");
    assert_eq!(ask(&mut c, &format!("SET {at} v NX")), "+OK");
    assert_eq!(ask(&mut c, &format!("SET {at} w XX GET")), "v");
    assert_eq!(ask(&mut c, "DBSIZE"), ":1");
}

/// Expired keys leave DBSIZE and INFO within about a second, read or not, as Redis's active
/// expiry reclaims them.
#[test]
fn expired_keys_are_reclaimed_without_being_read() {
    let (s, r) = pair(json!({}));
    let (mut h, mut r) = (s.connect(), Raw::connect(r.port()));
    for c in [&mut h, &mut r] {
        for i in 0..100 {
            assert_eq!(ask(c, &format!("SET e{i} v PX 10")), "+OK");
        }
        assert_eq!(ask(c, "SET kept v"), "+OK");
    }
    for (name, c) in [("redis-server", &mut r), ("healcache-server", &mut h)] {
        let reclaimed = eventually(Duration::from_secs(3), || ask(c, "DBSIZE") == ":1");
        assert!(reclaimed, "{name}: DBSIZE is {} 3 s after 100 keys expired", ask(c, "DBSIZE"));
    }
    assert_eq!(s.info_field("db0", None), "keys=1");
    let expired: u64 = s.info_field("expired_keys", None).parse().unwrap();
    assert_eq!(expired, 100);
}

/// INFO keyspace prints only what the engine counts: `keys`, not made-up `expires`/`avg_ttl`.
#[test]
fn info_keyspace_prints_only_counted_fields() {
    let s = Server::start(json!({}), &[]);
    let mut c = s.connect();
    assert_eq!(ask(&mut c, "SET a v EX 100"), "+OK");
    assert_eq!(ask(&mut c, "SET b v"), "+OK");
    assert_eq!(s.info_field("db0", None), "keys=2");
    c.send(b"INFO keyspace\r\n");
    let text = String::from_utf8(c.bulk().unwrap()).unwrap();
    assert_eq!(text, "# Keyspace\r\ndb0:keys=2\r\n");
    // An empty database is not listed, as in Redis.
    let r = redis();
    let mut r = Raw::connect(r.port());
    for c in [&mut c, &mut r] {
        ask(c, "DEL a b");
    }
    same(&mut c, &mut r, "INFO keyspace");
}
