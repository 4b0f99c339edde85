//! The fleet verifier: self-healing of the shared tier done once per fleet, not once per
//! instance.
//!
//! Without it every instance's healer samples its own L1 and asks the sources about what it
//! holds, so N instances over one L2 ask each source N times as often about the same entries.
//! With a shared tier each healing prefix has one verifier in the whole fleet: the instance that
//! holds the prefix's lease in Redis (`SET NX PX`; renewed every third of the lease only while
//! it still holds the instance's value; released by compare-and-delete). It samples the
//! prefix's L2 entries, compares them with the source, repairs drift with an L2 write fenced by
//! the token read with the sample (any write since wins) whose bus message makes every
//! instance's L1 copy stale, and writes the prefix's scores to a record in L2, fenced by the
//! lease, which the other instances take as theirs. The lease is for efficiency only (P7): two
//! verifiers for a moment ask the source twice, and never store a wrong value.
//!
//! Sampling: a cursor walk over the keyspace (`SCAN MATCH <prefix>:{????}:v:<key prefix>*`) of
//! at most `scan_budget` keys per interval, resumed where the last interval stopped (by the
//! last verifier too: the cursor is in the record); each entry found is drawn with probability
//! `sample_rate`, at most `max_samples` per interval (a reservoir over those drawn). SCAN
//! returns every entry present for a whole walk, and each is drawn on its own, so every entry
//! has the same chance per walk, and the write path is untouched. The alternatives cost more where it counts: a per-prefix key index kept by the
//! write script adds a key in another slot (the script is no longer single-slot, which Cluster
//! requires) and memory and work to every fenced write; RANDOMKEY or a random-cursor SCAN favour
//! keys in sparse buckets and cannot keep to a prefix.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{self, FutureExt};
use rand::SeedableRng;

use super::bus::process_id;
use super::shared::{L2Read, Tier, Wrote};
use super::{lock, Expect, LeaseReply, Record, TransportError};
use crate::codec::{Tag, Token};
use crate::keys;
use crate::sampler::StreamSample;
use crate::sync::{lock as guard, Mutex};
use crate::SeededRng;

/// Keys asked per SCAN round trip at most.
pub(super) const SCAN_STEP: usize = 1000;

/// How long a score record outlives its last write, at least: a prefix no instance verifies
/// any more leaves nothing behind for good (P5).
const RECORD_TTL_MIN: Duration = Duration::from_secs(600);

/// Settings of the fleet verifier (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetVerify {
    /// Whether L2 entries are verified once per fleet, by the lease holder of each prefix (else
    /// every instance verifies what its own L1 holds). Defaults to: true.
    pub enabled: bool,
    /// How long a verifier's lease lives without renewal; it is renewed every third of it, and
    /// a verifier that dies is replaced about this long after its last renewal. Defaults to: 5 s.
    pub lease: Duration,
    /// Keys of L2 a verifier walks per interval and prefix at most (the sum of the SCAN
    /// counts), which bounds its load on Redis. Defaults to: 10,000.
    pub scan_budget: usize,
}

impl Default for FleetVerify {
    fn default() -> Self {
        FleetVerify { enabled: true, lease: Duration::from_secs(5), scan_budget: 10_000 }
    }
}

/// A lease this instance holds.
struct Held {
    prefix: Arc<str>,
    lockval: String,
    /// Where the walk goes on; `None` until read from the record (a new holder).
    cursor: Option<u64>,
}

/// The fleet verifier's state in one cache: its settings, the leases held, its counters.
#[derive(Default)]
pub(crate) struct Leases {
    cfg: Mutex<FleetVerify>,
    held: Mutex<Vec<Held>>,
    started: AtomicBool,
    /// The process the keeper runs in: a child of `fork()` inherits the parent's state, but
    /// neither its task nor its leases.
    pid: AtomicU32,
    /// When this instance last ran a healing interval (cache clock, ns; 0: never).
    ran_at: AtomicU64,
    acquired: AtomicU64,
    lost: AtomicU64,
    sampled: AtomicU64,
    repaired: AtomicU64,
}

/// The verifier's counters, as [`super::L2Stats`] reports them.
pub(crate) struct LeaseCounts {
    pub acquired: u64,
    pub lost: u64,
    pub held: u64,
    pub sampled: u64,
    pub repaired: u64,
}

impl Leases {
    pub(crate) fn counts(&self) -> LeaseCounts {
        LeaseCounts {
            acquired: self.acquired.load(Relaxed),
            lost: self.lost.load(Relaxed),
            held: guard(&self.held).len() as u64,
            sampled: self.sampled.load(Relaxed),
            repaired: self.repaired.load(Relaxed),
        }
    }
}

/// An L2 entry as the fleet verifier read it (see [`Tier::read_checked`]).
pub(crate) struct Checked<V> {
    /// The value (`None`: a fresh "not found").
    pub value: Option<V>,
    /// The token it is stored under: a repair lands only over it.
    pub token: Token,
    /// The life it had left when read (`None`: no expiry), which a repair keeps.
    pub fresh: Option<Duration>,
    /// Its grace window.
    pub grace: Duration,
    /// The tags it was written with, which a repair keeps.
    pub tags: Vec<Tag>,
}

/// What the lease keeper asks of its healer each round: the prefixes to verify (none when the
/// fleet verifier is off or healing disabled), or `None` once the healer is gone or stopped.
pub(crate) type Wanted = Box<dyn Fn() -> Option<Vec<Arc<str>>> + Send + Sync>;

impl<V: Clone + Send + Sync + 'static> Tier<V> {
    /// The fleet verifier's settings.
    pub(crate) fn fleet(&self) -> FleetVerify {
        *guard(&self.leases.cfg)
    }

    /// Replaces the fleet verifier's settings (the keeper takes them at its next round).
    pub(crate) fn set_fleet(&self, cfg: FleetVerify) {
        *guard(&self.leases.cfg) = cfg;
    }

    /// A healing interval runs now (see [`Tier::verifying`]).
    pub(crate) fn interval_ran(&self) {
        self.leases.ran_at.store(self.clock.now_nanos().max(1), Relaxed);
    }

    /// Whether this instance ran a healing interval within `window`: one that stopped (healing
    /// disabled, its loop ended) gives its leases up, so another instance verifies instead.
    pub(crate) fn verifying(&self, window: Duration) -> bool {
        let at = self.leases.ran_at.load(Relaxed);
        at != 0 && self.clock.now_nanos().saturating_sub(at) <= window.as_nanos() as u64
    }

    /// Whether this instance holds `prefix`'s lease, and where its walk goes on (`Some(None)`:
    /// held, the cursor not read yet).
    pub(crate) fn holds(&self, prefix: &str) -> Option<Option<u64>> {
        guard(&self.leases.held).iter().find(|h| &*h.prefix == prefix).map(|h| h.cursor)
    }

    fn set_cursor(&self, prefix: &str, cursor: u64) {
        if let Some(h) = guard(&self.leases.held).iter_mut().find(|h| &*h.prefix == prefix) {
            h.cursor = Some(cursor);
        }
    }

    /// Starts the lease keeper once: a background task that takes, renews and releases the
    /// leases of the prefixes `wanted` names, until it answers `None` (then every lease held is
    /// released, so a successor takes over at once rather than after the lease).
    pub(crate) fn start_verifier(self: &Arc<Self>, wanted: Wanted) {
        let pid = process_id();
        if self.leases.pid.swap(pid, Relaxed) != pid {
            // a forked child: the leases are its parent's (which renews them), and no keeper
            // runs here yet
            guard(&self.leases.held).clear();
            self.leases.started.store(false, Relaxed);
        }
        if self.leases.started.swap(true, Relaxed) {
            return;
        }
        let tier = Arc::downgrade(self);
        let (timer, jitter) = (Arc::clone(&self.timer), Arc::clone(&self.jitter));
        self.transport.spawn(
            async move {
                // when each prefix is due next (cache clock, ns)
                let mut due: Vec<(Arc<str>, u64)> = Vec::new();
                loop {
                    let Some(t) = tier.upgrade() else { return };
                    // a closed tier gave its leases back (`Tier::close`) and takes none again
                    if t.is_closed() {
                        return;
                    }
                    let lease = t.fleet().lease;
                    let Some(want) = wanted() else {
                        t.release_all(&[]);
                        t.leases.started.store(false, Relaxed);
                        return;
                    };
                    t.release_all(&want);
                    due.retain(|(p, _)| want.contains(p));
                    let now = t.clock.now_nanos();
                    let mut next = now.saturating_add(lock::jittered(lease / 3, &jitter).as_nanos() as u64);
                    for p in want {
                        let at = match due.iter().position(|(q, _)| *q == p) {
                            Some(i) => i,
                            None => {
                                due.push((p.clone(), now));
                                due.len() - 1
                            }
                        };
                        if due[at].1 <= now {
                            let wait = t.keep(&p, lease).await;
                            due[at].1 = t.clock.now_nanos().saturating_add(wait.as_nanos() as u64);
                        }
                        next = next.min(due[at].1);
                    }
                    let sleep = Duration::from_nanos(next.saturating_sub(t.clock.now_nanos()));
                    drop(t);
                    timer.sleep(sleep.max(Duration::from_millis(1))).await;
                }
            }
            .boxed(),
        );
    }

    /// One round for one prefix: renews a held lease, or tries to take it. Answers how long
    /// until the next round: a third of the lease while held; just past the holder's expiry
    /// otherwise (with a little jitter, so the fleet does not try all at once), a third of the
    /// lease at most.
    async fn keep(self: &Arc<Self>, prefix: &Arc<str>, lease: Duration) -> Duration {
        let (lease_key, _) = keys::verifier_keys(&self.cfg.prefix, prefix);
        let third = lock::jittered(lease / 3, &self.jitter);
        let retry = third.min(Duration::from_millis(100));
        if !self.admit() {
            return retry;
        }
        let held = guard(&self.leases.held).iter().find(|h| h.prefix == *prefix).map(|h| h.lockval.clone());
        let deadline = Some(self.cfg.timeout);
        match held {
            Some(val) => match self.timed(self.transport.renew(&lease_key, &val, lease), deadline).await {
                Ok(true) => third,
                Ok(false) => {
                    // expired and maybe taken over: stop verifying; the scores stay with the taker
                    guard(&self.leases.held).retain(|h| h.prefix != *prefix);
                    self.leases.lost.fetch_add(1, Relaxed);
                    Duration::ZERO
                }
                // a failed renewal may be transient: try again soon, within the lease
                Err(_) => retry,
            },
            None => {
                let val = format!("{}:{}", self.owner, self.clock.precise_nanos());
                match self.timed(self.transport.try_lease(&lease_key, &val, lease), deadline).await {
                    // won while the tier closed: given back at once, as the close gave back the others
                    Ok(LeaseReply::Won) if self.is_closed() => {
                        let release = self.transport.release(&lease_key, &val);
                        let _ = future::select(release, self.timer.sleep(self.cfg.timeout)).await;
                        Duration::ZERO
                    }
                    Ok(LeaseReply::Won) => {
                        self.leases.acquired.fetch_add(1, Relaxed);
                        guard(&self.leases.held).push(Held { prefix: prefix.clone(), lockval: val, cursor: None });
                        third
                    }
                    Ok(LeaseReply::Held { pttl_ms }) => {
                        let left = Duration::from_millis(pttl_ms.max(0) as u64);
                        let spread = lock::jittered(Duration::from_millis(10).min(lease / 20), &self.jitter);
                        (left + spread).min(third)
                    }
                    Err(_) => retry,
                }
            }
        }
    }

    /// Releases every lease held whose prefix is not in `keep` (compare-and-delete).
    fn release_all(&self, keep: &[Arc<str>]) {
        let gone: Vec<Held> = {
            let mut held = guard(&self.leases.held);
            let (stay, gone) = std::mem::take(&mut *held).into_iter().partition(|h| keep.contains(&h.prefix));
            *held = stay;
            gone
        };
        for h in gone {
            let (lease_key, _) = keys::verifier_keys(&self.cfg.prefix, &h.prefix);
            let release = self.transport.release(&lease_key, &h.lockval);
            self.transport.spawn(release.map(drop).boxed());
        }
    }

    /// Releases every lease held (compare-and-delete), for a close: the releases are sent now,
    /// and the future resolves once each is answered or the tier's deadline passed.
    pub(crate) fn release_leases(self: &Arc<Self>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let held = std::mem::take(&mut *guard(&self.leases.held));
        let releases: Vec<_> = held
            .into_iter()
            .map(|h| {
                let (lease_key, _) = keys::verifier_keys(&self.cfg.prefix, &h.prefix);
                let release = self.transport.release(&lease_key, &h.lockval);
                future::select(release, self.timer.sleep(self.cfg.timeout)).map(drop)
            })
            .collect();
        future::join_all(releases).map(drop)
    }

    /// Draws this interval's sample of `prefix`'s L2 entries (cache keys that `accept` keeps):
    /// walks on from the held cursor over at most `scan_budget` keys, then draws
    /// `ceil(rate × found)` of the entries found, `max` at most, uniformly. Moves the cursor. The
    /// keys verified of it are counted by [`Tier::sampled`] (the healer may keep fewer).
    pub(crate) async fn sample_shared(
        self: &Arc<Self>,
        prefix: &str,
        rate: f64,
        max: usize,
        accept: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, TransportError> {
        let Some(start) = self.holds(prefix) else { return Ok(Vec::new()) };
        if !self.admit() {
            return Err(TransportError::Io("the breaker is open".into()));
        }
        let glob = keys::value_glob(&self.cfg.prefix, prefix);
        let budget = self.fleet().scan_budget.max(1);
        let mut rng = SeededRng::seed_from_u64(self.jitter.fetch_add(1, Relaxed) ^ 0x9e37_79b9_7f4a_7c15);
        // each entry found is drawn on its own, with the same chance: a share per piece of the
        // walk rounded up would favour the entries of a piece that found few, and the pieces
        // fall on the same cursors walk after walk
        let mut sample = StreamSample::new(rate, max);
        let mut walked = 0usize;
        let mut cursor = start.unwrap_or(0);
        loop {
            let count = SCAN_STEP.min(budget - walked).max(1);
            let (next, batch) = self.timed(self.transport.scan(&glob, cursor, count), Some(self.cfg.timeout)).await?;
            walked += count;
            for k in batch {
                if let Some(key) = keys::cache_key_of(&self.cfg.prefix, &k).filter(|k| accept(k)) {
                    sample.offer(&mut rng, key.to_string());
                }
            }
            cursor = next;
            // a walk ends at cursor 0: the next one starts in the next interval, so no entry
            // is drawn twice in one
            if cursor == 0 || walked >= budget {
                break;
            }
        }
        self.set_cursor(prefix, cursor);
        Ok(sample.finish())
    }

    /// Counts `n` L2 entries verified as the fleet's verifier (`l2_verifier_sampled`).
    pub(crate) fn sampled(&self, n: u64) {
        self.leases.sampled.fetch_add(n, Relaxed);
    }

    /// The fresh value of `key` in L2 (`None` inside: a fresh "not found") with the token it was
    /// stored under and its lifetime; `None` when L2 holds nothing fresh or could not be read.
    pub(crate) async fn read_checked(self: &Arc<Self>, key: &str) -> Option<Checked<V>> {
        match self.read_token(key).await {
            (L2Read::Hit { value, fresh, grace, tags, .. }, Some(token)) => {
                Some(Checked { value, token, fresh, grace, tags })
            }
            _ => None,
        }
    }

    /// Repairs a drifted L2 entry with the source's value (`None`: the source has no such key,
    /// so a tombstone), only if it still holds `seen`: a write since the sample was read wins.
    /// The value keeps the entry's `tags`. A repair written is announced on the bus, so every
    /// instance's L1 copy goes stale.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn repair(
        self: &Arc<Self>,
        key: &str,
        value: Option<&V>,
        seen: Token,
        ttl: Option<Duration>,
        grace: Duration,
        tags: Vec<Tag>,
    ) -> Wrote {
        let expect = Expect::Token(seen);
        let w = match value {
            Some(v) => self.write(key, Some(v), ttl, grace, 0, expect, None, tags),
            None => self.tombstone_expect(key, expect),
        };
        let wrote = match w {
            Some(w) => w.await,
            None => Wrote::Failed,
        };
        if matches!(wrote, Wrote::Written(_)) {
            self.leases.repaired.fetch_add(1, Relaxed);
        }
        wrote
    }

    /// Writes `prefix`'s score record (and the walk's cursor), only while this instance holds
    /// its lease; false when it does not (lost meanwhile) or L2 failed.
    pub(crate) async fn put_scores(self: &Arc<Self>, prefix: &str, mut fields: Record) -> bool {
        let Some(lockval) = guard(&self.leases.held).iter().find(|h| &*h.prefix == prefix).map(|h| h.lockval.clone())
        else {
            return false;
        };
        if let Some(Some(cursor)) = self.holds(prefix) {
            fields.push(("cursor".into(), cursor.to_string().into_bytes()));
        }
        fields.push(("holder".into(), self.owner.clone().into_bytes()));
        if !self.admit() {
            return false;
        }
        let (lease_key, record) = keys::verifier_keys(&self.cfg.prefix, prefix);
        let ttl = (self.fleet().lease * 120).max(RECORD_TTL_MIN);
        let put = self.transport.put_record(&lease_key, &lockval, &record, fields, ttl);
        matches!(self.timed(put, Some(self.cfg.timeout)).await, Ok(true))
    }

    /// `prefix`'s score record as the fleet's verifier last wrote it (empty when none); a new
    /// holder takes its cursor from it.
    pub(crate) async fn get_scores(self: &Arc<Self>, prefix: &str) -> Option<Record> {
        if !self.admit() {
            return None;
        }
        let (_, record) = keys::verifier_keys(&self.cfg.prefix, prefix);
        let fields = self.timed(self.transport.get_record(&record), Some(self.cfg.timeout)).await.ok()?;
        if matches!(self.holds(prefix), Some(None)) {
            let cursor = fields
                .iter()
                .find(|(f, _)| f == "cursor")
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0);
            self.set_cursor(prefix, cursor);
        }
        Some(fields)
    }
}
