//! What the healer reports: per interval ([`IntervalReport`]), per prefix ([`PrefixScore`]), per
//! drift found ([`DriftEvent`]) and in total ([`HealingStats`]).

use serde::Serialize;

use crate::stats::HistogramSnapshot;

/// A prefix's score report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixScore {
    /// The registered prefix.
    pub prefix: String,
    /// consistent / verified over the last `score_window` samples (1.0 before any).
    pub score: f64,
    /// Samples verified for this prefix, ever.
    pub sampled: u64,
    /// Drifted entries repaired for this prefix, ever.
    pub repaired: u64,
}

/// Totals of the healer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealingStats {
    /// Samples verified, ever (skipped ones not included).
    pub total_sampled: u64,
    /// Drifted entries repaired, ever.
    pub total_repaired: u64,
    /// Mean score of the prefixes that have samples (1.0 when none has).
    pub avg_score: f64,
    /// Source calls that failed or timed out.
    pub source_failures: u64,
    /// Duration of the last interval, in ms.
    pub last_interval_ms: f64,
    /// Drift found, ever (repaired or not).
    pub total_drift: u64,
    /// Durations of intervals.
    pub interval_duration: HistogramSnapshot,
}

/// One drift found: the cache held something else than the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftEvent {
    /// The key.
    pub key: String,
    /// Its registered prefix.
    pub prefix: String,
    /// When, on the cache's clock, in ms.
    pub at_ms: u64,
    /// Short digest of the cached value (`absent` for a cached "not found").
    pub old_digest: String,
    /// Short digest of the source's value (`absent` when the source said "not found").
    pub new_digest: String,
    /// Whether it was repaired (false: auto_repair off, or the source's value could not be
    /// stored: too large, not encodable, L2 unreachable). A repair keeps the entry's expiry.
    pub repaired: bool,
}

/// What one interval did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IntervalReport {
    /// Keys drawn: `max_samples` at most, the fleet verifier's L2 samples included.
    pub drawn: u64,
    /// Keys verified (consistent + drift).
    pub verified: u64,
    /// Keys found consistent.
    pub consistent: u64,
    /// Keys found drifted.
    pub drift: u64,
    /// Drifted keys repaired.
    pub repaired: u64,
    /// Keys skipped: no source, source backed off, failed or refused, the entry gone before its
    /// source answered, or drift found on an entry written, removed or expired while its source
    /// was asked (that check is moot: not drift, and not a sample of the score).
    pub skipped: u64,
    /// Source calls that failed or timed out.
    pub failures: u64,
    /// The interval's duration, in ms.
    pub duration_ms: u64,
    /// True when another interval was still running, so this one did nothing.
    pub overlapped: bool,
}
