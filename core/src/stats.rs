//! The counters of a cache: what [`Stats`] reports and where each number is kept (per shard in
//! the store, per flight table, per stampede layer), the load-latency histogram, and the
//! [`Status`] of a fetch that the counters tally.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a fetch did, like lru-cache's fetch status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum Status {
    /// A fresh value was there.
    Hit,
    /// This call ran the loader.
    Loaded,
    /// This call waited for a load another caller started.
    Coalesced,
    /// A stale value was served at once while one refresh runs (stale-while-revalidate).
    Stale,
    /// The load failed or hit its hard timeout; the stale value was served (fail-safe).
    StaleFailSafe,
    /// The load passed its soft timeout; the stale value was served, the load goes on.
    StaleSoftTimeout,
    /// A fresh value was served and XFetch started an early refresh.
    EarlyRefresh,
    /// A fresh value was served and refresh-ahead started a refresh.
    RefreshAhead,
    /// A cached "not found" answered.
    NegativeHit,
    /// The loader answered "not found".
    NegativeLoaded,
    /// Read from the shared tier (L2): fresh there, not in this process.
    L2Hit,
    /// Loaded by the loader while the shared tier was skipped (unreachable, breaker open).
    L2Skipped,
    /// Another instance of the fleet rebuilt it under the fleet lock; this call waited for its
    /// value (read from L2) instead of loading.
    FleetCoalesced,
    /// This call loaded, but a newer write won in L2 meanwhile (the fence refused this one): the
    /// loaded value was returned and not cached; L1 holds the newer value when L2 had it fresh.
    FencedOut,
    /// An L1 copy made suspect by a gap on the invalidation bus or an L2 outage was confirmed
    /// by its token (a 16-byte read of L2) and served fresh.
    Revalidated,
}

impl Status {
    /// The status as a stable kebab-case string (the bindings' status values).
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Hit => "hit",
            Status::Loaded => "loaded",
            Status::Coalesced => "coalesced",
            Status::Stale => "stale",
            Status::StaleFailSafe => "stale-fail-safe",
            Status::StaleSoftTimeout => "stale-soft-timeout",
            Status::EarlyRefresh => "early-refresh",
            Status::RefreshAhead => "refresh-ahead",
            Status::NegativeHit => "negative-hit",
            Status::NegativeLoaded => "negative-loaded",
            Status::L2Hit => "l2-hit",
            Status::L2Skipped => "l2-skipped",
            Status::FleetCoalesced => "fleet-coalesced",
            Status::FencedOut => "fenced-out",
            Status::Revalidated => "revalidated",
        }
    }
}

/// Every counter of a cache, summed at the time of the call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Reads that found a fresh value.
    pub hits: u64,
    /// Reads that found no fresh value.
    pub misses: u64,
    /// Writes that created an entry.
    pub inserts: u64,
    /// Writes that replaced an entry.
    pub updates: u64,
    /// Entries removed to make room.
    pub evictions: u64,
    /// Entries removed because their TTL (and grace window) passed.
    pub expirations: u64,
    /// Entries stored now (expired ones not yet swept included).
    pub entries: u64,
    /// Total weight stored now, in bytes.
    pub weight: u64,
    /// Loader calls (one per flight).
    pub loads: u64,
    /// Callers that joined a flight already under way instead of loading.
    pub coalesced: u64,
    /// Loads that ended with the loader's error.
    pub load_errors: u64,
    /// Loads whose loader panicked.
    pub load_panics: u64,
    /// Loads that hit `load_timeout`.
    pub load_timeouts: u64,
    /// Loaded values not stored because a newer write happened during the load (fenced).
    pub fenced_writes: u64,
    /// Loaded values not stored because they exceeded `max_entry_bytes`.
    pub oversize_rejections: u64,
    /// Flights under way now.
    pub in_flight: u64,
    /// Stale values served at once while refreshing (stale-while-revalidate).
    pub stale_served_swr: u64,
    /// Stale values served because the load failed or timed out (fail-safe).
    pub stale_served_fail_safe: u64,
    /// Stale values served because the load passed its soft timeout.
    pub stale_served_soft_timeout: u64,
    /// XFetch early refreshes started.
    pub early_refreshes: u64,
    /// Refresh-ahead refreshes started.
    pub refresh_ahead: u64,
    /// Reads answered by a cached "not found".
    pub negative_hits: u64,
    /// Cached "not found" answers stored now.
    pub negative_entries: u64,
    /// "Not found" answers not cached because negatives had their full share of capacity.
    pub negative_refused: u64,
    /// Durations of loader calls.
    pub load_latency: HistogramSnapshot,
    /// Shared tier (zero without one), as [`crate::tier::L2Stats`] describes each: reads that
    /// found a fresh value in L2.
    pub l2_hits: u64,
    /// L2 reads that found nothing usable.
    pub l2_misses: u64,
    /// L2 operations that failed (I/O, refusals, deadlines).
    pub l2_errors: u64,
    /// Of those, deadlines passed.
    pub l2_timeouts: u64,
    /// L2 operations skipped while the breaker was open.
    pub l2_skipped: u64,
    /// Values and tombstones written to L2.
    pub l2_writes: u64,
    /// L2 writes refused by the fence (a newer value was stored).
    pub l2_fenced_out: u64,
    /// Stored values that did not decode, and values that could not be encoded.
    pub l2_codec_errors: u64,
    /// The breaker: 0 closed, 1 open, 2 half-open.
    pub l2_breaker_state: u64,
    /// Times the breaker opened.
    pub l2_breaker_opens: u64,
    /// Invalidations waiting for L2 to return.
    pub l2_recovery_depth: u64,
    /// Invalidations dropped at the recovery queue's bound.
    pub l2_recovery_dropped: u64,
    /// Fleet rebuild locks taken by this process.
    pub l2_lock_acquired: u64,
    /// Try-locks that found another instance rebuilding.
    pub l2_lock_contended: u64,
    /// Background refreshes skipped because another instance was refreshing the key.
    pub l2_lock_skipped: u64,
    /// Waits for another instance's rebuild that gave up and loaded locally.
    pub l2_lock_timeouts: u64,
    /// Leases lost while a loader ran.
    pub l2_lock_lease_lost: u64,
    /// Invalidation messages published on the bus.
    pub l2_bus_sent: u64,
    /// Bus publishes that failed (receivers notice the gap).
    pub l2_bus_publish_failed: u64,
    /// Invalidation messages received from other instances.
    pub l2_bus_received: u64,
    /// L1 copies dropped by other instances' writes.
    pub l2_bus_invalidated: u64,
    /// Lost bus messages noticed; each made older L1 entries suspect.
    pub l2_bus_gaps: u64,
    /// Received bytes that were not a bus message.
    pub l2_bus_malformed: u64,
    /// Suspect L1 entries (written before a bus gap or an L2 outage) re-read from L2 before
    /// being served fresh.
    pub l2_suspect_rereads: u64,
    /// Of those, copies L2 confirmed by their token alone (status `revalidated`).
    #[cfg(feature = "tier")]
    pub l2_revalidated: u64,
    /// Tag invalidations made by this process.
    #[cfg(feature = "tier")]
    pub l2_tag_invalidations: u64,
    /// Tag invalidations received from other instances.
    #[cfg(feature = "tier")]
    pub l2_tag_received: u64,
    /// L2 values read as misses because one of their tags was invalidated since.
    #[cfg(feature = "tier")]
    pub l2_tag_outdated: u64,
    /// Fleet verifier leases taken by this process (it became a healing prefix's verifier).
    /// The fleet verifier's counters exist only with the `tier` feature (the WebAssembly
    /// module leaves the tier out, and has a size budget).
    #[cfg(feature = "tier")]
    pub l2_verifier_acquired: u64,
    /// Fleet verifier leases lost (a renewal found the lease expired or taken over).
    #[cfg(feature = "tier")]
    pub l2_verifier_lost: u64,
    /// Healing prefixes this process verifies for the fleet now.
    #[cfg(feature = "tier")]
    pub l2_verifier_held: u64,
    /// L2 entries this process sampled as a fleet verifier.
    #[cfg(feature = "tier")]
    pub l2_verifier_sampled: u64,
    /// Drifted L2 entries this process repaired as a fleet verifier.
    #[cfg(feature = "tier")]
    pub l2_verifier_repaired: u64,
    /// How long foreground misses waited for another instance's rebuild.
    pub l2_lock_wait: HistogramSnapshot,
    /// Latency of L2 operations.
    pub l2_latency: HistogramSnapshot,
    /// From another instance's publish of an invalidation to its receipt here, on the two
    /// processes' wall clocks.
    pub l2_bus_latency: HistogramSnapshot,
}

/// How many counters [`Stats::counters`] lists, in every build (without the `tier` feature, the
/// fleet verifier's five, the revalidation's and the tags' four are 0: the WebAssembly module,
/// which leaves the tier out, keeps no fields for them).
pub const COUNTERS: usize = 57;

impl Stats {
    /// Every counter with its field name, in declaration order (the load-latency histogram aside):
    /// the one list bindings walk instead of naming each field again.
    pub fn counters(&self) -> [(&'static str, u64); COUNTERS] {
        [
            ("hits", self.hits),
            ("misses", self.misses),
            ("inserts", self.inserts),
            ("updates", self.updates),
            ("evictions", self.evictions),
            ("expirations", self.expirations),
            ("entries", self.entries),
            ("weight", self.weight),
            ("loads", self.loads),
            ("coalesced", self.coalesced),
            ("load_errors", self.load_errors),
            ("load_panics", self.load_panics),
            ("load_timeouts", self.load_timeouts),
            ("fenced_writes", self.fenced_writes),
            ("oversize_rejections", self.oversize_rejections),
            ("in_flight", self.in_flight),
            ("stale_served_swr", self.stale_served_swr),
            ("stale_served_fail_safe", self.stale_served_fail_safe),
            ("stale_served_soft_timeout", self.stale_served_soft_timeout),
            ("early_refreshes", self.early_refreshes),
            ("refresh_ahead", self.refresh_ahead),
            ("negative_hits", self.negative_hits),
            ("negative_entries", self.negative_entries),
            ("negative_refused", self.negative_refused),
            ("l2_hits", self.l2_hits),
            ("l2_misses", self.l2_misses),
            ("l2_errors", self.l2_errors),
            ("l2_timeouts", self.l2_timeouts),
            ("l2_skipped", self.l2_skipped),
            ("l2_writes", self.l2_writes),
            ("l2_fenced_out", self.l2_fenced_out),
            ("l2_codec_errors", self.l2_codec_errors),
            ("l2_breaker_state", self.l2_breaker_state),
            ("l2_breaker_opens", self.l2_breaker_opens),
            ("l2_recovery_depth", self.l2_recovery_depth),
            ("l2_recovery_dropped", self.l2_recovery_dropped),
            ("l2_lock_acquired", self.l2_lock_acquired),
            ("l2_lock_contended", self.l2_lock_contended),
            ("l2_lock_skipped", self.l2_lock_skipped),
            ("l2_lock_timeouts", self.l2_lock_timeouts),
            ("l2_lock_lease_lost", self.l2_lock_lease_lost),
            ("l2_bus_sent", self.l2_bus_sent),
            ("l2_bus_publish_failed", self.l2_bus_publish_failed),
            ("l2_bus_received", self.l2_bus_received),
            ("l2_bus_invalidated", self.l2_bus_invalidated),
            ("l2_bus_gaps", self.l2_bus_gaps),
            ("l2_bus_malformed", self.l2_bus_malformed),
            ("l2_suspect_rereads", self.l2_suspect_rereads),
            #[cfg(feature = "tier")]
            ("l2_revalidated", self.l2_revalidated),
            #[cfg(feature = "tier")]
            ("l2_tag_invalidations", self.l2_tag_invalidations),
            #[cfg(feature = "tier")]
            ("l2_tag_received", self.l2_tag_received),
            #[cfg(feature = "tier")]
            ("l2_tag_outdated", self.l2_tag_outdated),
            // the fleet verifier's: only with the tier, whose build has no size budget
            #[cfg(feature = "tier")]
            ("l2_verifier_acquired", self.l2_verifier_acquired),
            #[cfg(feature = "tier")]
            ("l2_verifier_lost", self.l2_verifier_lost),
            #[cfg(feature = "tier")]
            ("l2_verifier_held", self.l2_verifier_held),
            #[cfg(feature = "tier")]
            ("l2_verifier_sampled", self.l2_verifier_sampled),
            #[cfg(feature = "tier")]
            ("l2_verifier_repaired", self.l2_verifier_repaired),
            // without the tier these count nothing, but every build lists the same counters
            #[cfg(not(feature = "tier"))]
            ("l2_revalidated", 0),
            #[cfg(not(feature = "tier"))]
            ("l2_tag_invalidations", 0),
            #[cfg(not(feature = "tier"))]
            ("l2_tag_received", 0),
            #[cfg(not(feature = "tier"))]
            ("l2_tag_outdated", 0),
            #[cfg(not(feature = "tier"))]
            ("l2_verifier_acquired", 0),
            #[cfg(not(feature = "tier"))]
            ("l2_verifier_lost", 0),
            #[cfg(not(feature = "tier"))]
            ("l2_verifier_held", 0),
            #[cfg(not(feature = "tier"))]
            ("l2_verifier_sampled", 0),
            #[cfg(not(feature = "tier"))]
            ("l2_verifier_repaired", 0),
        ]
    }
}

/// One shard's read counters, one set per stripe of its lock: a reader counts on the stripe it
/// holds (or, counting outside the lock, on its thread's), so threads on different stripes count
/// on different cache lines.
#[derive(Default)]
pub(crate) struct ReadCounts {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

#[derive(Default)]
/// One shard's write counters, bumped under its write lock.
pub(crate) struct ShardStats {
    pub inserts: AtomicU64,
    pub updates: AtomicU64,
    pub evictions: AtomicU64,
    pub expirations: AtomicU64,
}

/// Counters of the store, summed over shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing live.
    pub misses: u64,
    /// Writes that created an entry.
    pub inserts: u64,
    /// Writes that replaced an entry.
    pub updates: u64,
    /// Entries removed to make room.
    pub evictions: u64,
    /// Entries removed because their TTL passed.
    pub expirations: u64,
    /// Entries stored now (expired ones not yet swept included).
    pub entries: u64,
    /// Total weight stored now, in bytes.
    pub weight: u64,
}

/// Upper bounds of the load-latency buckets, in milliseconds (the last bucket is +Inf).
pub const LATENCY_BUCKETS_MS: [f64; 13] =
    [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];

/// A fixed-bucket histogram with atomic counts.
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; 14],
    sum_nanos: AtomicU64,
}

/// A histogram read at one time: `counts[i]` observations fell in bucket i (not cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistogramSnapshot {
    /// Per-bucket counts for [`LATENCY_BUCKETS_MS`] and a last +Inf bucket.
    pub counts: [u64; 14],
    /// Sum of all observations, in nanoseconds.
    pub sum_nanos: u64,
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Histogram {
    pub fn record(&self, nanos: u64) {
        let ms = nanos as f64 / 1e6;
        let i = LATENCY_BUCKETS_MS.iter().position(|&b| ms <= b).unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_nanos: self.sum_nanos.load(Relaxed),
        }
    }
}

/// Counters of the stampede layers.
#[derive(Default)]
pub(crate) struct StampedeCounters {
    pub stale_swr: AtomicU64,
    pub stale_fail_safe: AtomicU64,
    pub stale_soft_timeout: AtomicU64,
    pub early_refreshes: AtomicU64,
    pub refresh_ahead: AtomicU64,
    pub negative_hits: AtomicU64,
    pub negative_refused: AtomicU64,
    pub negative_entries: AtomicU64,
    pub fenced_writes: AtomicU64,
    pub oversize_rejections: AtomicU64,
    pub load_latency: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let h = Histogram::default();
        h.record(500_000); // 0.5 ms
        h.record(3_000_000); // 3 ms
        h.record(20_000_000_000); // 20 s
        let s = h.snapshot();
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[2], 1);
        assert_eq!(s.counts[13], 1);
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum_nanos, 20_003_500_000);
    }
}
