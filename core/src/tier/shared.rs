//! [`Tier`]: one cache's link to the shared tier — the read and write paths over a
//! [`Transport`]. Beside it: their deadline and the breaker (`health`), tag versions
//! (`tagging`), the invalidation bus (`fanout`), the fleet rebuild lock (`rebuild`) and the
//! counters (`stats`).

mod closing;
mod fanout;
mod health;
mod rebuild;
mod stats;
mod tagging;

pub use closing::close_all;
pub(crate) use rebuild::Rebuild;
use stats::Counters;
pub use stats::L2Stats;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{self, BoxFuture, Either, FutureExt};

use super::breaker::{Breaker, BreakerConfig, State};
use super::bus::{self, Link};
use super::epochs::EpochHints;
use super::lock::{LockConfig, LockCounters};
use super::recovery::RecoveryQueue;
#[cfg(feature = "tier")]
use super::verify::{Leases, SCAN_STEP};
use super::{Expect, Transport, TransportError, ValueCodec, WriteReply, WriteRequest};
use crate::codec::{self, Kind, Limits, Tag, Token};
use crate::keys::{self, L2Keys};
use crate::tags::TagIndex;
use crate::{Clock, Timer};

/// How long a pattern unlink may take (many SCAN and UNLINK round trips).
const UNLINK_DEADLINE: Duration = Duration::from_secs(60);

/// Settings of the shared tier.
#[derive(Debug, Clone)]
pub(crate) struct TierConfig {
    /// First part of every L2 key; its digit is the layout version. Defaults to: `hc1`.
    pub prefix: String,
    /// Deadline of every L2 operation. Defaults to: 100 ms.
    pub timeout: Duration,
    /// When the breaker opens and how it probes. Defaults to: open after 3 consecutive failures
    /// or 2 timeouts within 1 s; probes after `U(0, min(4 s, 1 s * 2^k))`.
    pub breaker: BreakerConfig,
    /// Pending invalidations kept while L2 is unreachable. Defaults to: 10,000.
    pub recovery_max: usize,
    /// Payloads at least this long are compressed (kept only if that saves 12.5%). Defaults to: 1,024.
    pub compress_min_bytes: usize,
    /// How long a delete's tombstone fences out late rebuilds. Defaults to: 10 s.
    pub tombstone_ttl: Duration,
    /// The fleet rebuild lock. Defaults to: background refreshes only, lease 5 s, renewed for
    /// 30 s at most.
    pub lock: LockConfig,
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig {
            prefix: "hc1".into(),
            timeout: Duration::from_millis(100),
            // probes at most 4 s apart: a restarted Redis is in use again within about 4 s,
            // while the first 1 s window (full jitter) still spreads a fleet's reconnects
            breaker: BreakerConfig { max_window: Duration::from_secs(4), ..BreakerConfig::default() },
            recovery_max: 10_000,
            compress_min_bytes: 1024,
            tombstone_ttl: Duration::from_secs(10),
            lock: LockConfig::default(),
        }
    }
}

/// How a write to L2 ended, for the caller that waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrote {
    /// Stored, under this token.
    Written(Token),
    /// Refused by the fence: a newer write, or a fence record lost since the token was taken.
    FencedOut,
    /// Not stored: L2 failed or is unreachable, or the value could not be encoded.
    Failed,
}

/// What a read of L2 found.
pub(crate) enum L2Read<V> {
    /// A fresh value (`None`: a fresh "not found"), with the life it has left (`None`: no expiry),
    /// the duration of the load that produced it, its token, grace and tags.
    Hit { value: Option<V>, fresh: Option<Duration>, load_nanos: u64, token: Token, grace: Duration, tags: Vec<Tag> },
    /// Nothing usable; a write after the load must expect this.
    Miss(Expect),
    /// Not read: the breaker is open, or the read failed.
    Skipped,
}

/// One cache's link to the shared tier.
pub(crate) struct Tier<V> {
    pub(super) transport: Arc<dyn Transport>,
    codec: Arc<dyn ValueCodec<V>>,
    pub(super) cfg: TierConfig,
    limits: Limits,
    breaker: Breaker,
    recovery: RecoveryQueue,
    counters: Counters,
    pub(super) timer: Arc<dyn Timer>,
    /// L1 entries written before this instant (cache clock, nanoseconds) are suspect: written
    /// before an outage ended, they may have missed an invalidation.
    suspect_before: AtomicU64,
    probing: AtomicBool,
    /// Whether a replay of the recovery queue is due (see `Tier::replay_soon`).
    replaying: AtomicBool,
    /// Whether L2 has answered since the tier was made, and whether a probe asks it meanwhile
    /// (see `Tier::answered`).
    answered: AtomicBool,
    first_probing: AtomicBool,
    pub(super) clock: Arc<dyn Clock>,
    locks: Arc<LockCounters>,
    pub(super) jitter: Arc<AtomicU64>,
    /// This process in the fleet lock's values: random per cache, so two instances never share it.
    pub(super) owner: String,
    /// The fleet verifier's leases and counters.
    #[cfg(feature = "tier")]
    pub(super) leases: Leases,
    bus: Link,
    /// The process the bus identity and heartbeat belong to: a forked child takes its own.
    bus_pid: AtomicU32,
    /// Bumped after L1 entries change without a call of this process (a bus message, a
    /// distrust), so a host's read mirror of L1 knows to ask the core again.
    local_changes: Arc<AtomicU32>,
    /// The L2 token of L1 entries, by key hash (direct-mapped, lossy): `(key hash, L1 version,
    /// token, the envelope's grace in ms)`. A suspect entry whose version is still the one recorded, and whose token L2
    /// still holds, is trusted again after a 16-byte read instead of a read of its value.
    memo: Mutex<Vec<(u64, u64, Token, u64)>>,
    tags: Arc<TagIndex>,
    /// The fence epoch last seen per slot, named by each write.
    pub(super) epochs: EpochHints,
    /// The writes under way, and whether the tier is closed.
    closing: Arc<closing::Closing>,
}

impl<V: Clone + Send + Sync + 'static> Tier<V> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        codec: Arc<dyn ValueCodec<V>>,
        cfg: TierConfig,
        max_entry_bytes: u64,
        seed: u64,
        timer: Arc<dyn Timer>,
        clock: Arc<dyn Clock>,
        max_entries: usize,
        tags: Arc<TagIndex>,
    ) -> Arc<Self> {
        let limits = Limits {
            max_entry_bytes: usize::try_from(max_entry_bytes).unwrap_or(usize::MAX),
            compress_min_bytes: cfg.compress_min_bytes,
        };
        let node = bus::node_id(seed, clock.precise_nanos(), Arc::as_ptr(&transport) as *const () as usize);
        let cfg_prefix = cfg.prefix.clone();
        let tier = Arc::new(Tier {
            transport,
            codec,
            limits,
            breaker: Breaker::new(cfg.breaker.clone(), seed),
            recovery: RecoveryQueue::new(cfg.recovery_max),
            cfg,
            counters: Counters::default(),
            timer,
            suspect_before: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            replaying: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            first_probing: AtomicBool::new(false),
            clock,
            locks: Arc::default(),
            jitter: Arc::new(AtomicU64::new(seed)),
            owner: node.iter().map(|b| format!("{b:02x}")).collect(),
            bus: Link::new(node, keys::bus_channel(&cfg_prefix, "cache")),
            bus_pid: AtomicU32::new(bus::process_id()),
            local_changes: Arc::default(),
            memo: Mutex::new(vec![(0, 0, Token::default(), 0); memo_slots(max_entries)]),
            tags,
            epochs: EpochHints::default(),
            #[cfg(feature = "tier")]
            leases: Leases::default(),
            closing: Arc::default(),
        });
        // so that a readiness check soon after start finds L2 answered (see `Tier::answered`)
        tier.first_probe();
        tier.listed()
    }

    fn memo_hash(key: &str) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(key, &mut h);
        std::hash::Hasher::finish(&h) | 1
    }

    /// L1 holds `key` at `version` with the value L2 stores under `token`, `grace` after it
    /// stops being fresh.
    pub(crate) fn remember(&self, key: &str, version: u64, token: Token, grace: Duration) {
        let h = Self::memo_hash(key);
        let mut m = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        let i = (h as usize) & (m.len() - 1);
        m[i] = (h, version, token, grace.as_millis() as u64);
    }

    /// The token and grace remembered for `key` at L1 version `version`, if any.
    pub(crate) fn recall(&self, key: &str, version: u64) -> Option<(Token, Duration)> {
        let h = Self::memo_hash(key);
        let m = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        let (mh, mv, t, g) = m[(h as usize) & (m.len() - 1)];
        (mh == h && mv == version).then_some((t, Duration::from_millis(g)))
    }

    /// Asks L2 whether it still holds `token` for `key`, fresh: `Some(life left)` (`None` inside:
    /// no expiry) when it does; the caller then trusts its L1 copy again (counted).
    pub(crate) async fn revalidate(
        self: &Arc<Self>,
        key: &str,
        token: Token,
        grace: Duration,
    ) -> Option<Option<Duration>> {
        if !self.admit() {
            return None;
        }
        let keys = self.keys(key);
        let (stored, pttl) = self.timed(self.transport.revalidate(&keys.value), Some(self.cfg.timeout)).await.ok()?;
        if stored != Some(token) {
            return None;
        }
        let fresh = match pttl {
            -1 => None,
            p if p < 0 => return None,
            p => Some(Duration::from_millis((p as u64).checked_sub(grace.as_millis() as u64).filter(|l| *l > 0)?)),
        };
        self.counters.revalidated.fetch_add(1, Relaxed);
        Some(fresh)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.clock.now_nanos())
    }

    fn keys(&self, key: &str) -> L2Keys {
        keys::l2_keys(&self.cfg.prefix, key)
    }

    /// True when an L1 entry written at `written_at` (cache clock) must be re-read from L2.
    /// An entry written in the same clock tick as the distrust is suspect too: the cache clock is
    /// coarse (a scheduler tick, 1-4 ms), so it may have been written before the gap.
    pub(crate) fn is_suspect(&self, written_at: u64) -> bool {
        written_at <= self.suspect_before.load(Relaxed)
    }

    /// An L1 entry found suspect: it is re-read from L2 (counted).
    pub(crate) fn reread_suspect(&self) {
        self.counters.suspect_rereads.fetch_add(1, Relaxed);
    }

    /// True once some L1 entries may be suspect (after the first outage).
    pub(crate) fn any_suspect(&self) -> bool {
        self.suspect_before.load(Relaxed) != 0
    }

    /// Reads `key` from L2.
    pub(crate) async fn read(self: &Arc<Self>, key: &str) -> L2Read<V> {
        if !self.admit() {
            return L2Read::Skipped;
        }
        let keys = self.keys(key);
        let max = codec::max_envelope_bytes(&self.limits);
        let reply = match self.timed(self.transport.read(&keys.value, max), Some(self.cfg.timeout)).await {
            Ok(r) => r,
            Err(_) => return L2Read::Skipped,
        };
        let c = &self.counters;
        let miss = |expect| {
            c.misses.fetch_add(1, Relaxed);
            L2Read::Miss(expect)
        };
        if reply.too_long != 0 {
            // refused as `decode` refuses it, without its bytes
            c.codec_errors.fetch_add(1, Relaxed);
            return miss(Expect::Any);
        }
        let Some(stored) = reply.value else { return miss(Expect::Absent) };
        let decoded = match codec::decode(keys.value.as_bytes(), &stored, &self.limits) {
            Ok(d) => d,
            Err(_) => {
                c.codec_errors.fetch_add(1, Relaxed);
                return miss(Expect::Any);
            }
        };
        let h = &decoded.header;
        let seen = Expect::Token(h.token);
        // a first write to this slot can name the epoch the stored value was written in
        self.epochs.learn_if_unknown(EpochHints::slot_of(key), h.token.epoch);
        // freshness from Redis's own clock
        let Some(fresh) = codec::fresh_left(reply.pttl_ms, h) else { return miss(seen) };
        if !decoded.tags.is_empty() {
            match self.tags_current(&decoded.tags).await {
                Some(true) => {}
                Some(false) => {
                    c.tag_outdated.fetch_add(1, Relaxed);
                    return miss(seen);
                }
                // the versions could not be read: the value is not served unchecked
                None => return L2Read::Skipped,
            }
        }
        let load_nanos = u64::from(h.load_us) * 1000;
        let value = match h.kind {
            Kind::Tombstone => return miss(seen),
            Kind::NotFound => None,
            Kind::Value => match self.codec.decode(h.codec, &decoded.payload) {
                Ok(v) => Some(v),
                Err(_) => {
                    c.codec_errors.fetch_add(1, Relaxed);
                    return miss(Expect::Any);
                }
            },
        };
        c.hits.fetch_add(1, Relaxed);
        let grace = Duration::from_millis(h.grace_ms);
        L2Read::Hit { value, fresh, load_nanos, token: h.token, grace, tags: decoded.tags }
    }

    /// What `key` holds in L2 that may stand in for a failed load (fail-safe): a value or a
    /// "not found", fresh or within the grace window its writer gave it, not outdated by a tag
    /// (a tombstone never), with the time its grace window has left by Redis's clock (`None`:
    /// no expiry) and its tags. `None`: nothing usable, or L2 cannot be asked.
    pub(crate) async fn read_fallback(self: &Arc<Self>, key: &str) -> Option<(Option<V>, Option<Duration>, Vec<Tag>)> {
        if !self.admit() {
            return None;
        }
        let keys = self.keys(key);
        let max = codec::max_envelope_bytes(&self.limits);
        let reply = self.timed(self.transport.read(&keys.value, max), Some(self.cfg.timeout)).await.ok()?;
        let left = match reply.pttl_ms {
            -1 => None,
            p if p > 0 => Some(Duration::from_millis(p as u64)),
            _ => return None,
        };
        let decoded = match (reply.too_long, reply.value) {
            (0, Some(stored)) => codec::decode(keys.value.as_bytes(), &stored, &self.limits).ok()?,
            _ => return None,
        };
        if !decoded.tags.is_empty() && self.tags_current(&decoded.tags).await != Some(true) {
            return None;
        }
        let value = match decoded.header.kind {
            Kind::Tombstone => return None,
            Kind::NotFound => None,
            Kind::Value => Some(self.codec.decode(decoded.header.codec, &decoded.payload).ok()?),
        };
        Some((value, left, decoded.tags))
    }

    /// Reads `key` from L2, with the token of what is stored when it decoded.
    pub(crate) async fn read_token(self: &Arc<Self>, key: &str) -> (L2Read<V>, Option<Token>) {
        let r = self.read(key).await;
        let token = match &r {
            L2Read::Hit { token, .. } => Some(*token),
            _ => None,
        };
        (r, token)
    }

    /// The payload of `value`, or why L2 cannot store it: `ValueNotEncodable`, or `ValueTooLarge`
    /// past `max_entry_bytes` (L1 weighs a value its own way; checked before any write, so
    /// nothing changes rather than L1 holding what L2 refuses while L2 keeps the value replaced).
    pub(crate) fn encode(&self, value: &V) -> crate::Result<(codec::PayloadCodec, Vec<u8>)> {
        let (pc, payload) = self.codec.encode(value).map_err(|reason| crate::Error::ValueNotEncodable { reason })?;
        let max = codec::max_payload(&self.limits);
        if payload.len() as u64 > max {
            return Err(crate::Error::ValueTooLarge { weight: payload.len() as u64, max });
        }
        Ok((pc, payload))
    }

    /// Writes `key`'s value (`None`: a "not found") to L2, fresh for `ttl` (`None`: no expiry)
    /// and stale for `grace` after it. The write is queued now; the returned future awaits its
    /// answer and counts it. `None`: not written (L2 unavailable: the key is queued for
    /// invalidation instead; or the value cannot be encoded, counted as a codec error).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write(
        self: &Arc<Self>,
        key: &str,
        value: Option<&V>,
        ttl: Option<Duration>,
        grace: Duration,
        load_nanos: u64,
        expect: Expect,
        release: Option<String>,
        tags: Vec<Tag>,
    ) -> Option<BoxFuture<'static, Wrote>> {
        let payload = match value.map(|v| self.encode(v)).transpose() {
            Ok(p) => p,
            Err(_) => {
                // a loaded value L2 cannot hold: L2 must not keep serving what it replaces (when
                // it held nothing as the load began, there is nothing to replace)
                self.counters.codec_errors.fetch_add(1, Relaxed);
                if expect == Expect::Absent && release.is_none() {
                    return None;
                }
                return self.tombstone_releasing(key, expect, release);
            }
        };
        self.write_encoded(key, payload, ttl, grace, load_nanos, expect, release, tags, None)
    }

    /// [`Tier::write`] of a payload already encoded (`None`: a "not found"); `memo`: the L1
    /// version holding the same value, whose token is remembered once written.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_encoded(
        self: &Arc<Self>,
        key: &str,
        payload: Option<(codec::PayloadCodec, Vec<u8>)>,
        ttl: Option<Duration>,
        grace: Duration,
        load_nanos: u64,
        expect: Expect,
        release: Option<String>,
        tags: Vec<Tag>,
        memo: Option<u64>,
    ) -> Option<BoxFuture<'static, Wrote>> {
        let (kind, pc, payload) = match payload {
            Some((pc, p)) => (Kind::Value, pc, p),
            None => (Kind::NotFound, codec::PayloadCodec::Raw, Vec::new()),
        };
        let fresh_ms = ttl.map_or(u64::MAX, |t| (t.as_millis() as u64).max(1));
        let grace_ms = grace.as_millis() as u64;
        let px_ms = ttl.map_or(0, |_| fresh_ms.saturating_add(grace_ms));
        let w = Write { kind, pc, fresh_ms, grace_ms, load_nanos, px_ms, expect, ttl, release, tags, memo };
        self.submit(key, w, &payload)
    }

    /// Writes a tombstone for `key`: other processes read a miss, and a rebuild that read `key`
    /// before it is fenced out.
    pub(crate) fn tombstone(self: &Arc<Self>, key: &str) -> Option<BoxFuture<'static, Wrote>> {
        self.tombstone_expect(key, Expect::Any)
    }

    /// [`Tier::tombstone`] written only as `expect` allows (a repair's: only over what it read).
    pub(crate) fn tombstone_expect(self: &Arc<Self>, key: &str, expect: Expect) -> Option<BoxFuture<'static, Wrote>> {
        self.tombstone_releasing(key, expect, None)
    }

    /// [`Tier::tombstone_expect`] that also releases the fleet lock held as `release`.
    fn tombstone_releasing(
        self: &Arc<Self>,
        key: &str,
        expect: Expect,
        release: Option<String>,
    ) -> Option<BoxFuture<'static, Wrote>> {
        let ms = (self.cfg.tombstone_ttl.as_millis() as u64).max(1);
        let w = Write {
            kind: Kind::Tombstone,
            pc: codec::PayloadCodec::Raw,
            fresh_ms: ms,
            grace_ms: 0,
            load_nanos: 0,
            px_ms: ms,
            expect,
            ttl: Some(self.cfg.tombstone_ttl),
            release,
            tags: Vec::new(),
            memo: None,
        };
        self.submit(key, w, &[])
    }

    fn submit(self: &Arc<Self>, key: &str, w: Write, payload: &[u8]) -> Option<BoxFuture<'static, Wrote>> {
        let Write { kind, pc, fresh_ms, grace_ms, load_nanos, px_ms, expect, ttl, release, tags, memo } = w;
        let busy = self.busy();
        if !self.admit() {
            let keep = ttl.map_or(Duration::MAX, |t| t.saturating_add(Duration::from_millis(grace_ms)));
            self.recovery.push(key, self.now(), keep);
            return None;
        }
        let keys = self.keys(key);
        let load_us = u32::try_from(load_nanos / 1000).unwrap_or(u32::MAX);
        let slot = EpochHints::slot_of(key);
        // the token's epoch names the slot's as last seen; the script fills in the rest
        let named = Token { epoch: self.epochs.get(slot), counter: 0 };
        let envelope = match codec::encode_tagged(
            keys.value.as_bytes(),
            kind,
            pc,
            named,
            fresh_ms,
            grace_ms,
            load_us,
            &tags,
            payload,
            &self.limits,
        ) {
            Ok(e) => e,
            Err(_) => {
                self.counters.codec_errors.fetch_add(1, Relaxed);
                return None;
            }
        };
        let deadline = self.cfg.timeout;
        let op = self.transport.write(WriteRequest { keys, envelope, px_ms, expect, deadline, release });
        let tier = Arc::clone(self);
        let key = key.to_string();
        Some(
            async move {
                // under way until its bus message is queued (dropped with the future)
                let _busy = busy;
                // the transport keeps the deadline from when it sends the write (see WriteRequest)
                match tier.timed(op, None).await {
                    Ok(WriteReply::Written(token)) => {
                        tier.counters.writes.fetch_add(1, Relaxed);
                        tier.epochs.learn(slot, token.epoch);
                        if let Some(version) = memo {
                            tier.remember(&key, version, token, Duration::from_millis(grace_ms));
                        }
                        let what = if kind == Kind::Tombstone { bus::Kind::Removed } else { bus::Kind::Changed };
                        tier.publish(what, vec![(key, token)]);
                        Wrote::Written(token)
                    }
                    Ok(WriteReply::Newer | WriteReply::EpochChanged) => {
                        tier.counters.fenced_out.fetch_add(1, Relaxed);
                        Wrote::FencedOut
                    }
                    Err(_) => {
                        // the other instances still hold what this write replaced: its key is
                        // invalidated once L2 takes writes again
                        let keep = ttl.map_or(Duration::MAX, |t| t.saturating_add(Duration::from_millis(grace_ms)));
                        tier.recovery.push(&key, tier.now(), keep);
                        tier.replay_soon();
                        Wrote::Failed
                    }
                }
            }
            .boxed(),
        )
    }

    /// Whether L2 is answering: it has answered since the tier was made, and the breaker is
    /// closed. A tier that never answered asks L2 in the background (a readiness check made
    /// before any traffic must not pass on a URL that leads nowhere).
    pub(crate) fn available(self: &Arc<Self>) -> bool {
        self.answered() && self.breaker.state() == State::Closed
    }

    /// Hands a write's answer to the background.
    pub(crate) fn spawn(&self, w: BoxFuture<'static, Wrote>) {
        self.transport.spawn(w.map(drop).boxed());
    }

    /// Waits for a write's answer at most the tier's deadline from now: a write may wait its turn
    /// in the queue longer than that, and the caller that loaded the value is not held for it.
    /// Past the deadline the write goes on in the background and `late` gets its answer.
    pub(crate) async fn settle(
        &self,
        w: BoxFuture<'static, Wrote>,
        late: impl FnOnce(Wrote) + Send + 'static,
    ) -> Option<Wrote> {
        match future::select(w, self.timer.sleep(self.cfg.timeout)).await {
            Either::Left((wrote, _)) => Some(wrote),
            Either::Right((_, w)) => {
                self.transport.spawn(w.map(late).boxed());
                None
            }
        }
    }

    /// Unlinks every L2 value whose cache key matches `pattern` (a glob over cache keys, as
    /// [`crate::keys`] builds them); answers how many.
    pub(crate) async fn unlink_matching(self: &Arc<Self>, pattern: String) -> Result<u64, TransportError> {
        if !self.admit() {
            return Err(TransportError::Io("the breaker is open".into()));
        }
        // every slot's hash tag (`{????}`: exactly its four hex digits), then the cache-key pattern
        let glob = format!("{}:{{????}}:v:{}", self.cfg.prefix, pattern);
        // a scan of many keys takes many round trips: its deadline is the scan's, not one operation's
        self.timed(self.transport.unlink_matching(glob), Some(UNLINK_DEADLINE)).await
    }

    /// The cache keys of the L2 values whose cache key matches `pattern` (a glob over cache
    /// keys), each once; `None` when there are more than `max` of them. Each step of the walk
    /// has the deadline of one operation.
    #[cfg(feature = "tier")]
    pub(crate) async fn keys_matching(
        self: &Arc<Self>,
        pattern: &str,
        max: usize,
    ) -> Result<Option<Vec<String>>, TransportError> {
        if !self.admit() {
            return Err(TransportError::Io("the breaker is open".into()));
        }
        let glob = format!("{}:{{????}}:v:{}", self.cfg.prefix, pattern);
        // SCAN may return a key more than once (a rehash during the walk)
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::new();
        let mut cursor = 0;
        loop {
            let (next, batch) =
                self.timed(self.transport.scan(&glob, cursor, SCAN_STEP), Some(self.cfg.timeout)).await?;
            for k in batch {
                if let Some(key) = keys::cache_key_of(&self.cfg.prefix, &k) {
                    if seen.insert(key.to_string()) {
                        if keys.len() == max {
                            return Ok(None);
                        }
                        keys.push(key.to_string());
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                return Ok(Some(keys));
            }
        }
    }
}

/// Slots of the revalidation token table: one per entry the cache can hold, 64 to 65,536,
/// rounded up to a power of two (a slot is the key's hash masked).
fn memo_slots(max_entries: usize) -> usize {
    max_entries.clamp(64, 1 << 16).next_power_of_two()
}

/// The parts of one L2 write, as [`Tier::submit`] takes them.
struct Write {
    kind: Kind,
    pc: codec::PayloadCodec,
    fresh_ms: u64,
    grace_ms: u64,
    load_nanos: u64,
    px_ms: u64,
    expect: Expect,
    ttl: Option<Duration>,
    release: Option<String>,
    tags: Vec<Tag>,
    memo: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P5: the token table has 64 slots at the lower bound, 65,536 at the upper one however many
    /// entries the cache holds, and a power of two in between (40 bytes a slot, as documented).
    #[test]
    fn the_token_table_is_bounded_at_64_and_65_536_slots() {
        assert_eq!((memo_slots(1), memo_slots(63), memo_slots(64)), (64, 64, 64));
        assert_eq!((memo_slots(65), memo_slots(1000), memo_slots(1024)), (128, 1024, 1024));
        assert_eq!((memo_slots(32_769), memo_slots(65_535), memo_slots(65_536)), (65_536, 65_536, 65_536));
        assert_eq!((memo_slots(65_537), memo_slots(1 << 31), memo_slots(usize::MAX)), (65_536, 65_536, 65_536));
        assert_eq!(std::mem::size_of::<(u64, u64, Token, u64)>(), 40);
    }

    /// P5: the reconnect probe waits `U(0, min(4 s, 1 s * 2^k))`: the window doubles up to
    /// exactly 4 s at k = 2 and stays there, and no drawn wait is ever longer.
    #[test]
    fn the_reconnect_backoff_reaches_4_s_and_never_passes_it() {
        let cfg = TierConfig::default().breaker;
        assert_eq!(cfg.max_window, Duration::from_secs(4));
        let b = Breaker::new(cfg, 11);
        let w: Vec<Duration> = [0, 1, 2, 3, 4, 31, 32, u32::MAX].iter().map(|k| b.window(*k)).collect();
        let s = Duration::from_secs;
        assert_eq!(w, [s(1), s(2), s(4), s(4), s(4), s(4), s(4), s(4)]);

        // failed probes reopen the breaker with k = 1, 2, ...: every wait drawn stays within 4 s
        let mut now = Duration::from_secs(1);
        for _ in 0..3 {
            b.on_failure(now);
        }
        let mut longest = Duration::ZERO;
        for k in 0..300u32 {
            let at = b.probe_at().expect("open");
            let wait = at - now;
            assert!(wait <= b.window(k).min(s(4)), "open {k}: waited {wait:?}");
            longest = longest.max(wait);
            now = at;
            assert_eq!(b.allow(now), crate::tier::breaker::Admit::Probe);
            b.on_failure(now);
        }
        assert!(longest > Duration::from_millis(3500), "the window grew to the cap: longest {longest:?}");
    }
}
