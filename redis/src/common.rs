//! What the single-server and the cluster transports share: the per-process state (connection,
//! write queue, bus subscriptions, scripts), the script calls, the bus's retry loop, the reply
//! decoders and the [`Transport`] impl itself. Each transport says, through [`Link`], only what
//! differs: how it connects and pings, which errors lose the connection, how a batch of writes is
//! sent, how a subscription runs, and how tags, scans and unlinks are spread over its nodes.
//!
//! Closing: a transport closes when told to ([`close`]) or when the last clone a user holds is
//! dropped ([`KeepOpen`]); either way what it queued is still sent first, then its connections
//! close. Its own tasks hold clones that do not keep it open ([`Link::tasks`]): a write task
//! holding a full clone kept alive the queue it waited on, so a dropped cache's connection
//! stayed open for the life of the process.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use healcache::codec::Token;
use healcache::keys::L2Keys;
use healcache::tier::{
    scripts, BusSink, LeaseReply, LockReply, ReadReply, Record, TagRead, TagSet, TransportError, WriteReply,
    TAG_VERSION_END, UNREADABLE_TAG,
};
use healcache_rt::ForkGuard;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis::aio::ConnectionLike;
use redis::Script;
use tokio::sync::watch;

use crate::queue::{Queued, Writer};

/// How long connecting may take: a probe that cannot connect in this long fails, and the
/// breaker tries again later.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a probe's PING may take on an existing connection before it is replaced.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(250);
/// Writes waiting for the connection at most; beyond, a write fails at once (the breaker counts
/// it) rather than queueing without bound behind a slow Redis.
pub(crate) const WRITE_QUEUE: usize = 65_536;
/// Writes sent in one pipeline at most (what is queued when the previous batch is answered).
pub(crate) const WRITE_BATCH: usize = 512;
/// The bus connection is pinged this often; one that does not answer within [`BUS_PONG`] is
/// replaced (pub/sub has no other sign of a silently dead link).
pub(crate) const BUS_PING: Duration = Duration::from_secs(1);
pub(crate) const BUS_PONG: Duration = Duration::from_secs(3);
/// Pauses before subscribing again are full jitter, `U(0, min(BUS_RETRY_MAX, BUS_RETRY_FIRST * 2^k))`
/// after k failed tries, the breaker's shape: a fleet that lost Redis at one instant spreads its
/// resubscriptions over the window instead of retrying in step (a `[d/2, d]` pause seeded from
/// the clock, as before, kept 50 instances of one process within a few 100 ms buckets).
const BUS_RETRY_FIRST: Duration = Duration::from_secs(1);
const BUS_RETRY_MAX: Duration = Duration::from_secs(4);
/// How long a transport whose last user dropped it goes on sending what it had queued, at most.
const DROP_DRAIN: Duration = Duration::from_secs(10);
/// Keys asked per SCAN round trip and unlinked per UNLINK.
pub(crate) const SCAN_COUNT: usize = 1000;
pub(crate) const UNLINK_BATCH: usize = 500;

/// The bus subscriptions asked for (channel and sink), and the process that runs them.
type Subscriptions = (Vec<(String, Arc<dyn BusSink>)>, Option<ForkGuard<()>>);

/// The scripts of the core's protocol, loaded on first use (EVALSHA, then EVAL on NOSCRIPT).
pub(crate) struct Scripts {
    pub(crate) read: Script,
    pub(crate) revalidate: Script,
    pub(crate) write: Script,
    /// The fenced write of a rebuild under the fleet lock (checks the token's epoch, releases the lock).
    pub(crate) write_fenced: Script,
    acquire: Script,
    renew: Script,
    release: Script,
    lease: Script,
    put_record: Script,
    tag_read: Script,
    tag_bump: Script,
}

/// Where a transport is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Open,
    /// Closing: what is queued is still sent; nothing new is taken.
    Draining,
    /// Every connection dropped; every operation fails at once.
    Closed,
}

/// A transport's state in this process; every part made by a parent process is replaced in a
/// child of `fork()` (the [`ForkGuard`]s), never used there.
pub(crate) struct State<C> {
    conn: Mutex<Option<ForkGuard<C>>>,
    pub(crate) writer: Mutex<Option<ForkGuard<Writer>>>,
    /// The bus subscriptions asked for, and a marker of the process that runs them: a child of
    /// `fork()` finds the marker inherited and starts them again.
    subs: Mutex<Subscriptions>,
    pub(crate) scripts: Scripts,
    /// Held while an operation connects again (one connection made for all that wait).
    reconnecting: tokio::sync::Mutex<()>,
    /// The write loop and each bus subscription watch it, and end once the transport closes.
    pub(crate) phase: watch::Sender<Phase>,
}

impl<C> State<C> {
    pub(crate) fn new() -> Self {
        State {
            conn: Mutex::new(None),
            writer: Mutex::new(None),
            subs: Mutex::new((Vec::new(), None)),
            reconnecting: tokio::sync::Mutex::new(()),
            scripts: Scripts {
                read: Script::new(scripts::READ),
                revalidate: Script::new(scripts::REVALIDATE),
                write: Script::new(scripts::WRITE_SEEN),
                write_fenced: Script::new(scripts::WRITE),
                acquire: Script::new(scripts::ACQUIRE),
                renew: Script::new(scripts::RENEW),
                release: Script::new(scripts::RELEASE),
                lease: Script::new(scripts::LEASE),
                put_record: Script::new(scripts::PUT_RECORD),
                tag_read: Script::new(scripts::TAG_READ),
                tag_bump: Script::new(scripts::TAG_BUMP),
            },
            phase: watch::Sender::new(Phase::Open),
        }
    }

    /// Keeps a new connection for this process, unless the transport closed meanwhile (a
    /// probe under way at the close): then it is dropped at once.
    pub(crate) fn set_conn(&self, conn: C) {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // checked under the lock `shut` takes after marking the transport closed
        if !self.closed() {
            *slot = Some(ForkGuard::new(conn));
        }
    }

    pub(crate) fn open(&self) -> bool {
        *self.phase.borrow() == Phase::Open
    }

    fn closed(&self) -> bool {
        *self.phase.borrow() == Phase::Closed
    }
}

/// What differs between the transports; everything else is written once, below.
pub(crate) trait Link: Clone + Send + Sync + 'static {
    type Conn: ConnectionLike + Clone + Send + Sync + 'static;
    fn state(&self) -> &State<Self::Conn>;
    /// A clone for the transport's own tasks (the write loop, the bus subscriptions): unlike a
    /// user's clone it does not keep the transport open.
    fn tasks(&self) -> Self;
    /// A new connection, kept with [`State::set_conn`] once it answered.
    fn reconnect(&self) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// A failure's error, forgetting the connection when the failure says it is lost.
    fn failed(&self, e: redis::RedisError) -> TransportError;
    /// The probe's check of a kept connection.
    fn ping(&self, conn: Self::Conn) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// One batch of the write queue, an answer per item in its order.
    fn send_batch(&self, reqs: Vec<Queued>) -> impl Future<Output = Vec<Result<WriteReply, TransportError>>> + Send;
    /// Subscribed until the connection fails (`Ok` once it had subscribed), `Err` when it could
    /// not subscribe.
    fn bus_session(
        &self,
        channel: &str,
        sink: &Arc<dyn BusSink>,
        first: bool,
    ) -> impl Future<Output = Result<(), ()>> + Send;
    fn unlink(&self, pattern: String) -> impl Future<Output = Result<u64, TransportError>> + Send;
    fn scan(
        &self,
        pattern: String,
        cursor: u64,
        count: usize,
    ) -> impl Future<Output = Result<(u64, Vec<String>), TransportError>> + Send;
}

/// The connection of this process, if there is one.
pub(crate) fn conn<L: Link>(l: &L) -> Result<L::Conn, TransportError> {
    let slot = l.state().conn.lock().unwrap_or_else(|p| p.into_inner());
    slot.as_ref().and_then(|g| g.get().cloned()).ok_or_else(|| TransportError::Io("not connected".into()))
}

/// The connection for an operation the breaker let through, connecting again when it was lost.
pub(crate) async fn conn_here<L: Link>(l: &L) -> Result<L::Conn, TransportError> {
    conn_for(l, true).await
}

/// The connection, or a new one when the one kept was made by a parent process (this process
/// forked after connecting): a child reconnects at its first use, not after the breaker's failures.
/// A connection lost to a failure is made again only when `connect`: for the operations the
/// breaker admits, not for the bus heartbeats, which go out during an outage too and would
/// otherwise make a connection attempt each.
pub(crate) async fn conn_for<L: Link>(l: &L, connect: bool) -> Result<L::Conn, TransportError> {
    if l.state().closed() {
        return Err(closed_error());
    }
    resubscribe_after_fork(l);
    let inherited = {
        let slot = l.state().conn.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().is_some_and(|g| g.get().is_none())
    };
    if inherited {
        l.reconnect().await?;
    }
    match conn(l) {
        // lost to a failure (a heartbeat that found it dropped, say): connected again now, once
        // for every caller, rather than failing each operation until the breaker opens and its
        // probe connects (Redis restarted: the next operation uses it, within its deadline)
        Err(_) if connect && l.state().open() => {
            let _one = l.state().reconnecting.lock().await;
            if conn(l).is_err() {
                l.reconnect().await?;
            }
            conn(l)
        }
        c => c,
    }
}

/// Forgets the connection after it failed: the next probe makes a new one.
pub(crate) fn lost<C>(state: &State<C>) {
    *state.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

pub(crate) async fn probe<L: Link>(l: &L) -> Result<(), TransportError> {
    // a closing transport never connects again
    if !l.state().open() {
        return Err(closed_error());
    }
    if let Ok(conn) = conn(l) {
        if let Ok(Ok(())) = tokio::time::timeout(PING_TIMEOUT, l.ping(conn)).await {
            return Ok(());
        }
        lost(l.state());
    }
    l.reconnect().await
}

/// In a child of `fork()`, the parent's subscription tasks are gone: start them again.
fn resubscribe_after_fork<L: Link>(l: &L) {
    let mut subs = l.state().subs.lock().unwrap_or_else(|p| p.into_inner());
    if subs.1.as_ref().is_some_and(|g| g.get().is_none()) && l.state().open() {
        subs.1 = Some(ForkGuard::new(()));
        for (channel, sink) in subs.0.iter().filter(|(_, s)| s.alive()) {
            healcache_rt::handle().spawn(bus_loop(l.tasks(), channel.clone(), Arc::clone(sink), true));
        }
    }
}

pub(crate) fn subscribe<L: Link>(l: &L, channel: &str, sink: Arc<dyn BusSink>) {
    let mut subs = l.state().subs.lock().unwrap_or_else(|p| p.into_inner());
    if !l.state().open() {
        return;
    }
    subs.0.retain(|(_, s)| s.alive());
    subs.0.push((channel.to_string(), Arc::clone(&sink)));
    if subs.1.is_none() {
        subs.1 = Some(ForkGuard::new(()));
    }
    drop(subs);
    healcache_rt::handle().spawn(bus_loop(l.tasks(), channel.to_string(), sink, true));
}

/// One subscription for as long as its sink is alive and the transport open; a close ends it at
/// once, its connection with it.
async fn bus_loop<L: Link>(l: L, channel: String, sink: Arc<dyn BusSink>, first: bool) {
    let mut phase = l.state().phase.subscribe();
    let closing = async move {
        let _ = phase.wait_for(|p| *p != Phase::Open).await;
    };
    tokio::select! {
        () = bus_sessions(&l, &channel, &sink, first) => {}
        () = closing => {}
    }
}

/// Subscribe, deliver, ping; when the connection fails or stops answering, subscribe again
/// after a full-jitter pause; until the sink is gone.
async fn bus_sessions<L: Link>(l: &L, channel: &str, sink: &Arc<dyn BusSink>, mut first: bool) {
    let mut rng = SmallRng::seed_from_u64(host_seed());
    // retries since the last subscription: the pause before the next is `U(0, window(k))`
    let mut k = 0u32;
    // the first subscription (of this process) goes at once
    let mut pause = !first;
    while sink.alive() {
        if pause {
            tokio::time::sleep(bus_pause(&mut rng, k)).await;
            k = k.saturating_add(1);
        }
        if l.bus_session(channel, sink, first).await.is_ok() {
            first = false;
            k = 0;
        }
        pause = true;
    }
}

/// Closes the transport (see `Transport::close`): nothing new is taken; the write loop sends
/// what is queued, for `deadline` at most, then every connection is dropped.
pub(crate) async fn close<L: Link>(l: &L, deadline: Duration) {
    let st = l.state();
    let mut phase = st.phase.subscribe();
    let first = st.phase.send_if_modified(|p| {
        let open = *p == Phase::Open;
        if open {
            *p = Phase::Draining;
        }
        open
    });
    if first {
        // without its sender the write loop ends once it has sent what is queued, and shuts
        let writer = st.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if writer.is_none_or(|g| g.get().is_none()) {
            // no write loop in this process: nothing queued
            shut(st);
            return;
        }
    }
    let _ = tokio::time::timeout(deadline, phase.wait_for(|p| *p == Phase::Closed)).await;
    shut(st);
}

/// Closed for good: the write loop gives up what it still holds, the bus subscriptions end, and
/// every connection is dropped (each closes once the operations holding it end).
pub(crate) fn shut<C>(st: &State<C>) {
    st.phase.send_replace(Phase::Closed);
    lost(st);
    st.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
    st.subs.lock().unwrap_or_else(|p| p.into_inner()).0.clear();
}

/// A tag version as the TAG_READ script answers it: text that is no version, or a number past
/// [`TAG_VERSION_END`] (no cache wrote either), is [`UNREADABLE_TAG`].
pub(crate) fn tag_read((text, how): (String, i64)) -> TagRead {
    let version = text.parse().ok().filter(|v| *v < TAG_VERSION_END).unwrap_or(UNREADABLE_TAG);
    let set = match how {
        -2 => TagSet::ByThisRead,
        -3 => TagSet::ByARead,
        us if us >= 0 => TagSet::Bumped(Duration::from_micros(us as u64)),
        _ => TagSet::Unknown,
    };
    TagRead { version, set }
}

/// The TAG_READ script on every key, each sent on its own (the keys live in different cluster
/// slots) but at once, so a multiplexed connection pipelines them.
pub(crate) async fn tag_versions<L: Link>(l: &L, keys: Vec<String>) -> Result<Vec<TagRead>, TransportError> {
    let conn = conn_here(l).await?;
    let script = &l.state().scripts.tag_read;
    let reads = keys.iter().map(|k| {
        let mut conn = conn.clone();
        async move { script.key(k).invoke_async::<(String, i64)>(&mut conn).await }
    });
    let mut out = Vec::with_capacity(keys.len());
    for got in futures::future::join_all(reads).await {
        out.push(tag_read(got.map_err(|e| l.failed(e))?));
    }
    Ok(out)
}

/// The TAG_BUMP script on `key`: the tag's new version.
pub(crate) async fn tag_bump<L: Link>(l: &L, key: String) -> Result<u64, TransportError> {
    invoke(l, &l.state().scripts.tag_bump.key(key)).await
}

pub(crate) fn closed_error() -> TransportError {
    TransportError::Io("the shared tier is closed".into())
}

/// Held by every clone of a transport a user has, never by the transport's own tasks: when the
/// last one goes (every cache on it dropped), the transport closes after sending what it queued.
pub(crate) struct KeepOpen<L: Link>(pub(crate) L);

impl<L: Link> Drop for KeepOpen<L> {
    fn drop(&mut self) {
        let l = self.0.tasks();
        healcache_rt::handle().spawn(async move { close(&l, DROP_DRAIN).await });
    }
}

pub(crate) async fn read<L: Link>(l: &L, key: String, max_bytes: u64) -> Result<ReadReply, TransportError> {
    let mut conn = conn_here(l).await?;
    let (stored, pttl_ms): (redis::Value, i64) =
        l.state().scripts.read.key(key).arg(max_bytes).invoke_async(&mut conn).await.map_err(|e| l.failed(e))?;
    // the value's bytes, nil when absent, or its length when past `max_bytes`
    let (value, too_long) = match stored {
        redis::Value::Int(n) => (None, n.max(1) as u64),
        v => (redis::from_redis_value(v).map_err(|e| l.failed(e.into()))?, 0),
    };
    Ok(ReadReply { value, too_long, pttl_ms })
}

pub(crate) async fn revalidate<L: Link>(l: &L, key: String) -> Result<(Option<Token>, i64), TransportError> {
    let mut conn = conn_here(l).await?;
    let (bytes, pttl): (Vec<u8>, i64) =
        l.state().scripts.revalidate.key(key).invoke_async(&mut conn).await.map_err(|e| l.failed(e))?;
    Ok((token_of(&bytes), pttl))
}

/// A command's answer on this process's connection.
pub(crate) async fn query<L: Link, T: redis::FromRedisValue>(l: &L, cmd: &redis::Cmd) -> Result<T, TransportError> {
    let mut conn = conn_here(l).await?;
    cmd.query_async(&mut conn).await.map_err(|e| l.failed(e))
}

/// A script call's answer on this process's connection.
async fn invoke<L: Link, T: redis::FromRedisValue>(
    l: &L,
    call: &redis::ScriptInvocation<'_>,
) -> Result<T, TransportError> {
    let mut conn = conn_here(l).await?;
    call.invoke_async(&mut conn).await.map_err(|e| l.failed(e))
}

pub(crate) async fn acquire<L: Link>(
    l: &L,
    keys: L2Keys,
    owner: String,
    lease_ms: u64,
) -> Result<LockReply, TransportError> {
    let mut call = l.state().scripts.acquire.key(&keys.lock);
    call.key(&keys.fence).key(&keys.value).arg(owner).arg(lease_ms);
    acquire_reply(invoke(l, &call).await?)
}

pub(crate) async fn renew<L: Link>(
    l: &L,
    lock_key: String,
    lockval: String,
    lease_ms: u64,
) -> Result<bool, TransportError> {
    let mut call = l.state().scripts.renew.key(lock_key);
    call.arg(lockval).arg(lease_ms);
    Ok(invoke::<_, i64>(l, &call).await? == 1)
}

pub(crate) async fn release<L: Link>(l: &L, lock_key: String, lockval: String) -> Result<bool, TransportError> {
    let mut call = l.state().scripts.release.key(lock_key);
    call.arg(lockval);
    Ok(invoke::<_, i64>(l, &call).await? == 1)
}

pub(crate) async fn lease<L: Link>(
    l: &L,
    key: String,
    value: String,
    lease_ms: u64,
) -> Result<LeaseReply, TransportError> {
    let mut call = l.state().scripts.lease.key(key);
    call.arg(value).arg(lease_ms);
    lease_reply(&invoke::<_, Vec<i64>>(l, &call).await?)
}

pub(crate) async fn put_record<L: Link>(
    l: &L,
    (lease_key, lease_value): (String, String),
    key: String,
    fields: Record,
    ttl_ms: u64,
) -> Result<bool, TransportError> {
    let mut call = l.state().scripts.put_record.key(lease_key);
    call.key(key).arg(lease_value).arg(ttl_ms);
    for (f, v) in fields {
        call.arg(f).arg(v);
    }
    Ok(invoke::<_, i64>(l, &call).await? == 1)
}

/// UNLINKs `keys` on `conn` in batches of [`UNLINK_BATCH`]; how many were there.
pub(crate) async fn unlink_keys<L: Link, K: redis::ToRedisArgs + Sync>(
    l: &L,
    conn: &mut L::Conn,
    keys: &[K],
) -> Result<u64, TransportError> {
    let mut unlinked = 0u64;
    for batch in keys.chunks(UNLINK_BATCH) {
        let n: u64 = redis::cmd("UNLINK").arg(batch).query_async(conn).await.map_err(|e| l.failed(e))?;
        unlinked += n;
    }
    Ok(unlinked)
}

/// The pause before the next try to subscribe after `k` tries since the last subscription.
pub(crate) fn bus_pause(rng: &mut SmallRng, k: u32) -> Duration {
    let window = BUS_RETRY_FIRST.saturating_mul(1u32.checked_shl(k.min(16)).unwrap_or(u32::MAX)).min(BUS_RETRY_MAX);
    Duration::from_nanos(rng.random_range(0..=window.as_nanos() as u64))
}

/// A seed from the OS (std's hasher keys are random per process and per `RandomState`), so each
/// subscription draws its own pauses.
pub(crate) fn host_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// A lease in whole milliseconds, at least 1 (`PX 0` is an error in Redis).
pub(crate) fn millis(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

/// A WRITE script's answer (see the core's `scripts` table).
pub(crate) fn write_reply(a: &[i64]) -> Result<WriteReply, TransportError> {
    match a {
        [1, e, c] => Ok(WriteReply::Written(Token { epoch: *e as u64, counter: *c as u64 })),
        [0, ..] | [-2, ..] => Ok(WriteReply::Newer),
        [-1, ..] => Ok(WriteReply::EpochChanged),
        other => Err(TransportError::Reply(format!("unexpected WRITE answer {other:?}"))),
    }
}

/// An ACQUIRE script's answer.
fn acquire_reply(reply: redis::Value) -> Result<LockReply, TransportError> {
    let bad = || TransportError::Reply("unexpected ACQUIRE answer".into());
    let redis::Value::Array(items) = reply else { return Err(bad()) };
    let int = |v: Option<&redis::Value>| match v {
        Some(redis::Value::Int(n)) => Some(*n),
        _ => None,
    };
    match int(items.first()) {
        Some(1) => {
            let (e, c) = (int(items.get(1)).ok_or_else(bad)?, int(items.get(2)).ok_or_else(bad)?);
            let lockval = match items.get(3) {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => return Err(bad()),
            };
            Ok(LockReply::Won { token: Token { epoch: e as u64, counter: c as u64 }, lockval })
        }
        Some(0) => Ok(LockReply::Held { pttl_ms: int(items.get(1)).unwrap_or(-2) }),
        _ => Err(bad()),
    }
}

/// A REVALIDATE script's answer: the 16 token bytes (none when absent or not an envelope).
fn token_of(bytes: &[u8]) -> Option<Token> {
    <[u8; 16]>::try_from(bytes).ok().map(|b| Token {
        epoch: u64::from_be_bytes(b[..8].try_into().unwrap_or_default()),
        counter: u64::from_be_bytes(b[8..].try_into().unwrap_or_default()),
    })
}

/// A LEASE script's answer.
fn lease_reply(reply: &[i64]) -> Result<LeaseReply, TransportError> {
    match reply {
        [1] => Ok(LeaseReply::Won),
        [0, pttl] => Ok(LeaseReply::Held { pttl_ms: *pttl }),
        other => Err(TransportError::Reply(format!("unexpected LEASE answer {other:?}"))),
    }
}

pub(crate) fn token_bytes(t: Token) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&t.epoch.to_be_bytes());
    b.extend_from_slice(&t.counter.to_be_bytes());
    b
}

pub(crate) fn failure(e: redis::RedisError) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        TransportError::Io(e.to_string())
    } else {
        TransportError::Reply(e.to_string())
    }
}

/// A task on the I/O runtime whose outcome a caller on any executor awaits.
pub(crate) fn run<T: Send + 'static>(
    fut: impl Future<Output = Result<T, TransportError>> + Send + 'static,
) -> BoxFuture<'static, Result<T, TransportError>> {
    healcache_rt::spawn(fut)
        .map(|r| r.unwrap_or_else(|e| Err(TransportError::Io(format!("the I/O task ended: {e}")))))
        .boxed()
}

/// The core's `Transport` for a [`Link`]: each call a task on the I/O runtime, writes and
/// publishes through the ordered queue.
macro_rules! transport_for {
    ($t:ty) => {
        impl Transport for $t {
            fn read(&self, value_key: &str, max_bytes: u64) -> BoxFuture<'static, Result<ReadReply, TransportError>> {
                let (me, key) = (self.clone(), value_key.to_string());
                run(async move { common::read(&me, key, max_bytes).await })
            }

            fn revalidate(&self, value_key: &str) -> BoxFuture<'static, Result<(Option<Token>, i64), TransportError>> {
                let (me, key) = (self.clone(), value_key.to_string());
                run(async move { common::revalidate(&me, key).await })
            }

            fn tag_versions(&self, keys: Vec<String>) -> BoxFuture<'static, Result<Vec<TagRead>, TransportError>> {
                let me = self.clone();
                run(async move { common::tag_versions(&me, keys).await })
            }

            fn tag_bump(&self, key: &str) -> BoxFuture<'static, Result<u64, TransportError>> {
                let (me, key) = (self.clone(), key.to_string());
                run(async move { common::tag_bump(&me, key).await })
            }

            fn write(&self, req: WriteRequest) -> BoxFuture<'static, Result<WriteReply, TransportError>> {
                queue::enqueue(self, queue::Queued::Write(req))
            }

            fn unlink_matching(&self, pattern: String) -> BoxFuture<'static, Result<u64, TransportError>> {
                let me = self.clone();
                run(async move { Link::unlink(&me, pattern).await })
            }

            fn acquire(
                &self,
                keys: &L2Keys,
                owner: &str,
                lease: Duration,
            ) -> BoxFuture<'static, Result<LockReply, TransportError>> {
                let (me, keys, owner) = (self.clone(), keys.clone(), owner.to_string());
                run(async move { common::acquire(&me, keys, owner, millis(lease)).await })
            }

            fn renew(
                &self,
                lock_key: &str,
                lockval: &str,
                lease: Duration,
            ) -> BoxFuture<'static, Result<bool, TransportError>> {
                let (me, key, val) = (self.clone(), lock_key.to_string(), lockval.to_string());
                run(async move { common::renew(&me, key, val, millis(lease)).await })
            }

            fn release(&self, lock_key: &str, lockval: &str) -> BoxFuture<'static, Result<bool, TransportError>> {
                let (me, key, val) = (self.clone(), lock_key.to_string(), lockval.to_string());
                run(async move { common::release(&me, key, val).await })
            }

            fn publish(
                &self,
                channel: &str,
                message: Vec<u8>,
                deadline: Duration,
            ) -> BoxFuture<'static, Result<(), TransportError>> {
                let req = queue::Queued::Publish { channel: channel.to_string(), message, deadline };
                queue::enqueue(self, req).map(|r| r.map(drop)).boxed()
            }

            fn subscribe(&self, channel: &str, sink: Arc<dyn BusSink>) {
                common::subscribe(self, channel, sink)
            }

            fn scan(
                &self,
                pattern: &str,
                cursor: u64,
                count: usize,
            ) -> BoxFuture<'static, Result<(u64, Vec<String>), TransportError>> {
                let (me, pattern) = (self.clone(), pattern.to_string());
                run(async move { Link::scan(&me, pattern, cursor, count).await })
            }

            fn try_lease(
                &self,
                key: &str,
                value: &str,
                lease: Duration,
            ) -> BoxFuture<'static, Result<LeaseReply, TransportError>> {
                let (me, key, value) = (self.clone(), key.to_string(), value.to_string());
                run(async move { common::lease(&me, key, value, millis(lease)).await })
            }

            fn put_record(
                &self,
                lease_key: &str,
                lease_value: &str,
                key: &str,
                fields: Record,
                ttl: Duration,
            ) -> BoxFuture<'static, Result<bool, TransportError>> {
                let (me, lease) = (self.clone(), (lease_key.to_string(), lease_value.to_string()));
                let key = key.to_string();
                run(async move { common::put_record(&me, lease, key, fields, millis(ttl)).await })
            }

            fn get_record(&self, key: &str) -> BoxFuture<'static, Result<Record, TransportError>> {
                let (me, cmd) = (self.clone(), redis::cmd("HGETALL").arg(key).clone());
                run(async move { common::query(&me, &cmd).await })
            }

            fn probe(&self) -> BoxFuture<'static, Result<(), TransportError>> {
                let me = self.clone();
                run(async move { common::probe(&me).await })
            }

            fn spawn(&self, work: BoxFuture<'static, ()>) {
                healcache_rt::handle().spawn(work);
            }

            fn close(&self, deadline: Duration) -> BoxFuture<'static, ()> {
                let me = self.tasks();
                // a task of its own: the closing goes on if the caller stops waiting
                let closing = healcache_rt::handle().spawn(async move { common::close(&me, deadline).await });
                async move {
                    let _ = closing.await;
                }
                .boxed()
            }
        }
    };
}
pub(crate) use transport_for;
