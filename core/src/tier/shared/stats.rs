//! The shared tier's counters and what it reports of them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Tier;
use crate::stats::{Histogram, HistogramSnapshot};
use crate::tier::breaker::State;

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
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) fenced_out: AtomicU64,
    pub(super) codec_errors: AtomicU64,
    pub(super) breaker_opens: AtomicU64,
    pub(super) suspect_rereads: AtomicU64,
    pub(super) revalidated: AtomicU64,
    pub(super) tag_invalidations: AtomicU64,
    pub(super) tag_received: AtomicU64,
    pub(super) tag_outdated: AtomicU64,
    pub(super) latency: Histogram,
    pub(super) lock_wait: Histogram,
}

impl<V: Clone + Send + Sync + 'static> Tier<V> {
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
