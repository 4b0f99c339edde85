//! Protocol edge cases re-expressed from the inputs of Redis's own protocol tests
//! (tests/unit/protocol.tcl), on a raw socket: each gets the Redis-style error, and the
//! connection is closed where Redis closes it.

mod common;

use std::time::Duration;

use common::{Raw, Server};
use serde_json::json;

fn server() -> Server {
    Server::start(json!({}), &[])
}

fn closed(c: &mut Raw) -> bool {
    c.closed_within(Duration::from_secs(5))
}

#[test]
fn empty_query_then_ping() {
    let s = server();
    let mut c = s.connect();
    c.send(b"\r\n");
    c.send(b"PING\r\n");
    assert_eq!(c.line(), "+PONG");
}

#[test]
fn negative_multibulk_length_is_an_empty_command() {
    let s = server();
    let mut c = s.connect();
    c.send(b"*-10\r\n");
    c.send(b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(c.line(), "+PONG");
}

#[test]
fn out_of_range_multibulk_length() {
    let s = server();
    let mut c = s.connect();
    c.send(b"*20000000\r\n");
    assert_eq!(c.line(), "-ERR Protocol error: invalid multibulk length");
    assert!(closed(&mut c));
}

#[test]
fn wrong_multibulk_payload_header() {
    let s = server();
    let mut c = s.connect();
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n");
    assert_eq!(c.line(), "-ERR Protocol error: expected '$', got 'f'");
    assert!(closed(&mut c));
    let mut c = s.connect();
    c.send(b"*1\r\nfoo=bar\r\n");
    assert_eq!(c.line(), "-ERR Protocol error: expected '$', got 'f'");
    assert!(closed(&mut c));
}

#[test]
fn bad_bulk_lengths() {
    let s = server();
    for len in ["-10", "2000000000", "blabla"] {
        let mut c = s.connect();
        c.send(format!("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n${len}\r\n").as_bytes());
        assert_eq!(c.line(), "-ERR Protocol error: invalid bulk length", "bulk length {len}");
        assert!(closed(&mut c), "bulk length {len}");
    }
}

#[test]
fn unbalanced_quotes() {
    let s = server();
    let mut c = s.connect();
    c.send(b"set \"\"\"test-key\"\"\" test-value\r\nping\r\n");
    assert_eq!(c.line(), "-ERR Protocol error: unbalanced quotes in request");
    assert!(closed(&mut c));
}

#[test]
fn generic_wrong_number_of_args() {
    let s = server();
    let mut c = s.connect();
    c.send(b"ping x y z\r\n");
    assert_eq!(c.line(), "-ERR wrong number of arguments for 'ping' command");
    c.send(b"PING\r\n");
    assert_eq!(c.line(), "+PONG", "an argument error keeps the connection");
}

#[test]
fn desync_inputs_end_in_a_protocol_error_and_a_closed_connection() {
    let s = server();
    for seq in [&b"\x00"[..], b"*\x00", b"$\x00"] {
        let mut c = s.connect();
        c.send(seq);
        let payload = vec![b'A'; 1024];
        let mut sent = 0;
        // Redis's test writes until the server answers; the bytes stop at 64 KiB plus a bit here.
        while sent < 200 * 1024 && c.try_send(&payload) {
            sent += payload.len();
        }
        let line = c.line();
        assert!(line.starts_with("-ERR Protocol error"), "{seq:?}: {line}");
        assert!(closed(&mut c), "{seq:?}");
    }
}

#[test]
fn unknown_commands_are_named_but_never_echoed_whole() {
    let s = server();
    let mut c = s.connect();
    c.send(b"FOO bar\r\n");
    assert_eq!(c.line(), "-ERR unknown command 'FOO'");
    let long = "X".repeat(5000);
    c.send(format!("{long}\r\n").as_bytes());
    let line = c.line();
    assert_eq!(line, format!("-ERR unknown command '{}'", "X".repeat(128)));
    c.send(b"*1\r\n$3\r\na\nb\r\n");
    assert_eq!(c.line(), "-ERR unknown command 'a?b'", "line breaks never reach the reply line");
    for cmd in ["EVAL", "DEBUG", "KEYS", "MODULE", "REPLICAOF", "FLUSHALL"] {
        c.send(format!("{cmd} x\r\n").as_bytes());
        assert!(c.line().starts_with("-ERR unknown command"), "{cmd}");
    }
}

#[test]
fn pipelined_replies_come_in_order() {
    let s = server();
    let mut c = s.connect();
    let mut batch = Vec::new();
    for i in 0..500 {
        batch.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$3\r\nk{:02}\r\n$4\r\nv{:03}\r\n", i % 100, i).as_bytes());
        batch.extend_from_slice(format!("GET k{:02}\r\n", i % 100).as_bytes());
    }
    // Split at odd places to cross reads.
    for chunk in batch.chunks(777) {
        c.send(chunk);
    }
    for i in 0..500 {
        assert_eq!(c.line(), "+OK");
        assert_eq!(c.bulk().unwrap(), format!("v{i:03}").into_bytes());
    }
}

#[test]
fn http_first_lines_close_the_connection_unanswered() {
    let s = server();
    for req in [&b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"Host: 127.0.0.1\r\n"] {
        let mut c = s.connect();
        c.send(req);
        assert_eq!(c.line(), "", "no reply to {req:?}");
        assert!(closed(&mut c));
    }
    assert_eq!(s.info_field("cross_protocol_disconnects", None), "2");
}

#[test]
fn resp3_after_hello() {
    let s = server();
    let mut c = s.connect();
    c.send(b"CONSISTENCY STATS\r\nHELLO 3\r\n");
    assert_eq!(
        c.value(),
        "[total_sampled, :0, total_repaired, :0, avg_score, 1, source_failures, :0, last_interval_ms, 0]"
    );
    let hello = c.value();
    assert!(hello.starts_with("{server: healcache, version: 7.0.0, "), "{hello}");
    assert!(hello.contains("proto: :3"), "{hello}");
    c.send(b"GET missing\r\nCONSISTENCY STATS\r\nHELLO 4\r\nHELLO 2\r\nGET missing\r\n");
    assert_eq!(c.value(), "nil");
    assert_eq!(
        c.value(),
        "{total_sampled: :0, total_repaired: :0, avg_score: ,1, source_failures: :0, last_interval_ms: ,0}"
    );
    assert_eq!(c.value(), "-NOPROTO unsupported protocol version");
    assert!(c.value().contains("proto, :2"), "HELLO 2 answers in RESP2");
    assert_eq!(c.line(), "$-1");
}
