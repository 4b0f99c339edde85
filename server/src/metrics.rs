//! The opt-in Prometheus endpoint: `GET /metrics` over plain HTTP/1.1 on 127.0.0.1, one
//! request per connection. The text is the core's (cache and healing) plus the server's counters.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::server::Shared;

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time a scraper has to send its request.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The `cache` label of every series.
const NAME: &str = "healcache-server";

/// The whole exposition text.
pub fn text(shared: &Shared) -> String {
    let mut out = shared.cache.prometheus(NAME);
    out.push_str(&shared.healer.prometheus(NAME));
    let c = &shared.counters;
    let counters = [
        ("connections_total", "Connections accepted.", c.connections.load(Relaxed)),
        ("rejected_connections_total", "Connections refused at max_clients.", c.rejected.load(Relaxed)),
        ("commands_total", "Commands executed.", c.commands.load(Relaxed)),
        (
            "protocol_error_disconnects_total",
            "Connections closed for a protocol error.",
            c.protocol_errors.load(Relaxed),
        ),
        ("timeout_disconnects_total", "Connections closed for idleness or a slow request.", c.timeouts.load(Relaxed)),
        (
            "output_limit_disconnects_total",
            "Connections closed because replies did not drain.",
            c.output_disconnects.load(Relaxed),
        ),
        (
            "cross_protocol_disconnects_total",
            "Connections closed for sending POST or Host:.",
            c.cross_protocol.load(Relaxed),
        ),
        ("auth_failures_total", "Failed AUTH attempts.", c.auth_failures.load(Relaxed)),
    ];
    for (name, help, v) in counters {
        let _ = write!(out, "# HELP healcache_server_{name} {help}\n# TYPE healcache_server_{name} counter\nhealcache_server_{name} {v}\n");
    }
    let _ = write!(
        out,
        "# HELP healcache_server_connected_clients Clients connected now.\n# TYPE healcache_server_connected_clients gauge\nhealcache_server_connected_clients {}\n",
        shared.clients.load(Relaxed)
    );
    out
}

/// Serves scrapes until the runtime stops.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(HEAD_TIMEOUT, answer(sock, &shared)).await;
        });
    }
}

async fn answer(mut sock: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let (status, body) = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?") {
        ("200 OK", text(shared))
    } else {
        ("404 Not Found", "not found: the endpoint is GET /metrics\n".to_string())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(reply.as_bytes()).await?;
    sock.shutdown().await
}
