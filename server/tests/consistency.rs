//! Every CONSISTENCY and CONFIG command with a real HTTP source on loopback: injected drift is
//! found and repaired by the healer running inside the server.

mod common;

use std::time::Duration;

use common::{eventually, map, text, HttpSource, Server, PASSWORD};
use redis::{Connection, Value};
use serde_json::json;

fn field(m: &[(String, String)], name: &str) -> String {
    m.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name} in {m:?}")).1.clone()
}

fn num(m: &[(String, String)], name: &str) -> f64 {
    field(m, name).parse().unwrap()
}

fn query(con: &mut Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

fn get(con: &mut Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

fn start(source: &HttpSource) -> Server {
    let healing = json!({"enabled": true, "sample_rate": 1.0, "verify_interval_ms": 50, "source_timeout_ms": 2000});
    Server::start(
        json!({"healing": healing}),
        &["--requirepass", PASSWORD, "--source-allow", &format!("127.0.0.1:{}", source.port)],
    )
}

#[test]
fn drift_is_repaired_through_every_command() {
    for protocol in ["resp2", "resp3"] {
        let source = HttpSource::start();
        source.set("user:1", b"alice");
        source.set("user:2", b"bob");
        let s = start(&source);
        let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/?protocol={protocol}", s.port);
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let tpl = source.template();

        // The allowlist is fixed at startup: another host or port is refused, CONFIG SET cannot widen it.
        let other = format!("http://127.0.0.1:{}/items/{{key}}", source.port + 1);
        let err = query(&mut con, &["CONSISTENCY", "SOURCE", "user:", &other]).unwrap_err();
        assert_eq!(err.code(), Some("NOPERM"), "{err}");
        let err = query(&mut con, &["CONFIG", "SET", "source_allow", "0.0.0.0"]).unwrap_err();
        assert!(err.to_string().contains("Unknown option"), "{err}");
        // A template whose {key} is not a whole segment breaks the URL-template rules.
        let bad = format!("http://127.0.0.1:{}/items/x{{key}}", source.port);
        let err = query(&mut con, &["CONSISTENCY", "SOURCE", "user:", &bad]).unwrap_err();
        assert_eq!(err.code(), Some("INVALIDCONFIG"), "{err}");
        assert_eq!(text(&query(&mut con, &["CONSISTENCY", "SCORE", "user:"]).unwrap()), "nil");

        assert_eq!(text(&query(&mut con, &["CONSISTENCY", "SOURCE", "user:", &tpl]).unwrap()), "OK");
        // Injected drift: one right, one stale, one gone at the source.
        for (k, v) in [("user:1", "alice"), ("user:2", "stale"), ("user:3", "ghost")] {
            query(&mut con, &["SET", k, v]).unwrap();
        }
        let repaired = eventually(Duration::from_secs(20), || {
            get(&mut con, "user:2").as_deref() == Some("bob") && get(&mut con, "user:3").is_none()
        });
        assert!(repaired, "drift not repaired: user:2={:?}", get(&mut con, "user:2"));
        assert_eq!(get(&mut con, "user:1").as_deref(), Some("alice"));
        assert!(source.requests.load(std::sync::atomic::Ordering::Relaxed) >= 3);

        let score = map(&query(&mut con, &["CONSISTENCY", "SCORE", "user:"]).unwrap());
        let names: Vec<&str> = score.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["prefix", "score", "sampled", "repaired"]);
        assert_eq!(field(&score, "prefix"), "user:");
        assert!(num(&score, "score") < 1.0 && num(&score, "sampled") >= 3.0, "{score:?}");
        assert!(num(&score, "repaired") >= 2.0, "{score:?}");
        match query(&mut con, &["CONSISTENCY", "SCORES"]).unwrap() {
            Value::Array(all) => {
                assert_eq!(all.len(), 1);
                assert_eq!(field(&map(&all[0]), "prefix"), "user:");
            }
            other => panic!("{other:?}"),
        }
        let stats = map(&query(&mut con, &["CONSISTENCY", "STATS"]).unwrap());
        assert!(num(&stats, "total_repaired") >= 2.0 && num(&stats, "total_sampled") >= 3.0, "{stats:?}");
        assert!(num(&stats, "avg_score") < 1.0 && num(&stats, "source_failures") == 0.0, "{stats:?}");
        assert!(num(&stats, "last_interval_ms") >= 0.0);
        let drift = match query(&mut con, &["CONSISTENCY", "DRIFT"]).unwrap() {
            Value::Array(events) => events.iter().map(map).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let user2 = drift.iter().find(|e| field(e, "key") == "user:2").expect("a drift event for user:2");
        assert_eq!(field(user2, "prefix"), "user:");
        assert_eq!(field(user2, "repaired"), "1");
        assert_eq!(field(drift.iter().find(|e| field(e, "key") == "user:3").unwrap(), "new_digest"), "absent");
        match query(&mut con, &["CONSISTENCY", "DRIFT", "1"]).unwrap() {
            Value::Array(events) => assert_eq!(events.len(), 1),
            other => panic!("{other:?}"),
        }

        // CONFIG through the core's typed settings.
        let all = map(&query(&mut con, &["CONFIG", "GET", "healing.*"]).unwrap());
        assert_eq!(field(&all, "healing.sample_rate"), "1");
        assert_eq!(field(&all, "healing.enabled"), "true");
        // The core's settings table names them, durations in ms.
        assert_eq!(field(&all, "healing.verify_interval"), "50");
        // every healing setting of the table, and nothing else
        let mut names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        let mut want: Vec<String> = healcache::settings::SETTINGS
            .iter()
            .filter(|s| s.scope == healcache::settings::Scope::Healing)
            .map(|s| format!("healing.{}", s.name))
            .collect();
        want.sort_unstable();
        assert_eq!(names, want, "{all:?}");
        assert!(names.len() >= 10, "{all:?}");
        assert_eq!(text(&query(&mut con, &["CONFIG", "SET", "healing.verify_interval", "40"]).unwrap()), "OK");
        assert_eq!(text(&query(&mut con, &["CONFIG", "SET", "healing.sample_rate", "0.5"]).unwrap()), "OK");
        let one = map(&query(&mut con, &["CONFIG", "GET", "healing.sample_rate"]).unwrap());
        assert_eq!(one, [("healing.sample_rate".to_string(), "0.5".to_string())]);
        let err =
            query(&mut con, &["CONFIG", "SET", "healing.sample_rate", "1", "healing.score_window", "-1"]).unwrap_err();
        assert_eq!(err.code(), Some("INVALIDCONFIG"), "{err}");
        assert!(err.to_string().contains("`healing.score_window`"), "{err}");
        assert_eq!(
            field(&map(&query(&mut con, &["CONFIG", "GET", "healing.sample_rate"]).unwrap()), "healing.sample_rate"),
            "0.5",
            "a refused CONFIG SET changes nothing"
        );
        let benign = map(&query(&mut con, &["CONFIG", "GET", "save", "appendonly"]).unwrap());
        assert_eq!(benign, [("save".to_string(), String::new()), ("appendonly".to_string(), "no".to_string())]);

        // With auto_repair off, drift is reported and left alone.
        query(&mut con, &["CONFIG", "SET", "healing.auto_repair", "false", "healing.sample_rate", "1"]).unwrap();
        query(&mut con, &["SET", "user:1", "changed"]).unwrap();
        let reported =
            eventually(Duration::from_secs(20), || match query(&mut con, &["CONSISTENCY", "DRIFT", "1000"]) {
                Ok(Value::Array(events)) => {
                    events.iter().map(map).any(|e| field(&e, "key") == "user:1" && field(&e, "repaired") == "0")
                }
                _ => false,
            });
        assert!(reported, "unrepaired drift of user:1 not reported");
        assert_eq!(get(&mut con, "user:1").as_deref(), Some("changed"));

        // Before AUTH, nothing of this.
        let mut raw = s.connect();
        raw.send(format!("CONSISTENCY SOURCE x: {tpl}\r\n").as_bytes());
        assert_eq!(raw.line(), "-NOAUTH Authentication required.");
    }
}

#[test]
fn metrics_endpoint_serves_the_core_text() {
    let s = Server::start_with_metrics(json!({}), &[]);
    let mut raw = s.connect();
    raw.send(b"SET a b\r\nGET a\r\n");
    assert_eq!(raw.line(), "+OK");
    assert_eq!(raw.bulk().unwrap(), b"b");
    let port = s.metrics_port.unwrap();
    let mut http = common::Raw::connect(port);
    http.send(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut body = String::new();
    use std::io::Read;
    http.reader.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("healcache_hits_total{cache=\"healcache-server\"} 1"), "{body}");
    assert!(body.contains("healcache_server_commands_total"), "{body}");
    let mut other = common::Raw::connect(port);
    other.send(b"GET / HTTP/1.1\r\n\r\n");
    assert!(other.line().starts_with("HTTP/1.1 404"));
}

/// `--source-allow` takes IPv6 hosts as URLs write them, in brackets, with or without a port
/// (`[::1]`, `[::1]:18080`), and a bare address (`::1`) as a host without a port. The check is
/// made when the source is registered, before any request: a -NOPERM or an OK tells, with no
/// listener on those addresses. IPv4 and names are read as before.
#[test]
fn source_allow_takes_ipv6_hosts() {
    let allow = "[::1]:18080, [::2], ::3, [0:0::4]:80, 127.0.0.1:18080, api.internal";
    let s = Server::start(json!({}), &["--source-allow", allow]);
    let mut con = redis::Client::open(s.url()).unwrap().get_connection().unwrap();
    let cases = [
        ("http://[::1]:18080/{key}", true),
        ("http://[0:0::1]:18080/{key}", true),
        ("http://[::1]:18081/{key}", false),
        ("http://[::1]/{key}", false),
        ("http://[::2]/{key}", true),
        ("http://[::2]:9/{key}", true),
        ("https://[::2]/{key}", true),
        ("http://[::3]/{key}", true),
        ("http://[::3]:18080/{key}", true),
        ("http://[::4]/{key}", true),
        ("http://[::4]:81/{key}", false),
        ("http://[::5]/{key}", false),
        ("http://[::1:0]:18080/{key}", false),
        ("http://127.0.0.1:18080/{key}", true),
        ("http://127.0.0.1:18081/{key}", false),
        ("http://API.internal/{key}", true),
        ("http://api.internal:8080/{key}", true),
        ("http://other.internal/{key}", false),
    ];
    for (i, (template, allowed)) in cases.iter().enumerate() {
        let prefix = format!("p{i}:");
        let reply = query(&mut con, &["CONSISTENCY", "SOURCE", &prefix, template]);
        match (allowed, reply) {
            (true, Ok(v)) => assert_eq!(text(&v), "OK", "{template}"),
            (false, Err(e)) => assert_eq!(e.code(), Some("NOPERM"), "{template}: {e}"),
            (_, other) => panic!("{template}: {other:?}"),
        }
    }
}
