//! The healer's side of the fleet verifier ([`crate::tier::FleetVerify`]): with a shared tier,
//! the lease holder of a prefix verifies its L2 entries for the whole fleet and writes the
//! prefix's scores to L2; every other instance takes those scores as its own and verifies only
//! what L2 does not hold (values written while L2 was unreachable, or that it could not encode).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures::future;
use futures::stream::{self, StreamExt};
use rand::{Rng, SeedableRng};

use super::{Group, Healer, Outcome, Settings};
use crate::error::{ConfigProblem, Error, Result};
use crate::scoring::ScoreWindow;
use crate::source::{Source, SourceAnswer};
use crate::sync::lock;
use crate::tier::{Expect, FleetVerify, L2Read, Record, Tier, Wrote};
use crate::SeededRng;

/// A prefix this instance verifies for the fleet, with its source.
type Held<V> = (Arc<str>, Arc<dyn Source<V>>);

/// What one interval verified of one prefix.
pub(super) type Verified<V> = (Arc<str>, Vec<(String, Outcome<V>)>);

impl<V: Clone + Send + Sync + 'static> Healer<V> {
    /// The fleet verifier's settings; `None` without a shared tier.
    pub fn fleet_verify(&self) -> Option<FleetVerify> {
        self.inner.cache.inner.tier().map(|t| t.fleet())
    }

    /// Replaces the fleet verifier's settings (see [`FleetVerify`]); they apply from the lease
    /// keeper's next round. The same as setting `fleet_verify`, `fleet_verify_lease` and
    /// `fleet_verify_scan_budget` in the [`crate::HealingConfig`]. [`Error::InvalidConfig`]
    /// without a shared tier, or with a lease under 1 ms or a scan budget of 0.
    ///
    /// ```no_run
    /// # fn f(healer: healcache::Healer<u64>) -> healcache::Result<()> {
    /// use healcache::tier::FleetVerify;
    /// use std::time::Duration;
    /// healer.set_fleet_verify(FleetVerify { lease: Duration::from_secs(2), ..FleetVerify::default() })?;
    /// # Ok(()) }
    /// ```
    pub fn set_fleet_verify(&self, cfg: FleetVerify) -> Result<()> {
        if self.inner.cache.inner.tier().is_none() {
            return Err(Error::invalid_config("fleet_verify", ConfigProblem::Needs("a shared tier"), None));
        }
        self.update(|c| {
            c.fleet_verify = cfg.enabled;
            c.fleet_verify_lease_ms = cfg.lease.as_secs_f64() * 1000.0;
            c.fleet_verify_scan_budget = cfg.scan_budget as f64;
            Ok(())
        })
    }

    /// Hands the fleet verifier's settings to the shared tier, if the cache has one.
    pub(super) fn push_fleet(&self, settings: &Settings) {
        if let Some(tier) = self.inner.cache.inner.tier() {
            tier.set_fleet(settings.fleet);
        }
    }

    /// The cache's shared tier, when L2 entries are verified once per fleet (not once it is
    /// closed: the cache then works from L1 alone, and so does its healer).
    pub(super) fn fleet_tier(&self) -> Option<Arc<Tier<V>>> {
        self.inner.cache.inner.tier().filter(|t| t.fleet().enabled && !t.is_closed()).cloned()
    }

    /// Notes that an interval runs and starts the lease keeper (once). The keeper wants every
    /// registered prefix while this instance keeps running intervals; a healer stopped or
    /// dropped releases its leases.
    pub(super) fn start_fleet(&self, tier: &Arc<Tier<V>>) {
        tier.interval_ran();
        let (weak, t) = (Arc::downgrade(&self.inner), Arc::downgrade(tier));
        tier.start_verifier(Box::new(move || {
            let inner = weak.upgrade()?;
            let tier = t.upgrade()?;
            if inner.stopped.load(Relaxed) {
                return None;
            }
            let fleet = tier.fleet();
            let every = lock(&inner.config).1.interval;
            if !fleet.enabled || !tier.verifying(every.saturating_mul(2).saturating_add(fleet.lease)) {
                return Some(Vec::new());
            }
            let prefixes = lock(&inner.sources).iter().map(|r| r.prefix.clone()).collect();
            Some(prefixes)
        }));
    }

    /// Takes the fleet's scores of every prefix this instance does not verify, and of those it
    /// has just become the verifier of (so the window, the totals and the walk carry on).
    pub(super) async fn mirror_scores(&self, tier: &Arc<Tier<V>>) {
        let prefixes: Vec<Arc<str>> = lock(&self.inner.sources)
            .iter()
            .filter(|r| !matches!(tier.holds(&r.prefix), Some(Some(_))))
            .map(|r| r.prefix.clone())
            .collect();
        let records = future::join_all(prefixes.iter().map(|p| tier.get_scores(p))).await;
        let capacity = lock(&self.inner.config).1.score_window;
        for (p, fields) in prefixes.iter().zip(records) {
            let Some(fields) = fields else { continue };
            let get = |name: &str| fields.iter().find(|(f, _)| f == name).map(|(_, v)| v.as_slice());
            let num = |name: &str| get(name).and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
            let Some(window) = get("window").and_then(|b| ScoreWindow::from_bytes(b, capacity)) else { continue };
            if let Some(st) = lock(&self.inner.prefixes).get_mut(p) {
                st.window = window;
                st.sampled = num("sampled").unwrap_or(st.sampled);
                st.repaired = num("repaired").unwrap_or(st.repaired);
            }
        }
    }

    /// Draws this interval's sample of the L2 entries of every prefix this instance holds the
    /// lease of (sources backed off since `began` aside), `max_samples` of each at most.
    pub(super) async fn sample_fleet(&self, tier: &Arc<Tier<V>>, s: Settings, began: u64) -> Vec<Group<V>> {
        let (all, held): (Vec<Arc<str>>, Vec<Held<V>>) = {
            let sources = lock(&self.inner.sources);
            let held = sources
                .iter()
                .filter(|r| r.backoff_until <= began && tier.holds(&r.prefix).is_some())
                .map(|r| (r.prefix.clone(), r.source.clone()))
                .collect();
            (sources.iter().map(|r| r.prefix.clone()).collect(), held)
        };
        let mut out = Vec::with_capacity(held.len());
        for (prefix, source) in held {
            // a key belongs to its longest registered prefix (`all` is longest first)
            let accept =
                |key: &str| all.iter().find(|p| key.starts_with(&***p)).is_some_and(|p| Arc::ptr_eq(p, &prefix));
            let Ok(keys) = tier.sample_shared(&prefix, s.sample_rate, s.max_samples, accept).await else { continue };
            out.push((prefix, source, keys));
        }
        out
    }

    /// Which of `n` keys drawn an interval keeps, when they are more than `max`: `max` of them,
    /// every subset alike (selection sampling), so the prefixes share the interval's budget in
    /// proportion to what each drew and none is starved by another's place in the list.
    pub(super) fn keep_at_most(&self, n: usize, max: usize) -> Vec<bool> {
        let mut rng = SeededRng::seed_from_u64(self.inner.cache.random_u64());
        let mut need = max.min(n);
        (0..n)
            .map(|i| {
                let keep = need > 0 && rng.random_range(0..n - i) < need;
                need -= usize::from(keep);
                keep
            })
            .collect()
    }

    /// Verifies the sampled L2 entries of the prefixes this instance verifies for the fleet.
    pub(super) async fn verify_fleet(
        &self,
        tier: &Arc<Tier<V>>,
        groups: Vec<Group<V>>,
        s: Settings,
    ) -> Vec<Verified<V>> {
        tier.sampled(groups.iter().map(|g| g.2.len() as u64).sum());
        let mut out = Vec::with_capacity(groups.len());
        for (prefix, source, keys) in groups {
            let outcomes = stream::iter(keys)
                .map(|key| {
                    let (this, source, tier) = (self.clone(), source.clone(), tier.clone());
                    async move {
                        let o = this.verify_shared(&tier, &key, &*source, s).await;
                        (key, o)
                    }
                })
                .buffer_unordered(s.concurrency)
                .collect()
                .await;
            out.push((prefix, outcomes));
        }
        out
    }

    /// Checks one L2 entry against the source; a drifted one is repaired in L2 only if it still
    /// holds what was read, for the time it had left (the write's bus message makes every other
    /// instance's copy stale), and this instance's own copy is made stale (or removed) with it.
    /// An entry written, removed or expired while the source was asked is skipped: that check
    /// is moot.
    async fn verify_shared(&self, tier: &Arc<Tier<V>>, key: &str, source: &dyn Source<V>, s: Settings) -> Outcome<V> {
        let inner = &self.inner;
        let read_at = inner.cache.now_nanos();
        let Some(checked) = tier.read_checked(key).await else { return Outcome::Skipped };
        let answer = match self.ask(key, source, s).await {
            Ok(a) => a,
            Err(skipped_or_failed) => return skipped_or_failed,
        };
        let cached = checked.value;
        let new = match (answer, &cached) {
            (SourceAnswer::Value(new), Some(old)) if (inner.compare)(old, &new) => return Outcome::Consistent,
            (SourceAnswer::NotFound, None) => return Outcome::Consistent,
            (SourceAnswer::Value(new), _) => Some(new),
            (SourceAnswer::NotFound, _) => None,
        };
        let repaired = if s.auto_repair {
            // the entry keeps the life it had left when read (less the time the source took): a
            // repair corrects the value, not how long the writer wanted it kept
            let spent = Duration::from_nanos(inner.cache.now_nanos().saturating_sub(read_at));
            let ttl = match checked.fresh.map(|left| left.saturating_sub(spent)) {
                Some(left) if left.is_zero() => return Outcome::Skipped,
                ttl => ttl,
            };
            match tier.repair(key, new.as_ref(), checked.token, ttl, checked.grace, checked.tags).await {
                Wrote::Written(_) => true,
                // written since the sample was read
                Wrote::FencedOut => return Outcome::Skipped,
                Wrote::Failed => false,
            }
        } else {
            match tier.read_checked(key).await {
                Some(now) if now.token == checked.token => false,
                _ => return Outcome::Skipped,
            }
        };
        if repaired {
            inner.cache.drop_local(key, new.is_none());
        }
        Outcome::Drift { repaired, old: cached, new }
    }

    /// Writes the scores of every prefix this instance verifies to L2, for the fleet.
    pub(super) async fn publish_scores(&self, tier: &Arc<Tier<V>>) {
        let records: Vec<(Arc<str>, Record)> = {
            let held: Vec<Arc<str>> = lock(&self.inner.sources)
                .iter()
                .filter(|r| tier.holds(&r.prefix).is_some())
                .map(|r| r.prefix.clone())
                .collect();
            let prefixes = lock(&self.inner.prefixes);
            held.into_iter()
                .filter_map(|p| {
                    let st = prefixes.get(&p)?;
                    let fields = vec![
                        ("window".to_string(), st.window.to_bytes()),
                        ("sampled".to_string(), st.sampled.to_string().into_bytes()),
                        ("repaired".to_string(), st.repaired.to_string().into_bytes()),
                        // for people and other languages reading the record (`HGETALL`)
                        ("score".to_string(), st.window.score().to_string().into_bytes()),
                    ];
                    Some((p, fields))
                })
                .collect()
        };
        future::join_all(records.into_iter().map(|(p, f)| async move { tier.put_scores(&p, f).await })).await;
    }

    /// Whether this instance checks an entry of its own L1: `Some(None)` without the fleet
    /// verifier; `Some(Some(seen))` when L2 does not hold it (what L2 held instead fences the
    /// repair); `None` when it is the fleet verifier's (L2 holds it), or L2 cannot be asked now
    /// (then nobody asks the source about it, rather than every instance).
    pub(super) async fn l1_only(&self, key: &str) -> Option<Option<Expect>> {
        let Some(tier) = self.fleet_tier() else { return Some(None) };
        match tier.read(key).await {
            L2Read::Miss(seen) => Some(Some(seen)),
            L2Read::Hit { .. } | L2Read::Skipped => None,
        }
    }

    /// A repair of an L1 entry (`value` `None`: removal) that keeps its expiry, fenced on its
    /// version and, with the fleet verifier, in L2 on what L2 held when it was looked at.
    pub(super) fn repair_local(&self, key: &str, value: Option<V>, version: u64, seen: Option<Expect>) -> Result<()> {
        let cache = &self.inner.cache;
        match (value, seen) {
            (Some(v), None) => cache.repair_if_version(key, v, version).map(drop),
            (None, None) => cache.remove_if_version(key, version).map(drop),
            (Some(v), Some(seen)) => cache.set_if_version_shared(key, v, version, seen).map(drop),
            (None, Some(seen)) => cache.remove_if_version_shared(key, version, seen).map(drop),
        }
    }
}
