//! `healing.source_timeout` bounds every request to a source with its current value, also for a
//! source registered before a CONFIG SET changed it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{eventually, map, text, Server, PASSWORD};
use redis::{Connection, Value};
use serde_json::json;

/// An origin on loopback that answers every `GET` with the body `v` after `delay`.
fn slow_origin(delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            std::thread::spawn(move || answer_late(sock, delay));
        }
    });
    port
}

fn answer_late(sock: TcpStream, delay: Duration) {
    let mut reader = BufReader::new(sock);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
        }
        std::thread::sleep(delay);
        if reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nv").is_err() {
            return;
        }
    }
}

fn query(con: &mut Connection, args: &[&str]) -> Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn field(con: &mut Connection, args: &[&str], name: &str) -> f64 {
    let m = map(&query(con, args));
    m.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name} in {m:?}")).1.parse().unwrap()
}

/// P1: every check of a source ends by the current `healing.source_timeout`. A source registered
/// while the timeout was 200 ms gets answers that take 700 ms once CONFIG SET raises it to 5 s,
/// and fails them again once it is lowered to 100 ms.
#[test]
fn source_timeout_set_at_runtime_bounds_sources_registered_before() {
    let origin = slow_origin(Duration::from_millis(700));
    let healing = json!({"enabled": false, "sample_rate": 1.0, "verify_interval_ms": 50, "source_timeout_ms": 200});
    let s = Server::start(json!({"healing": healing}), &["--requirepass", PASSWORD, "--source-allow", "127.0.0.1"]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/?protocol=resp3", s.port);
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();

    query(&mut con, &["SET", "a:1", "v"]);
    let tpl = format!("http://127.0.0.1:{origin}/slow/{{key}}");
    assert_eq!(text(&query(&mut con, &["CONSISTENCY", "SOURCE", "a:", &tpl])), "OK");
    assert_eq!(text(&query(&mut con, &["CONFIG", "SET", "healing.source_timeout", "5000"])), "OK");
    assert_eq!(text(&query(&mut con, &["CONFIG", "SET", "healing.enabled", "true"])), "OK");

    let sampled =
        eventually(Duration::from_secs(10), || field(&mut con, &["CONSISTENCY", "SCORE", "a:"], "sampled") >= 2.0);
    let failures = field(&mut con, &["CONSISTENCY", "STATS"], "source_failures");
    assert!(sampled && failures == 0.0, "raised timeout not applied: sampled={sampled} source_failures={failures}");

    // Lowering applies as well: the 700 ms answers are failures again.
    assert_eq!(text(&query(&mut con, &["CONFIG", "SET", "healing.source_timeout", "100"])), "OK");
    let failing =
        eventually(Duration::from_secs(10), || field(&mut con, &["CONSISTENCY", "STATS"], "source_failures") >= 2.0);
    assert!(failing, "lowered timeout not applied");
}
