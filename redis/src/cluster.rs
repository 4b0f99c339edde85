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
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use healcache::codec::Token;
use healcache::keys::L2Keys;
use healcache::tier::{
    BusSink, LeaseReply, LockReply, ReadReply, Record, TagRead, Transport, TransportError, WriteReply, WriteRequest,
};
use healcache::{ConfigProblem, Error};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{PushKind, Value};
use tokio::sync::mpsc;

use crate::common::{
    self, failure, millis, run, transport_for, KeepOpen, Link, State, BUS_PING, BUS_PONG, CONNECT_TIMEOUT,
    PING_TIMEOUT, SCAN_COUNT,
};
use crate::queue::{self, Queued};
use crate::transport::{redact, scan_cmd};

/// Bits of a [`Transport::scan`] cursor that carry a primary's own SCAN cursor; the 16 bits above
/// hold the primary's index, room for the 16,384 primaries a cluster can have at most (one per
/// hash slot). Redis's cursors stay far below 2^48: they index its hash table. A cursor over it
/// is an error, never a wrap.
const NODE_CURSOR_BITS: u32 = 48;
/// How many times a command is retried on a redirect (MOVED, ASK) or a lost node connection.
const RETRIES: u32 = 3;

/// The shared tier's transport on a Redis Cluster. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisClusterTransport {
    inner: Arc<Inner>,
    /// Held by the clones users have, not by the transport's own tasks: the last one dropped
    /// closes the transport.
    _keep: Option<Arc<KeepOpen<RedisClusterTransport>>>,
}

struct Inner {
    nodes: Vec<String>,
    client: ClusterClient,
    redacted: Vec<String>,
    state: State<ClusterConnection>,
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
        let redacted = nodes.iter().map(|n| redact(n)).collect();
        let t = RedisClusterTransport {
            inner: Arc::new(Inner { redacted, nodes, client, state: State::new() }),
            _keep: None,
        };
        let first = t.clone();
        let _ = futures::executor::block_on(healcache_rt::spawn(async move { first.reconnect().await }));
        Ok(Self { _keep: Some(Arc::new(KeepOpen(t.tasks()))), ..t })
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
}

impl Link for RedisClusterTransport {
    type Conn = ClusterConnection;

    fn tasks(&self) -> Self {
        RedisClusterTransport { inner: Arc::clone(&self.inner), _keep: None }
    }

    fn state(&self) -> &State<ClusterConnection> {
        &self.inner.state
    }

    async fn reconnect(&self) -> Result<(), TransportError> {
        let connect = self.inner.client.get_async_connection();
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT * 4, connect)
            .await
            .map_err(|_| TransportError::Timeout)?
            .map_err(failure)?;
        ping_primaries(&mut conn).await?;
        self.inner.state.set_conn(conn);
        Ok(())
    }

    fn failed(&self, e: redis::RedisError) -> TransportError {
        if e.is_connection_refusal() || e.is_unrecoverable_error() {
            common::lost(&self.inner.state);
        }
        failure(e)
    }

    async fn ping(&self, mut conn: ClusterConnection) -> Result<(), TransportError> {
        ping_primaries(&mut conn).await
    }

    /// One pipeline per slot (a key's writes, and the messages of one channel, stay in call
    /// order: one slot is one node and one connection), sent together; answers put back in call
    /// order.
    async fn send_batch(&self, reqs: Vec<Queued>) -> Vec<Result<WriteReply, TransportError>> {
        let n = reqs.len();
        let conn = match common::conn_for(self, reqs.iter().any(Queued::connects)).await {
            Ok(c) => c,
            Err(e) => return vec![Err(e); n],
        };
        let mut groups: HashMap<Route, Vec<usize>> = HashMap::new();
        for (i, r) in reqs.iter().enumerate() {
            groups.entry(Route::with_key(r.key(), SlotAddr::Master)).or_default().push(i);
        }
        let sends = groups.into_values().map(|idx| {
            let (conn, reqs) = (conn.clone(), &reqs);
            async move {
                let slot: Vec<&Queued> = idx.iter().map(|i| &reqs[*i]).collect();
                let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(slot[0].key(), SlotAddr::Master));
                let count = slot.len();
                let send = |mut conn: ClusterConnection, pipe: redis::Pipeline| {
                    let route = route.clone();
                    async move {
                        let answers = conn.route_pipeline(pipe, 0, count, route).await?;
                        Ok(answers.into_iter().map(server_error).collect())
                    }
                };
                let answers = queue::send_pipeline(self, conn, &slot, "SPUBLISH", send).await;
                idx.into_iter().zip(answers).collect::<Vec<_>>()
            }
        });
        let mut out: Vec<Option<Result<WriteReply, TransportError>>> = vec![None; n];
        for (i, a) in futures::future::join_all(sends).await.into_iter().flatten() {
            out[i] = Some(a);
        }
        out.into_iter().map(|a| a.unwrap_or(Err(TransportError::Io("unanswered".into())))).collect()
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

    /// SCAN over every primary; UNLINK in batches of one slot's keys.
    async fn unlink(&self, pattern: String) -> Result<u64, TransportError> {
        let mut conn = common::conn_here(self).await?;
        let mut cursor = 0u64;
        let mut unlinked = 0u64;
        loop {
            let (next, keys) = Link::scan(self, pattern.clone(), cursor, SCAN_COUNT).await?;
            let mut by_slot: HashMap<Route, Vec<String>> = HashMap::new();
            for k in keys {
                by_slot.entry(Route::with_key(&k, SlotAddr::Master)).or_default().push(k);
            }
            for keys in by_slot.into_values() {
                unlinked += common::unlink_keys(self, &mut conn, &keys).await?;
            }
            if next == 0 {
                return Ok(unlinked);
            }
            cursor = next;
        }
    }

    /// One SCAN step on the primary `cursor` names (see [`NODE_CURSOR_BITS`]).
    async fn scan(&self, pattern: String, cursor: u64, count: usize) -> Result<(u64, Vec<String>), TransportError> {
        let mut conn = common::conn_here(self).await?;
        let nodes = self.primaries(&mut conn).await?;
        let (index, own) = split_cursor(cursor);
        let Some((host, port)) = nodes.get(index) else { return Ok((0, Vec::new())) };
        let scan = scan_cmd(&pattern, own, count);
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
        let reply = conn.route_command(scan, route).await.map_err(|e| self.failed(e))?;
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply).map_err(|e| self.failed(e.into()))?;
        let next = next_cursor(index, next, nodes.len())?;
        Ok((next, keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).collect()))
    }
}

/// The primary's index and its own SCAN cursor in a [`Transport::scan`] cursor.
fn split_cursor(cursor: u64) -> (usize, u64) {
    ((cursor >> NODE_CURSOR_BITS) as usize, cursor & ((1u64 << NODE_CURSOR_BITS) - 1))
}

/// The walk's cursor after primary `index` of `primaries` answered its own cursor `next`: the
/// same primary again, else the next one from its start, else 0 (the walk is over).
fn next_cursor(index: usize, next: u64, primaries: usize) -> Result<u64, TransportError> {
    if next >= 1 << NODE_CURSOR_BITS {
        return Err(TransportError::Reply(format!("SCAN cursor {next} out of range")));
    }
    Ok(match next {
        0 if index + 1 < primaries => ((index + 1) as u64) << NODE_CURSOR_BITS,
        0 => 0,
        n => ((index as u64) << NODE_CURSOR_BITS) | n,
    })
}

/// A pipeline's answer as a result: a server's error answers its own item.
fn server_error(v: Value) -> redis::RedisResult<Value> {
    match v {
        Value::ServerError(e) => Err(e.into()),
        v => Ok(v),
    }
}

/// PING on every primary (all must answer).
async fn ping_primaries(conn: &mut ClusterConnection) -> Result<(), TransportError> {
    let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(ResponsePolicy::AllSucceeded)));
    let ping = conn.route_command(redis::cmd("PING"), all);
    tokio::time::timeout(PING_TIMEOUT, ping).await.map_err(|_| TransportError::Timeout)?.map_err(failure)?;
    Ok(())
}

transport_for!(RedisClusterTransport);

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing is skipped silently: a walk over the most primaries a cluster can have (16,384,
    /// one per hash slot) visits each of them in turn and ends after the last, and a primary's
    /// own cursor comes back unchanged.
    #[test]
    fn a_walk_reaches_every_primary_of_the_largest_cluster() {
        const MOST: usize = 16_384;
        let mut cursor = 0u64;
        for index in 0..MOST {
            assert_eq!(split_cursor(cursor), (index, 0), "primary {index} starts from its own cursor 0");
            let mid = next_cursor(index, 12_345, MOST).unwrap();
            assert_eq!(split_cursor(mid), (index, 12_345), "primary {index} goes on where it stopped");
            cursor = next_cursor(index, 0, MOST).unwrap();
        }
        assert_eq!(cursor, 0, "the walk ends after the last primary");
        // a primary's cursor past what the walk's cursor can carry is an error, never a wrap
        assert!(next_cursor(0, 1 << NODE_CURSOR_BITS, MOST).is_err());
        assert!(next_cursor(0, (1 << NODE_CURSOR_BITS) - 1, MOST).is_ok());
    }
}
