//! Metrics: counters of the stampede layers, a load-latency histogram, and Prometheus text
//! exposition of a [`Stats`](crate::Stats) snapshot.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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

/// Renders `stats` in the Prometheus text exposition format (version 0.0.4), every metric
/// named `healcache_*` and labelled with `cache="<name>"`.
pub fn prometheus_text(stats: &crate::Stats, cache_name: &str) -> String {
    let name = escape_label(cache_name);
    let mut out = String::with_capacity(4096);
    let mut counter = |metric: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP healcache_{metric} {help}\n# TYPE healcache_{metric} counter\nhealcache_{metric}{{cache=\"{name}\"}} {v}");
    };
    counter("hits_total", "Reads that found a fresh value.", stats.hits);
    counter("misses_total", "Reads that found no fresh value.", stats.misses);
    counter("inserts_total", "Writes that created an entry.", stats.inserts);
    counter("updates_total", "Writes that replaced an entry.", stats.updates);
    counter("evictions_total", "Entries removed to make room.", stats.evictions);
    counter("expirations_total", "Entries removed after their TTL (and grace).", stats.expirations);
    counter("loader_calls_total", "Loader calls (one per flight).", stats.loads);
    counter("coalesced_total", "Callers that joined a load under way.", stats.coalesced);
    counter("load_errors_total", "Loads that ended in the loader's error.", stats.load_errors);
    counter("load_panics_total", "Loads whose loader panicked.", stats.load_panics);
    counter("load_timeouts_total", "Loads that reached the hard load timeout.", stats.load_timeouts);
    counter("early_refreshes_total", "XFetch early refreshes started.", stats.early_refreshes);
    counter("refresh_ahead_total", "Refresh-ahead refreshes started.", stats.refresh_ahead);
    counter("negative_hits_total", "Reads answered by a cached not-found.", stats.negative_hits);
    counter("negative_refused_total", "Not-found answers not cached (share bound).", stats.negative_refused);
    counter("fenced_writes_total", "Loaded values dropped because a newer write landed.", stats.fenced_writes);
    counter("oversize_rejections_total", "Loaded values over max_entry_bytes, not stored.", stats.oversize_rejections);
    let _ = writeln!(out, "# HELP healcache_stale_served_total Stale values served, by reason.\n# TYPE healcache_stale_served_total counter");
    for (reason, v) in [
        ("stale_while_revalidate", stats.stale_served_swr),
        ("fail_safe", stats.stale_served_fail_safe),
        ("soft_timeout", stats.stale_served_soft_timeout),
    ] {
        let _ = writeln!(out, "healcache_stale_served_total{{cache=\"{name}\",reason=\"{reason}\"}} {v}");
    }
    let mut gauge = |metric: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP healcache_{metric} {help}\n# TYPE healcache_{metric} gauge\nhealcache_{metric}{{cache=\"{name}\"}} {v}");
    };
    gauge("entries", "Entries stored.", stats.entries);
    gauge("weight_bytes", "Total weight stored.", stats.weight);
    gauge("in_flight_loads", "Loads under way.", stats.in_flight);
    gauge("negative_entries", "Cached not-found answers.", stats.negative_entries);
    histogram(&mut out, "load_duration_seconds", "Loader call durations.", &name, &stats.load_latency, 1000.0);
    out
}

/// Renders healing metrics: `healing.samples_total`, `healing.repairs_total`,
/// `healing.source_failures`, `healing.interval_duration_ms` (histogram) and
/// `healing.score.{prefix}` (a gauge per prefix, the prefix as a label).
pub fn healing_prometheus_text(stats: &crate::HealingStats, scores: &[crate::PrefixScore], cache_name: &str) -> String {
    let name = escape_label(cache_name);
    let mut out = String::with_capacity(2048);
    for (metric, help, v) in [
        ("healing_samples_total", "Samples verified against a source.", stats.total_sampled),
        ("healing_repairs_total", "Drifted entries repaired.", stats.total_repaired),
        ("healing_drift_total", "Drifted entries found.", stats.total_drift),
        ("healing_source_failures", "Source calls that failed or timed out.", stats.source_failures),
    ] {
        let _ = writeln!(out, "# HELP healcache_{metric} {help}\n# TYPE healcache_{metric} counter\nhealcache_{metric}{{cache=\"{name}\"}} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP healcache_healing_score Rolling consistency score per prefix.\n# TYPE healcache_healing_score gauge"
    );
    for p in scores {
        let _ = writeln!(
            out,
            "healcache_healing_score{{cache=\"{name}\",prefix=\"{}\"}} {}",
            escape_label(&p.prefix),
            p.score
        );
    }
    histogram(
        &mut out,
        "healing_interval_duration_ms",
        "Healing interval durations.",
        &name,
        &stats.interval_duration,
        1.0,
    );
    out
}

/// Writes one histogram; `ms_per_unit` converts the millisecond buckets (and the sum) to the
/// metric's unit (1000 for seconds, 1 for milliseconds). `name` is already escaped.
fn histogram(out: &mut String, metric: &str, help: &str, name: &str, h: &HistogramSnapshot, ms_per_unit: f64) {
    let _ = writeln!(out, "# HELP healcache_{metric} {help}\n# TYPE healcache_{metric} histogram");
    let mut cum = 0;
    for (i, b) in LATENCY_BUCKETS_MS.iter().enumerate() {
        cum += h.counts[i];
        let _ = writeln!(out, "healcache_{metric}_bucket{{cache=\"{name}\",le=\"{}\"}} {cum}", b / ms_per_unit);
    }
    cum += h.counts[LATENCY_BUCKETS_MS.len()];
    let _ = writeln!(out, "healcache_{metric}_bucket{{cache=\"{name}\",le=\"+Inf\"}} {cum}");
    let _ = writeln!(out, "healcache_{metric}_sum{{cache=\"{name}\"}} {}", h.sum_nanos as f64 / 1e6 / ms_per_unit);
    let _ = writeln!(out, "healcache_{metric}_count{{cache=\"{name}\"}} {cum}");
}

/// Escapes a label value (backslash, quote, newline), so a name can never break the format.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
