//! Real clients on a real socket: redis-cli (RESP2 and -3), redis-benchmark and the Rust redis
//! crate (RESP2 and RESP3). redis-py and a Node client are run by `make test-server` from
//! server/tests/python and server/tests/js.

mod common;

use std::process::Command;

use common::{map, Server, PASSWORD};
use serde_json::json;

fn tool(name: &str) -> Command {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap();
    assert!(found.status.success(), "{name} is missing: run .ci/setup-server.sh (apt-get install redis-tools)");
    Command::new(name)
}

fn cli(s: &Server, extra: &[&str], cmd: &[&str]) -> String {
    let out = tool("redis-cli")
        .args(["-p", &s.port.to_string(), "-a", PASSWORD, "--no-auth-warning"])
        .args(extra)
        .args(cmd)
        .output()
        .unwrap();
    assert!(out.status.success(), "redis-cli {cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn secured() -> Server {
    Server::start(
        json!({"cache": {"max_key_len": 64, "max_bytes": 1e7, "max_entry_bytes": 4096}}),
        &["--requirepass", PASSWORD],
    )
}

#[test]
fn redis_cli_resp2_and_resp3() {
    let s = secured();
    for extra in [&[][..], &["-3"][..]] {
        assert_eq!(cli(&s, extra, &["PING"]), "PONG\n");
        assert_eq!(cli(&s, extra, &["SET", "greeting", "hello world"]), "OK\n");
        assert_eq!(cli(&s, extra, &["GET", "greeting"]), "hello world\n");
        assert_eq!(cli(&s, extra, &["SET", "t", "1", "EX", "100"]), "OK\n");
        let ttl: i64 = cli(&s, extra, &["TTL", "t"]).trim().parse().unwrap();
        assert!((99..=100).contains(&ttl), "{ttl}");
        assert_eq!(cli(&s, extra, &["EXISTS", "greeting", "t", "nope"]), "2\n");
        let benign = cli(&s, extra, &["CONFIG", "GET", "appendonly"]);
        assert_eq!(benign.split_whitespace().collect::<Vec<_>>(), ["appendonly", "no"]);
        let stats = cli(&s, extra, &["CONSISTENCY", "STATS"]);
        assert!(stats.contains("total_sampled") && stats.contains("last_interval_ms"), "{stats}");
        let err = cli(&s, extra, &["SET", &"k".repeat(65), "v"]);
        assert!(err.starts_with("KEYTOOLONG "), "{err}");
        let err = cli(&s, extra, &["NOSUCH"]);
        assert!(err.starts_with("ERR unknown command 'NOSUCH'"), "{err}");
    }
    assert_eq!(cli(&s, &[], &["DEL", "greeting", "t"]), "2\n");
    assert_eq!(cli(&s, &[], &["DBSIZE"]), "0\n");
    // Without the password.
    let out = tool("redis-cli").args(["-p", &s.port.to_string(), "GET", "x"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("NOAUTH Authentication required."));
}

#[test]
fn redis_benchmark_runs_without_errors() {
    let s = secured();
    let out = tool("redis-benchmark")
        .args(["-p", &s.port.to_string(), "-a", PASSWORD, "-t", "set,get", "-n", "2000", "-d", "64", "-q", "--csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("WARNING") && !text.contains("ERR"), "{text}");
    for t in ["\"SET\"", "\"GET\""] {
        assert!(text.contains(t), "{text}");
    }
    assert_eq!(s.info_field("protocol_error_disconnects", Some(PASSWORD)), "0");
    let commands: u64 = s.info_field("total_commands_processed", Some(PASSWORD)).parse().unwrap();
    assert!(commands >= 4000, "{commands}");
}

#[test]
fn rust_redis_crate_resp2_and_resp3() {
    let s = secured();
    for protocol in ["resp2", "resp3"] {
        let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/?protocol={protocol}", s.port);
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("SET").arg("bin").arg(&[0u8, 1, 2, 255][..]).query(&mut con).unwrap();
        let got: Vec<u8> = redis::cmd("GET").arg("bin").query(&mut con).unwrap();
        assert_eq!(got, vec![0, 1, 2, 255]);
        let missing: Option<Vec<u8>> = redis::cmd("GET").arg("nope").query(&mut con).unwrap();
        assert_eq!(missing, None);
        let nx: Option<String> = redis::cmd("SET").arg("bin").arg("x").arg("NX").query(&mut con).unwrap();
        assert_eq!(nx, None, "NX on a present key writes nothing");
        let xx: Option<String> = redis::cmd("SET").arg("absent").arg("x").arg("XX").query(&mut con).unwrap();
        assert_eq!(xx, None, "XX on an absent key writes nothing");
        let ok: String = redis::cmd("SET").arg("bin").arg("y").arg("XX").arg("PX").arg(50_000).query(&mut con).unwrap();
        assert_eq!(ok, "OK");
        let pttl: i64 = redis::cmd("PTTL").arg("bin").query(&mut con).unwrap();
        assert!((1..=50_000).contains(&pttl), "{pttl}");
        // A pipeline comes back in order.
        let mut pipe = redis::pipe();
        for i in 0..100 {
            pipe.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
        }
        for i in 0..100 {
            pipe.cmd("GET").arg(format!("p{i}"));
        }
        let got: Vec<i64> = pipe.query(&mut con).unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        let stats = map(&redis::cmd("CONSISTENCY").arg("STATS").query(&mut con).unwrap());
        let names: Vec<&str> = stats.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["total_sampled", "total_repaired", "avg_score", "source_failures", "last_interval_ms"]);
        let err = redis::cmd("SET").arg("big").arg(vec![b'x'; 5000]).query::<()>(&mut con).unwrap_err();
        assert_eq!(err.code(), Some("VALUETOOLARGE"), "{err}");
        let err =
            redis::cmd("CONFIG").arg("SET").arg("healing.sample_rate").arg("2").query::<()>(&mut con).unwrap_err();
        assert_eq!(err.code(), Some("INVALIDCONFIG"), "{err}");
        let name: Option<String> = redis::cmd("CLIENT").arg("GETNAME").query(&mut con).unwrap();
        assert_eq!(name, None);
        let _: () = redis::cmd("CLIENT").arg("SETNAME").arg("tester").query(&mut con).unwrap();
        let name: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut con).unwrap();
        assert_eq!(name, "tester");
        let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
        assert!(redis::cmd("SELECT").arg(1).query::<()>(&mut con).is_err());
    }
    let bad = format!("redis://:wrong@127.0.0.1:{}/", s.port);
    let err = redis::Client::open(bad).unwrap().get_connection().map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), redis::ErrorKind::AuthenticationFailed, "{err}");
    assert_eq!(s.info_field("auth_failures", Some(PASSWORD)), "1");
}
