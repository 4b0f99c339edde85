//! [`Tier`]: one cache's link to the shared tier — the read and write paths over a
//! [`Transport`], with their deadline, the breaker, the recovery queue and the counters.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{self, BoxFuture, Either, FutureExt};

use super::breaker::{Admit, Breaker, BreakerConfig, State, Transition};
use super::bus::{self, Heard, Link};
use super::lock::{self, Lease, LockConfig, LockCounters};
use super::recovery::RecoveryQueue;
#[cfg(feature = "tier")]
use super::verify::{Leases, SCAN_STEP};
use super::{BusSink, Expect, LockReply, Transport, TransportError, ValueCodec, WriteReply, WriteRequest};
use crate::codec::{self, Kind, Limits, Tag, Token};
use crate::keys::{self, L2Keys};
use crate::stats::{Histogram, HistogramSnapshot};
use crate::tags::TagIndex;
use crate::{Clock, Timer};

/// How long a pattern unlink may take (many SCAN and UNLINK round trips).
const UNLINK_DEADLINE: Duration = Duration::from_secs(60);

/// How often an instance announces its last message number on the bus.
const HEARTBEAT: Duration = Duration::from_millis(250);

/// A subscription that has delivered nothing for this long, not even this cache's own
/// heartbeats (three of them missed), is presumed lost. Checked every half heartbeat, so a cut
/// link is noticed within about 0.9 s of the cut.
const SILENCE: Duration = Duration::from_millis(750);

/// How long a probe may take at least: it may have to connect anew.
const PROBE_DEADLINE: Duration = Duration::from_secs(1);

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

/// The shared tier's counters, as [`crate::Stats`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct L2Stats {
    /// Reads that found a fresh value (or a fresh "not found").
    pub hits: u64,
    /// Reads that found nothing usable: absent, stale, a tombstone, or a value that did not decode.
    pub misses: u64,
    /// Operations that failed: I/O errors, refusals by Redis, deadlines passed.
    pub errors: u64,
    /// Of those, deadlines passed.
    pub timeouts: u64,
    /// Operations skipped without awaiting because the breaker was open.
    pub skipped: u64,
    /// Values (and tombstones) written.
    pub writes: u64,
    /// Writes refused by the fence: a newer value or a tombstone was stored.
    pub fenced_out: u64,
    /// Stored values that did not decode (malformed, oversized, foreign, written for another
    /// key), and values that could not be encoded.
    pub codec_errors: u64,
    /// The breaker: 0 closed, 1 open, 2 half-open.
    pub breaker_state: u64,
    /// Times the breaker opened.
    pub breaker_opens: u64,
    /// Invalidations waiting for L2 to return.
    pub recovery_depth: u64,
    /// Invalidations dropped at the recovery queue's bound.
    pub recovery_dropped: u64,
    /// Fleet rebuild locks taken by this process.
    pub lock_acquired: u64,
    /// Try-locks that found another instance rebuilding.
    pub lock_contended: u64,
    /// Background refreshes skipped because another instance was refreshing the key.
    pub lock_skipped: u64,
    /// Foreground waits for another instance's rebuild that gave up (after `lease +
    /// load_timeout`) and loaded locally.
    pub lock_timeouts: u64,
    /// Leases lost while the loader ran (a renewal found the lock taken over).
    pub lock_lease_lost: u64,
    /// Fleet verifier leases taken by this process (it became a prefix's verifier).
    #[cfg(feature = "tier")]
    pub verifier_acquired: u64,
    /// Fleet verifier leases lost (a renewal found the lease expired or taken over).
    #[cfg(feature = "tier")]
    pub verifier_lost: u64,
    /// Prefixes this process verifies for the fleet now.
    #[cfg(feature = "tier")]
    pub verifier_held: u64,
    /// L2 entries this process sampled as a fleet verifier.
    #[cfg(feature = "tier")]
    pub verifier_sampled: u64,
    /// Drifted L2 entries this process repaired as a fleet verifier.
    #[cfg(feature = "tier")]
    pub verifier_repaired: u64,
    /// Invalidation messages published (writes, deletes, repairs; heartbeats aside).
    pub bus_sent: u64,
    /// Publishes that failed (their numbers are gaps the receivers notice).
    pub bus_publish_failed: u64,
    /// Invalidation messages received from other instances.
    pub bus_received: u64,
    /// L1 copies dropped by those messages.
    pub bus_invalidated: u64,
    /// Lost messages noticed (a number skipped, a heartbeat ahead, a silent or restarted
    /// subscription): each made every older L1 entry suspect.
    pub bus_gaps: u64,
    /// Received bytes that were not a bus message.
    pub bus_malformed: u64,
    /// Suspect L1 entries (written before a gap or an outage) re-read from L2 before being
    /// served fresh.
    pub suspect_rereads: u64,
    /// Of those, entries L2 confirmed by their token alone (16 bytes read, not the value).
    pub revalidated: u64,
    /// Tag invalidations made by this process (each bumps the tag's version in L2).
    pub tag_invalidations: u64,
    /// Tag invalidations received from other instances.
    pub tag_received: u64,
    /// L2 values read as misses because a tag of theirs was invalidated since they were written.
    pub tag_outdated: u64,
    /// How long foreground misses waited for another instance's rebuild.
    pub lock_wait: HistogramSnapshot,
    /// Latency of L2 operations.
    pub latency: HistogramSnapshot,
    /// From another instance's publish of an invalidation to its receipt here (wall clocks).
    pub bus_latency: HistogramSnapshot,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    skipped: AtomicU64,
    writes: AtomicU64,
    fenced_out: AtomicU64,
    codec_errors: AtomicU64,
    breaker_opens: AtomicU64,
    suspect_rereads: AtomicU64,
    revalidated: AtomicU64,
    tag_invalidations: AtomicU64,
    tag_received: AtomicU64,
    tag_outdated: AtomicU64,
    latency: Histogram,
    lock_wait: Histogram,
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

/// What a miss in L2 became under the fleet lock.
pub(crate) enum Rebuild<V> {
    /// This process rebuilds under the lease (`None`: without the lock: it is off for this load,
    /// or L2 failed), and its write must expect this.
    Load(Option<Lease>, Expect),
    /// Another instance rebuilt it meanwhile: its value.
    Fleet(L2Read<V>),
    /// A background refresh found another instance refreshing: nothing to do.
    Skip,
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
        Arc::new(Tier {
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
            clock,
            locks: Arc::default(),
            jitter: Arc::new(AtomicU64::new(seed)),
            owner: node.iter().map(|b| format!("{b:02x}")).collect(),
            bus: Link::new(node, keys::bus_channel(&cfg_prefix, "cache")),
            bus_pid: AtomicU32::new(bus::process_id()),
            local_changes: Arc::default(),
            memo: Mutex::new(vec![(0, 0, Token::default(), 0); max_entries.clamp(64, 1 << 16).next_power_of_two()]),
            tags,
            #[cfg(feature = "tier")]
            leases: Leases::default(),
        })
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

    /// Whether an operation may go to L2 now; counts a skip otherwise. Only the probe loop asks
    /// the breaker for a probe: an operation that took one and skipped it would leave the breaker
    /// half-open until the probe is presumed lost.
    pub(super) fn admit(self: &Arc<Self>) -> bool {
        if self.breaker.state() == State::Closed {
            return true;
        }
        self.counters.skipped.fetch_add(1, Relaxed);
        self.start_probing();
        false
    }

    /// `op` under the tier's deadline, its latency recorded and its outcome told to the breaker.
    pub(super) async fn timed<T>(
        self: &Arc<Self>,
        op: BoxFuture<'static, Result<T, TransportError>>,
        deadline: Option<Duration>,
    ) -> Result<T, TransportError> {
        let started = self.clock.precise_nanos();
        let r = match deadline {
            Some(d) => match future::select(op, self.timer.sleep(d)).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => Err(TransportError::Timeout),
            },
            None => op.await,
        };
        self.counters.latency.record(self.clock.precise_nanos().saturating_sub(started));
        match &r {
            Ok(_) => {
                self.breaker.on_success(self.now());
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Relaxed);
                let timeout = *e == TransportError::Timeout;
                if timeout {
                    self.counters.timeouts.fetch_add(1, Relaxed);
                }
                self.failed(timeout);
            }
        }
        r
    }

    fn failed(self: &Arc<Self>, timeout: bool) {
        let t = if timeout { self.breaker.on_timeout(self.now()) } else { self.breaker.on_failure(self.now()) };
        if t == Transition::Opened {
            self.counters.breaker_opens.fetch_add(1, Relaxed);
        }
        if self.breaker.state() != State::Closed {
            self.start_probing();
        }
    }

    /// While the breaker is open, one background task probes at the times the breaker draws
    /// (full jitter) until a probe succeeds; then L1 entries written before now become suspect
    /// and the queued invalidations are replayed.
    fn start_probing(self: &Arc<Self>) {
        if self.probing.swap(true, Relaxed) {
            return;
        }
        let tier = Arc::clone(self);
        self.transport.spawn(
            async move {
                let step = Duration::from_millis(20).min(tier.cfg.timeout);
                loop {
                    match tier.breaker.allow(tier.now()) {
                        Admit::Yes => break,
                        Admit::No => tier.timer.sleep(step).await,
                        Admit::Probe => {
                            let probe = tier.transport.probe();
                            let deadline = tier.cfg.timeout.max(PROBE_DEADLINE);
                            let ok = match future::select(probe, tier.timer.sleep(deadline)).await {
                                Either::Left((r, _)) => r.is_ok(),
                                Either::Right(_) => false,
                            };
                            if ok {
                                tier.breaker.on_success(tier.now());
                                tier.recovered();
                                break;
                            }
                            tier.breaker.on_failure(tier.now());
                        }
                    }
                }
                tier.probing.store(false, Relaxed);
            }
            .boxed(),
        );
    }

    /// L2 is back: every L1 entry written until now is suspect, and each key written while L2
    /// was away gets a tombstone (an invalidation, never a value: which of two values is newer
    /// cannot be decided across processes without a shared clock).
    fn recovered(self: &Arc<Self>) {
        self.distrust();
        for key in self.recovery.drain(self.now()) {
            if let Some(w) = self.tombstone(&key) {
                self.spawn(w);
            }
        }
    }

    /// Reads `key` from L2.
    pub(crate) async fn read(self: &Arc<Self>, key: &str) -> L2Read<V> {
        if !self.admit() {
            return L2Read::Skipped;
        }
        let keys = self.keys(key);
        let reply = match self.timed(self.transport.read(&keys.value), Some(self.cfg.timeout)).await {
            Ok(r) => r,
            Err(_) => return L2Read::Skipped,
        };
        let c = &self.counters;
        let miss = |expect| {
            c.misses.fetch_add(1, Relaxed);
            L2Read::Miss(expect)
        };
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

    /// Whether every recorded tag version is current: the versions known here, the others read
    /// from L2 (and learnt). `None` when they cannot be read: the value is not used unchecked.
    async fn tags_current(self: &Arc<Self>, tags: &[Tag]) -> Option<bool> {
        let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
        let known = self.tags.known(&names);
        let unknown: Vec<usize> = (0..tags.len()).filter(|i| known[*i].is_none()).collect();
        let mut current: Vec<u64> = known.iter().map(|v| v.unwrap_or(0)).collect();
        if !unknown.is_empty() {
            let keys = unknown.iter().map(|i| keys::tag_key(&self.cfg.prefix, "cache", names[*i])).collect();
            let read = self.timed(self.transport.tag_versions(keys), Some(self.cfg.timeout)).await.ok()?;
            for (i, v) in unknown.into_iter().zip(read) {
                self.tags.learn(names[i], v);
                current[i] = v;
            }
        }
        Some(tags.iter().zip(current).all(|(t, v)| t.version == v))
    }

    /// The current versions of `tags` for a write: known here, the others taken as 0 and read
    /// from L2 in the background for the next write. A version taken too low only makes the
    /// value read as outdated later (a miss), never an invalidated value valid.
    pub(crate) fn versions_for_write(self: &Arc<Self>, tags: &[&str]) -> Vec<Tag> {
        let known = self.tags.known(tags);
        let unknown: Vec<String> =
            tags.iter().zip(&known).filter(|(_, v)| v.is_none()).map(|(t, _)| t.to_string()).collect();
        if !unknown.is_empty() && self.breaker.state() == State::Closed {
            let keys = unknown.iter().map(|t| keys::tag_key(&self.cfg.prefix, "cache", t)).collect();
            let (op, tier) = (self.transport.tag_versions(keys), Arc::clone(self));
            self.transport.spawn(
                async move {
                    if let Ok(vs) = tier.timed(op, Some(tier.cfg.timeout)).await {
                        for (t, v) in unknown.iter().zip(vs) {
                            tier.tags.learn(t, v);
                        }
                    }
                }
                .boxed(),
            );
        }
        tags.iter().zip(known).map(|(t, v)| Tag { name: t.to_string(), version: v.unwrap_or(0) }).collect()
    }

    /// The current versions of `tags` before a load, read from L2 when not known here (and
    /// learnt), so the loaded value records the versions its load saw. A version that cannot be
    /// read stays unknown: the value is then not kept in L1, and reads as outdated in L2.
    pub(crate) async fn versions_for_load(self: &Arc<Self>, tags: &[&str]) -> Vec<Tag> {
        let probe: Vec<Tag> = tags.iter().map(|t| Tag { name: t.to_string(), version: 0 }).collect();
        let _ = self.tags_current(&probe).await;
        let known = self.tags.known(tags);
        tags.iter().zip(known).map(|(t, v)| Tag { name: t.to_string(), version: v.unwrap_or(u64::MAX) }).collect()
    }

    /// Invalidates `tag` fleet-wide: its version in L2 is incremented, and the new version is
    /// announced on the bus (`hard`: other instances remove their tagged entries instead of
    /// making them stale). Answers the new version.
    pub(crate) async fn bump_tag(self: &Arc<Self>, tag: &str, hard: bool) -> Result<u64, TransportError> {
        if !self.admit() {
            return Err(TransportError::Io("the breaker is open".into()));
        }
        let key = keys::tag_key(&self.cfg.prefix, "cache", tag);
        let v = self.timed(self.transport.tag_bump(&key), Some(self.cfg.timeout)).await?;
        self.counters.tag_invalidations.fetch_add(1, Relaxed);
        let kind = if hard { bus::Kind::TagRemoved } else { bus::Kind::TagStale };
        self.publish(kind, vec![(tag.to_string(), Token { epoch: 0, counter: v })]);
        Ok(v)
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

    /// The payload of `value`, or why it cannot be stored in L2.
    pub(crate) fn encode(&self, value: &V) -> Result<(codec::PayloadCodec, Vec<u8>), String> {
        self.codec.encode(value)
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
        let payload = match value.map(|v| self.codec.encode(v)).transpose() {
            Ok(p) => p,
            Err(_) => {
                self.counters.codec_errors.fetch_add(1, Relaxed);
                return None;
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
            release: None,
            tags: Vec::new(),
            memo: None,
        };
        self.submit(key, w, &[])
    }

    fn submit(self: &Arc<Self>, key: &str, w: Write, payload: &[u8]) -> Option<BoxFuture<'static, Wrote>> {
        let Write { kind, pc, fresh_ms, grace_ms, load_nanos, px_ms, expect, ttl, release, tags, memo } = w;
        if !self.admit() {
            let keep = ttl.map_or(Duration::MAX, |t| t.saturating_add(Duration::from_millis(grace_ms)));
            self.recovery.push(key, self.now(), keep);
            return None;
        }
        let keys = self.keys(key);
        let load_us = u32::try_from(load_nanos / 1000).unwrap_or(u32::MAX);
        let envelope = match codec::encode_tagged(
            keys.value.as_bytes(),
            kind,
            pc,
            Token::default(),
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
                // the transport keeps the deadline from when it sends the write (see WriteRequest)
                match tier.timed(op, None).await {
                    Ok(WriteReply::Written(token)) => {
                        tier.counters.writes.fetch_add(1, Relaxed);
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
                    Err(_) => Wrote::Failed,
                }
            }
            .boxed(),
        )
    }

    /// Hands a write's answer to the background.
    /// Whether L2 is answering (the breaker closed).
    pub(crate) fn available(&self) -> bool {
        self.breaker.state() == State::Closed
    }

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

    /// Announces written or deleted keys on the bus (after the write landed: never a message
    /// without its value in L2). Best effort: a failed publish is a gap receivers notice.
    fn publish(self: &Arc<Self>, kind: bus::Kind, keys: Vec<(String, codec::Token)>) {
        self.after_fork();
        // numbered and queued under one lock: the transport sends in queue order, so numbers
        // arrive in order unless messages are lost
        let sending = self.bus.sending.lock().unwrap_or_else(|p| p.into_inner());
        let Some(msg) = self.bus.message(kind, keys, self.clock.unix_micros().unwrap_or(0)) else {
            // over the message bound: receivers see the skipped number as a gap
            self.bus.numbering.take();
            self.bus.publish_failed.fetch_add(1, Relaxed);
            return;
        };
        if kind != bus::Kind::Heartbeat {
            self.bus.sent.fetch_add(1, Relaxed);
        }
        let tier = Arc::clone(self);
        let send = self.transport.publish(&self.bus.channel, msg, self.cfg.timeout);
        drop(sending);
        self.transport.spawn(
            async move {
                if send.await.is_err() {
                    tier.bus.publish_failed.fetch_add(1, Relaxed);
                }
            }
            .boxed(),
        );
    }

    /// Subscribes to the bus: other instances' messages make keys stale (changed) or remove them
    /// (deleted) in L1 through `drop_key`;
    /// heartbeats go out every 250 ms, and a subscription silent for 750 ms (this cache's own
    /// heartbeats stopped coming back) makes every older L1 entry suspect.
    pub(crate) fn start_bus(self: &Arc<Self>, drop_key: bus::OnKey, on_tag: bus::OnTag) {
        let _ = self.bus.on_key.set(drop_key);
        let _ = self.bus.on_tag.set(on_tag);
        self.bus.last_heard.store(self.clock.now_nanos(), Relaxed);
        let weak = Arc::downgrade(self);
        self.transport.subscribe(&self.bus.channel, Arc::new(Sink(weak)));
        self.start_heartbeat();
    }

    /// Heartbeats every 250 ms, and the check for a silent subscription, until the cache is gone.
    fn start_heartbeat(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let timer = Arc::clone(&self.timer);
        let jitter = Arc::clone(&self.jitter);
        self.transport.spawn(
            async move {
                for tick in 0u64.. {
                    timer.sleep(lock::jittered(HEARTBEAT / 2, &jitter)).await;
                    let Some(tier) = weak.upgrade() else { return };
                    if tick % 2 == 1 {
                        tier.publish(bus::Kind::Heartbeat, Vec::new());
                    }
                    let quiet = tier.clock.now_nanos().saturating_sub(tier.bus.last_heard.load(Relaxed));
                    if quiet > SILENCE.as_nanos() as u64 && !tier.bus.silent.swap(true, Relaxed) {
                        tier.bus.gaps.fetch_add(1, Relaxed);
                        tier.distrust();
                    }
                }
            }
            .boxed(),
        );
    }

    /// In a child of `fork()` (first call there): the bus identity, numbering and heartbeat task
    /// were the parent's. Sharing the id, parent and child would each take the other's messages
    /// for its own; the task does not exist here. The child takes its own, and distrusts the L1
    /// it inherited: messages sent before its subscription started again never reached it.
    fn after_fork(self: &Arc<Self>) {
        let pid = bus::process_id();
        if self.bus_pid.load(Relaxed) == pid || self.bus_pid.swap(pid, Relaxed) == pid {
            return;
        }
        let seed = self.jitter.load(Relaxed) ^ u64::from(pid);
        self.bus.numbering.renew(bus::node_id(seed, self.clock.precise_nanos(), Arc::as_ptr(self) as usize));
        self.distrust();
        // the parent's last message is no sign of this process's subscription
        self.bus.last_heard.store(self.clock.now_nanos(), Relaxed);
        if self.bus.on_key.get().is_some() {
            self.start_heartbeat();
        }
    }

    /// Every L1 entry written before now is suspect: re-read from L2 before it is served fresh.
    pub(crate) fn distrust(&self) {
        // bumps of tags may have been missed too: their versions are read from L2 again
        self.tags.forget_versions();
        self.suspect_before.store(self.clock.now_nanos().max(1), Relaxed);
        self.changed();
    }

    /// L1 entries changed outside this process's calls (after the change is made).
    pub(crate) fn changed(&self) {
        self.local_changes.fetch_add(1, Release);
    }

    /// The counter [`Tier::changed`] bumps.
    pub(crate) fn local_changes(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.local_changes)
    }

    fn heard(&self, bytes: &[u8]) {
        let now = self.clock.now_nanos();
        let b = &self.bus;
        b.last_heard.store(now, Relaxed);
        b.silent.store(false, Relaxed);
        let gap = match b.numbering.hear(bytes, now) {
            Heard::Own => false,
            Heard::Malformed => {
                b.malformed.fetch_add(1, Relaxed);
                false
            }
            Heard::Heartbeat { gap } => gap,
            Heard::Keys { keys, removed, gap, sent_us } => {
                b.received.fetch_add(1, Relaxed);
                // across processes, so on wall clocks (an unknown time, or a clock behind the
                // sender's, records nothing rather than a made-up zero)
                if let Some(now_us) = self.clock.unix_micros().filter(|_| sent_us != 0) {
                    if let Some(us) = now_us.checked_sub(sent_us) {
                        b.latency.record(us.saturating_mul(1000));
                    }
                }
                if let Some(drop_key) = b.on_key.get() {
                    let dropped = keys.iter().filter(|k| drop_key(k, removed)).count();
                    b.invalidated.fetch_add(dropped as u64, Relaxed);
                }
                gap
            }
            Heard::Tags { tags, hard, gap } => {
                b.received.fetch_add(1, Relaxed);
                self.counters.tag_received.fetch_add(1, Relaxed);
                if let Some(on_tag) = b.on_tag.get() {
                    let dropped: usize = tags.iter().map(|(t, v)| on_tag(t, *v, hard)).sum();
                    b.invalidated.fetch_add(dropped as u64, Relaxed);
                }
                gap
            }
        };
        if gap {
            b.gaps.fetch_add(1, Relaxed);
            self.distrust();
        }
    }

    /// Whether a load (background or not) takes the fleet lock.
    pub(crate) fn locks(&self, background: bool) -> bool {
        self.cfg.lock.mode.applies(background)
    }

    /// After a miss in L2 (`expect` from that read): takes the fleet lock when the mode says so.
    /// Won: the value is read once more (an instance may have finished just before), then this
    /// process rebuilds under the lease. Held: a background refresh skips; a foreground miss
    /// waits for the holder's value, polling L2 every `min(lease / 10, 50 ms)` (jittered) and
    /// trying the lock again, for `lease + load_timeout` at most, then loads itself.
    pub(crate) async fn rebuild(
        self: &Arc<Self>,
        key: &str,
        expect: Expect,
        background: bool,
        load_timeout: Option<Duration>,
        ours: Option<Token>,
    ) -> Rebuild<V> {
        if !self.locks(background) {
            return Rebuild::Load(None, expect);
        }
        let lc = &self.cfg.lock;
        let started = self.clock.precise_nanos();
        let limit = lc.lease + load_timeout.unwrap_or(lc.lease);
        let mut first = true;
        loop {
            match self.try_lock(key).await {
                Ok(lease) => {
                    self.record_wait(started, first);
                    return match self.read(key).await {
                        L2Read::Miss(e) => Rebuild::Load(Some(lease), e),
                        // still the copy a refresh set out to replace: nothing newer yet
                        L2Read::Hit { token, .. } if Some(token) == ours => {
                            Rebuild::Load(Some(lease), Expect::Token(token))
                        }
                        // a hit: another instance finished meanwhile (the lease is released)
                        other => Rebuild::Fleet(other).or_load(lease),
                    };
                }
                Err(true) if background => {
                    self.locks.skipped.fetch_add(1, Relaxed);
                    return Rebuild::Skip;
                }
                Err(true) => {}
                // the lock could not be asked (L2 failed): load without it
                Err(false) => return Rebuild::Load(None, expect),
            }
            if first {
                self.locks.contended.fetch_add(1, Relaxed);
                first = false;
            }
            let waited = Duration::from_nanos(self.clock.precise_nanos().saturating_sub(started));
            if waited >= limit {
                self.locks.timeouts.fetch_add(1, Relaxed);
                self.record_wait(started, false);
                return Rebuild::Load(None, expect);
            }
            self.timer.sleep(lock::jittered(lc.poll(), &self.jitter).min(limit - waited)).await;
            match self.read(key).await {
                L2Read::Miss(_) => {}
                other => {
                    self.record_wait(started, false);
                    return Rebuild::Fleet(other);
                }
            }
        }
    }

    fn record_wait(&self, started: u64, first: bool) {
        if !first {
            self.counters.lock_wait.record(self.clock.precise_nanos().saturating_sub(started));
        }
    }

    /// One try-lock: the lease when won; `Err(true)` held by another instance, `Err(false)` not
    /// asked (breaker open or L2 failed).
    async fn try_lock(self: &Arc<Self>, key: &str) -> Result<Lease, bool> {
        if !self.admit() {
            return Err(false);
        }
        let keys = self.keys(key);
        let op = self.transport.acquire(&keys, &self.owner, self.cfg.lock.lease);
        match self.timed(op, Some(self.cfg.timeout)).await {
            Ok(LockReply::Won { token, lockval }) => {
                self.locks.acquired.fetch_add(1, Relaxed);
                let (c, j) = (Arc::clone(&self.locks), Arc::clone(&self.jitter));
                Ok(lock::lease(&self.transport, &self.timer, &self.cfg.lock, c, j, keys.lock, token, lockval))
            }
            Ok(LockReply::Held { .. }) => Err(true),
            Err(_) => Err(false),
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

    pub(crate) fn stats(&self) -> L2Stats {
        let c = &self.counters;
        #[cfg(feature = "tier")]
        let v = self.leases.counts();
        L2Stats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            errors: c.errors.load(Relaxed),
            timeouts: c.timeouts.load(Relaxed),
            skipped: c.skipped.load(Relaxed),
            writes: c.writes.load(Relaxed),
            fenced_out: c.fenced_out.load(Relaxed),
            codec_errors: c.codec_errors.load(Relaxed),
            breaker_state: match self.breaker.state() {
                State::Closed => 0,
                State::Open => 1,
                State::HalfOpen => 2,
            },
            breaker_opens: c.breaker_opens.load(Relaxed),
            recovery_depth: self.recovery.len() as u64,
            recovery_dropped: self.recovery.dropped(),
            lock_acquired: self.locks.acquired.load(Relaxed),
            lock_contended: self.locks.contended.load(Relaxed),
            lock_skipped: self.locks.skipped.load(Relaxed),
            lock_timeouts: self.locks.timeouts.load(Relaxed),
            lock_lease_lost: self.locks.lease_lost.load(Relaxed),
            #[cfg(feature = "tier")]
            verifier_acquired: v.acquired,
            #[cfg(feature = "tier")]
            verifier_lost: v.lost,
            #[cfg(feature = "tier")]
            verifier_held: v.held,
            #[cfg(feature = "tier")]
            verifier_sampled: v.sampled,
            #[cfg(feature = "tier")]
            verifier_repaired: v.repaired,
            bus_sent: self.bus.sent.load(Relaxed),
            bus_publish_failed: self.bus.publish_failed.load(Relaxed),
            bus_received: self.bus.received.load(Relaxed),
            bus_invalidated: self.bus.invalidated.load(Relaxed),
            bus_gaps: self.bus.gaps.load(Relaxed),
            bus_malformed: self.bus.malformed.load(Relaxed),
            suspect_rereads: c.suspect_rereads.load(Relaxed),
            revalidated: c.revalidated.load(Relaxed),
            tag_invalidations: c.tag_invalidations.load(Relaxed),
            tag_received: c.tag_received.load(Relaxed),
            tag_outdated: c.tag_outdated.load(Relaxed),
            lock_wait: c.lock_wait.snapshot(),
            latency: c.latency.snapshot(),
            bus_latency: self.bus.latency.snapshot(),
        }
    }
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

impl<V> Rebuild<V> {
    /// A won lock whose second read found the value: the rebuild is not needed; the lease is
    /// dropped (released) unless the read failed, in which case this process loads under it.
    fn or_load(self, lease: Lease) -> Rebuild<V> {
        match self {
            Rebuild::Fleet(L2Read::Skipped) => Rebuild::Load(Some(lease), Expect::Any),
            other => other,
        }
    }
}

/// The bus subscription's end in a tier (weak: a dropped cache stops listening).
struct Sink<V>(std::sync::Weak<Tier<V>>);

impl<V: Clone + Send + Sync + 'static> BusSink for Sink<V> {
    fn message(&self, bytes: &[u8]) {
        if let Some(t) = self.0.upgrade() {
            t.after_fork();
            t.heard(bytes);
        }
    }

    fn alive(&self) -> bool {
        self.0.strong_count() > 0
    }

    fn subscribed(&self, first: bool) {
        let Some(t) = self.0.upgrade() else { return };
        t.after_fork();
        t.bus.last_heard.store(t.clock.now_nanos(), Relaxed);
        t.bus.silent.store(false, Relaxed);
        if !first {
            // messages sent while it was down are lost: numbering starts afresh, L1 is suspect
            t.bus.numbering.forget();
            t.bus.gaps.fetch_add(1, Relaxed);
            t.distrust();
        }
    }
}
