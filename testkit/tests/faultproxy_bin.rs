//! The `healcache-faultproxy` binary's line protocol, as Python and Node tests drive it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use healcache_testkit::resp::{Reply, RespConn};
use healcache_testkit::RedisServer;

struct Bin {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl Bin {
    fn start(upstream: &str) -> Bin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_healcache-faultproxy"))
            .args(["--upstream", upstream])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap();
        Bin { child, stdin: Some(stdin), stdout, port }
    }

    fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin.as_mut().unwrap(), "{line}").unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        answer.trim_end().to_string()
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prints_its_port_and_obeys_commands() {
    let redis = RedisServer::start().unwrap();
    let mut bin = Bin::start(&redis.addr().to_string());
    let mut c = RespConn::connect(bin.addr(), Duration::from_secs(10)).unwrap();
    assert_eq!(c.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));

    assert_eq!(bin.cmd(r#"{"cmd":"set","direction":"upstream","latency_ms":200}"#), "ok");
    let t = Instant::now();
    assert_eq!(c.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());

    assert_eq!(bin.cmd(r#"{"cmd":"set","blackhole":true}"#), "ok");
    c.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    c.send(&["PING"]).unwrap();
    assert!(c.read_reply().is_err());

    assert_eq!(bin.cmd(r#"{"cmd":"clear"}"#), "ok");
    assert_eq!(bin.cmd(r#"{"cmd":"reset_all"}"#), "ok");
    let mut d = RespConn::connect(bin.addr(), Duration::from_secs(10)).unwrap();
    assert_eq!(d.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    // The reset connection is closed by the proxy's own thread: wait for it to count as gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = bin.cmd(r#"{"cmd":"stats"}"#);
        if stats == r#"ok {"active":1,"connections":2,"refused":0}"# {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_commands_get_an_error_line_and_change_nothing() {
    let redis = RedisServer::start().unwrap();
    let mut bin = Bin::start(&redis.addr().to_string());
    for bad in [
        "not json",
        r#"{"cmd":"explode"}"#,
        r#"{"cmd":"set","latency":5}"#,
        r#"{"cmd":"set","latency_ms":-1}"#,
        r#"{"cmd":"set","direction":"sideways"}"#,
        r#"{"cmd":"set","blackhole":true,"latency_ms":3600001}"#,
        r#"{"cmd":"set","blackhole":true,"jitter_ms":3600001}"#,
    ] {
        let answer = bin.cmd(bad);
        assert!(answer.starts_with("error "), "{bad}: {answer}");
    }
    // Nothing changed: no blackhole, no delay.
    let mut c = RespConn::connect(bin.addr(), Duration::from_secs(10)).unwrap();
    c.stream().set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    // The bound itself is accepted.
    assert_eq!(bin.cmd(r#"{"cmd":"set","latency_ms":3600000,"jitter_ms":3600000}"#), "ok");
}

#[test]
fn exits_when_stdin_closes_and_refuses_bad_arguments() {
    let redis = RedisServer::start().unwrap();
    let mut bin = Bin::start(&redis.addr().to_string());
    drop(bin.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = bin.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running after stdin closed");
        std::thread::sleep(Duration::from_millis(10));
    }
    for args in [&["--upstream", "10.1.2.3:6379"][..], &["--upstream", "nonsense"], &[]] {
        let out = Command::new(env!("CARGO_BIN_EXE_healcache-faultproxy")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn one_connection_is_listed_faulted_and_reset_by_id() {
    let redis = RedisServer::start().unwrap();
    let mut bin = Bin::start(&redis.addr().to_string());
    let mut a = RespConn::connect(bin.addr(), Duration::from_secs(10)).unwrap();
    assert_eq!(a.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    let mut b = RespConn::connect(bin.addr(), Duration::from_secs(10)).unwrap();
    assert_eq!(b.cmd(&["ECHO", "bus"]).unwrap(), Reply::Bulk(Some(b"bus".to_vec())));
    let answer = bin.cmd(r#"{"cmd":"connections"}"#);
    let list: serde_json::Value = serde_json::from_str(answer.strip_prefix("ok ").unwrap()).unwrap();
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["first_bytes"], "*1\r\n$4\r\nPING\r\n");
    assert_eq!(list[0]["bytes_down"], 7);
    assert_eq!(list[1]["id"], 2);
    assert!(list[1]["age_ms"].as_f64().unwrap() >= 0.0);

    assert_eq!(bin.cmd(r#"{"cmd":"set","conn":2,"blackhole":true}"#), "ok");
    b.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    b.send(&["PING"]).unwrap();
    assert!(b.read_reply().is_err());
    assert_eq!(a.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(bin.cmd(r#"{"cmd":"reset","conn":1}"#), "ok");
    assert!(a.read_reply().is_err());
    assert_eq!(bin.cmd(r#"{"cmd":"set","conn":99,"blackhole":true}"#), "error no open connection 99");
    assert_eq!(bin.cmd(r#"{"cmd":"reset","conn":99}"#), "error no open connection 99");
    assert!(bin.cmd(r#"{"cmd":"reset"}"#).starts_with("error "));
    let times = bin.cmd(r#"{"cmd":"accept_times"}"#);
    let times: Vec<f64> = serde_json::from_str(times.strip_prefix("ok ").unwrap()).unwrap();
    assert_eq!(times.len(), 2);
    assert!(times[0] <= times[1]);
}
