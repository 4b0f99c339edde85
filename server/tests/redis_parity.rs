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
        "HELLO 3".to_string(),
        "HELLO".to_string(),
        "HELLO 2 SETNAME n".to_string(),
        "GET k".to_string(),
        "MULTI".to_string(),
        "EXEC".to_string(),
        "DISCARD".to_string(),
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

/// Expire times Redis refuses get Redis's reply word for word: 0, negative (down to i64::MIN,
/// which is a 64-bit integer), not a 64-bit integer, and an EX or PX that overflows once
/// converted to milliseconds or added to the current time. The engine's own bound (a TTL of at
/// most 100 years) gets the same error with the bound stated, only for times Redis takes.
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
        "SET k v EX -9223372036854775809",
        "SET k v EX 1.5",
        "SET k v EX -9223372036854775807",
        "SET k v EX -9223372036854775808",
        "SET k v PX -9223372036854775808",
        "SET k v EXAT -9223372036854775808",
        "SET k v PXAT -9223372036854775808",
        "SET k v EX 9223372036854775807",
        "SET k v EX 9223372036854776",
        // i64::MAX / 1000: fits in milliseconds, overflows once the current time is added
        "SET k v EX 9223372036854775",
        "SET k v PX 9223372036854775807",
        "SET k v PX 9223372036854775000",
    ] {
        let reply = same(&mut h, &mut r, cmd);
        assert!(reply.starts_with('-'), "`{cmd}` is refused: {reply}");
    }
    same(&mut h, &mut r, "GET k");
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
        // Unix times are not added to the current time: Redis takes these.
        "SET k v EXAT 9223372036854775".to_string(),
        "SET k v PXAT 9223372036854775807".to_string(),
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
        "CLIENT HELP x",
        "CONFIG",
        "CONFIG FOO",
        "CONFIG GET",
        "CONFIG SET a",
        "CONFIG SET a b c",
        "CONFIG RESETSTAT x",
        "CONFIG RESETSTAT",
        "CONFIG HELP x",
        "MULTI x",
        "EXEC x",
        "DISCARD x",
        "EXEC",
        "DISCARD",
        "HELLO 4",
        "HELLO x",
        "QUIT a b",
    ] {
        same(&mut h, &mut r, cmd);
    }
}

/// A reply that is an array of status lines (`CLIENT HELP`), line by line.
fn status_lines(c: &mut Raw, cmd: &str) -> Vec<String> {
    c.send(&multibulk(&words(cmd)));
    let head = c.line();
    let n: usize = head.strip_prefix('*').unwrap_or_else(|| panic!("`{cmd}`: not an array: {head}")).parse().unwrap();
    (0..n)
        .map(|_| {
            let l = c.line();
            l.strip_prefix('+').unwrap_or_else(|| panic!("`{cmd}`: not a status line: {l}")).to_string()
        })
        .collect()
}

/// `CLIENT HELP` and `CONFIG HELP` are served, shaped as Redis's: an array of status lines, the
/// same usage line first and `HELP` last, one unindented line per subcommand the server serves
/// (and no other), its description indented below it, starting in Redis's words where the
/// subcommand does what Redis's does. An unknown subcommand's error points to them.
#[test]
fn client_and_config_help_are_shaped_as_in_redis() {
    let (s, r) = pair(json!({}));
    let (mut h, mut r) = (s.connect(), Raw::connect(r.port()));
    let cases: [(&str, &[&str], &[&str]); 2] = [
        ("CLIENT", &["GETNAME", "ID", "SETINFO", "SETNAME", "HELP"], &["GETNAME", "ID", "SETNAME", "HELP"]),
        ("CONFIG", &["GET", "SET", "RESETSTAT", "HELP"], &["GET", "SET", "HELP"]),
    ];
    for (command, served, worded_as_redis) in cases {
        for proto in ["HELLO 2", "HELLO 3"] {
            ask(&mut h, proto);
            ask(&mut r, proto);
            let cmd = format!("{command} HELP");
            let (ours, theirs) = (status_lines(&mut h, &cmd), status_lines(&mut r, &cmd));
            assert_eq!(ours[0], theirs[0], "{cmd}");
            assert_eq!(ours[ours.len() - 2..], theirs[theirs.len() - 2..], "{cmd}");
            let names: Vec<&str> =
                ours[1..].iter().filter(|l| !l.starts_with(' ')).map(|l| l.split(' ').next().unwrap()).collect();
            assert_eq!(names, served, "{cmd}: {ours:#?}");
            // Each subcommand and its description: Redis's lines where it does what Redis's does.
            let entry = |lines: &[String], name: &str| -> Vec<String> {
                let at = lines.iter().position(|l| l.split(' ').next() == Some(name)).unwrap();
                let end = lines[at + 1..].iter().position(|l| !l.starts_with(' ')).map_or(lines.len(), |e| at + 1 + e);
                lines[at..end].to_vec()
            };
            for name in worded_as_redis {
                assert_eq!(entry(&ours, name)[..2], entry(&theirs, name)[..2], "{cmd}: {name}");
            }
            for name in served {
                assert!(entry(&ours, name).len() >= 2, "{cmd}: {name} is described");
            }
        }
        let sub = format!("{command} NOSUCH");
        let err = same(&mut h, &mut r, &sub);
        assert_eq!(err, format!("-ERR unknown subcommand 'NOSUCH'. Try {command} HELP."));
    }
}

/// The error each command between MULTI and EXEC answers, not run.
const NOT_RUN: &str = "-ERR not run: healcache-server has no transactions, so nothing between MULTI and EXEC \
                       runs; EXEC or DISCARD ends it";
const EXECABORT: &str = "-EXECABORT Transaction discarded because of previous errors.";

/// There are no transactions, and a client's MULTI ... EXEC never applies part of its writes:
/// MULTI answers `+OK` as in Redis, then every command up to EXEC or DISCARD is answered with an
/// error and not run, as if each were a command Redis refused to queue; EXEC then answers Redis's
/// reply to a transaction with errors (EXECABORT), DISCARD `+OK`, and the connection goes on as
/// before. EXEC and DISCARD without MULTI, a nested MULTI, and EXEC with arguments answer word
/// for word as in Redis.
#[test]
fn a_multi_runs_nothing_up_to_exec_or_discard() {
    let (s, r) = pair(json!({}));
    let (mut h, mut r) = (s.connect(), Raw::connect(r.port()));
    same(&mut h, &mut r, "SET t before");
    assert_eq!(same(&mut h, &mut r, "MULTI"), "+OK");
    assert_eq!(ask(&mut h, "SET t 1"), NOT_RUN);
    assert_eq!(ask(&mut h, "SET u 1"), NOT_RUN);
    assert_eq!(ask(&mut h, "DEL t"), NOT_RUN);
    assert_eq!(ask(&mut h, "GET t"), NOT_RUN);
    assert_eq!(ask(&mut h, "NOSUCH"), NOT_RUN);
    assert_eq!(ask(&mut h, "PING"), NOT_RUN);
    // Redis's transaction with an error: the same replies to a nested MULTI and to EXEC.
    assert!(ask(&mut r, "NOSUCH").starts_with("-ERR unknown command"));
    same(&mut h, &mut r, "MULTI");
    assert_eq!(same(&mut h, &mut r, "EXEC"), EXECABORT);
    // Nothing ran, and commands run again.
    same(&mut h, &mut r, "GET t");
    same(&mut h, &mut r, "EXISTS u");
    same(&mut h, &mut r, "EXEC");
    // DISCARD ends it as in Redis.
    assert_eq!(same(&mut h, &mut r, "MULTI"), "+OK");
    assert_eq!(ask(&mut h, "SET t 2"), NOT_RUN);
    assert_eq!(same(&mut h, &mut r, "DISCARD x"), "-ERR wrong number of arguments for 'discard' command");
    assert_eq!(same(&mut h, &mut r, "DISCARD"), "+OK");
    same(&mut h, &mut r, "DISCARD");
    same(&mut h, &mut r, "GET t");
    same(&mut h, &mut r, "SET t 3");
    // EXEC with an argument discards the transaction, with Redis's words.
    assert_eq!(same(&mut h, &mut r, "MULTI"), "+OK");
    same(&mut h, &mut r, "EXEC x");
    same(&mut h, &mut r, "EXEC");
    same(&mut h, &mut r, "GET t");
    // As a client library sends it: MULTI, the commands and EXEC in one write.
    let batch: Vec<u8> =
        [&["MULTI"][..], &["SET", "t", "4"], &["SET", "v", "4"], &["EXEC"], &["GET", "t"], &["EXISTS", "v"]]
            .iter()
            .flat_map(|c| multibulk(c))
            .collect();
    h.send(&batch);
    let replies: Vec<String> = (0..6).map(|_| h.value()).collect();
    assert_eq!(replies, ["+OK", NOT_RUN, NOT_RUN, EXECABORT, "3", ":0"]);
    // QUIT still closes.
    assert_eq!(same(&mut h, &mut r, "MULTI"), "+OK");
    assert_eq!(same(&mut h, &mut r, "QUIT"), "+OK");
    assert!(h.closed_within(Duration::from_secs(5)));
    let mut h = s.connect();
    assert_eq!(ask(&mut h, "GET t"), "3", "a connection closed in the transaction ran nothing");
}

/// The Rust `redis` crate's atomic pipeline (MULTI, its commands and EXEC) returns an error and
/// writes nothing; run in a debug build (the `cargo test` default), where an error reply to MULTI
/// made its synchronous connection panic on an integer underflow.
#[test]
fn the_redis_crates_atomic_pipeline_fails_whole_without_a_panic() {
    let s = Server::start(json!({}), &[]);
    let mut con = redis::Client::open(s.url()).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("t").arg("before").query(&mut con).unwrap();
    for _ in 0..2 {
        let got = redis::pipe().atomic().set("t", "1").set("u", "1").del("t").query::<((), (), i64)>(&mut con);
        let err = got.expect_err("a transaction cannot succeed");
        assert_eq!(err.kind(), redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort), "{err:?}");
        assert!(format!("{err:?}").contains("not run: healcache-server has no transactions"), "{err:?}");
    }
    // Nothing was written, and the connection goes on.
    let t: String = redis::cmd("GET").arg("t").query(&mut con).unwrap();
    assert_eq!(t, "before");
    let u: i64 = redis::cmd("EXISTS").arg("u").query(&mut con).unwrap();
    assert_eq!(u, 0);
    let _: () = redis::cmd("SET").arg("u").arg("2").query(&mut con).unwrap();
    let u: String = redis::cmd("GET").arg("u").query(&mut con).unwrap();
    assert_eq!(u, "2");
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
