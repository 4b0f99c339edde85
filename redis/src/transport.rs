//! [`RedisTransport`]: the core's [`Transport`] on one multiplexed Redis connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use healcache::codec::Token;
use healcache::keys::L2Keys;
use healcache::tier::{
    scripts, BusSink, Expect, LeaseReply, LockReply, ReadReply, Record, Transport, TransportError, WriteReply,
    WriteRequest,
};
use healcache::{ConfigProblem, Error};
use healcache_rt::ForkGuard;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::sync::{mpsc, oneshot};

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
/// Keys asked per SCAN round trip and unlinked per UNLINK.
pub(crate) const SCAN_COUNT: usize = 1000;
pub(crate) const UNLINK_BATCH: usize = 500;

/// The shared tier's transport on Redis. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisTransport {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    redacted: String,
    conn: Mutex<Option<ForkGuard<MultiplexedConnection>>>,
    writer: Mutex<Option<ForkGuard<mpsc::Sender<Job>>>>,
    /// The bus subscriptions asked for, and a marker of the process that runs them: a child of
    /// `fork()` finds the marker inherited and starts them again.
    subs: Mutex<Subscriptions>,
    read: Script,
    revalidate: Script,
    write: Script,
    /// The fenced write of a rebuild under the fleet lock (checks the token's epoch, releases the lock).
    write_fenced: Script,
    acquire: Script,
    renew: Script,
    release: Script,
    lease: Script,
    put_record: Script,
}

/// What the ordered queue carries: writes, and the bus messages announcing them, so a message is
/// sent after the write it announces and messages leave in the order they were numbered.
enum Queued {
    Write(WriteRequest),
    Publish { channel: String, message: Vec<u8>, deadline: Duration },
}

impl Queued {
    fn deadline(&self) -> Duration {
        match self {
            Queued::Write(w) => w.deadline,
            Queued::Publish { deadline, .. } => *deadline,
        }
    }
}

/// The bus subscriptions asked for (channel and sink), and the process that runs them.
type Subscriptions = (Vec<(String, Arc<dyn BusSink>)>, Option<ForkGuard<()>>);

struct Job {
    req: Queued,
    reply: oneshot::Sender<Result<WriteReply, TransportError>>,
}

impl std::fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTransport").field("url", &self.inner.redacted).finish_non_exhaustive()
    }
}

/// `url` with the password of its userinfo replaced by `***`, for logs and `Debug`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None if auth.is_empty() => url.to_string(),
        // `redis://password@host` is a password alone
        None => format!("{scheme}://***@{host}"),
    }
}

impl RedisTransport {
    /// A transport to the Redis at `url` (`redis://[user:password@]host:port[/db]`), spoken to
    /// in RESP3. Connects at once when it can; when Redis is down the transport starts
    /// disconnected and the breaker's probes connect it later. A URL that does not parse is
    /// [`Error::InvalidConfig`] (the message never repeats the password).
    pub fn connect(url: &str) -> healcache::Result<Self> {
        let redacted = redact(url);
        let bad = |_| Error::invalid_config("redis", ConfigProblem::Rule("must be a redis:// URL"), None);
        let mut info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url).map_err(bad)?;
        let redis_settings = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
        info = info.set_redis_settings(redis_settings);
        let client = Client::open(info).map_err(bad)?;
        let t = RedisTransport {
            inner: Arc::new(Inner {
                client,
                redacted,
                conn: Mutex::new(None),
                writer: Mutex::new(None),
                subs: Mutex::new((Vec::new(), None)),
                read: Script::new(scripts::READ),
                revalidate: Script::new(scripts::REVALIDATE),
                write: Script::new(scripts::WRITE_SEEN),
                write_fenced: Script::new(scripts::WRITE),
                acquire: Script::new(scripts::ACQUIRE),
                renew: Script::new(scripts::RENEW),
                release: Script::new(scripts::RELEASE),
                lease: Script::new(scripts::LEASE),
                put_record: Script::new(scripts::PUT_RECORD),
            }),
        };
        // A first connection now, so the first reads do not count as failures; an unreachable
        // Redis is no error here (the cache serves from L1 and loaders meanwhile).
        let first = t.clone();
        let _ = futures::executor::block_on(healcache_rt::spawn(async move { first.reconnect().await }));
        Ok(t)
    }

    /// The connection of this process, if there is one.
    fn conn(&self) -> Result<MultiplexedConnection, TransportError> {
        let slot = self.inner.conn.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().and_then(|g| g.get().cloned()).ok_or_else(|| TransportError::Io("not connected".into()))
    }

    /// The connection, or a new one when the one kept was made by a parent process (this
    /// process forked after connecting): a child reconnects at its first use, not after the
    /// breaker's failures.
    async fn conn_here(&self) -> Result<MultiplexedConnection, TransportError> {
        self.resubscribe_after_fork();
        let inherited = {
            let slot = self.inner.conn.lock().unwrap_or_else(|p| p.into_inner());
            slot.as_ref().is_some_and(|g| g.get().is_none())
        };
        if inherited {
            self.reconnect().await?;
        }
        self.conn()
    }

    /// Forgets the connection after it failed: the next probe makes a new one.
    fn lost(&self) {
        *self.inner.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn reconnect(&self) -> Result<(), TransportError> {
        let cfg = AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT));
        let mut conn = self.inner.client.get_multiplexed_async_connection_with_config(&cfg).await.map_err(failure)?;
        let pong: String = tokio::time::timeout(PING_TIMEOUT, redis::cmd("PING").query_async(&mut conn))
            .await
            .map_err(|_| TransportError::Timeout)?
            .map_err(failure)?;
        if pong != "PONG" {
            return Err(TransportError::Reply(format!("PING answered {pong}")));
        }
        *self.inner.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(ForkGuard::new(conn));
        Ok(())
    }

    /// The sender of this process's write queue, starting its writer task on first use.
    fn writer(&self) -> mpsc::Sender<Job> {
        let mut slot = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = slot.as_ref().and_then(|g| g.get()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let me = self.clone();
        healcache_rt::handle().spawn(async move { me.write_loop(rx).await });
        *slot = Some(ForkGuard::new(tx.clone()));
        tx
    }

    /// Runs the queued writes in call order, in pipelined batches of what is queued (one round
    /// trip each, rather than one per write: a burst of thousands then fits in one deadline); Redis
    /// runs a connection's commands in the order sent, so they land in the order they were made.
    /// A write whose caller has stopped waiting (its deadline passed) is not sent.
    async fn write_loop(self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(WRITE_BATCH);
        while rx.recv_many(&mut jobs, WRITE_BATCH).await > 0 {
            jobs.retain(|j| !j.reply.is_closed());
            let (reqs, mut replies): (Vec<Queued>, Vec<_>) = jobs.drain(..).map(|j| (j.req, j.reply)).unzip();
            if reqs.is_empty() {
                continue;
            }
            // a batch on a connection that stopped answering is abandoned once every caller's
            // deadline has passed, so it never holds up the queue behind it
            let gone = futures::future::join_all(replies.iter_mut().map(|r| r.closed()));
            let deadline = reqs.iter().map(|r| r.deadline()).max().unwrap_or_default();
            let n = reqs.len();
            let batch = async {
                tokio::time::timeout(deadline, self.write_batch(reqs))
                    .await
                    .unwrap_or_else(|_| vec![Err(TransportError::Timeout); n])
            };
            tokio::select! {
                answers = batch => {
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(answer);
                    }
                }
                _ = gone => {}
            }
        }
    }

    /// One pipeline of WRITE script calls and PUBLISHes, an answer per item. A Redis that lost
    /// the script (restarted, `SCRIPT FLUSH`) is given it again and the batch sent once more:
    /// every write in it is fenced, so one that had landed lands again as the same newest value,
    /// and a message sent twice is a duplicate receivers ignore.
    async fn write_batch(&self, reqs: Vec<Queued>) -> Vec<Result<WriteReply, TransportError>> {
        let n = reqs.len();
        let all = |e: TransportError| vec![Err(e); n];
        let mut conn = match self.conn_here().await {
            Ok(c) => c,
            Err(e) => return all(e),
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for req in &reqs {
            let req = match req {
                Queued::Write(w) => w,
                Queued::Publish { channel, message, .. } => {
                    pipe.cmd("PUBLISH").arg(channel).arg(message);
                    continue;
                }
            };
            let (mode, seen): (&str, Vec<u8>) = match req.expect {
                Expect::Any => ("any", Vec::new()),
                Expect::Absent => ("absent", Vec::new()),
                Expect::Token(t) => ("token", token_bytes(t)),
                Expect::Fenced(t) => {
                    pipe.cmd("EVALSHA")
                        .arg(self.inner.write_fenced.get_hash())
                        .arg(3)
                        .arg(&req.keys.value)
                        .arg(&req.keys.fence)
                        .arg(&req.keys.lock)
                        .arg(t.epoch)
                        .arg(t.counter)
                        .arg(&req.envelope)
                        .arg(req.px_ms)
                        .arg(req.release.as_deref().unwrap_or(""));
                    continue;
                }
            };
            pipe.cmd("EVALSHA")
                .arg(self.inner.write.get_hash())
                .arg(2)
                .arg(&req.keys.value)
                .arg(&req.keys.fence)
                .arg(mode)
                .arg(seen)
                .arg(&req.envelope)
                .arg(req.px_ms);
        }
        let no_script = |r: &redis::RedisResult<redis::Value>| matches!(r, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript));
        let mut loaded = false;
        loop {
            let answers: Vec<redis::RedisResult<redis::Value>> = match pipe.query_async(&mut conn).await {
                Ok(a) => a,
                Err(e) => return all(self.failed(e)),
            };
            if !loaded && answers.iter().any(no_script) {
                for script in [&self.inner.write, &self.inner.write_fenced] {
                    if let Err(e) = script.load_async(&mut conn).await {
                        return all(self.failed(e));
                    }
                }
                loaded = true;
                continue;
            }
            return answers
                .into_iter()
                .zip(&reqs)
                .map(|(a, req)| match req {
                    Queued::Write(_) => self.write_answer(a),
                    // a publish answers how many subscribers got it: any number is a success
                    Queued::Publish { .. } => {
                        a.map(|_| WriteReply::Written(Token::default())).map_err(|e| self.failed(e))
                    }
                })
                .collect();
        }
    }

    fn write_answer(&self, a: redis::RedisResult<redis::Value>) -> Result<WriteReply, TransportError> {
        let a = a.and_then(|v| redis::from_redis_value::<Vec<i64>>(v).map_err(Into::into));
        write_reply(&a.map_err(|e| self.failed(e))?)
    }

    fn failed(&self, e: redis::RedisError) -> TransportError {
        if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
            self.lost();
        }
        failure(e)
    }

    async fn read_now(&self, key: String) -> Result<ReadReply, TransportError> {
        let mut conn = self.conn_here().await?;
        let reply: (Option<Vec<u8>>, i64) =
            self.inner.read.key(key).invoke_async(&mut conn).await.map_err(|e| self.failed(e))?;
        Ok(ReadReply { value: reply.0, pttl_ms: reply.1 })
    }

    async fn revalidate_now(&self, key: String) -> Result<(Option<Token>, i64), TransportError> {
        let mut conn = self.conn_here().await?;
        let (bytes, pttl): (Vec<u8>, i64) =
            self.inner.revalidate.key(key).invoke_async(&mut conn).await.map_err(|e| self.failed(e))?;
        Ok((token_of(&bytes), pttl))
    }

    async fn tag_versions_now(&self, keys: Vec<String>) -> Result<Vec<u64>, TransportError> {
        let mut conn = self.conn_here().await?;
        // one GET per key in one pipeline, not MGET: tag keys live in different cluster slots
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("GET").arg(k);
        }
        let got: Vec<Option<String>> = pipe.query_async(&mut conn).await.map_err(|e| self.failed(e))?;
        // a version that is not a number was not written by a cache: read as never bumped
        Ok(got.into_iter().map(|v| v.and_then(|v| v.parse().ok()).unwrap_or(0)).collect())
    }

    async fn tag_bump_now(&self, key: String) -> Result<u64, TransportError> {
        let mut conn = self.conn_here().await?;
        redis::cmd("INCR").arg(key).query_async(&mut conn).await.map_err(|e| self.failed(e))
    }

    async fn unlink_now(&self, pattern: String) -> Result<u64, TransportError> {
        let mut conn = self.conn_here().await?;
        let mut cursor: u64 = 0;
        let mut unlinked = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.failed(e))?;
            for batch in keys.chunks(UNLINK_BATCH) {
                let n: u64 =
                    redis::cmd("UNLINK").arg(batch).query_async(&mut conn).await.map_err(|e| self.failed(e))?;
                unlinked += n;
            }
            if next == 0 {
                return Ok(unlinked);
            }
            cursor = next;
        }
    }

    async fn acquire_now(&self, keys: L2Keys, owner: String, lease_ms: u64) -> Result<LockReply, TransportError> {
        let mut conn = self.conn_here().await?;
        let reply: redis::Value = self
            .inner
            .acquire
            .key(&keys.lock)
            .key(&keys.fence)
            .key(&keys.value)
            .arg(owner)
            .arg(lease_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        acquire_reply(reply)
    }

    async fn renew_now(&self, lock_key: String, lockval: String, lease_ms: u64) -> Result<bool, TransportError> {
        let mut conn = self.conn_here().await?;
        let n: i64 = self
            .inner
            .renew
            .key(lock_key)
            .arg(lockval)
            .arg(lease_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(n == 1)
    }

    async fn release_now(&self, lock_key: String, lockval: String) -> Result<bool, TransportError> {
        let mut conn = self.conn_here().await?;
        let n: i64 =
            self.inner.release.key(lock_key).arg(lockval).invoke_async(&mut conn).await.map_err(|e| self.failed(e))?;
        Ok(n == 1)
    }

    async fn scan_now(&self, pattern: String, cursor: u64, count: usize) -> Result<(u64, Vec<String>), TransportError> {
        let mut conn = self.conn_here().await?;
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok((next, keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).collect()))
    }

    async fn lease_now(&self, key: String, value: String, lease_ms: u64) -> Result<LeaseReply, TransportError> {
        let mut conn = self.conn_here().await?;
        let reply: Vec<i64> = self
            .inner
            .lease
            .key(key)
            .arg(value)
            .arg(lease_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        lease_reply(&reply)
    }

    async fn put_record_now(
        &self,
        lease_key: String,
        lease_value: String,
        key: String,
        fields: Record,
        ttl_ms: u64,
    ) -> Result<bool, TransportError> {
        let mut conn = self.conn_here().await?;
        let mut call = self.inner.put_record.key(lease_key);
        call.key(key).arg(lease_value).arg(ttl_ms);
        for (f, v) in fields {
            call.arg(f).arg(v);
        }
        let n: i64 = call.invoke_async(&mut conn).await.map_err(|e| self.failed(e))?;
        Ok(n == 1)
    }

    async fn get_record_now(&self, key: String) -> Result<Record, TransportError> {
        let mut conn = self.conn_here().await?;
        let fields: Record = redis::cmd("HGETALL").arg(key).query_async(&mut conn).await.map_err(|e| self.failed(e))?;
        Ok(fields)
    }

    /// In a child of `fork()`, the parent's subscription tasks are gone: start them again.
    fn resubscribe_after_fork(&self) {
        let mut subs = self.inner.subs.lock().unwrap_or_else(|p| p.into_inner());
        if subs.1.as_ref().is_some_and(|g| g.get().is_none()) {
            subs.1 = Some(ForkGuard::new(()));
            for (channel, sink) in subs.0.iter().filter(|(_, s)| s.alive()) {
                healcache_rt::handle().spawn(self.clone().bus_loop(channel.clone(), Arc::clone(sink), true));
            }
        }
    }

    /// One subscription for as long as its sink is alive: subscribe, deliver, ping; when the
    /// connection fails or stops answering, subscribe again after a full-jitter pause.
    async fn bus_loop(self, channel: String, sink: Arc<dyn BusSink>, mut first: bool) {
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
            if self.bus_session(&channel, &sink, first).await.is_ok() {
                first = false;
                k = 0;
            }
            pause = true;
        }
    }

    /// Subscribed until the connection fails (`Ok` once it had subscribed), `Err` when it could
    /// not subscribe.
    async fn bus_session(&self, channel: &str, sink: &Arc<dyn BusSink>, first: bool) -> Result<(), ()> {
        use futures::StreamExt;
        let connect = self.inner.client.get_async_pubsub();
        let Ok(Ok(pubsub)) = tokio::time::timeout(BUS_PONG, connect).await else { return Err(()) };
        let (mut tx, mut rx) = pubsub.split();
        if !matches!(tokio::time::timeout(BUS_PONG, tx.subscribe(channel)).await, Ok(Ok(()))) {
            return Err(());
        }
        sink.subscribed(first);
        let mut tick = tokio::time::interval(BUS_PING);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = rx.next() => match m {
                    Some(m) => sink.message(m.get_payload_bytes()),
                    None => return Ok(()),
                },
                _ = tick.tick() => {
                    if !sink.alive() {
                        return Ok(());
                    }
                    if !matches!(tokio::time::timeout(BUS_PONG, tx.ping::<String>()).await, Ok(Ok(_))) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Queues a write or a publish now, in call order (the contract of `Transport::write` and
    /// `Transport::publish`); the future answers it.
    fn queue(&self, req: Queued) -> BoxFuture<'static, Result<WriteReply, TransportError>> {
        let (reply, answer) = oneshot::channel();
        if self.writer().try_send(Job { req, reply }).is_err() {
            return futures::future::ready(Err(TransportError::Io("write queue full".into()))).boxed();
        }
        answer.map(|r| r.unwrap_or_else(|_| Err(TransportError::Io("the writer stopped".into())))).boxed()
    }

    async fn probe_now(&self) -> Result<(), TransportError> {
        if let Ok(mut conn) = self.conn() {
            let ping = redis::cmd("PING");
            if let Ok(Ok(_)) = tokio::time::timeout(PING_TIMEOUT, ping.query_async::<String>(&mut conn)).await {
                return Ok(());
            }
            self.lost();
        }
        self.reconnect().await
    }
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
pub(crate) fn acquire_reply(reply: redis::Value) -> Result<LockReply, TransportError> {
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
pub(crate) fn token_of(bytes: &[u8]) -> Option<Token> {
    <[u8; 16]>::try_from(bytes).ok().map(|b| Token {
        epoch: u64::from_be_bytes(b[..8].try_into().unwrap_or_default()),
        counter: u64::from_be_bytes(b[8..].try_into().unwrap_or_default()),
    })
}

/// A LEASE script's answer.
pub(crate) fn lease_reply(reply: &[i64]) -> Result<LeaseReply, TransportError> {
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
    fut: impl std::future::Future<Output = Result<T, TransportError>> + Send + 'static,
) -> BoxFuture<'static, Result<T, TransportError>> {
    healcache_rt::spawn(fut)
        .map(|r| r.unwrap_or_else(|e| Err(TransportError::Io(format!("the I/O task ended: {e}")))))
        .boxed()
}

impl Transport for RedisTransport {
    fn read(&self, value_key: &str) -> BoxFuture<'static, Result<ReadReply, TransportError>> {
        let me = self.clone();
        let key = value_key.to_string();
        run(async move { me.read_now(key).await })
    }

    fn revalidate(&self, value_key: &str) -> BoxFuture<'static, Result<(Option<Token>, i64), TransportError>> {
        let (me, key) = (self.clone(), value_key.to_string());
        run(async move { me.revalidate_now(key).await })
    }

    fn tag_versions(&self, keys: Vec<String>) -> BoxFuture<'static, Result<Vec<u64>, TransportError>> {
        let me = self.clone();
        run(async move { me.tag_versions_now(keys).await })
    }

    fn tag_bump(&self, key: &str) -> BoxFuture<'static, Result<u64, TransportError>> {
        let (me, key) = (self.clone(), key.to_string());
        run(async move { me.tag_bump_now(key).await })
    }

    fn write(&self, req: WriteRequest) -> BoxFuture<'static, Result<WriteReply, TransportError>> {
        self.queue(Queued::Write(req))
    }

    fn unlink_matching(&self, pattern: String) -> BoxFuture<'static, Result<u64, TransportError>> {
        let me = self.clone();
        run(async move { me.unlink_now(pattern).await })
    }

    fn acquire(
        &self,
        keys: &L2Keys,
        owner: &str,
        lease: Duration,
    ) -> BoxFuture<'static, Result<LockReply, TransportError>> {
        let (me, keys, owner) = (self.clone(), keys.clone(), owner.to_string());
        run(async move { me.acquire_now(keys, owner, millis(lease)).await })
    }

    fn renew(
        &self,
        lock_key: &str,
        lockval: &str,
        lease: Duration,
    ) -> BoxFuture<'static, Result<bool, TransportError>> {
        let (me, key, val) = (self.clone(), lock_key.to_string(), lockval.to_string());
        run(async move { me.renew_now(key, val, millis(lease)).await })
    }

    fn release(&self, lock_key: &str, lockval: &str) -> BoxFuture<'static, Result<bool, TransportError>> {
        let (me, key, val) = (self.clone(), lock_key.to_string(), lockval.to_string());
        run(async move { me.release_now(key, val).await })
    }

    fn publish(
        &self,
        channel: &str,
        message: Vec<u8>,
        deadline: Duration,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        self.queue(Queued::Publish { channel: channel.to_string(), message, deadline }).map(|r| r.map(drop)).boxed()
    }

    fn subscribe(&self, channel: &str, sink: Arc<dyn BusSink>) {
        let mut subs = self.inner.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.0.retain(|(_, s)| s.alive());
        subs.0.push((channel.to_string(), Arc::clone(&sink)));
        if subs.1.is_none() {
            subs.1 = Some(ForkGuard::new(()));
        }
        drop(subs);
        healcache_rt::handle().spawn(self.clone().bus_loop(channel.to_string(), sink, true));
    }

    fn scan(
        &self,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> BoxFuture<'static, Result<(u64, Vec<String>), TransportError>> {
        let (me, pattern) = (self.clone(), pattern.to_string());
        run(async move { me.scan_now(pattern, cursor, count).await })
    }

    fn try_lease(
        &self,
        key: &str,
        value: &str,
        lease: Duration,
    ) -> BoxFuture<'static, Result<LeaseReply, TransportError>> {
        let (me, key, value) = (self.clone(), key.to_string(), value.to_string());
        run(async move { me.lease_now(key, value, millis(lease)).await })
    }

    fn put_record(
        &self,
        lease_key: &str,
        lease_value: &str,
        key: &str,
        fields: Record,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<bool, TransportError>> {
        let (me, lk, lv, key) = (self.clone(), lease_key.to_string(), lease_value.to_string(), key.to_string());
        run(async move { me.put_record_now(lk, lv, key, fields, millis(ttl)).await })
    }

    fn get_record(&self, key: &str) -> BoxFuture<'static, Result<Record, TransportError>> {
        let (me, key) = (self.clone(), key.to_string());
        run(async move { me.get_record_now(key).await })
    }

    fn probe(&self) -> BoxFuture<'static, Result<(), TransportError>> {
        let me = self.clone();
        run(async move { me.probe_now().await })
    }

    fn spawn(&self, work: BoxFuture<'static, ()>) {
        healcache_rt::handle().spawn(work);
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("redis://hc:s3cret@127.0.0.1:6379/0"), "redis://hc:***@127.0.0.1:6379/0");
        assert_eq!(redact("redis://s3cret@127.0.0.1"), "redis://***@127.0.0.1");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("rediss://u:p@a@b:1"), "rediss://u:***@b:1");
    }
}
