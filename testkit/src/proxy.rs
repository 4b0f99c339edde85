//! A TCP fault proxy on loopback. Written in the repository because no maintained crate does this
//! (noxious, the Rust toxiproxy, is on 2021 dependencies) and Debian ships no toxiproxy.
//!
//! Each accepted connection gets its own upstream connection and two pipes (client to upstream,
//! upstream to client). A pipe is a reader that stamps each chunk with its due time (latency plus
//! jitter) and a writer that waits for it and then writes it whole, one byte at a time, or paced to a
//! bandwidth. Both read the current faults for every chunk, so changes apply to open connections at once.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::{sleep, sleep_until, Instant};

/// Chunks in flight per direction: bounds the memory a slowed pipe holds (64 x 16 KiB).
const QUEUE_CHUNKS: usize = 64;
const CHUNK_BYTES: usize = 16 * 1024;
/// With a bandwidth limit, data goes out in pieces of about a fiftieth of a second's worth.
const PACING_SLICES_PER_SEC: u64 = 50;
/// How often a stalled direction (`bytes_per_sec: Some(0)`) looks at its faults again.
const STALL_POLL: Duration = Duration::from_millis(10);
/// The first bytes a client sent are kept (per connection) so a test can tell connections apart.
pub const FIRST_BYTES_KEPT: usize = 256;
/// Latency plus jitter is capped here: no test waits longer, and the cap keeps the deadline arithmetic
/// from overflowing.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Accept times kept; older ones are dropped first.
pub const ACCEPT_LOG_LEN: usize = 4096;

/// The faults of one direction. `Faults::default()` is a clean pass-through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added to every chunk before it is forwarded (chunks keep their order). Latency plus jitter
    /// counts as at most [`MAX_DELAY`].
    pub latency: Duration,
    /// Up to this much more, uniformly at random, per chunk.
    pub jitter: Duration,
    /// Forward at most this many bytes per second. `Some(0)` stalls the direction: data is held, not
    /// dropped, until the limit changes.
    pub bytes_per_sec: Option<u64>,
    /// Write one byte per write call (with TCP_NODELAY), so the peer sees replies cut at every byte.
    pub slice_1byte: bool,
    /// Keep reading and drop everything: the peer sees an open connection that never answers.
    pub blackhole: bool,
    /// Reset new connections as soon as they are accepted (set in either direction).
    pub refuse: bool,
    /// Close the connection (both ways, with FIN) once this many bytes went this way on it.
    pub data_limit: Option<u64>,
}

/// Which way a fault applies. `Upstream` is client to server (requests), `Downstream` server to client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upstream,
    Downstream,
    Both,
}

struct Shared {
    upstream: SocketAddr,
    /// `[upstream, downstream]`.
    faults: watch::Sender<[Faults; 2]>,
    /// Bumped by `reset_all`; every open connection watches it.
    resets: watch::Sender<u64>,
    connections: AtomicU64,
    active: AtomicU64,
    refused: AtomicU64,
    started: Instant,
    accepted_at: Mutex<VecDeque<Duration>>,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

/// One open connection: its own fault overrides, counters and reset switch.
struct Conn {
    opened: Instant,
    first_bytes: Mutex<Vec<u8>>,
    /// Per direction; `None` follows the proxy-wide faults.
    overrides: Mutex<[Option<Faults>; 2]>,
    forwarded: [AtomicU64; 2],
    reset: Notify,
}

/// What a test can see of an open connection, to pick one out (for example the one that sent
/// SUBSCRIBE) and fault it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Accept order, from 1.
    pub id: u64,
    /// Time since it was accepted.
    pub age: Duration,
    /// The first bytes the client sent (up to [`FIRST_BYTES_KEPT`]), blackholed ones included.
    pub first_bytes: Vec<u8>,
    /// Bytes forwarded to the upstream so far.
    pub bytes_up: u64,
    /// Bytes forwarded to the client so far.
    pub bytes_down: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays valid if a holder panicked: a test's failure must not cascade into the proxy.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn faults(&self, conn: &Conn, dir: usize) -> Faults {
        match &lock(&conn.overrides)[dir] {
            Some(f) => f.clone(),
            None => self.faults.borrow()[dir].clone(),
        }
    }

    fn conn(&self, id: u64) -> Option<Arc<Conn>> {
        lock(&self.open).get(&id).cloned()
    }
}

/// A TCP proxy on a free 127.0.0.1 port in front of a loopback upstream, on its own tokio runtime
/// thread, so it serves sync tests and tests inside any other runtime alike. Dropping it stops the
/// thread and closes every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream`, which must be a loopback address (tests talk to nothing else).
    pub fn start(upstream: SocketAddr) -> io::Result<Self> {
        if !upstream.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("upstream {upstream} is not a loopback address"),
            ));
        }
        let std_listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let listener = {
            let _guard = rt.enter();
            TcpListener::from_std(std_listener)?
        };
        let shared = Arc::new(Shared {
            upstream,
            faults: watch::channel(Default::default()).0,
            resets: watch::channel(0).0,
            connections: AtomicU64::new(0),
            active: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            started: Instant::now(),
            accepted_at: Mutex::new(VecDeque::new()),
            open: Mutex::new(BTreeMap::new()),
        });
        let (shutdown, stopped) = oneshot::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new().name(format!("faultproxy-{}", addr.port())).spawn(move || {
            rt.block_on(async move {
                tokio::select! {
                    _ = accept_loop(listener, thread_shared) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here cancels every connection task and closes its sockets.
        })?;
        Ok(FaultProxy { addr, shared, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// The proxy's own address: point the client here.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Sets the faults of both directions (replacing all earlier ones); open connections follow at once.
    pub fn set(&self, faults: Faults) {
        self.set_dir(Direction::Both, faults);
    }

    /// Sets the faults of one direction (or both), leaving the other as it is.
    pub fn set_dir(&self, dir: Direction, faults: Faults) {
        self.shared.faults.send_modify(|f| match dir {
            Direction::Upstream => f[0] = faults,
            Direction::Downstream => f[1] = faults,
            Direction::Both => *f = [faults.clone(), faults],
        });
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.set(Faults::default());
    }

    /// The current faults, `[upstream, downstream]`.
    pub fn faults(&self) -> [Faults; 2] {
        self.shared.faults.borrow().clone()
    }

    /// Resets (RST, SO_LINGER 0) every open connection on both sides. New connections are unaffected
    /// unless `refuse` is set.
    pub fn reset_all(&self) {
        self.shared.resets.send_modify(|n| *n += 1);
    }

    /// Connections accepted so far (including refused ones).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn active(&self) -> u64 {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Connections reset at accept because `refuse` was set.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// When each connection (refused ones included) was accepted, as time since the proxy started,
    /// oldest first; the last [`ACCEPT_LOG_LEN`] are kept. For reconnect-herd checks.
    pub fn accept_times(&self) -> Vec<Duration> {
        lock(&self.shared.accepted_at).iter().copied().collect()
    }

    /// The connections open now, in accept order.
    pub fn open_connections(&self) -> Vec<ConnInfo> {
        lock(&self.shared.open)
            .iter()
            .map(|(&id, c)| ConnInfo {
                id,
                age: c.opened.elapsed(),
                first_bytes: lock(&c.first_bytes).clone(),
                bytes_up: c.forwarded[0].load(Ordering::SeqCst),
                bytes_down: c.forwarded[1].load(Ordering::SeqCst),
            })
            .collect()
    }

    /// Overrides the faults of one open connection (one direction or both); the proxy-wide faults
    /// no longer apply to it in that direction. False when no connection `id` is open.
    pub fn set_conn(&self, id: u64, dir: Direction, faults: Faults) -> bool {
        let Some(conn) = self.shared.conn(id) else { return false };
        let mut o = lock(&conn.overrides);
        match dir {
            Direction::Upstream => o[0] = Some(faults),
            Direction::Downstream => o[1] = Some(faults),
            Direction::Both => *o = [Some(faults.clone()), Some(faults)],
        }
        true
    }

    /// Resets (RST) one open connection. False when no connection `id` is open.
    pub fn reset_conn(&self, id: u64) -> bool {
        self.shared.conn(id).map(|c| c.reset.notify_one()).is_some()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => {
                sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut log = lock(&shared.accepted_at);
            if log.len() == ACCEPT_LOG_LEN {
                log.pop_front();
            }
            log.push_back(shared.started.elapsed());
        }
        let refuse = shared.faults.borrow().iter().any(|f| f.refuse);
        if refuse {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            rst(sock);
            continue;
        }
        tokio::spawn(serve(sock, id, shared.clone()));
    }
}

fn rst(sock: TcpStream) {
    // SO_LINGER 0 makes close() send RST instead of FIN.
    let _ = sock.set_zero_linger();
    drop(sock);
}

/// Why a pipe stopped early.
enum Stop {
    Io(io::Error),
    Limit,
}

/// Keeps `active` and the open-connection table right however `serve` ends.
struct OpenGuard<'a>(&'a Shared, u64);
impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.open).remove(&self.1);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(mut client: TcpStream, id: u64, shared: Arc<Shared>) {
    let conn = Arc::new(Conn {
        opened: Instant::now(),
        first_bytes: Mutex::new(Vec::new()),
        overrides: Mutex::new([None, None]),
        forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
        reset: Notify::new(),
    });
    shared.active.fetch_add(1, Ordering::SeqCst);
    lock(&shared.open).insert(id, conn.clone());
    let _open = OpenGuard(&shared, id);
    let mut resets = shared.resets.subscribe();
    let mut server = tokio::select! {
        r = TcpStream::connect(shared.upstream) => match r {
            Ok(s) => s,
            // Upstream down: the client sees what it would see without the proxy, a reset.
            Err(_) => return rst(client),
        },
        _ = resets.changed() => return rst(client),
        _ = conn.reset.notified() => return rst(client),
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let reset = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let both = async {
            tokio::try_join!(pipe(&mut cr, &mut sw, 0, &shared, &conn), pipe(&mut sr, &mut cw, 1, &shared, &conn))
        };
        tokio::select! {
            r = both => matches!(r, Err(Stop::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset),
            _ = resets.changed() => true,
            _ = conn.reset.notified() => true,
        }
    };
    if reset {
        // A reset on either side (or reset_all) is passed on as a reset to both.
        rst(client);
        rst(server);
    }
    // Otherwise both sockets drop here with a normal close.
}

/// Copies `from` to `to` under the faults of direction `dir` until EOF (then shuts `to` down).
async fn pipe<R, W>(from: &mut R, to: &mut W, dir: usize, shared: &Shared, conn: &Conn) -> Result<(), Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    tokio::try_join!(read_side(from, tx, dir, shared, conn), write_side(to, rx, dir, shared, conn)).map(|_| ())
}

async fn read_side<R: AsyncRead + Unpin>(
    from: &mut R,
    tx: mpsc::Sender<(Instant, Vec<u8>)>,
    dir: usize,
    shared: &Shared,
    conn: &Conn,
) -> Result<(), Stop> {
    static SEEDS: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(SEEDS.fetch_add(0x9e37_79b9, Ordering::Relaxed));
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = from.read(&mut buf).await.map_err(Stop::Io)?;
        if n == 0 {
            return Ok(()); // dropping tx lets the writer drain and shut down
        }
        if dir == 0 {
            let mut first = lock(&conn.first_bytes);
            let take = n.min(FIRST_BYTES_KEPT - first.len());
            first.extend_from_slice(&buf[..take]);
        }
        let f = shared.faults(conn, dir);
        if f.blackhole {
            continue;
        }
        let jitter = match f.jitter.min(MAX_DELAY).as_nanos() as u64 {
            0 => Duration::ZERO,
            j => Duration::from_nanos(rng.random_range(0..=j)),
        };
        let delay = f.latency.saturating_add(jitter).min(MAX_DELAY);
        if tx.send((Instant::now() + delay, buf[..n].to_vec())).await.is_err() {
            return Ok(());
        }
    }
}

async fn write_side<W: AsyncWrite + Unpin>(
    to: &mut W,
    mut rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    dir: usize,
    shared: &Shared,
    conn: &Conn,
) -> Result<(), Stop> {
    let mut sent: u64 = 0;
    let mut next_slot = Instant::now();
    while let Some((due, data)) = rx.recv().await {
        sleep_until(due).await;
        let mut rest = &data[..];
        while !rest.is_empty() {
            let f = shared.faults(conn, dir);
            let mut n = rest.len();
            if f.slice_1byte {
                n = 1;
            }
            if let Some(rate) = f.bytes_per_sec {
                if rate == 0 {
                    sleep(STALL_POLL).await;
                    continue;
                }
                n = n.min((rate / PACING_SLICES_PER_SEC).clamp(1, CHUNK_BYTES as u64) as usize);
            }
            if let Some(limit) = f.data_limit {
                let left = limit.saturating_sub(sent);
                if left == 0 {
                    return Err(Stop::Limit);
                }
                n = n.min(left.min(usize::MAX as u64) as usize);
            }
            // Counted before the write, so a peer that has seen the bytes always finds them counted.
            conn.forwarded[dir].fetch_add(n as u64, Ordering::SeqCst);
            to.write_all(&rest[..n]).await.map_err(Stop::Io)?;
            sent += n as u64;
            rest = &rest[n..];
            if let Some(rate) = f.bytes_per_sec {
                next_slot = next_slot.max(Instant::now()) + Duration::from_secs_f64(n as f64 / rate as f64);
                sleep_until(next_slot).await;
            }
            if f.data_limit.is_some_and(|limit| sent >= limit) {
                return Err(Stop::Limit);
            }
        }
    }
    to.shutdown().await.map_err(Stop::Io)
}
