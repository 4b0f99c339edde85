//! The server: one tokio runtime with two workers, one task per connection, the healer's loop
//! beside them, the optional metrics endpoint.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use healcache::{Cache, CacheBuilder, Healer, Timer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::config::Settings;

/// The server's own counters (the cache and the healer keep theirs).
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused at `max_clients`.
    pub rejected: AtomicU64,
    /// Commands executed.
    pub commands: AtomicU64,
    /// Connections closed for a protocol error.
    pub protocol_errors: AtomicU64,
    /// Connections closed for idleness or a command that took too long to arrive.
    pub timeouts: AtomicU64,
    /// Connections closed because their replies did not drain.
    pub output_disconnects: AtomicU64,
    /// Connections closed for looking like HTTP (a cross-protocol attack).
    pub cross_protocol: AtomicU64,
    /// AUTH attempts that failed.
    pub auth_failures: AtomicU64,
}

/// What every connection shares.
pub struct Shared {
    /// The settings the server started with.
    pub settings: Settings,
    /// The cache of bytes.
    pub cache: Cache<Bytes>,
    /// Its healer.
    pub healer: Healer<Bytes>,
    /// Connected clients now.
    pub clients: AtomicUsize,
    /// Counters.
    pub counters: Counters,
    /// When the server started.
    pub started: Instant,
    /// The port actually listened on.
    pub port: u16,
    next_id: AtomicU64,
    last_attack_log: Mutex<Option<Instant>>,
}

impl Shared {
    /// A new client id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed) + 1
    }

    /// Logs a cross-protocol attempt at most once a minute (an attacker must not fill the log).
    pub fn log_attack(&self, peer: Option<SocketAddr>) {
        let mut last = self.last_attack_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
            eprintln!(
                "healcache-server: possible security attack: a client ({peer}) sent POST or Host: to the RESP port; \
                 connection closed (logged at most once a minute)"
            );
        }
    }
}

struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Builds the cache and healer from the settings.
pub fn build(settings: Settings, port: u16) -> Result<Arc<Shared>, String> {
    let cache = CacheBuilder::<Bytes>::from_config(settings.cache_config())
        .weigher(|v: &Bytes| v.len() as u64)
        .timer(TokioTimer)
        .build()
        .map_err(|e| format!("cache: {e}"))?;
    let healer = Healer::new(cache.clone(), settings.healing_config()).map_err(|e| format!("healing: {e}"))?;
    Ok(Arc::new(Shared {
        settings,
        cache,
        healer,
        clients: AtomicUsize::new(0),
        counters: Counters::default(),
        started: Instant::now(),
        port,
        next_id: AtomicU64::new(0),
        last_attack_log: Mutex::new(None),
    }))
}

/// Runs the server until SIGINT or SIGTERM; an error when it cannot start.
pub fn run(settings: Settings) -> Result<(), String> {
    let ip = settings.server.bind_addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("healcache-server")
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let addr = SocketAddr::new(ip, settings.server.port);
        let listener = listen(addr).map_err(|e| format!("listen on {addr}: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let metrics = match settings.server.metrics_port {
            Some(p) => {
                Some(TcpListener::bind(("127.0.0.1", p)).await.map_err(|e| format!("metrics on 127.0.0.1:{p}: {e}"))?)
            }
            None => None,
        };
        let shared = build(settings, port)?;
        let healer = shared.healer.clone();
        tokio::spawn(async move { healer.run().await });
        tokio::spawn(reclaim_expired(Arc::clone(&shared)));
        if let Some(m) = metrics {
            tokio::spawn(crate::metrics::serve(m, Arc::clone(&shared)));
        }
        eprintln!("healcache-server: listening on {ip}:{port}");
        tokio::select! {
            _ = accept_loop(listener, Arc::clone(&shared)) => {}
            _ = shutdown_signal() => eprintln!("healcache-server: shutting down"),
        }
        shared.healer.stop();
        Ok(())
    })
}

/// How often expired entries are reclaimed.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

/// Removes expired entries once a second, as Redis's active expiry does: the engine drops one
/// when it is read or met by a write, so keys nobody touches again would stay in DBSIZE and INFO.
/// A pass looks at every entry (about 2-6 ms at 1,000,000), each shard's lock held in turn, so it
/// runs on the blocking pool rather than on a worker serving clients.
async fn reclaim_expired(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(RECLAIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let shared = Arc::clone(&shared);
        let _ = tokio::task::spawn_blocking(move || shared.cache.purge_expired()).await;
    }
}

/// A listener with Redis's backlog (511): a burst of connects waits in the kernel, not refused.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(511)
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return futures::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Decrements the client count when a connection ends, however it ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Relaxed);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                eprintln!("healcache-server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.counters.connections.fetch_add(1, Relaxed);
        let n = shared.clients.fetch_add(1, Relaxed) + 1;
        let slot = Slot(Arc::clone(&shared));
        if n > shared.settings.server.max_clients {
            shared.counters.rejected.fetch_add(1, Relaxed);
            tokio::spawn(refuse(sock, slot));
            continue;
        }
        tokio::spawn(async move {
            crate::conn::serve(&slot.0, sock, peer).await;
            drop(slot);
        });
    }
}

async fn refuse(mut sock: TcpStream, slot: Slot) {
    let _ =
        tokio::time::timeout(Duration::from_secs(1), sock.write_all(b"-ERR max number of clients reached\r\n")).await;
    drop(slot);
}
