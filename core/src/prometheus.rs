//! Prometheus text exposition (version 0.0.4) of a cache's [`Stats`] and of a healer's
//! [`HealingStats`] and scores. Reads the counters; nothing below it imports this module.

use std::fmt::Write;

use hashbrown::{HashMap, HashSet};

use crate::cache::Cache;
use crate::decimal::Decimal;
use crate::error::{ConfigProblem, Error, Result};
use crate::healing::{Healer, HealingStats, PrefixScore};
use crate::stats::{HistogramSnapshot, Stats, LATENCY_BUCKETS_MS};

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// Every counter in the Prometheus text exposition format, labelled `cache="<name>"`.
    pub fn prometheus(&self, name: &str) -> String {
        #[allow(unused_mut)]
        let mut out = prometheus_text(&self.stats(), name);
        // warm-ups run only where there is a tokio-like host (not in the WebAssembly module,
        // which has a size budget and no shared tier)
        #[cfg(feature = "tier")]
        self.inner.warming.prometheus(&mut out, &escape_label(name), self.ready(), self.precise_nanos());
        out
    }
}

impl<V: Clone + Send + Sync + 'static> Healer<V> {
    /// Healing metrics in the Prometheus text format, labelled `cache="<name>"`.
    pub fn prometheus(&self, name: &str) -> String {
        healing_prometheus_text(&self.stats(), &self.scores(), name)
    }
}

/// Renders `stats` in the Prometheus text exposition format (version 0.0.4), every metric
/// named `healcache_*` and labelled with `cache="<name>"`.
pub fn prometheus_text(stats: &Stats, cache_name: &str) -> String {
    let name = escape_label(cache_name);
    let mut out = String::with_capacity(4096);
    let mut counter = |metric: &str, help: &str, v: u64| one(&mut out, "counter", metric, help, &name, v);
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
    let mut gauge = |metric: &str, help: &str, v: u64| one(&mut out, "gauge", metric, help, &name, v);
    gauge("entries", "Entries stored.", stats.entries);
    gauge("weight_bytes", "Total weight stored.", stats.weight);
    gauge("in_flight_loads", "Loads under way.", stats.in_flight);
    gauge("negative_entries", "Cached not-found answers.", stats.negative_entries);
    histogram(&mut out, "load_duration_seconds", "Loader call durations.", &name, &stats.load_latency, 1000.0);
    #[cfg(feature = "tier")]
    shared_tier_text(&mut out, stats, &name);
    out
}

/// Joins Prometheus text expositions, as [`Cache::prometheus`], [`Healer::prometheus`] and
/// `WriteBehind::prometheus` give them (one per cache), into one that strict parsers accept:
/// each family's HELP and TYPE lines once, then all its samples. Concatenated, the texts of two
/// caches repeat every HELP line, which `promtool` and Go's parser refuse.
///
/// A series that two texts both hold (two caches given the same name) is refused with
/// [`Error::InvalidConfig`] on `texts`: one of the two values would be lost.
pub fn prometheus_join<S: AsRef<str>>(texts: &[S]) -> Result<String> {
    // family name -> (its HELP and TYPE lines, its samples), in the order first seen
    let mut families: Vec<(String, Vec<&str>, Vec<&str>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut series: HashSet<&str> = HashSet::new();
    for text in texts {
        let mut current: Option<usize> = None;
        for line in text.as_ref().lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ").or_else(|| line.strip_prefix("# TYPE ")) {
                let family = rest.split(' ').next().unwrap_or_default();
                let i = *index.entry(family.to_owned()).or_insert_with(|| {
                    families.push((family.to_owned(), Vec::new(), Vec::new()));
                    families.len() - 1
                });
                let head = &mut families[i].1;
                // the first text's HELP and TYPE lines stand for the family
                if head.len() < 2 && !head.iter().any(|h| h.get(..7) == line.get(..7)) {
                    head.push(line);
                }
                current = Some(i);
            } else if line.starts_with('#') {
                continue;
            } else {
                let name = line.rsplit_once(' ').map_or(line, |(s, _)| s);
                if !series.insert(name) {
                    return Err(Error::invalid_config(
                        "texts",
                        ConfigProblem::Rule("must not repeat a series: two caches have the same name"),
                        None,
                    ));
                }
                match current {
                    Some(i) => families[i].2.push(line),
                    None => {
                        // a sample with no HELP or TYPE before it is a family of its own
                        let family = name.split('{').next().unwrap_or_default().to_owned();
                        let i = *index.entry(family.clone()).or_insert_with(|| {
                            families.push((family, Vec::new(), Vec::new()));
                            families.len() - 1
                        });
                        families[i].2.push(line);
                    }
                }
            }
        }
    }
    let mut out = String::with_capacity(texts.iter().map(|t| t.as_ref().len()).sum());
    for (_, head, samples) in &families {
        for line in head.iter().chain(samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// One metric of one value, with its HELP and TYPE lines.
fn one(out: &mut String, kind: &str, metric: &str, help: &str, name: &str, v: u64) {
    let _ = writeln!(out, "# HELP healcache_{metric} {help}\n# TYPE healcache_{metric} {kind}\nhealcache_{metric}{{cache=\"{name}\"}} {v}");
}

/// The shared tier's families (`healcache_l2_*`): only in builds that have a shared tier, so the
/// WebAssembly module, whose size counts and which has none, carries no text for counters that
/// stay zero there.
#[cfg(feature = "tier")]
fn shared_tier_text(out: &mut String, stats: &Stats, name: &str) {
    let mut counter = |metric: &str, help: &str, v: u64| one(out, "counter", metric, help, name, v);
    counter("l2_hits_total", "Shared-tier reads that found a fresh value.", stats.l2_hits);
    counter("l2_misses_total", "Shared-tier reads that found nothing usable.", stats.l2_misses);
    counter("l2_errors_total", "Shared-tier operations that failed (I/O, refusals, deadlines).", stats.l2_errors);
    counter("l2_timeouts_total", "Shared-tier operations past their deadline.", stats.l2_timeouts);
    counter("l2_skipped_total", "Shared-tier operations skipped while the breaker was open.", stats.l2_skipped);
    counter("l2_writes_total", "Values and tombstones written to the shared tier.", stats.l2_writes);
    counter("l2_fenced_out_total", "Shared-tier writes refused because a newer value was stored.", stats.l2_fenced_out);
    counter("l2_codec_errors_total", "Shared-tier values that did not decode or encode.", stats.l2_codec_errors);
    counter("l2_breaker_opens_total", "Times the shared tier's breaker opened.", stats.l2_breaker_opens);
    counter(
        "l2_recovery_dropped_total",
        "Invalidations dropped at the recovery queue's bound.",
        stats.l2_recovery_dropped,
    );
    counter("l2_lock_acquired_total", "Fleet rebuild locks taken by this process.", stats.l2_lock_acquired);
    counter("l2_lock_contended_total", "Try-locks that found another instance rebuilding.", stats.l2_lock_contended);
    counter(
        "l2_lock_skipped_total",
        "Background refreshes skipped because another instance was refreshing.",
        stats.l2_lock_skipped,
    );
    counter("l2_lock_timeouts_total", "Waits for another instance's rebuild that gave up.", stats.l2_lock_timeouts);
    counter("l2_lock_lease_lost_total", "Fleet lock leases lost while a loader ran.", stats.l2_lock_lease_lost);
    counter("l2_bus_sent_total", "Invalidation messages published on the bus.", stats.l2_bus_sent);
    counter("l2_bus_publish_failed_total", "Bus publishes that failed.", stats.l2_bus_publish_failed);
    counter("l2_bus_received_total", "Invalidation messages received from other instances.", stats.l2_bus_received);
    counter("l2_bus_invalidated_total", "L1 copies dropped by other instances' writes.", stats.l2_bus_invalidated);
    counter("l2_bus_gaps_total", "Lost bus messages noticed (older L1 entries made suspect).", stats.l2_bus_gaps);
    counter("l2_bus_malformed_total", "Received bytes that were not a bus message.", stats.l2_bus_malformed);
    counter(
        "l2_suspect_rereads_total",
        "Suspect L1 entries re-read from the shared tier before being served fresh.",
        stats.l2_suspect_rereads,
    );
    counter("l2_revalidated_total", "Suspect L1 entries confirmed by their token alone.", stats.l2_revalidated);
    counter("l2_tag_invalidations_total", "Tag invalidations made by this process.", stats.l2_tag_invalidations);
    counter("l2_tag_received_total", "Tag invalidations received from other instances.", stats.l2_tag_received);
    counter(
        "l2_tag_outdated_total",
        "Shared-tier values read as misses: a tag of theirs was invalidated.",
        stats.l2_tag_outdated,
    );
    counter("l2_verifier_acquired_total", "Fleet verifier leases taken by this process.", stats.l2_verifier_acquired);
    counter("l2_verifier_lost_total", "Fleet verifier leases lost (expired or taken over).", stats.l2_verifier_lost);
    counter("l2_verifier_sampled_total", "L2 entries sampled as a fleet verifier.", stats.l2_verifier_sampled);
    counter(
        "l2_verifier_repaired_total",
        "Drifted L2 entries repaired as a fleet verifier.",
        stats.l2_verifier_repaired,
    );
    let mut gauge = |metric: &str, help: &str, v: u64| one(out, "gauge", metric, help, name, v);
    gauge("l2_verifier_held", "Healing prefixes this process verifies for the fleet.", stats.l2_verifier_held);
    gauge("l2_breaker_state", "The shared tier's breaker: 0 closed, 1 open, 2 half-open.", stats.l2_breaker_state);
    gauge("l2_recovery_depth", "Invalidations waiting for the shared tier to return.", stats.l2_recovery_depth);
    histogram(out, "l2_lock_wait_seconds", "Waits for another instance's rebuild.", name, &stats.l2_lock_wait, 1000.0);
    histogram(out, "l2_duration_seconds", "Shared-tier operation durations.", name, &stats.l2_latency, 1000.0);
    histogram(
        out,
        "l2_bus_latency_seconds",
        "From another instance's publish of an invalidation to its receipt here.",
        name,
        &stats.l2_bus_latency,
        1000.0,
    );
}

/// Renders healing metrics: `healing.samples_total`, `healing.repairs_total`,
/// `healing.source_failures_total`, `healing.interval_duration_ms` (histogram) and
/// `healing.score.{prefix}` (a gauge per prefix, the prefix as a label).
fn healing_prometheus_text(stats: &HealingStats, scores: &[PrefixScore], cache_name: &str) -> String {
    let name = escape_label(cache_name);
    let mut out = String::with_capacity(2048);
    for (metric, help, v) in [
        ("healing_samples_total", "Samples verified against a source.", stats.total_sampled),
        ("healing_repairs_total", "Drifted entries repaired.", stats.total_repaired),
        ("healing_drift_total", "Drifted entries found.", stats.total_drift),
        ("healing_source_failures_total", "Source calls that failed or timed out.", stats.source_failures),
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
            Decimal(p.score)
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
        let _ =
            writeln!(out, "healcache_{metric}_bucket{{cache=\"{name}\",le=\"{}\"}} {cum}", Decimal(b / ms_per_unit));
    }
    cum += h.counts[LATENCY_BUCKETS_MS.len()];
    let _ = writeln!(out, "healcache_{metric}_bucket{{cache=\"{name}\",le=\"+Inf\"}} {cum}");
    let _ =
        writeln!(out, "healcache_{metric}_sum{{cache=\"{name}\"}} {}", Decimal(h.sum_nanos as f64 / 1e6 / ms_per_unit));
    let _ = writeln!(out, "healcache_{metric}_count{{cache=\"{name}\"}} {cum}");
}

/// Escapes a label value (backslash, quote, newline), so a name can never break the format.
pub(crate) fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus's naming rule: a counter's name ends in `_total`, in the cache's metrics and in
    /// the healer's.
    #[test]
    fn every_counter_is_named_total() {
        let cache = Cache::<u64>::builder().build().unwrap();
        let healer = Healer::new(cache.clone(), crate::healing::HealingConfig::default()).unwrap();
        let text = cache.prometheus("c") + &healer.prometheus("c");
        let counters: Vec<&str> =
            text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
        assert!(counters.len() > 40, "{counters:?}");
        for name in counters {
            assert!(name.ends_with("_total"), "{name}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
