//! The Rust service of `make fleet-demo` (tests/polyglot/fleet_demo.py): a small HTTP service on
//! 127.0.0.1 whose cache reads through the shared tier to a slow origin.
//!
//! `fleet_service --redis URL --port P --origin http://127.0.0.1:O [--ttl-ms N] [--fleet-lock all]`
//!
//! - `GET /get/KEY`: a fetch; on a miss the loader asks `ORIGIN/KEY` (a JSON body); answers
//!   `{"status", "value"}`;
//! - `GET /set/KEY/TEXT`: sets the text value; answers `{"ok": true}` once it landed in L2;
//! - `GET /stats`: a few counters.
//!
//! Prints `ready` once it listens. Exits when stdin closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use healcache::tier::{FleetLock, MsgPack};
use healcache::{Cache, FetchOptions, Loaded};
use healcache_rt::{IoSpawner, IoTimer};
use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let url = opt("--redis").expect("--redis URL");
    let origin = opt("--origin").expect("--origin URL");
    let port: u16 = opt("--port").expect("--port").parse().expect("a port");
    let mut b = Cache::<Value>::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(healcache_redis::RedisTransport::connect(&url).expect("a redis:// URL"), MsgPack::new());
    if let Some(ms) = opt("--ttl-ms") {
        b = b.ttl(Duration::from_millis(ms.parse().expect("ms")));
    }
    if let Some(m) = opt("--fleet-lock") {
        b = b.fleet_lock(FleetLock::parse(&m).expect("off, refresh or all"));
    }
    let cache = b.build().expect("a cache");
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port");
    // the demo stops this service by closing its stdin (or by its pid)
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    println!("ready");
    let _ = std::io::stdout().flush();
    for conn in listener.incoming().flatten() {
        let (cache, origin) = (cache.clone(), origin.clone());
        std::thread::spawn(move || serve(conn, &cache, &origin));
    }
}

fn serve(mut conn: TcpStream, cache: &Cache<Value>, origin: &str) {
    let mut line = String::new();
    if BufReader::new(&conn).read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    let body = match parts.as_slice() {
        ["get", key] => {
            let (key, origin) = (key.to_string(), origin.to_string());
            let k = key.clone();
            let r = futures::executor::block_on(cache.fetch(&key, FetchOptions::default(), move || async move {
                origin_get(&origin, &k).map(Loaded::Value)
            }));
            match r {
                Ok(f) => json!({"status": f.status.as_str(), "value": f.value}),
                Err(e) => json!({"error": e.code()}),
            }
        }
        ["set", key, text] => {
            let before = cache.stats().l2_writes;
            let _ = cache.set(key, json!(text));
            let until = Instant::now() + Duration::from_secs(5);
            while cache.stats().l2_writes <= before && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            json!({"ok": cache.stats().l2_writes > before})
        }
        ["stats"] => serde_json::to_value(cache.stats()).unwrap_or(Value::Null),
        _ => json!({"error": "not found"}),
    };
    let body = body.to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// `GET ORIGIN/KEY` over HTTP/1.0 on loopback; the body is JSON.
fn origin_get(origin: &str, key: &str) -> Result<Value, std::io::Error> {
    let host = origin.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET /{key} HTTP/1.0\r\nhost: {host}\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).map_err(std::io::Error::other)
}
