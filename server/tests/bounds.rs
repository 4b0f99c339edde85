//! Every bound at the bound: the value exactly at it is accepted, one just past it gets the
//! documented refusal. Defaults are used where a test stays quick and small; otherwise a smaller
//! configured limit, with a check that the default is the one docs/server.md states.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, free_port, multibulk, temp_file, Raw, Server, PASSWORD};
use healcache_server::config::{PRE_AUTH, PRE_AUTH_OUTPUT};
use healcache_server::resp::INLINE_MAX;
use healcache_server::{ServerConfig, Settings};
use serde_json::json;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// The longest timeout the config takes, in ms: a year.
const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
/// Growth of the server's resident memory allowed over a test.
const RSS_GROWTH_KIB: u64 = 64 * 1024;

/// The most arguments `max_args` may allow: Redis 6's fixed multibulk limit.
const MAX_ARGS: usize = 1024 * 1024;
/// The longest bulk `max_bulk` may allow: 512 MiB, Redis's `proto-max-bulk-len` default.
const MAX_BULK: usize = 512 * MIB;

/// A server without a password: every client has the limits after AUTH.
fn open_server(server: serde_json::Value) -> Server {
    Server::start(json!({ "server": server }), &[])
}

/// A server with a password: new clients have the limits before AUTH.
fn locked_server(server: serde_json::Value) -> Server {
    Server::start(json!({ "server": server }), &["--requirepass", PASSWORD])
}

fn closed(c: &mut Raw) -> bool {
    c.closed_within(Duration::from_secs(5))
}

/// A working connection still answers.
fn answers(c: &mut Raw) -> bool {
    c.send(b"PING\r\n");
    c.line() == "+PONG"
}

/// The `server` settings as a `--config` file gives them, checked as at startup.
fn check(server: serde_json::Value) -> Result<(), String> {
    let settings: Settings = serde_json::from_value(json!({ "server": server })).unwrap();
    settings.server.bind_addr().map(|_| ())
}

/// A value of docs/server.md: `1,024`, `8 MiB`, `64 KiB`.
fn doc_size(text: &str) -> u64 {
    let (number, unit) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    let n: u64 = number.replace(',', "").parse().unwrap_or_else(|_| panic!("not a number: {text:?}"));
    n * match unit {
        "" => 1,
        "KiB" => 1024,
        "MiB" => 1 << 20,
        other => panic!("unit {other:?}"),
    }
}

fn server_doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/server.md")).unwrap()
}

/// The default column of a field's row in the docs' `server` table.
fn documented_default(doc: &str, field: &str) -> u64 {
    let row = doc
        .lines()
        .find(|l| l.starts_with(&format!("| `{field}` |")))
        .unwrap_or_else(|| panic!("no row for {field} in docs/server.md"));
    doc_size(row.split('|').nth(2).unwrap())
}

/// P5: the defaults the tests below shrink are the ones docs/server.md states, so a bound
/// tested with a smaller configured value is the documented bound moved, not another one.
#[test]
fn documented_limits_are_the_defaults() {
    let doc = server_doc();
    let d = ServerConfig::default();
    let code = [
        ("max_clients", d.max_clients as u64),
        ("idle_timeout_ms", d.idle_timeout_ms),
        ("request_timeout_ms", d.request_timeout_ms),
        ("output_timeout_ms", d.output_timeout_ms),
        ("max_args", d.max_args as u64),
        ("max_bulk", d.max_bulk as u64),
        ("max_query_buffer", d.max_query_buffer as u64),
        ("output_limit", d.output_limit as u64),
    ];
    for (field, value) in code {
        assert_eq!(documented_default(&doc, field), value, "{field}");
    }
    assert_eq!((d.max_args, d.max_bulk, d.max_query_buffer, d.output_limit), (1024, 8 * MIB, 64 * MIB, 16 * MIB));
    // Before AUTH: fixed, and stated in one sentence.
    assert_eq!((PRE_AUTH.max_args, PRE_AUTH.max_bulk, PRE_AUTH.max_buffer), (10, 16 * KIB, MIB));
    assert_eq!(PRE_AUTH_OUTPUT, 64 * KIB);
    let pre = doc.lines().find(|l| l.starts_with("Before AUTH the limits")).expect("the pre-AUTH limits sentence");
    let pre = format!("{pre} {}", doc.lines().skip_while(|l| *l != pre).nth(1).unwrap_or(""));
    for stated in ["10 arguments", "16 KiB per argument", "1 MiB query buffer", "64 KiB of replies"] {
        assert!(pre.contains(stated), "{stated:?} not in {pre:?}");
    }
    assert_eq!(INLINE_MAX, 64 * KIB);
    assert!(doc.contains("inline command") && doc.contains("at most 64 KiB"), "the inline limit is documented");
}

/// P5: `max_args` counts the command name (as Redis's multibulk length does): 1,024 elements
/// are parsed and answered, 1,025 get `invalid multibulk length` and the connection is closed,
/// as multibulk and as an inline line.
#[test]
fn max_args_1024_counting_the_command_name() {
    let s = open_server(json!({}));
    let keys: Vec<Vec<u8>> = (0..1024).map(|i| format!("k{i}").into_bytes()).collect();
    let command = |n_keys: usize| {
        let mut args: Vec<&[u8]> = vec![b"EXISTS"];
        args.extend(keys[..n_keys].iter().map(Vec::as_slice));
        args
    };
    let inline = |n_keys: usize| {
        let words: Vec<String> = keys[..n_keys].iter().map(|k| String::from_utf8(k.clone()).unwrap()).collect();
        format!("EXISTS {}\r\n", words.join(" ")).into_bytes()
    };
    let mut c = s.connect();
    c.send(b"SET k1023 v\r\n");
    assert_eq!(c.line(), "+OK");
    assert_eq!(command(1023).len(), 1024);
    c.send(&multibulk(&command(1023)));
    assert_eq!(c.line(), ":0", "EXISTS with 1,023 keys is parsed");
    c.send(&inline(1023));
    assert_eq!(c.line(), ":0");
    assert!(answers(&mut c));

    let mut c = s.connect();
    c.try_send(&multibulk(&command(1024)));
    assert_eq!(c.line(), "-ERR Protocol error: invalid multibulk length");
    assert!(closed(&mut c));
    let mut c = s.connect();
    c.try_send(&inline(1024));
    assert_eq!(c.line(), "-ERR Protocol error: invalid multibulk length");
    assert!(closed(&mut c));
}

/// P5: `max_bulk` 8 MiB: a value of exactly 8 MiB is stored and read back whole; a bulk header
/// announcing 8 MiB + 1 gets `invalid bulk length` at once (before its bytes are sent) and the
/// connection is closed.
#[test]
fn a_bulk_of_exactly_8_mib_is_stored_and_one_byte_more_is_refused() {
    let s = open_server(json!({}));
    let rss = s.rss_kib();
    let mut c = s.connect();
    let value = vec![b'v'; 8 * MIB];
    c.send(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).as_bytes());
    c.send(&value);
    c.send(b"\r\n");
    assert_eq!(c.line(), "+OK");
    c.send(b"GET big\r\n");
    assert!(c.bulk().unwrap() == value, "the 8 MiB value comes back whole");

    c.send(format!("*3\r\n$3\r\nSET\r\n$4\r\nbig2\r\n${}\r\n", 8 * MIB + 1).as_bytes());
    assert_eq!(c.line(), "-ERR Protocol error: invalid bulk length");
    assert!(closed(&mut c));
    assert!(s.rss_kib() < rss + RSS_GROWTH_KIB, "{} KiB -> {} KiB", rss, s.rss_kib());
}

/// P5: `max_bulk` holds for inline arguments too: with `max_bulk` 4,096 an inline argument of
/// 4,096 bytes is taken, one of 4,097 gets `invalid bulk length` and the connection is closed.
#[test]
fn inline_arguments_meet_max_bulk() {
    let s = open_server(json!({"max_bulk": 4096}));
    let mut c = s.connect();
    c.send(format!("ECHO {}\r\n", "e".repeat(4096)).as_bytes());
    assert_eq!(c.bulk().unwrap().len(), 4096);
    assert!(answers(&mut c));
    c.send(format!("ECHO {}\r\n", "e".repeat(4097)).as_bytes());
    assert_eq!(c.line(), "-ERR Protocol error: invalid bulk length");
    assert!(closed(&mut c));
}

/// P5: the config needs `max_query_buffer` at least `max_bulk` + 2 (the bulk and its CRLF):
/// exactly that is accepted, one byte less refuses to start.
#[test]
fn max_query_buffer_is_at_least_max_bulk_plus_2() {
    let default_bulk = ServerConfig::default().max_bulk;
    for bulk in [1usize, 4096, default_bulk] {
        assert_eq!(check(json!({"max_bulk": bulk, "max_query_buffer": bulk + 2})), Ok(()), "max_bulk {bulk}");
        let err = check(json!({"max_bulk": bulk, "max_query_buffer": bulk + 1})).unwrap_err();
        assert!(err.contains("max_query_buffer"), "{err}");
    }
    // The default max_bulk with no max_query_buffer given: the default 64 MiB holds it.
    assert_eq!(check(json!({"max_bulk": 64 * MIB - 2})), Ok(()));
    assert!(check(json!({"max_bulk": 64 * MIB - 1})).is_err());
}

/// P5: at runtime the query buffer bounds one whole command (headers and CRLFs included). With
/// the smallest buffer the config allows for `max_bulk` 4,096 (4,098 bytes), a command of
/// exactly 4,098 bytes is answered and one of 4,099 gets `query buffer limit reached` and the
/// connection is closed, as multibulk and as an inline line.
#[test]
fn query_buffer_at_its_configured_bound() {
    let s = open_server(json!({"max_bulk": 4096, "max_query_buffer": 4098}));
    // `*2\r\n$4\r\nECHO\r\n$N\r\n` + N + `\r\n` is 23 + N bytes for a 4-digit N.
    let echo = |total: usize| multibulk(&[b"ECHO".as_slice(), &vec![b'q'; total - 23]]);
    assert_eq!(echo(4098).len(), 4098);
    let mut c = s.connect();
    c.send(&echo(4098));
    assert_eq!(c.bulk().unwrap().len(), 4098 - 23);
    assert!(answers(&mut c));
    c.send(&echo(4099));
    assert_eq!(c.line(), "-ERR Protocol error: query buffer limit reached");
    assert!(closed(&mut c));

    // `ECHO ` + N + `\r\n` is 7 + N bytes.
    let inline = |total: usize| format!("ECHO {}\r\n", "q".repeat(total - 7)).into_bytes();
    let mut c = s.connect();
    c.send(&inline(4098));
    assert_eq!(c.bulk().unwrap().len(), 4098 - 7);
    assert!(answers(&mut c));
    c.send(&inline(4099));
    assert_eq!(c.line(), "-ERR Protocol error: query buffer limit reached");
    assert!(closed(&mut c));
}

/// P5: before AUTH, 10 arguments (the command name included) are parsed and answered, as
/// multibulk and inline. 11 are refused with `unauthenticated multibulk length` in
/// hostile.rs (`unauthenticated_oversize_input_is_refused`: `*11` and an 11-word inline line).
#[test]
fn before_auth_10_arguments_are_answered() {
    let s = locked_server(json!({}));
    let mut c = s.connect();
    c.send(b"AUTH a b c d e f g h i\r\n");
    // AUTH with more than two arguments is a syntax error in Redis
    assert_eq!(c.line(), "-ERR syntax error");
    let hello: [&[u8]; 10] = [
        b"HELLO",
        b"3",
        b"AUTH",
        b"default",
        PASSWORD.as_bytes(),
        b"AUTH",
        b"default",
        PASSWORD.as_bytes(),
        b"SETNAME",
        b"n",
    ];
    c.send(&multibulk(&hello));
    let reply = c.value();
    assert!(reply.contains("proto: :3"), "{reply}");
    c.send(b"CLIENT GETNAME\r\n");
    assert_eq!(c.value(), "n", "all ten were read");
}

/// P5: before AUTH an argument of 16,384 bytes is taken, as multibulk and inline; one of
/// 16,385 gets `unauthenticated bulk length` and the connection is closed. The multibulk
/// `$16385` case is in hostile.rs (`unauthenticated_oversize_input_is_refused`); the inline
/// one is here.
#[test]
fn before_auth_an_argument_of_16_kib() {
    let s = locked_server(json!({}));
    let mut c = s.connect();
    c.send(&multibulk(&[b"PING".as_slice(), &[b'p'; 16 * KIB]]));
    assert_eq!(c.bulk().unwrap().len(), 16 * KIB);
    c.send(format!("PING {}\r\n", "p".repeat(16 * KIB)).as_bytes());
    assert_eq!(c.bulk().unwrap().len(), 16 * KIB);
    assert!(answers(&mut c));

    let mut c = s.connect();
    c.send(format!("PING {}\r\n", "p".repeat(16 * KIB + 1)).as_bytes());
    assert_eq!(c.line(), "-ERR Protocol error: unauthenticated bulk length");
    assert!(closed(&mut c));
}

/// P5: the 1 MiB query buffer before AUTH. The argument limits bind first: the largest command
/// a client may send before AUTH (10 arguments of 16 KiB, about 160 KiB) is answered, and more
/// than 1 MiB of pipelined commands in one go is answered too, since the buffer holds only the
/// command being received, never commands already complete. A client cannot pass 1 MiB.
#[test]
fn before_auth_the_largest_command_fits_the_1_mib_query_buffer() {
    let s = locked_server(json!({}));
    let mut c = s.connect();
    let arg = vec![b'a'; 16 * KIB];
    let mut args: Vec<&[u8]> = vec![b"AUTH"];
    args.extend(std::iter::repeat_n(arg.as_slice(), 9));
    c.send(&multibulk(&args));
    assert_eq!(c.line(), "-ERR syntax error");

    let pings = MIB / 6 + 1;
    let mut writer = c.stream().try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&b"PING\r\n".repeat(pings)).unwrap());
    for i in 0..pings {
        assert_eq!(c.line(), "+PONG", "reply {i}");
    }
    sender.join().unwrap();
}

/// P5: 64 KiB of replies held before AUTH. The bound is where the server stops to write, not a
/// refusal: replies of exactly 64 KiB and of 64 KiB + 1 byte in one batch both arrive whole.
/// Past it, a client that does not read is disconnected once its replies have not drained for
/// `output_timeout_ms`, counted in `output_limit_disconnects`, with memory bounded.
#[test]
fn before_auth_replies_held_at_64_kib() {
    let s = locked_server(json!({"output_timeout_ms": 1000}));
    let rss = s.rss_kib();
    // `PING <n>` answers `$n\r\n` + n + `\r\n`: n + 10 bytes for a 5-digit n.
    for (last, total) in [(16 * KIB - 10, 64 * KIB), (16 * KIB - 9, 64 * KIB + 1)] {
        let sizes = [16 * KIB - 10, 16 * KIB - 10, 16 * KIB - 10, last];
        assert_eq!(sizes.iter().map(|n| n + 10).sum::<usize>(), total);
        let mut c = s.connect();
        let batch: Vec<u8> = sizes.iter().flat_map(|&n| multibulk(&[b"PING".as_slice(), &vec![b'r'; n]])).collect();
        c.send(&batch);
        for n in sizes {
            assert_eq!(c.bulk().unwrap().len(), n, "replies totalling {total}");
        }
        assert!(answers(&mut c));
    }

    // 34 bytes of `-NOAUTH ...` for each 2 bytes sent: far more than the socket buffers hold.
    let c = s.connect();
    let mut sock = c.stream().try_clone().unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let writer = std::thread::spawn(move || {
        let batch = b"a\n".repeat(32 * KIB);
        for _ in 0..64 {
            if sock.write_all(&batch).is_err() {
                return;
            }
        }
    });
    assert!(
        eventually(Duration::from_secs(30), || s.info_field("output_limit_disconnects", Some(PASSWORD)) == "1"),
        "a client that never read was not disconnected"
    );
    writer.join().unwrap();
    drop(c);
    assert!(s.rss_kib() < rss + RSS_GROWTH_KIB, "{} KiB -> {} KiB", rss, s.rss_kib());
}

/// P5: an inline request line is at most 64 KiB up to its `\n` (a `\r` before it counts):
/// 65,536 bytes are answered, also when they arrive before their `\n`; 65,537 get
/// `too big inline request` and the connection is closed, with or without a `\n`.
#[test]
fn inline_line_of_exactly_64_kib() {
    let s = open_server(json!({}));
    let mut c = s.connect();
    // `PING ` + n: n + 5 bytes before the line end.
    c.send(format!("PING {}\n", "i".repeat(INLINE_MAX - 5)).as_bytes());
    assert_eq!(c.bulk().unwrap().len(), INLINE_MAX - 5);
    c.send(format!("PING {}\r\n", "i".repeat(INLINE_MAX - 6)).as_bytes());
    assert_eq!(c.bulk().unwrap().len(), INLINE_MAX - 6);
    // The full 64 KiB, its `\n` late: the server waits for it.
    c.send(format!("PING {}", "i".repeat(INLINE_MAX - 5)).as_bytes());
    std::thread::sleep(Duration::from_millis(200));
    c.send(b"\n");
    assert_eq!(c.bulk().unwrap().len(), INLINE_MAX - 5);
    assert!(answers(&mut c));

    for tail in ["\n", "\r\n", ""] {
        let mut c = s.connect();
        c.try_send(format!("PING {}{tail}", "i".repeat(INLINE_MAX - 4 - tail.len().saturating_sub(1))).as_bytes());
        assert_eq!(c.line(), "-ERR Protocol error: too big inline request", "line end {tail:?}");
        assert!(closed(&mut c), "line end {tail:?}");
    }
}

/// P5: an unknown command's name is echoed up to 128 characters: 128 whole, 129 cut to 128;
/// the connection goes on.
#[test]
fn unknown_command_name_echoed_up_to_128_characters() {
    let s = open_server(json!({}));
    let mut c = s.connect();
    let name = "N".repeat(128);
    c.send(format!("{name}\r\n").as_bytes());
    assert_eq!(c.line(), format!("-ERR unknown command '{name}'"));
    c.send(format!("{name}Z\r\n").as_bytes());
    assert_eq!(c.line(), format!("-ERR unknown command '{name}'"));
    assert!(answers(&mut c));
}

/// P5: `output_limit` is at least 64 KiB (the limit before AUTH): 65,536 accepted, 65,535
/// refused.
#[test]
fn output_limit_is_at_least_64_kib() {
    assert_eq!(check(json!({"output_limit": 65_536})), Ok(()));
    let err = check(json!({"output_limit": 65_535})).unwrap_err();
    assert!(err.contains("output_limit at least 64 KiB"), "{err}");
}

/// P5: each timeout runs from 1 ms to a year (a deadline is the time now plus it): 1 and
/// 31,536,000,000 are accepted, 0 and 31,536,000,001 refused.
#[test]
fn timeouts_run_from_1_ms_to_a_year() {
    assert_eq!(YEAR_MS, 31_536_000_000);
    for field in ["idle_timeout_ms", "request_timeout_ms", "output_timeout_ms"] {
        assert_eq!(check(json!({ field: 1 })), Ok(()), "{field} 1");
        assert_eq!(check(json!({ field: YEAR_MS })), Ok(()), "{field} a year");
        assert_eq!(check(json!({ field: 0 })), Err(format!("{field} must be above zero")));
        let err = check(json!({ field: YEAR_MS + 1 })).unwrap_err();
        assert!(err.starts_with(&format!("{field} must be at most {YEAR_MS}")), "{err}");
    }
}

/// P5: the binary applies the same checks: a config one past a bound stops it at startup with
/// the reason, and exactly at the bounds it serves.
#[test]
fn the_server_refuses_to_start_past_a_config_bound() {
    let past = [
        (json!({"max_bulk": 4096, "max_query_buffer": 4097}), "max_query_buffer"),
        (json!({"output_limit": 65_535}), "output_limit"),
        (json!({"idle_timeout_ms": 0}), "idle_timeout_ms must be above zero"),
        (json!({"request_timeout_ms": YEAR_MS + 1}), "request_timeout_ms must be at most"),
        (json!({"max_args": MAX_ARGS + 1}), "max_args must be at most 1048576"),
        (json!({"max_bulk": MAX_BULK + 1, "max_query_buffer": MAX_BULK + 3}), "max_bulk must be at most 536870912"),
        (json!({"max_bulk": u64::MAX}), "max_bulk must be at most 536870912"),
    ];
    for (server, reason) in past {
        let file = temp_file("config.json", &json!({ "server": server }).to_string());
        let mut child = Command::new(env!("CARGO_BIN_EXE_healcache-server"))
            .args(["--port", &free_port().to_string(), "--config"])
            .arg(&file.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started with {server}");
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{server}: {stderr}");
        assert!(stderr.contains(reason), "{server}: {stderr}");
    }
    let at = json!({"max_bulk": 4096, "max_query_buffer": 4098, "output_limit": 65_536,
                    "idle_timeout_ms": YEAR_MS, "request_timeout_ms": 1, "output_timeout_ms": YEAR_MS});
    let s = open_server(at);
    assert!(answers(&mut s.connect()));
}

/// `max_args` runs from 1 to 1,048,576 and `max_bulk` from 1 to 512 MiB (536,870,912 bytes),
/// as docs/server.md states: at the bound the config is taken, one past it refused with the
/// reason. `max_bulk` + 2 is checked without wrapping: the largest `max_bulk` there is gets
/// the bound's reason, not a pass of the query-buffer rule.
#[test]
fn max_args_and_max_bulk_have_upper_bounds() {
    let doc = server_doc();
    for stated in ["`max_args` runs from 1 to 1,048,576", "`max_bulk` from 1 to 512 MiB (536,870,912 bytes"] {
        assert!(doc.contains(stated), "{stated:?} not in docs/server.md");
    }
    assert_eq!(check(json!({"max_args": MAX_ARGS})), Ok(()));
    assert_eq!(check(json!({"max_args": MAX_ARGS + 1})), Err("max_args must be at most 1048576".into()));
    assert_eq!(check(json!({"max_bulk": MAX_BULK, "max_query_buffer": MAX_BULK + 2})), Ok(()));
    let past = Err("max_bulk must be at most 536870912 (512 MiB)".to_string());
    assert_eq!(check(json!({"max_bulk": MAX_BULK + 1, "max_query_buffer": MAX_BULK + 3})), past);
    for huge in [u64::MAX, u64::MAX - 1, u64::MAX - 2] {
        assert_eq!(check(json!({"max_bulk": huge, "max_query_buffer": 64 * MIB})), past, "max_bulk {huge}");
        assert_eq!(check(json!({"max_bulk": huge, "max_query_buffer": huge})), past, "max_bulk {huge}");
    }
    assert_eq!(check(json!({"max_args": u64::MAX})), Err("max_args must be at most 1048576".into()));
}

/// A `*n` header is checked against `max_args` and the room for `n` arguments is not made up
/// front: with `max_args` at its bound (1,048,576), 64 clients each announcing that many
/// arguments (32 MiB of argument slots each, were they reserved) leave the server's memory
/// as it was, and it answers others; one more than the bound is refused and the connection
/// closed. The slots are made as arguments arrive, which the query buffer bounds.
#[test]
fn a_count_at_max_args_is_not_reserved_up_front() {
    let s = open_server(json!({"max_args": MAX_ARGS, "max_bulk": MAX_BULK, "max_query_buffer": MAX_BULK + 2}));
    let before = s.vm_data_kib();
    let mut clients: Vec<Raw> = (0..64).map(|_| s.connect()).collect();
    for c in &mut clients {
        c.send(format!("*{MAX_ARGS}\r\n$4\r\nECHO\r\n").as_bytes());
    }
    // time for the server to read every header (nothing is answered until a command is whole)
    std::thread::sleep(Duration::from_millis(500));
    assert!(answers(&mut s.connect()));
    let grown = s.vm_data_kib().saturating_sub(before);
    assert!(grown < RSS_GROWTH_KIB, "the server mapped {grown} KiB more for 64 announced commands");
    drop(clients);
    assert!(answers(&mut s.connect()));

    let mut c = s.connect();
    c.try_send(format!("*{}\r\n", MAX_ARGS + 1).as_bytes());
    assert_eq!(c.line(), "-ERR Protocol error: invalid multibulk length");
    assert!(closed(&mut c));
    assert!(answers(&mut s.connect()));
}
