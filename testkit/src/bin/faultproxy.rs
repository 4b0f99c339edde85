//! `healcache-faultproxy --upstream 127.0.0.1:PORT`: the kit's [`FaultProxy`] for Python and Node tests.
//!
//! Prints the port it listens on (127.0.0.1) as the first stdout line, then reads one JSON command per
//! stdin line and answers each with one line: `ok`, `ok {json}` for `stats`, or `error <reason>` (and
//! nothing changes). It exits when stdin closes, so it never outlives the test that started it.
//!
//! Commands:
//! - `{"cmd":"set","direction":"both|upstream|downstream","latency_ms":0,"jitter_ms":0,
//!   "bytes_per_sec":null,"slice_1byte":false,"blackhole":false,"refuse":false,"data_limit":null}`:
//!   replaces that direction's faults (fields left out are off); `direction` defaults to `both`.
//!   With `"conn":ID` it applies to that open connection only (see `connections`).
//! - `{"cmd":"clear"}`, `{"cmd":"reset_all"}`, `{"cmd":"stats"}` (`connections`, `active`, `refused`).
//! - `{"cmd":"reset","conn":ID}`: resets one open connection.
//! - `{"cmd":"connections"}`: `ok [{"id","age_ms","first_bytes" (lossy UTF-8),"bytes_up","bytes_down"}]`.
//! - `{"cmd":"accept_times"}`: `ok [ms since start, ...]`, one per accepted connection.

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::time::Duration;

use healcache_testkit::{Direction, FaultProxy, Faults, MAX_DELAY};
use serde::Deserialize;

/// Latency and jitter above the proxy's cap are refused here (likely a typo) rather than capped.
const MAX_DELAY_MS: u64 = MAX_DELAY.as_millis() as u64;

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Dir {
    #[default]
    Both,
    Upstream,
    Downstream,
}

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum Cmd {
    Set {
        #[serde(default)]
        direction: Dir,
        #[serde(default)]
        latency_ms: u64,
        #[serde(default)]
        jitter_ms: u64,
        #[serde(default)]
        bytes_per_sec: Option<u64>,
        #[serde(default)]
        slice_1byte: bool,
        #[serde(default)]
        blackhole: bool,
        #[serde(default)]
        refuse: bool,
        #[serde(default)]
        data_limit: Option<u64>,
        #[serde(default)]
        conn: Option<u64>,
    },
    Clear,
    ResetAll,
    Reset {
        conn: u64,
    },
    Stats,
    Connections,
    AcceptTimes,
}

fn no_conn(id: u64) -> String {
    format!("no open connection {id}")
}

fn run(proxy: &FaultProxy, line: &str) -> Result<String, String> {
    let cmd: Cmd = serde_json::from_str(line).map_err(|e| e.to_string())?;
    match cmd {
        Cmd::Set {
            direction,
            latency_ms,
            jitter_ms,
            bytes_per_sec,
            slice_1byte,
            blackhole,
            refuse,
            data_limit,
            conn,
        } => {
            if latency_ms > MAX_DELAY_MS || jitter_ms > MAX_DELAY_MS {
                return Err(format!("latency_ms and jitter_ms must be at most {MAX_DELAY_MS}"));
            }
            let faults = Faults {
                latency: Duration::from_millis(latency_ms),
                jitter: Duration::from_millis(jitter_ms),
                bytes_per_sec,
                slice_1byte,
                blackhole,
                refuse,
                data_limit,
            };
            let dir = match direction {
                Dir::Both => Direction::Both,
                Dir::Upstream => Direction::Upstream,
                Dir::Downstream => Direction::Downstream,
            };
            match conn {
                Some(id) => {
                    if !proxy.set_conn(id, dir, faults) {
                        return Err(no_conn(id));
                    }
                }
                None => proxy.set_dir(dir, faults),
            }
            Ok("ok".into())
        }
        Cmd::Clear => {
            proxy.clear();
            Ok("ok".into())
        }
        Cmd::ResetAll => {
            proxy.reset_all();
            Ok("ok".into())
        }
        Cmd::Reset { conn } => match proxy.reset_conn(conn) {
            true => Ok("ok".into()),
            false => Err(no_conn(conn)),
        },
        Cmd::Connections => {
            let list: Vec<_> = proxy
                .open_connections()
                .into_iter()
                .map(|c| {
                    serde_json::json!({
                        "id": c.id,
                        "age_ms": c.age.as_secs_f64() * 1e3,
                        "first_bytes": String::from_utf8_lossy(&c.first_bytes),
                        "bytes_up": c.bytes_up,
                        "bytes_down": c.bytes_down,
                    })
                })
                .collect();
            Ok(format!("ok {}", serde_json::Value::Array(list)))
        }
        Cmd::AcceptTimes => {
            let ms: Vec<f64> = proxy.accept_times().iter().map(|d| d.as_secs_f64() * 1e3).collect();
            Ok(format!("ok {}", serde_json::json!(ms)))
        }
        Cmd::Stats => Ok(format!(
            "ok {}",
            serde_json::json!({
                "connections": proxy.connections(),
                "active": proxy.active(),
                "refused": proxy.refused(),
            })
        )),
    }
}

fn upstream_arg() -> Result<SocketAddr, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, addr] if flag == "--upstream" => addr.parse().map_err(|e| format!("bad --upstream {addr:?}: {e}")),
        _ => Err("usage: healcache-faultproxy --upstream 127.0.0.1:PORT".into()),
    }
}

fn main() {
    let proxy = match upstream_arg().and_then(|a| FaultProxy::start(a).map_err(|e| e.to_string())) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("healcache-faultproxy: {e}");
            std::process::exit(2);
        }
    };
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", proxy.addr().port()).and_then(|_| out.flush());
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = run(&proxy, &line).unwrap_or_else(|e| format!("error {}", e.replace('\n', " ")));
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}
