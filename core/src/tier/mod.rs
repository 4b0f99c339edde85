//! The shared tier: an L2 every process of a fleet reads (Redis), behind two traits so the
//! protocol lives here and the sockets in a native crate (`healcache-redis`).
//!
//! - [`Transport`] runs the tier's few operations (read a value with its remaining life, fenced
//!   write, pattern unlink, probe); [`ValueCodec`] turns a host value into payload bytes and back.
//! - The read path: an L1 miss or stale entry reads L2 inside the key's flight (so concurrent
//!   misses share one L2 read); a fresh L2 value fills L1 for the life Redis has left (its PTTL,
//!   so no wall clock crosses processes); an L2 miss runs the loader and writes L2 with a fenced
//!   compare-and-set: the write lands only if the stored token is still the one read before the
//!   load, so a slow loader never overwrites a newer value, and a delete's tombstone makes a late
//!   rebuild lose.
//! - Degradation: every operation has a deadline; a three-state breaker skips L2 without
//!   awaiting while Redis is unhealthy, writes made meanwhile queue an invalidation (never a
//!   value) replayed when it returns, and every L1 entry written before the outage becomes
//!   suspect: it is re-read from L2 before it is served fresh again.

pub mod breaker;
pub mod bus;
pub mod epochs;
pub mod lock;
pub mod recovery;
pub mod scripts;
mod shared;
// only with the feature: the tier's state is built in any case, and its drop would carry the
// verifier's into the WebAssembly module, which has a size budget
#[cfg(feature = "tier")]
mod verify;

use futures::future::BoxFuture;

pub use lock::{FleetLock, LockReply};
pub(crate) use shared::TierConfig;
pub use shared::{close_all, L2Stats};
pub(crate) use shared::{L2Read, Rebuild, Tier, Wrote};
#[cfg(feature = "tier")]
pub use verify::FleetVerify;

use crate::codec::{PayloadCodec, Token};
use crate::keys::L2Keys;

/// What a read of L2 found: the stored bytes (an envelope, or anything else a foreign writer put
/// there) and Redis's PTTL of the key (-2 absent, -1 no expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadReply {
    /// The stored bytes, `None` when the key is absent or holds more than the read's bound.
    pub value: Option<Vec<u8>>,
    /// The stored length when it is past the read's bound (its bytes were not read), else 0.
    pub too_long: u64,
    /// The key's remaining life in milliseconds as Redis reports it.
    pub pttl_ms: i64,
}

/// The condition of a fenced write, from what the writer read before its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Unconditional: a plain `set`, a delete's tombstone, or an overwrite of a stored value that
    /// did not decode.
    Any,
    /// Only if no value is stored now (a write or a tombstone since the read refuses it).
    Absent,
    /// Only if the stored token is still this one, or the key has expired without a newer write.
    Token(Token),
    /// A rebuild under the fleet lock: only if the slot's epoch is still this token's and no
    /// envelope with the same epoch and a counter at least as high is stored (any write since
    /// the lock was taken, a tombstone included, wins).
    Fenced(Token),
}

/// A write of one envelope. The transport must order writes as they are submitted: the request
/// is queued when [`Transport::write`] is called, not when its future is first polled.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// The L2 keys of the cache key (value and fence record).
    pub keys: L2Keys,
    /// The encoded envelope; the script sets its token field.
    pub envelope: Vec<u8>,
    /// Redis expiry in milliseconds (fresh plus grace); 0 means none.
    pub px_ms: u64,
    /// When the write may land.
    pub expect: Expect,
    /// How long the write may take once sent, then it fails with [`TransportError::Timeout`].
    /// Counted from the send, not the call: writes wait their turn in a bounded queue (so a
    /// burst of thousands is no burst of timeouts), and only the round trip is Redis's to keep.
    pub deadline: std::time::Duration,
    /// The fleet lock's value to release with the write (compare-and-delete), when the write
    /// is a rebuild under the lock.
    pub release: Option<String>,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReply {
    /// Stored under this token.
    Written(Token),
    /// Refused: a newer value (or a tombstone) is stored.
    Newer,
    /// Refused: the slot's fence record was lost (Redis restarted without persistence, was
    /// flushed, or evicted it) since the token was taken, so every older holder is fenced out.
    EpochChanged,
}

/// What a try for a fleet verifier's lease found (see [`Transport::try_lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseReply {
    /// The lease is ours now.
    Won,
    /// Another instance holds it for `pttl_ms` more (-1: no expiry, -2: gone meanwhile).
    Held {
        /// The lease's remaining life in milliseconds.
        pttl_ms: i64,
    },
}

/// A record's fields and their values (a Redis hash), as a fleet verifier's scores are kept.
pub type Record = Vec<(String, Vec<u8>)>;

/// A failure of the transport. Every kind counts against the breaker: data outcomes (a value
/// that does not decode, a refused write) are not errors of this type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No answer within the deadline.
    #[error("the shared tier did not answer in time")]
    Timeout,
    /// No connection, or the connection failed.
    #[error("the shared tier is unreachable: {0}")]
    Io(String),
    /// Redis answered with an error.
    #[error("the shared tier refused the command: {0}")]
    Reply(String),
}

/// A tag version L2 holds that no cache wrote: the values recorded under the tag are not served
/// (reading it as never bumped could bring an invalidated value back), and it is counted.
pub const UNREADABLE_TAG: u64 = u64::MAX;

/// Tag versions are below this (2^52 µs of the server's clock: the year 2112); a higher one no
/// cache wrote, and it reads as [`UNREADABLE_TAG`] (kept, it could never be moved past, as
/// versions only grow).
pub const TAG_VERSION_END: u64 = 1 << 52;

/// A tag's current version as read from L2 (the TAG_READ script), and when it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagRead {
    /// The version; [`UNREADABLE_TAG`] for text that is no version.
    pub version: u64,
    /// When the version was set.
    pub set: TagSet,
}

/// How a tag's version was set, as the server tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSet {
    /// By this very read: the key was absent (the tag new, or its key lost).
    ByThisRead,
    /// By an earlier read that found the key absent: no invalidation since.
    ByARead,
    /// By an invalidation this long before the read, by the server's clock.
    Bumped(std::time::Duration),
    /// Not known (a version not made from the server's clock, or ahead of it).
    Unknown,
}

/// The operations the shared tier needs from its store. Futures must not borrow the transport
/// (they run after the call returns) and must be safe to drop at any await: a dropped operation
/// is abandoned, never answered to another caller.
pub trait Transport: Send + Sync + 'static {
    /// The value stored at `value_key` and its PTTL, in one round trip; a value longer than
    /// `max_bytes` is not read, only its length (the READ script).
    fn read(&self, value_key: &str, max_bytes: u64) -> BoxFuture<'static, Result<ReadReply, TransportError>>;
    /// The token stored at `value_key` (the REVALIDATE script: 16 bytes instead of the value;
    /// `None` when absent or not an envelope) and its PTTL.
    fn revalidate(&self, value_key: &str) -> BoxFuture<'static, Result<(Option<Token>, i64), TransportError>>;
    /// The current versions of tags, in order (the TAG_READ script): an absent key is set to a
    /// new version from the server's clock first, so a key lost in Redis never reads as a
    /// version a value recorded before; [`UNREADABLE_TAG`] for a key holding what no cache
    /// wrote (text that is no version).
    fn tag_versions(&self, keys: Vec<String>) -> BoxFuture<'static, Result<Vec<TagRead>, TransportError>>;
    /// Moves the tag version at `key` to one never held before (the TAG_BUMP script: the server's
    /// clock in microseconds, or the old version + 1 if that is higher); answers it.
    fn tag_bump(&self, key: &str) -> BoxFuture<'static, Result<u64, TransportError>>;
    /// A fenced write (see [`WriteRequest`]); queued in call order; the transport keeps its
    /// deadline, from when it sends it.
    fn write(&self, req: WriteRequest) -> BoxFuture<'static, Result<WriteReply, TransportError>>;
    /// Unlinks every key matching the glob `pattern` (SCAN and UNLINK in batches, never KEYS);
    /// answers how many were unlinked.
    fn unlink_matching(&self, pattern: String) -> BoxFuture<'static, Result<u64, TransportError>>;
    /// Try-lock of `keys.lock` for `lease` (the ACQUIRE script): a won lock comes with a fresh
    /// fencing token from `keys.fence`; `owner` names this process in the lock's value.
    fn acquire(
        &self,
        keys: &L2Keys,
        owner: &str,
        lease: std::time::Duration,
    ) -> BoxFuture<'static, Result<LockReply, TransportError>>;
    /// Extends the lock at `lock_key` to `lease` if it still holds `lockval`; false when lost.
    fn renew(
        &self,
        lock_key: &str,
        lockval: &str,
        lease: std::time::Duration,
    ) -> BoxFuture<'static, Result<bool, TransportError>>;
    /// Deletes the lock at `lock_key` if it still holds `lockval`; false when it did not.
    fn release(&self, lock_key: &str, lockval: &str) -> BoxFuture<'static, Result<bool, TransportError>>;
    /// Publishes `message` on the pub/sub `channel`, best effort (a lost message is a gap the
    /// receivers notice by its number). Queued when called, in the same order as writes, so a
    /// message follows the write it announces and messages leave in call order; `deadline`
    /// counts as a write's does.
    fn publish(
        &self,
        channel: &str,
        message: Vec<u8>,
        deadline: std::time::Duration,
    ) -> BoxFuture<'static, Result<(), TransportError>>;
    /// Keeps `sink` subscribed to `channel` from now on, on a connection of its own, until
    /// `sink.alive()` is false: every message goes to `sink.message`, every (re)subscription to
    /// `sink.subscribed` (messages may have been lost while it was down); a connection that
    /// stops answering its pings is replaced, and a process that forked subscribes again.
    fn subscribe(&self, channel: &str, sink: std::sync::Arc<dyn BusSink>);
    /// One step of a cursor walk over the keyspace (`SCAN cursor MATCH pattern COUNT count`):
    /// the next cursor (0 once the walk is over) and the keys of this step that match. Keys
    /// that are not UTF-8 are left out (no cache key is).
    fn scan(
        &self,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> BoxFuture<'static, Result<(u64, Vec<String>), TransportError>>;
    /// Try-lock of a plain lease (`SET key value NX PX lease`, the fleet verifier's): won, or
    /// held by another instance for some time more.
    fn try_lease(
        &self,
        key: &str,
        value: &str,
        lease: std::time::Duration,
    ) -> BoxFuture<'static, Result<LeaseReply, TransportError>>;
    /// Sets `fields` of the hash at `key` and its expiry to `ttl`, only while the lease at
    /// `lease_key` still holds `lease_value` (the [`scripts::PUT_RECORD`] script); false when
    /// the lease was lost, and nothing is written.
    fn put_record(
        &self,
        lease_key: &str,
        lease_value: &str,
        key: &str,
        fields: Record,
        ttl: std::time::Duration,
    ) -> BoxFuture<'static, Result<bool, TransportError>>;
    /// Every field of the hash at `key` (`HGETALL`; empty when absent).
    fn get_record(&self, key: &str) -> BoxFuture<'static, Result<Record, TransportError>>;
    /// A health probe that also reconnects when the connection was lost.
    fn probe(&self) -> BoxFuture<'static, Result<(), TransportError>>;
    /// Runs the tier's background work (answers of queued writes, the probe loop, replayed
    /// invalidations) to completion on the transport's own runtime: it must not depend on a
    /// host call being under way, as a host's spawner may.
    fn spawn(&self, work: BoxFuture<'static, ()>);
    /// Closes the transport for good: what it has queued (writes, bus messages) is still sent,
    /// for `deadline` at most; then every connection closes, the bus subscriptions' included,
    /// and later operations fail at once (a probe never connects again). The future resolves
    /// once the connections are closed; dropping it does not stop the closing. Clones of a
    /// transport share their connections: closing one closes them all.
    fn close(&self, deadline: std::time::Duration) -> BoxFuture<'static, ()>;
}

/// Where a subscription delivers (see [`Transport::subscribe`]).
pub trait BusSink: Send + Sync + 'static {
    /// A message's bytes.
    fn message(&self, bytes: &[u8]);
    /// The subscription started (`first`) or started again after a loss.
    fn subscribed(&self, first: bool);
    /// False once nobody listens any more (the cache was dropped): the subscription ends.
    fn alive(&self) -> bool;
}

/// Turns a host value into payload bytes and back. Bindings implement it as a conversion (a
/// Python object or a JS value to MessagePack); Rust users take [`MsgPack`].
pub trait ValueCodec<V>: Send + Sync + 'static {
    /// The payload of `value`; an `Err` names why it cannot be encoded.
    fn encode(&self, value: &V) -> Result<(PayloadCodec, Vec<u8>), String>;
    /// The value of a payload; an `Err` is counted as a codec error and read as a miss.
    fn decode(&self, codec: PayloadCodec, payload: &[u8]) -> Result<V, String>;
}

/// The neutral value model every surface shares ([`rmpv::Value`]: nil, bool, integers, floats,
/// text, bytes, arrays, maps with text keys), as MessagePack; reads JSON payloads too. Depth
/// and size are bounded by the core's codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Neutral;

impl ValueCodec<rmpv::Value> for Neutral {
    fn encode(&self, value: &rmpv::Value) -> Result<(PayloadCodec, Vec<u8>), String> {
        crate::codec::encode_msgpack(value).map(|b| (PayloadCodec::MsgPack, b)).map_err(|e| e.to_string())
    }

    fn decode(&self, codec: PayloadCodec, payload: &[u8]) -> Result<rmpv::Value, String> {
        crate::codec::decode_value(codec, payload).map_err(|e| e.to_string())
    }
}

/// MessagePack through serde, for Rust values: a `serde_json::Value` or a typed struct.
pub struct MsgPack<T>(std::marker::PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for MsgPack<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MsgPack")
    }
}

impl<T> MsgPack<T> {
    /// The codec.
    pub fn new() -> Self {
        MsgPack(std::marker::PhantomData)
    }
}

impl<T> Default for MsgPack<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ValueCodec<T> for MsgPack<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn encode(&self, value: &T) -> Result<(PayloadCodec, Vec<u8>), String> {
        rmp_serde::to_vec_named(value).map(|b| (PayloadCodec::MsgPack, b)).map_err(|e| e.to_string())
    }

    fn decode(&self, codec: PayloadCodec, payload: &[u8]) -> Result<T, String> {
        match codec {
            PayloadCodec::MsgPack => rmp_serde::from_slice(payload).map_err(|e| e.to_string()),
            PayloadCodec::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
            other => Err(format!("payload codec {other:?} does not decode to this type")),
        }
    }
}
