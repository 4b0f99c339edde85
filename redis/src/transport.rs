//! [`RedisTransport`]: the core's [`Transport`] on one multiplexed Redis connection.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use healcache::codec::Token;
use healcache::keys::L2Keys;
use healcache::tier::{
    BusSink, LeaseReply, LockReply, ReadReply, Record, TagRead, Transport, TransportError, WriteReply, WriteRequest,
};
use healcache::{ConfigProblem, Error};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use crate::common::{
    self, failure, millis, run, transport_for, KeepOpen, Link, State, BUS_PING, BUS_PONG, CONNECT_TIMEOUT,
    PING_TIMEOUT, SCAN_COUNT,
};
use crate::queue::{self, Queued};

/// The shared tier's transport on Redis. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisTransport {
    inner: Arc<Inner>,
    /// Held by the clones users have, not by the transport's own tasks: the last one dropped
    /// closes the transport.
    _keep: Option<Arc<KeepOpen<RedisTransport>>>,
}

struct Inner {
    client: Client,
    redacted: String,
    state: State<MultiplexedConnection>,
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
        let t = RedisTransport { inner: Arc::new(Inner { client, redacted, state: State::new() }), _keep: None };
        // A first connection now, so the first reads do not count as failures; an unreachable
        // Redis is no error here (the cache serves from L1 and loaders meanwhile).
        let first = t.clone();
        let _ = futures::executor::block_on(healcache_rt::spawn(async move { first.reconnect().await }));
        Ok(Self { _keep: Some(Arc::new(KeepOpen(t.tasks()))), ..t })
    }
}

impl Link for RedisTransport {
    type Conn = MultiplexedConnection;

    fn tasks(&self) -> Self {
        RedisTransport { inner: Arc::clone(&self.inner), _keep: None }
    }

    fn state(&self) -> &State<MultiplexedConnection> {
        &self.inner.state
    }

    async fn reconnect(&self) -> Result<(), TransportError> {
        // every operation has its own deadline (`l2_timeout`, up to 100 years): the client's
        // default response timeout (500 ms) would cut longer ones short
        let cfg = AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT)).set_response_timeout(None);
        let mut conn = self.inner.client.get_multiplexed_async_connection_with_config(&cfg).await.map_err(failure)?;
        let pong: String = tokio::time::timeout(PING_TIMEOUT, redis::cmd("PING").query_async(&mut conn))
            .await
            .map_err(|_| TransportError::Timeout)?
            .map_err(failure)?;
        if pong != "PONG" {
            return Err(TransportError::Reply(format!("PING answered {pong}")));
        }
        self.inner.state.set_conn(conn);
        Ok(())
    }

    fn failed(&self, e: redis::RedisError) -> TransportError {
        if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
            common::lost(&self.inner.state);
        }
        failure(e)
    }

    async fn ping(&self, mut conn: MultiplexedConnection) -> Result<(), TransportError> {
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop).map_err(failure)
    }

    /// One pipeline of WRITE script calls and PUBLISHes, an answer per item.
    async fn send_batch(&self, reqs: Vec<Queued>) -> Vec<Result<WriteReply, TransportError>> {
        let conn = match common::conn_for(self, reqs.iter().any(Queued::connects)).await {
            Ok(c) => c,
            Err(e) => return vec![Err(e); reqs.len()],
        };
        let reqs: Vec<&Queued> = reqs.iter().collect();
        let send =
            |mut conn: MultiplexedConnection, pipe: redis::Pipeline| async move { pipe.query_async(&mut conn).await };
        queue::send_pipeline(self, conn, &reqs, "PUBLISH", send).await
    }

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

    async fn unlink(&self, pattern: String) -> Result<u64, TransportError> {
        let mut conn = common::conn_here(self).await?;
        let mut cursor: u64 = 0;
        let mut unlinked = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) =
                scan_cmd(&pattern, cursor, SCAN_COUNT).query_async(&mut conn).await.map_err(|e| self.failed(e))?;
            unlinked += common::unlink_keys(self, &mut conn, &keys).await?;
            if next == 0 {
                return Ok(unlinked);
            }
            cursor = next;
        }
    }

    async fn scan(&self, pattern: String, cursor: u64, count: usize) -> Result<(u64, Vec<String>), TransportError> {
        let (next, keys): (u64, Vec<Vec<u8>>) = common::query(self, &scan_cmd(&pattern, cursor, count)).await?;
        Ok((next, keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).collect()))
    }
}

transport_for!(RedisTransport);

/// One SCAN step from `cursor`; the cluster transport sends it to one primary at a time.
pub(crate) fn scan_cmd(pattern: &str, cursor: u64, count: usize) -> redis::Cmd {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
    scan
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
