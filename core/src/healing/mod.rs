//! Self-healing: every interval, sample keys uniformly, check each against its prefix's source of
//! truth, repair drift with a compare-and-set on the version read at sampling time, and keep a
//! rolling consistency score per prefix.
//!
//! The core runs one interval per [`Healer::run_interval`] call: native hosts call it from a
//! background task every `verify_interval` ([`Healer::run`] is that loop), WASM hosts from
//! their own scheduler (a cron trigger, an alarm). No lock is held while a source is asked (a
//! source may be host code, and no lock is held across host code); a source that fails or times out makes its samples skipped, never counted in a
//! score, and after repeated failures it is left alone for an exponentially growing, capped time.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use futures::future::{self, Either};
use futures::stream::{self, StreamExt};

use crate::cache::Cache;
use crate::error::{ConfigProblem, Error, Result};
use crate::scoring::ScoreWindow;
use crate::source::{Source, SourceAnswer, SourceError};
use crate::stats::Histogram;
use crate::sync::{lock, Mutex};

mod config;
#[cfg(feature = "tier")]
mod fleet;
mod report;

pub use config::HealingConfig;
use config::Settings;
pub use report::{DriftEvent, HealingStats, IntervalReport, PrefixScore};

/// Consecutive failures of a source before it is backed off.
const FAILURES_BEFORE_BACKOFF: u32 = 3;
/// Longest backoff, in verify intervals.
const MAX_BACKOFF_INTERVALS: u64 = 32;

/// Compares a cached value with a source's value (true: consistent).
pub type Comparator<V> = Arc<dyn Fn(&V, &V) -> bool + Send + Sync>;
/// A short digest of a value for drift events.
pub type Digest<V> = Arc<dyn Fn(&V) -> u64 + Send + Sync>;

/// The sampled keys of one source: its prefix, the source, the keys.
type Group<V> = (Arc<str>, Arc<dyn Source<V>>, Vec<String>);

struct Registered<V> {
    prefix: Arc<str>,
    source: Arc<dyn Source<V>>,
    failures: u32,
    backoff_until: u64,
}

struct PrefixState {
    window: ScoreWindow,
    sampled: u64,
    repaired: u64,
}

struct Inner<V> {
    cache: Cache<V>,
    config: Mutex<(HealingConfig, Settings)>,
    sources: Mutex<Vec<Registered<V>>>,
    prefixes: Mutex<Prefixes>,
    drift: Mutex<VecDeque<DriftEvent>>,
    compare: Comparator<V>,
    digest: Digest<V>,
    running: AtomicBool,
    stopped: AtomicBool,
    total_sampled: AtomicU64,
    total_repaired: AtomicU64,
    total_drift: AtomicU64,
    source_failures: AtomicU64,
    last_interval_nanos: AtomicU64,
    interval_hist: Histogram,
}

/// The score state of every registered prefix, sorted by prefix: looked up by binary search,
/// reported in order without a sort (a few hundred prefixes at most; no hashing or sorting
/// code in the WebAssembly module).
#[derive(Default)]
struct Prefixes(Vec<(Arc<str>, PrefixState)>);

impl Prefixes {
    fn find(&self, prefix: &str) -> std::result::Result<usize, usize> {
        self.0.binary_search_by(|(p, _)| (**p).cmp(prefix))
    }

    fn get(&self, prefix: &str) -> Option<&PrefixState> {
        self.find(prefix).ok().map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, prefix: &str) -> Option<&mut PrefixState> {
        self.find(prefix).ok().map(|i| &mut self.0[i].1)
    }

    fn insert(&mut self, prefix: Arc<str>, state: PrefixState) {
        match self.find(&prefix) {
            Ok(i) => self.0[i].1 = state,
            Err(i) => self.0.insert(i, (prefix, state)),
        }
    }

    fn remove(&mut self, prefix: &str) {
        if let Ok(i) = self.find(prefix) {
            self.0.remove(i);
        }
    }
}

/// The self-healing engine of one cache. Cheap to clone (a handle).
pub struct Healer<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for Healer<V> {
    fn clone(&self) -> Self {
        Healer { inner: Arc::clone(&self.inner) }
    }
}

/// The short digests (old, new) of a drift event's values.
type Digests = (String, String);

enum Outcome<V> {
    Consistent,
    Drift { repaired: bool, old: Option<V>, new: Option<V> },
    Failed,
    Skipped,
}

impl<V: Clone + Send + Sync + PartialEq + Hash + 'static> Healer<V> {
    /// A healer comparing values with `==` and digesting them with their `Hash`.
    pub fn new(cache: Cache<V>, config: HealingConfig) -> Result<Self> {
        let seed = cache.random_u64();
        let hasher = foldhash::fast::FixedState::with_seed(seed);
        Self::with_comparator(cache, config, Arc::new(|a: &V, b: &V| a == b), Arc::new(move |v: &V| hasher.hash_one(v)))
    }
}

impl<V: Clone + Send + Sync + 'static> Healer<V> {
    /// A healer with its own comparison (e.g. canonical JSON, so key order is not drift) and digest.
    pub fn with_comparator(
        cache: Cache<V>,
        config: HealingConfig,
        compare: Comparator<V>,
        digest: Digest<V>,
    ) -> Result<Self> {
        let settings = config.validate()?;
        let healer = Healer {
            inner: Arc::new(Inner {
                cache,
                config: Mutex::new((config, settings)),
                sources: Mutex::new(Vec::new()),
                prefixes: Mutex::new(Prefixes::default()),
                drift: Mutex::new(VecDeque::new()),
                compare,
                digest,
                running: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                total_sampled: AtomicU64::new(0),
                total_repaired: AtomicU64::new(0),
                total_drift: AtomicU64::new(0),
                source_failures: AtomicU64::new(0),
                last_interval_nanos: AtomicU64::new(0),
                interval_hist: Histogram::default(),
            }),
        };
        #[cfg(feature = "tier")]
        healer.push_fleet(&settings);
        Ok(healer)
    }

    /// Registers (or replaces) the source of truth of keys starting with `prefix`; the longest
    /// registered prefix of a key wins. At most `max_prefixes` prefixes.
    pub fn register_source(&self, prefix: &str, source: impl Source<V>) -> Result<()> {
        // a prefix is the start of keys: one longer than any key could match none
        let max_key_len = self.inner.cache.config().max_key_len;
        if prefix.len() as f64 > max_key_len {
            return Err(Error::KeyTooLong { len: prefix.len(), max: max_key_len as usize });
        }
        let max = lock(&self.inner.config).1.max_prefixes;
        let mut sources = lock(&self.inner.sources);
        let source: Arc<dyn Source<V>> = Arc::new(source);
        if let Some(r) = sources.iter_mut().find(|r| &*r.prefix == prefix) {
            r.source = source;
            r.failures = 0;
            r.backoff_until = 0;
            return Ok(());
        }
        if sources.len() >= max {
            return Err(Error::invalid_config("max_prefixes", ConfigProblem::LimitReached { max: max as f64 }, None));
        }
        let prefix: Arc<str> = Arc::from(prefix);
        // longest first: the first match of a key is its longest prefix
        let at = sources.partition_point(|r| r.prefix.len() >= prefix.len());
        sources.insert(at, Registered { prefix: prefix.clone(), source, failures: 0, backoff_until: 0 });
        drop(sources);
        let window = lock(&self.inner.config).1.score_window;
        lock(&self.inner.prefixes)
            .insert(prefix, PrefixState { window: ScoreWindow::new(window), sampled: 0, repaired: 0 });
        Ok(())
    }

    /// Removes a prefix's source and its score; true if it was registered.
    pub fn unregister_source(&self, prefix: &str) -> bool {
        let mut sources = lock(&self.inner.sources);
        let before = sources.len();
        sources.retain(|r| &*r.prefix != prefix);
        let removed = sources.len() != before;
        drop(sources);
        lock(&self.inner.prefixes).remove(prefix);
        removed
    }

    /// The current settings.
    pub fn config(&self) -> HealingConfig {
        lock(&self.inner.config).0.clone()
    }

    /// Replaces every setting at once, validated; nothing changes on error.
    pub fn set_config(&self, config: HealingConfig) -> Result<()> {
        let settings = config.validate()?;
        self.apply(config, settings);
        Ok(())
    }

    /// Sets one setting by its name in the settings table, from text (`config_set("sample_rate", "0.02")`).
    pub fn config_set(&self, name: &str, value: &str) -> Result<()> {
        self.update(|c| c.set_by_name(name, value))
    }

    /// One setting by name, as text.
    pub fn config_get(&self, name: &str) -> Result<String> {
        self.config().get_by_name(name)
    }

    /// Sets one setting by name to a number (flags: 1 or 0); see [`HealingConfig::set`].
    pub fn config_set_number(&self, name: &str, value: f64) -> Result<()> {
        self.update(|c| c.set(name, value))
    }

    /// Applies `change` to a copy of the settings, then the copy as a whole (validated).
    fn update(&self, change: impl FnOnce(&mut HealingConfig) -> Result<()>) -> Result<()> {
        let mut c = self.config();
        change(&mut c)?;
        self.set_config(c)
    }

    /// One setting by name, as a number (flags: 1 or 0).
    pub fn config_get_number(&self, name: &str) -> Result<f64> {
        self.config().get(name)
    }

    fn apply(&self, config: HealingConfig, settings: Settings) {
        #[cfg(feature = "tier")]
        self.push_fleet(&settings);
        // the drift history holds at most `max_drift_events` from now on: trimmed (oldest first)
        // under its lock, which an interval adding events takes before it reads the bound
        let mut drift = lock(&self.inner.drift);
        let old = std::mem::replace(&mut *lock(&self.inner.config), (config, settings)).1;
        trim_oldest(&mut drift, settings.max_drift_events);
        drop(drift);
        if old.score_window != settings.score_window {
            for (_, p) in lock(&self.inner.prefixes).0.iter_mut() {
                p.window = p.window.resized(settings.score_window);
            }
        }
    }

    fn settings(&self) -> Settings {
        lock(&self.inner.config).1
    }

    /// Runs one interval now: sample, verify, repair, score. Concurrent calls do not overlap:
    /// a call while another runs returns at once with `overlapped: true`.
    pub async fn run_interval(&self) -> IntervalReport {
        let inner = &self.inner;
        if inner.running.swap(true, Relaxed) {
            return IntervalReport { overlapped: true, ..Default::default() };
        }
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Relaxed);
            }
        }
        let _done = Done(&inner.running);
        let s = self.settings();
        let start = inner.cache.precise_nanos();
        // Backoff deadlines are set from `now_nanos` (below), so they are compared with it too:
        // a clock's precise reading may count from another origin.
        let began = inner.cache.now_nanos();
        // with a shared tier, L2 entries are verified once per fleet (see `fleet`)
        #[cfg(feature = "tier")]
        let fleet = self.fleet_tier();
        #[cfg(feature = "tier")]
        if let Some(tier) = &fleet {
            self.start_fleet(tier);
            self.mirror_scores(tier).await;
        }
        let live = inner.cache.len();
        let k = ((live as f64 * s.sample_rate).ceil() as usize).min(s.max_samples);
        let sample = inner.cache.sample_keys(k);
        // `max_samples` bounds the whole interval: this L1 sample and the fleet's prefixes
        // together, a share to each in proportion to what it drew
        #[cfg(feature = "tier")]
        let (shared, keep) = match &fleet {
            Some(tier) => {
                let mut shared = self.sample_fleet(tier, s, began).await;
                let n = sample.len() + shared.iter().map(|g| g.2.len()).sum::<usize>();
                let keep = (n > s.max_samples).then(|| {
                    let keep = self.keep_at_most(n, s.max_samples);
                    let mut of_shared = keep[sample.len()..].iter();
                    for g in shared.iter_mut() {
                        g.2.retain(|_| of_shared.next() == Some(&true));
                    }
                    keep
                });
                (shared, keep)
            }
            None => (Vec::new(), None),
        };
        #[cfg(not(feature = "tier"))]
        let keep: Option<Vec<bool>> = None;
        let kept = |i: usize| keep.as_ref().is_none_or(|keep| keep[i]);
        let mut report = IntervalReport::default();
        // group the keys by source (longest prefix), skipping backed-off sources
        let mut groups: Vec<Group<V>> = Vec::new();
        {
            let sources = lock(&inner.sources);
            for key in sample.iter().enumerate().filter(|(i, _)| kept(*i)).map(|(_, key)| key) {
                report.drawn += 1;
                let Some(idx) = sources.iter().position(|r| key.starts_with(&*r.prefix)) else {
                    report.skipped += 1;
                    continue;
                };
                let r = &sources[idx];
                if r.backoff_until > began {
                    report.skipped += 1;
                    continue;
                }
                match groups.iter_mut().find(|g| Arc::ptr_eq(&g.0, &r.prefix)) {
                    Some(g) => g.2.push(key.to_string()),
                    None => groups.push((r.prefix.clone(), r.source.clone(), vec![key.to_string()])),
                }
            }
        }
        // in group order, all at once (as `join_all` of many does; its second way for few
        // futures would add about 4 KB to the WebAssembly module)
        let verified: Vec<_> = groups
            .into_iter()
            .map(|(prefix, source, keys)| {
                let this = self.clone();
                async move {
                    let outcomes: Vec<(String, Outcome<V>)> = stream::iter(keys)
                        .map(|key| {
                            let (this, source) = (this.clone(), source.clone());
                            async move {
                                let o = this.verify(&key, &*source, s).await;
                                (key, o)
                            }
                        })
                        .buffer_unordered(s.concurrency)
                        .collect()
                        .await;
                    (prefix, outcomes)
                }
            })
            .collect::<stream::FuturesOrdered<_>>()
            .collect()
            .await;
        #[cfg(feature = "tier")]
        let verified = match &fleet {
            Some(tier) => {
                let mut all = verified;
                report.drawn += shared.iter().map(|g| g.2.len() as u64).sum::<u64>();
                all.extend(self.verify_fleet(tier, shared, s).await);
                all
            }
            None => verified,
        };
        let now = inner.cache.now_nanos();
        for (prefix, outcomes) in verified {
            let mut failed = 0u32;
            let mut answered = false;
            let mut events = Vec::new();
            // digests are host code (a binding's callback): computed before any lock is taken
            let digest = |v: &Option<V>| {
                v.as_ref().map_or("absent".to_string(), |v| format!("{:08x}", (self.inner.digest)(v) as u32))
            };
            // and the values are dropped here too (dropping a host object may run host code)
            let outcomes: Vec<(String, Outcome<V>, Option<Digests>)> = outcomes
                .into_iter()
                .map(|(key, o)| match o {
                    Outcome::Drift { repaired, old, new } => {
                        let d = (digest(&old), digest(&new));
                        (key, Outcome::Drift { repaired, old: None, new: None }, Some(d))
                    }
                    o => (key, o, None),
                })
                .collect();
            {
                let mut prefixes = lock(&inner.prefixes);
                let Some(p) = prefixes.get_mut(&prefix) else { continue };
                for (key, o, digests) in outcomes {
                    match o {
                        Outcome::Consistent => {
                            answered = true;
                            p.window.push(true);
                            p.sampled += 1;
                            report.consistent += 1;
                        }
                        Outcome::Drift { repaired, .. } => {
                            answered = true;
                            p.window.push(false);
                            p.sampled += 1;
                            p.repaired += u64::from(repaired);
                            report.drift += 1;
                            report.repaired += u64::from(repaired);
                            let (old_digest, new_digest) = digests.unwrap_or_default();
                            events.push(DriftEvent {
                                key,
                                prefix: prefix.to_string(),
                                at_ms: now / 1_000_000,
                                old_digest,
                                new_digest,
                                repaired,
                            });
                        }
                        Outcome::Failed => {
                            failed += 1;
                            report.failures += 1;
                            report.skipped += 1;
                        }
                        Outcome::Skipped => report.skipped += 1,
                    }
                }
            }
            if !events.is_empty() {
                // the bound as it is now, read under the history's lock: a change of settings
                // during the interval trims the history under it too (`apply`)
                let mut d = lock(&inner.drift);
                let max = self.settings().max_drift_events;
                for e in events {
                    d.push_back(e);
                }
                trim_oldest(&mut d, max);
            }
            let mut sources = lock(&inner.sources);
            if let Some(r) = sources.iter_mut().find(|r| Arc::ptr_eq(&r.prefix, &prefix)) {
                if answered {
                    r.failures = 0;
                    r.backoff_until = 0;
                }
                if failed > 0 && !answered {
                    r.failures += 1;
                    if r.failures >= FAILURES_BEFORE_BACKOFF {
                        let steps = (r.failures - FAILURES_BEFORE_BACKOFF).min(5);
                        let intervals = (1u64 << steps).min(MAX_BACKOFF_INTERVALS);
                        r.backoff_until = now.saturating_add(s.interval.as_nanos() as u64 * intervals);
                    }
                }
            }
        }
        #[cfg(feature = "tier")]
        if let Some(tier) = &fleet {
            self.publish_scores(tier).await;
        }
        report.verified = report.consistent + report.drift;
        inner.total_sampled.fetch_add(report.verified, Relaxed);
        inner.total_repaired.fetch_add(report.repaired, Relaxed);
        inner.total_drift.fetch_add(report.drift, Relaxed);
        inner.source_failures.fetch_add(report.failures, Relaxed);
        let took = inner.cache.precise_nanos().saturating_sub(start);
        inner.last_interval_nanos.store(took, Relaxed);
        inner.interval_hist.record(took);
        report.duration_ms = took / 1_000_000;
        report
    }

    /// Asks `source` about `key` within `source_timeout` (when the cache has a timer): its
    /// answer, or the outcome of a check it could not answer (refused: skipped; else failed).
    async fn ask(
        &self,
        key: &str,
        source: &dyn Source<V>,
        s: Settings,
    ) -> std::result::Result<SourceAnswer<V>, Outcome<V>> {
        let fetch = source.fetch(key);
        let answer = match self.inner.cache.timer() {
            Some(timer) => match future::select(fetch, timer.sleep(s.source_timeout)).await {
                Either::Left((a, _)) => a,
                Either::Right(_) => Err(SourceError::Timeout),
            },
            None => fetch.await,
        };
        answer.map_err(|e| match e {
            SourceError::Refused => Outcome::Skipped,
            _ => Outcome::Failed,
        })
    }

    async fn verify(&self, key: &str, source: &dyn Source<V>, s: Settings) -> Outcome<V> {
        let inner = &self.inner;
        let Some((cached, version)) = inner.cache.peek_versioned(key) else { return Outcome::Skipped };
        // with the fleet verifier, an entry L2 holds is its to check; the rest is repaired here
        // only over what L2 held when looked at
        #[cfg(feature = "tier")]
        let Some(seen) = self.l1_only(key).await
        else {
            return Outcome::Skipped;
        };
        let answer = match self.ask(key, source, s).await {
            Ok(a) => a,
            Err(skipped_or_failed) => return skipped_or_failed,
        };
        let (old, new) = match (answer, cached) {
            (SourceAnswer::Value(new), Some(old)) if (inner.compare)(&old, &new) => return Outcome::Consistent,
            (SourceAnswer::NotFound, None) => return Outcome::Consistent,
            (SourceAnswer::Value(new), old) => (old, Some(new)),
            (SourceAnswer::NotFound, old) => (old, None),
        };
        // Fenced on the version read with the sample, and keeping the entry's expiry. An entry
        // written, removed or expired while its source was asked makes the check moot: what the
        // cache holds now was not compared, so it is neither drift nor a sample of the score.
        let repaired = if s.auto_repair {
            #[cfg(feature = "tier")]
            let r = self.repair_local(key, new.clone(), version, seen);
            #[cfg(not(feature = "tier"))]
            let r = match new.clone() {
                Some(v) => inner.cache.repair_if_version(key, v, version).map(drop),
                None => inner.cache.remove_if_version(key, version).map(drop),
            };
            match r {
                Ok(()) => true,
                Err(Error::VersionMismatch { .. }) => return Outcome::Skipped,
                // the source's value cannot be stored (too large, not encodable): drift stays
                Err(_) => false,
            }
        } else if inner.cache.version(key) != version {
            return Outcome::Skipped;
        } else {
            false
        };
        Outcome::Drift { repaired, old, new }
    }

    /// The background loop: an interval every `verify_interval` while enabled, until
    /// [`Healer::stop`] or until the future is dropped. Needs the cache's timer.
    pub async fn run(&self) {
        let Some(timer) = self.inner.cache.timer() else { return };
        while !self.inner.stopped.load(Relaxed) {
            let s = self.settings();
            timer.sleep(s.interval).await;
            if s.enabled && !self.inner.stopped.load(Relaxed) {
                self.run_interval().await;
            }
        }
    }

    /// Ends [`Healer::run`] after its current sleep or interval, for good: from now on the
    /// settings say healing is off, as every host's `close` reports it.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Relaxed);
        // nothing else changes, so nothing is checked again
        let mut c = lock(&self.inner.config);
        c.0.enabled = false;
        c.1.enabled = false;
    }

    /// The score report of one prefix.
    pub fn score(&self, prefix: &str) -> Option<PrefixScore> {
        lock(&self.inner.prefixes).get(prefix).map(|p| PrefixScore {
            prefix: prefix.to_string(),
            score: p.window.score(),
            sampled: p.sampled,
            repaired: p.repaired,
        })
    }

    /// Every prefix's score report, sorted by prefix.
    pub fn scores(&self) -> Vec<PrefixScore> {
        lock(&self.inner.prefixes)
            .0
            .iter()
            .map(|(k, p)| PrefixScore {
                prefix: k.to_string(),
                score: p.window.score(),
                sampled: p.sampled,
                repaired: p.repaired,
            })
            .collect()
    }

    /// Totals.
    pub fn stats(&self) -> HealingStats {
        let scored: Vec<f64> = lock(&self.inner.prefixes)
            .0
            .iter()
            .map(|(_, p)| p)
            .filter(|p| !p.window.is_empty())
            .map(|p| p.window.score())
            .collect();
        let i = &self.inner;
        HealingStats {
            total_sampled: i.total_sampled.load(Relaxed),
            total_repaired: i.total_repaired.load(Relaxed),
            avg_score: if scored.is_empty() { 1.0 } else { scored.iter().sum::<f64>() / scored.len() as f64 },
            source_failures: i.source_failures.load(Relaxed),
            last_interval_ms: i.last_interval_nanos.load(Relaxed) as f64 / 1e6,
            total_drift: i.total_drift.load(Relaxed),
            interval_duration: i.interval_hist.snapshot(),
        }
    }

    /// The most recent drift events, newest last (at most `max_drift_events`).
    pub fn drift_events(&self) -> Vec<DriftEvent> {
        lock(&self.inner.drift).iter().cloned().collect()
    }
}

/// Drops the oldest events until at most `max` are left. One `pop_front` at a time, not
/// `drain`: the same work here, and `drain`'s code would add about 1 KB to the WebAssembly module.
fn trim_oldest<T>(events: &mut std::collections::VecDeque<T>, max: usize) {
    while events.len() > max {
        events.pop_front();
    }
}
