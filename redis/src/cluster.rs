//! [`RedisClusterTransport`]: the core's [`Transport`] on a Redis Cluster, through redis-rs
//! `cluster-async` (RESP3; routing by key; MOVED and ASK followed by the client).
//!
//! What differs from the single-server transport, and why:
//! - Every command names keys of one slot. The scripts' keys share the `{b}` hash tag of their
//!   cache key, so each script runs on one node; tag versions are read with one GET per tag, and
//!   pattern unlinks UNLINK per slot, never a multi-key command across slots.
//! - The ordered write queue sends each batch as one pipeline per slot (a key's writes, and the
//!   bus messages of one channel, stay in call order: one slot is one node and one connection).
//! - The bus is sharded pub/sub: `SPUBLISH` and `SSUBSCRIBE` on the channel's slot, so a message
//!   goes to one shard rather than to every node over the cluster bus.
//! - `SCAN` walks every primary in turn; the cursor handed to the caller carries the primary's
//!   index in its top 8 bits.

use std::collections::HashMap;
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
use rand::SeedableRng;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{PushKind, Script, Value};
use tokio::sync::{mpsc, oneshot};

use crate::transport::{
    acquire_reply, bus_pause, failure, host_seed, lease_reply, millis, redact, run, token_bytes, token_of, write_reply,
    BUS_PING, BUS_PONG, CONNECT_TIMEOUT, PING_TIMEOUT, SCAN_COUNT, UNLINK_BATCH, WRITE_BATCH, WRITE_QUEUE,
};

/// Bits of a [`Transport::scan`] cursor that carry a primary's own SCAN cursor; the bits above
/// hold the primary's index (Redis's cursors stay far below 2^56: they index its hash table).
const NODE_CURSOR_BITS: u32 = 56;
/// How many times a command is retried on a redirect (MOVED, ASK) or a lost node connection.
const RETRIES: u32 = 3;

/// The shared tier's transport on a Redis Cluster. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisClusterTransport {
    inner: Arc<Inner>,
}

struct Inner {
    nodes: Vec<String>,
    client: ClusterClient,
    redacted: Vec<String>,
    conn: Mutex<Option<ForkGuard<ClusterConnection>>>,
    writer: Mutex<Option<ForkGuard<mpsc::Sender<Job>>>>,
    subs: Mutex<Subscriptions>,
    read: Script,
    revalidate: Script,
    write: Script,
    write_fenced: Script,
    acquire: Script,
    renew: Script,
    release: Script,
    lease: Script,
    put_record: Script,
}

type Subscriptions = (Vec<(String, Arc<dyn BusSink>)>, Option<ForkGuard<()>>);

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

    /// The key whose slot the item goes to.
    fn key(&self) -> &str {
        match self {
            Queued::Write(w) => &w.keys.value,
            Queued::Publish { channel, .. } => channel,
        }
    }
}

struct Job {
    req: Queued,
    reply: oneshot::Sender<Result<WriteReply, TransportError>>,
}

impl std::fmt::Debug for RedisClusterTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClusterTransport").field("nodes", &self.inner.redacted).finish_non_exhaustive()
    }
}

fn cluster_client(
    nodes: &[String],
    push: Option<mpsc::UnboundedSender<redis::PushInfo>>,
) -> redis::RedisResult<ClusterClient> {
    let b = ClusterClientBuilder::new(nodes.to_vec())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .connection_timeout(CONNECT_TIMEOUT)
        .retries(RETRIES)
        .min_retry_wait(10)
        .max_retry_wait(100);
    match push {
        Some(tx) => b.push_sender(tx).build(),
        None => b.build(),
    }
}

impl RedisClusterTransport {
    /// A transport to the Redis Cluster reachable at any of `nodes` (seed URLs,
    /// `redis://[user:password@]host:port`; the client learns the other nodes from them), spoken
    /// to in RESP3. Connects at once when it can; otherwise the breaker's probes connect it
    /// later. No URL, or one that does not parse, is [`Error::InvalidConfig`] (never repeating a
    /// password).
    pub fn connect<S: AsRef<str>>(nodes: &[S]) -> healcache::Result<Self> {
        let bad =
            || Error::invalid_config("redis", ConfigProblem::Rule("must be redis:// URLs of cluster nodes"), None);
        if nodes.is_empty() {
            return Err(bad());
        }
        let nodes: Vec<String> = nodes.iter().map(|n| n.as_ref().to_string()).collect();
        for n in &nodes {
            redis::IntoConnectionInfo::into_connection_info(n.as_str()).map_err(|_| bad())?;
        }
        let client = cluster_client(&nodes, None).map_err(|_| bad())?;
        let t = RedisClusterTransport {
            inner: Arc::new(Inner {
                redacted: nodes.iter().map(|n| redact(n)).collect(),
                nodes,
                client,
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
        let first = t.clone();
        let _ = futures::executor::block_on(healcache_rt::spawn(async move { first.reconnect().await }));
        Ok(t)
    }

    fn conn(&self) -> Result<ClusterConnection, TransportError> {
        let slot = self.inner.conn.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().and_then(|g| g.get().cloned()).ok_or_else(|| TransportError::Io("not connected".into()))
    }

    /// The connection, or a new one in a child of `fork()` (the parent's is never used there).
    async fn conn_here(&self) -> Result<ClusterConnection, TransportError> {
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

    fn lost(&self) {
        *self.inner.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn failed(&self, e: redis::RedisError) -> TransportError {
        if e.is_connection_refusal() || e.is_unrecoverable_error() {
            self.lost();
        }
        failure(e)
    }

    async fn reconnect(&self) -> Result<(), TransportError> {
        let connect = self.inner.client.get_async_connection();
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT * 4, connect)
            .await
            .map_err(|_| TransportError::Timeout)?
            .map_err(failure)?;
        ping_primaries(&mut conn).await?;
        *self.inner.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(ForkGuard::new(conn));
        Ok(())
    }

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

    /// The queued writes and messages in call order, in batches of what is queued; a batch is
    /// answered before the next is sent, so order across batches holds too.
    async fn write_loop(self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(WRITE_BATCH);
        while rx.recv_many(&mut jobs, WRITE_BATCH).await > 0 {
            jobs.retain(|j| !j.reply.is_closed());
            let (reqs, mut replies): (Vec<Queued>, Vec<_>) = jobs.drain(..).map(|j| (j.req, j.reply)).unzip();
            if reqs.is_empty() {
                continue;
            }
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

    /// One pipeline per slot, sent together; answers put back in call order.
    async fn write_batch(&self, reqs: Vec<Queued>) -> Vec<Result<WriteReply, TransportError>> {
        let n = reqs.len();
        let conn = match self.conn_here().await {
            Ok(c) => c,
            Err(e) => return vec![Err(e); n],
        };
        let mut groups: HashMap<Route, Vec<usize>> = HashMap::new();
        for (i, r) in reqs.iter().enumerate() {
            groups.entry(Route::with_key(r.key(), SlotAddr::Master)).or_default().push(i);
        }
        let sends = groups.into_values().map(|idx| {
            let mut conn = conn.clone();
            let reqs = &reqs;
            async move {
                let answers = self.slot_pipeline(&mut conn, idx.iter().map(|i| &reqs[*i]).collect()).await;
                idx.into_iter().zip(answers).collect::<Vec<_>>()
            }
        });
        let mut out: Vec<Option<Result<WriteReply, TransportError>>> = vec![None; n];
        for (i, a) in futures::future::join_all(sends).await.into_iter().flatten() {
            out[i] = Some(a);
        }
        out.into_iter().map(|a| a.unwrap_or(Err(TransportError::Io("unanswered".into())))).collect()
    }

    /// The items of one slot as one pipeline to that slot's primary. A node that lost the
    /// scripts is given them again and the pipeline sent once more (every write is fenced, so
    /// one that had landed lands again as the same newest value).
    async fn slot_pipeline(
        &self,
        conn: &mut ClusterConnection,
        reqs: Vec<&Queued>,
    ) -> Vec<Result<WriteReply, TransportError>> {
        let all = |e: TransportError| vec![Err(e); reqs.len()];
        let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(reqs[0].key(), SlotAddr::Master));
        let mut pipe = redis::pipe();
        // an error answers its own item, not the whole pipeline
        pipe.ignore_errors();
        for req in &reqs {
            let w = match req {
                Queued::Write(w) => w,
                Queued::Publish { channel, message, .. } => {
                    pipe.cmd("SPUBLISH").arg(channel).arg(message);
                    continue;
                }
            };
            match w.expect {
                Expect::Fenced(t) => {
                    pipe.cmd("EVALSHA")
                        .arg(self.inner.write_fenced.get_hash())
                        .arg(3)
                        .arg(&w.keys.value)
                        .arg(&w.keys.fence)
                        .arg(&w.keys.lock)
                        .arg(t.epoch)
                        .arg(t.counter)
                        .arg(&w.envelope)
                        .arg(w.px_ms)
                        .arg(w.release.as_deref().unwrap_or(""));
                }
                other => {
                    let (mode, seen): (&str, Vec<u8>) = match other {
                        Expect::Absent => ("absent", Vec::new()),
                        Expect::Token(t) => ("token", token_bytes(t)),
                        _ => ("any", Vec::new()),
                    };
                    pipe.cmd("EVALSHA")
                        .arg(self.inner.write.get_hash())
                        .arg(2)
                        .arg(&w.keys.value)
                        .arg(&w.keys.fence)
                        .arg(mode)
                        .arg(seen)
                        .arg(&w.envelope)
                        .arg(w.px_ms);
                }
            }
        }
        let no_script = |v: &Value| matches!(v, Value::ServerError(e) if e.code() == "NOSCRIPT");
        let mut loaded = false;
        loop {
            let answers = match conn.route_pipeline(pipe.clone(), 0, reqs.len(), route.clone()).await {
                Ok(a) => a,
                Err(e) => return all(self.failed(e)),
            };
            if !loaded && answers.iter().any(no_script) {
                for script in [&self.inner.write, &self.inner.write_fenced] {
                    if let Err(e) = script.load_async(conn).await {
                        return all(self.failed(e));
                    }
                }
                loaded = true;
                continue;
            }
            return answers
                .into_iter()
                .zip(&reqs)
                .map(|(a, req)| {
                    let a: redis::RedisResult<Value> = match a {
                        Value::ServerError(e) => Err(e.into()),
                        v => Ok(v),
                    };
                    match req {
                        Queued::Write(_) => {
                            let ints = a.and_then(|v| redis::from_redis_value::<Vec<i64>>(v).map_err(Into::into));
                            write_reply(&ints.map_err(|e| self.failed(e))?)
                        }
                        Queued::Publish { .. } => {
                            a.map(|_| WriteReply::Written(Token::default())).map_err(|e| self.failed(e))
                        }
                    }
                })
                .collect();
        }
    }

    fn queue(&self, req: Queued) -> BoxFuture<'static, Result<WriteReply, TransportError>> {
        let (reply, answer) = oneshot::channel();
        if self.writer().try_send(Job { req, reply }).is_err() {
            return futures::future::ready(Err(TransportError::Io("write queue full".into()))).boxed();
        }
        answer.map(|r| r.unwrap_or_else(|_| Err(TransportError::Io("the writer stopped".into())))).boxed()
    }

    /// The primaries `(host, port)`, sorted, from `CLUSTER SLOTS`: the order a scan walks them.
    async fn primaries(&self, conn: &mut ClusterConnection) -> Result<Vec<(String, u16)>, TransportError> {
        let slots = conn
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .map_err(|e| self.failed(e))?;
        let bad = || TransportError::Reply("unexpected CLUSTER SLOTS answer".into());
        let Value::Array(ranges) = slots else { return Err(bad()) };
        let mut nodes = Vec::new();
        for r in ranges {
            let Value::Array(items) = r else { return Err(bad()) };
            let Some(Value::Array(primary)) = items.get(2) else { return Err(bad()) };
            let host = match primary.first() {
                Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                Some(Value::SimpleString(h)) => h.clone(),
                _ => return Err(bad()),
            };
            let Some(Value::Int(port)) = primary.get(1) else { return Err(bad()) };
            nodes.push((host, u16::try_from(*port).map_err(|_| bad())?));
        }
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    /// One SCAN step on the primary `cursor` names (see [`NODE_CURSOR_BITS`]).
    async fn scan_now(&self, pattern: String, cursor: u64, count: usize) -> Result<(u64, Vec<String>), TransportError> {
        let mut conn = self.conn_here().await?;
        let nodes = self.primaries(&mut conn).await?;
        let index = (cursor >> NODE_CURSOR_BITS) as usize;
        let Some((host, port)) = nodes.get(index) else { return Ok((0, Vec::new())) };
        let own = cursor & ((1u64 << NODE_CURSOR_BITS) - 1);
        let mut scan = redis::cmd("SCAN");
        scan.arg(own).arg("MATCH").arg(&pattern).arg("COUNT").arg(count);
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
        let reply = conn.route_command(scan, route).await.map_err(|e| self.failed(e))?;
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply).map_err(|e| self.failed(e.into()))?;
        if next >= 1 << NODE_CURSOR_BITS {
            return Err(TransportError::Reply(format!("SCAN cursor {next} out of range")));
        }
        let next = match next {
            0 if index + 1 < nodes.len() => ((index + 1) as u64) << NODE_CURSOR_BITS,
            0 => 0,
            n => ((index as u64) << NODE_CURSOR_BITS) | n,
        };
        Ok((next, keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).collect()))
    }

    /// SCAN over every primary; UNLINK in batches of one slot's keys.
    async fn unlink_now(&self, pattern: String) -> Result<u64, TransportError> {
        let mut conn = self.conn_here().await?;
        let mut cursor = 0u64;
        let mut unlinked = 0u64;
        loop {
            let (next, keys) = self.scan_now(pattern.clone(), cursor, SCAN_COUNT).await?;
            let mut by_slot: HashMap<Route, Vec<String>> = HashMap::new();
            for k in keys {
                by_slot.entry(Route::with_key(&k, SlotAddr::Master)).or_default().push(k);
            }
            for keys in by_slot.into_values() {
                for batch in keys.chunks(UNLINK_BATCH) {
                    let n: u64 =
                        redis::cmd("UNLINK").arg(batch).query_async(&mut conn).await.map_err(|e| self.failed(e))?;
                    unlinked += n;
                }
            }
            if next == 0 {
                return Ok(unlinked);
            }
            cursor = next;
        }
    }

    async fn probe_now(&self) -> Result<(), TransportError> {
        if let Ok(mut conn) = self.conn() {
            if let Ok(Ok(())) = tokio::time::timeout(PING_TIMEOUT, ping_primaries(&mut conn)).await {
                return Ok(());
            }
            self.lost();
        }
        self.reconnect().await
    }

    fn resubscribe_after_fork(&self) {
        let mut subs = self.inner.subs.lock().unwrap_or_else(|p| p.into_inner());
        if subs.1.as_ref().is_some_and(|g| g.get().is_none()) {
            subs.1 = Some(ForkGuard::new(()));
            for (channel, sink) in subs.0.iter().filter(|(_, s)| s.alive()) {
                healcache_rt::handle().spawn(self.clone().bus_loop(channel.clone(), Arc::clone(sink), true));
            }
        }
    }

    /// One sharded subscription for as long as its sink is alive; full-jitter pauses between
    /// tries, as the single-server transport's.
    async fn bus_loop(self, channel: String, sink: Arc<dyn BusSink>, mut first: bool) {
        let mut rng = SmallRng::seed_from_u64(host_seed());
        let mut k = 0u32;
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

    /// `SSUBSCRIBE` on a cluster connection of its own (its pushes come to this session only);
    /// `Ok` once subscribed, when the connection is lost or stops answering pings.
    async fn bus_session(&self, channel: &str, sink: &Arc<dyn BusSink>, first: bool) -> Result<(), ()> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let client = cluster_client(&self.inner.nodes, Some(tx)).map_err(drop)?;
        let Ok(Ok(mut conn)) = tokio::time::timeout(BUS_PONG, client.get_async_connection()).await else {
            return Err(());
        };
        if !matches!(tokio::time::timeout(BUS_PONG, conn.ssubscribe(channel)).await, Ok(Ok(()))) {
            return Err(());
        }
        sink.subscribed(first);
        let route =
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(channel, SlotAddr::Master)));
        let mut tick = tokio::time::interval(BUS_PING);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut confirmed = false;
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(push) => match push.kind {
                        PushKind::SMessage => {
                            if let Some(Value::BulkString(b)) = push.data.get(1) {
                                sink.message(b);
                            }
                        }
                        // the first confirms this session's SSUBSCRIBE; a later one is the
                        // client subscribing again after a lost node connection, and messages
                        // may have gone meanwhile
                        PushKind::SSubscribe => {
                            if confirmed {
                                sink.subscribed(false);
                            }
                            confirmed = true;
                        }
                        PushKind::Disconnection => return Ok(()),
                        _ => {}
                    },
                    None => return Ok(()),
                },
                _ = tick.tick() => {
                    if !sink.alive() {
                        return Ok(());
                    }
                    let ping = conn.route_command(redis::cmd("PING"), route.clone());
                    if !matches!(tokio::time::timeout(BUS_PONG, ping).await, Ok(Ok(_))) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// PING on every primary (all must answer).
async fn ping_primaries(conn: &mut ClusterConnection) -> Result<(), TransportError> {
    let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(ResponsePolicy::AllSucceeded)));
    let ping = conn.route_command(redis::cmd("PING"), all);
    tokio::time::timeout(PING_TIMEOUT, ping).await.map_err(|_| TransportError::Timeout)?.map_err(failure)?;
    Ok(())
}

impl Transport for RedisClusterTransport {
    fn read(&self, value_key: &str) -> BoxFuture<'static, Result<ReadReply, TransportError>> {
        let (me, key) = (self.clone(), value_key.to_string());
        run(async move {
            let mut conn = me.conn_here().await?;
            let reply: (Option<Vec<u8>>, i64) =
                me.inner.read.key(key).invoke_async(&mut conn).await.map_err(|e| me.failed(e))?;
            Ok(ReadReply { value: reply.0, pttl_ms: reply.1 })
        })
    }

    fn revalidate(&self, value_key: &str) -> BoxFuture<'static, Result<(Option<Token>, i64), TransportError>> {
        let (me, key) = (self.clone(), value_key.to_string());
        run(async move {
            let mut conn = me.conn_here().await?;
            let (bytes, pttl): (Vec<u8>, i64) =
                me.inner.revalidate.key(key).invoke_async(&mut conn).await.map_err(|e| me.failed(e))?;
            Ok((token_of(&bytes), pttl))
        })
    }

    fn tag_versions(&self, keys: Vec<String>) -> BoxFuture<'static, Result<Vec<u64>, TransportError>> {
        let me = self.clone();
        run(async move {
            let conn = me.conn_here().await?;
            // one GET per tag, each routed to its own slot (never a cross-slot MGET)
            let gets = keys.iter().map(|k| {
                let mut conn = conn.clone();
                async move { redis::cmd("GET").arg(k).query_async::<Option<String>>(&mut conn).await }
            });
            let mut out = Vec::with_capacity(keys.len());
            for got in futures::future::join_all(gets).await {
                out.push(got.map_err(|e| me.failed(e))?.and_then(|v| v.parse().ok()).unwrap_or(0));
            }
            Ok(out)
        })
    }

    fn tag_bump(&self, key: &str) -> BoxFuture<'static, Result<u64, TransportError>> {
        let (me, key) = (self.clone(), key.to_string());
        run(async move {
            let mut conn = me.conn_here().await?;
            redis::cmd("INCR").arg(key).query_async(&mut conn).await.map_err(|e| me.failed(e))
        })
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
        run(async move {
            let mut conn = me.conn_here().await?;
            let reply: Value = me
                .inner
                .acquire
                .key(&keys.lock)
                .key(&keys.fence)
                .key(&keys.value)
                .arg(owner)
                .arg(millis(lease))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| me.failed(e))?;
            acquire_reply(reply)
        })
    }

    fn renew(
        &self,
        lock_key: &str,
        lockval: &str,
        lease: Duration,
    ) -> BoxFuture<'static, Result<bool, TransportError>> {
        let (me, key, val) = (self.clone(), lock_key.to_string(), lockval.to_string());
        run(async move {
            let mut conn = me.conn_here().await?;
            let n: i64 = me
                .inner
                .renew
                .key(key)
                .arg(val)
                .arg(millis(lease))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| me.failed(e))?;
            Ok(n == 1)
        })
    }

    fn release(&self, lock_key: &str, lockval: &str) -> BoxFuture<'static, Result<bool, TransportError>> {
        let (me, key, val) = (self.clone(), lock_key.to_string(), lockval.to_string());
        run(async move {
            let mut conn = me.conn_here().await?;
            let n: i64 = me.inner.release.key(key).arg(val).invoke_async(&mut conn).await.map_err(|e| me.failed(e))?;
            Ok(n == 1)
        })
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
        run(async move {
            let mut conn = me.conn_here().await?;
            let reply: Vec<i64> = me
                .inner
                .lease
                .key(key)
                .arg(value)
                .arg(millis(lease))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| me.failed(e))?;
            lease_reply(&reply)
        })
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
        run(async move {
            let mut conn = me.conn_here().await?;
            let mut call = me.inner.put_record.key(lk);
            call.key(key).arg(lv).arg(millis(ttl));
            for (f, v) in fields {
                call.arg(f).arg(v);
            }
            let n: i64 = call.invoke_async(&mut conn).await.map_err(|e| me.failed(e))?;
            Ok(n == 1)
        })
    }

    fn get_record(&self, key: &str) -> BoxFuture<'static, Result<Record, TransportError>> {
        let (me, key) = (self.clone(), key.to_string());
        run(async move {
            let mut conn = me.conn_here().await?;
            let fields: Record =
                redis::cmd("HGETALL").arg(key).query_async(&mut conn).await.map_err(|e| me.failed(e))?;
            Ok(fields)
        })
    }

    fn probe(&self) -> BoxFuture<'static, Result<(), TransportError>> {
        let me = self.clone();
        run(async move { me.probe_now().await })
    }

    fn spawn(&self, work: BoxFuture<'static, ()>) {
        healcache_rt::handle().spawn(work);
    }
}
