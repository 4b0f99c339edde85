//! One client connection: read, parse every complete command, execute, write the replies in one
//! batch (pipelining answers in order), and the limits a hostile client meets.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::{write_error, Parser, ProtoError};
use crate::server::Shared;

/// Room kept free in the input buffer before a read.
const READ_ROOM: usize = 16 * 1024;

/// A connected client's state.
#[derive(Debug)]
pub struct Client {
    /// Its id (`CLIENT ID`, `HELLO`).
    pub id: u64,
    /// RESP version of its replies: 2, or 3 after `HELLO 3`.
    pub proto: u8,
    /// Whether it may run commands other than AUTH, HELLO, QUIT and PING.
    pub authenticated: bool,
    /// The name it gave with `CLIENT SETNAME` or `HELLO ... SETNAME`.
    pub name: Option<Bytes>,
    /// Whether it sent a MULTI and no EXEC or DISCARD since: there are no transactions, so every
    /// command meanwhile is answered with an error and not run, and EXEC answers EXECABORT.
    pub in_multi: bool,
}

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Send the replies so far, then close (QUIT).
    Close,
}

/// Why replies could not be sent.
enum WriteFailed {
    /// The peer is gone.
    Gone,
    /// The replies did not drain within the output timeout.
    Stalled,
}

async fn flush(sock: &mut TcpStream, out: &mut BytesMut, timeout: Duration) -> Result<(), WriteFailed> {
    match tokio::time::timeout(timeout, sock.write_all(out)).await {
        Ok(Ok(())) => {
            out.clear();
            Ok(())
        }
        Ok(Err(_)) => Err(WriteFailed::Gone),
        Err(_) => Err(WriteFailed::Stalled),
    }
}

/// Redis's guard against cross-protocol scripting: a browser tricked into posting to the RESP
/// port sends `POST` or `Host:` as a command name; such a connection is closed unanswered.
fn looks_like_http(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
}

/// Serves one client until it quits, breaks a limit, or goes away.
pub async fn serve(shared: &Shared, mut sock: TcpStream, peer: SocketAddr) {
    let cfg = &shared.settings.server;
    let counters = &shared.counters;
    let _ = sock.set_nodelay(true);
    let mut client = Client {
        id: shared.next_id(),
        proto: 2,
        authenticated: cfg.requirepass.is_none(),
        name: None,
        in_multi: false,
    };
    let mut input = BytesMut::with_capacity(READ_ROOM);
    let mut out = BytesMut::with_capacity(READ_ROOM);
    let mut parser = Parser::new();
    let mut last_command = Instant::now();
    let mut request_start: Option<Instant> = None;
    // One timer per connection, moved only when it fires early or a request starts: resetting a
    // timer on every read would cost a trip through the runtime's timer wheel per command.
    let mut timer_at = last_command + cfg.idle_timeout();
    let timer = tokio::time::sleep_until(timer_at.into());
    tokio::pin!(timer);
    loop {
        let mut done = 0u64;
        let failure = loop {
            let limits = cfg.limits(client.authenticated);
            let args = match parser.next(&mut input, &limits) {
                Ok(Some(args)) => args,
                Ok(None) => break None,
                Err(e) => break Some(e),
            };
            done += 1;
            if looks_like_http(&args[0]) {
                counters.cross_protocol.fetch_add(1, Relaxed);
                shared.log_attack(Some(peer));
                return;
            }
            let flow = crate::commands::execute(shared, &mut client, &args, &mut out);
            if flow == Flow::Close {
                let _ = flush(&mut sock, &mut out, cfg.output_timeout()).await;
                return;
            }
            if out.len() >= cfg.output_limit(client.authenticated) {
                if let Err(e) = flush(&mut sock, &mut out, cfg.output_timeout()).await {
                    if matches!(e, WriteFailed::Stalled) {
                        counters.output_disconnects.fetch_add(1, Relaxed);
                    }
                    return;
                }
            }
        };
        counters.commands.fetch_add(done, Relaxed);
        let limits = cfg.limits(client.authenticated);
        let failure = failure
            .or_else(|| (input.len() + parser.pending() > limits.max_buffer).then_some(ProtoError::QueryBufferLimit));
        if let Some(e) = failure {
            counters.protocol_errors.fetch_add(1, Relaxed);
            write_error(&mut out, &format!("ERR {}", e.message()));
            let _ = flush(&mut sock, &mut out, cfg.output_timeout()).await;
            return;
        }
        if !out.is_empty() {
            if let Err(e) = flush(&mut sock, &mut out, cfg.output_timeout()).await {
                if matches!(e, WriteFailed::Stalled) {
                    counters.output_disconnects.fetch_add(1, Relaxed);
                }
                return;
            }
        }
        let now = Instant::now();
        if done > 0 {
            last_command = now;
            request_start = None;
        }
        if request_start.is_none() && (!input.is_empty() || parser.pending() > 0) {
            request_start = Some(now);
        }
        let deadline = |last: Instant, start: Option<Instant>| {
            let idle = last + cfg.idle_timeout();
            start.map_or(idle, |s| idle.min(s + cfg.request_timeout()))
        };
        let due = deadline(last_command, request_start);
        if due < timer_at {
            timer_at = due;
            timer.as_mut().reset(due.into());
        }
        if input.capacity() - input.len() < READ_ROOM / 4 {
            input.reserve(READ_ROOM);
        }
        loop {
            tokio::select! {
                biased;
                r = sock.read_buf(&mut input) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => break,
                },
                _ = &mut timer => {
                    let due = deadline(last_command, request_start);
                    if Instant::now() >= due {
                        counters.timeouts.fetch_add(1, Relaxed);
                        return;
                    }
                    timer_at = due;
                    timer.as_mut().reset(due.into());
                }
            }
        }
    }
}
