//! Warming and readiness: load a known set of keys before taking traffic, and say when that is
//! done, for a readiness probe.
//!
//! A warm-up is batch reads ([`Cache::fetch_many`]) of `batch` keys, `concurrency` of them at
//! once: every layer applies, so with a shared tier a key L2 holds fresh is taken from there
//! (the source is not asked again, L2 is not written again), and a key another instance is
//! rebuilding is waited for, not loaded twice.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use crate::cache::Cache;
use crate::error::{ConfigProblem, Error, LoaderError, Result};
use crate::fetch::FetchOptions;

/// Options of [`Cache::warm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warm {
    /// Batches loading at once (1 to 1,024); fewer when that many batches would hold more keys
    /// than `max_in_flight` allows loading at once. Defaults to: 8.
    pub concurrency: usize,
    /// Keys per loader call (1 to `max_in_flight`). Defaults to: 100, or `max_in_flight` when
    /// that is lower (`None`).
    pub batch: Option<usize>,
    /// Share of the keys that must be answered (found or known absent) for [`Cache::ready`].
    /// Defaults to: 1.0, every key.
    pub min_share: f64,
    /// Most keys a pattern may match in [`Cache::warm_matching`] (1 to 10,000,000): a pattern
    /// matching more is refused before anything is loaded. Defaults to: 100,000.
    pub max_keys: usize,
}

impl Default for Warm {
    fn default() -> Self {
        Warm { concurrency: 8, batch: None, min_share: 1.0, max_keys: 100_000 }
    }
}

/// What a warm-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmReport {
    /// Keys asked for.
    pub total: u64,
    /// Keys with a value now cached.
    pub found: u64,
    /// Keys the source does not have.
    pub not_found: u64,
    /// Keys whose batch failed.
    pub failed: u64,
    /// The first error, when a batch failed.
    pub error: Option<String>,
}

/// The cache's warm-ups so far: what readiness and progress read.
#[derive(Debug, Default)]
pub(crate) struct Warming {
    running: AtomicUsize,
    total: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    /// `min_share` of the last warm-up started, in millionths.
    min_share_ppm: AtomicU64,
    /// When the last warm-up started and, once it is over, how long it took (nanoseconds).
    started_ns: AtomicU64,
    took_ns: AtomicU64,
}

/// A warm-up under way: when it ends, however it ends, its time is kept and it stops counting.
struct Running<'a, V: Clone + Send + Sync + 'static> {
    cache: &'a Cache<V>,
    started: u64,
}

impl<V: Clone + Send + Sync + 'static> Drop for Running<'_, V> {
    fn drop(&mut self) {
        let w = &self.cache.inner.warming;
        w.took_ns.store(self.cache.precise_nanos().saturating_sub(self.started), Relaxed);
        w.running.fetch_sub(1, Relaxed);
    }
}

/// Most batches a warm-up runs at once.
const MAX_CONCURRENCY: usize = 1024;
/// Keys per batch unless given (or `max_in_flight` when lower).
const DEFAULT_BATCH: usize = 100;
/// Most keys a pattern warm-up may list (they are held in memory while it runs).
pub const MAX_PATTERN_KEYS: usize = 10_000_000;

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// Loads `keys` into the cache, `opts.batch` keys per `loader` call, `opts.concurrency`
    /// calls at once, and returns what it did. The loader gets a batch's keys that no layer
    /// could answer and returns the values it found (see [`Cache::fetch_many`]). Progress is
    /// [`Cache::warm_progress`]; [`Cache::ready`] is false while it runs, and after it only if
    /// fewer than `min_share` of the keys were answered.
    ///
    /// A failed batch does not stop the others: its keys are counted in `failed`. Options out
    /// of bounds are refused with [`Error::InvalidConfig`] before anything is loaded.
    ///
    /// ```
    /// use healcache::{Cache, Warm};
    /// use std::collections::HashMap;
    /// # futures::executor::block_on(async {
    /// let cache = Cache::<u64>::builder().build().unwrap();
    /// let keys: Vec<String> = (0..250).map(|i| format!("user:{i}")).collect();
    /// let load = |keys: Vec<String>| async move {
    ///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| { let v = k[5..].parse().unwrap(); (k, v) }).collect::<HashMap<_, _>>())
    /// };
    /// let report = cache.warm(&keys, Warm::default(), load).await.unwrap();
    /// assert_eq!((report.total, report.found), (250, 250));
    /// assert!(cache.ready());
    /// assert_eq!(cache.get("user:7"), Some(7));
    /// # });
    /// ```
    pub async fn warm<K, F, Fut, E>(&self, keys: &[K], opts: Warm, loader: F) -> Result<WarmReport>
    where
        K: AsRef<str>,
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<HashMap<String, V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        let batch = self.check_warm_keys(keys, &opts)?;
        // a warm-up alone never loads more keys at once than the cache's bound allows
        let concurrency = opts.concurrency.min((self.inner.settings.max_in_flight / batch).max(1));
        let w = &self.inner.warming;
        w.running.fetch_add(1, Relaxed);
        w.started_ns.store(self.precise_nanos(), Relaxed);
        // a warm-up dropped half-way (its task cancelled) is over too
        let _running = Running { cache: self, started: self.precise_nanos() };
        w.total.fetch_add(keys.len() as u64, Relaxed);
        w.min_share_ppm.store((opts.min_share * 1e6) as u64, Relaxed);
        // the loader is shared by every batch
        let loader = Arc::new(loader);
        let mut report = WarmReport { total: keys.len() as u64, ..WarmReport::default() };
        // the batches' futures made up front (they start when polled): a stream holding the
        // closure that makes them would not be `Send` for every lifetime of its argument
        let mut pending = Vec::with_capacity(keys.len().div_ceil(batch));
        for chunk in keys.chunks(batch) {
            let loader = Arc::clone(&loader);
            let chunk: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
            pending.push(async move {
                let answer = self.fetch_many(&chunk, FetchOptions::default(), move |k| loader(k)).await;
                (chunk.len() as u64, answer)
            });
        }
        let mut batches = stream::iter(pending).buffer_unordered(concurrency);
        while let Some((n, answer)) = batches.next().await {
            match answer {
                Ok(fetched) => {
                    let found = fetched.iter().filter(|f| f.value.is_some()).count() as u64;
                    report.found += found;
                    report.not_found += fetched.len() as u64 - found;
                    w.answered.fetch_add(n, Relaxed);
                }
                Err(e) => {
                    report.failed += n;
                    report.error.get_or_insert_with(|| e.to_string());
                    w.failed.fetch_add(n, Relaxed);
                }
            }
        }
        Ok(report)
    }

    /// Keys of the warm-ups so far: (answered, failed, total).
    pub fn warm_progress(&self) -> (u64, u64, u64) {
        let w = &self.inner.warming;
        (w.answered.load(Relaxed), w.failed.load(Relaxed), w.total.load(Relaxed))
    }

    /// Whether the cache is ready for traffic, for a readiness probe: no warm-up running, at
    /// least the last warm-up's `min_share` of the keys answered, and, with a shared tier, L2
    /// answering (the breaker closed) unless the `allow_degraded` setting is on. True for a
    /// cache never warmed: start the warm-up before the probe is first asked.
    pub fn ready(&self) -> bool {
        let w = &self.inner.warming;
        if w.running.load(Relaxed) > 0 {
            return false;
        }
        let total = w.total.load(Relaxed);
        let answered = w.answered.load(Relaxed);
        if total > 0 && (answered as f64) < (w.min_share_ppm.load(Relaxed) as f64 / 1e6) * total as f64 {
            return false;
        }
        self.inner.settings.allow_degraded || self.inner.tier().is_none_or(|t| t.available())
    }

    /// Refuses what [`Cache::warm`] and [`Cache::warm_matching`] would refuse of `opts` before any
    /// work (for a host whose call hands back an awaitable: when called, not when awaited);
    /// returns the keys per batch.
    pub fn check_warm(&self, opts: &Warm) -> Result<usize> {
        let max_batch = self.inner.settings.max_in_flight;
        if opts.concurrency == 0 || opts.concurrency > MAX_CONCURRENCY {
            let problem = ConfigProblem::OutOfRange { min: 1.0, max: MAX_CONCURRENCY as f64 };
            return Err(Error::invalid_config("concurrency", problem, Some(opts.concurrency as f64)));
        }
        let batch = opts.batch.unwrap_or(DEFAULT_BATCH.min(max_batch));
        if batch == 0 || batch > max_batch {
            let problem = ConfigProblem::OutOfRange { min: 1.0, max: max_batch as f64 };
            return Err(Error::invalid_config("batch", problem, Some(batch as f64)));
        }
        if !(0.0..=1.0).contains(&opts.min_share) {
            let problem = ConfigProblem::OutOfRange { min: 0.0, max: 1.0 };
            return Err(Error::invalid_config("min_share", problem, Some(opts.min_share)));
        }
        if opts.max_keys == 0 || opts.max_keys > MAX_PATTERN_KEYS {
            let problem = ConfigProblem::OutOfRange { min: 1.0, max: MAX_PATTERN_KEYS as f64 };
            return Err(Error::invalid_config("max_keys", problem, Some(opts.max_keys as f64)));
        }
        Ok(batch)
    }

    /// Warms the keys the shared tier holds whose cache key matches the glob `pattern` (`*`, `?`,
    /// `[...]`; `\\` escapes a metacharacter), as a new instance does before it takes traffic:
    /// the keys are listed with SCAN (never KEYS), then warmed as [`Cache::warm`] does, so a key
    /// L2 holds fresh is copied into L1 without a loader call, and the loader gets only the keys
    /// whose L2 copy expired. Needs a shared tier ([`Error::InvalidConfig`] without one);
    /// [`Error::L2Unavailable`] when it cannot be listed; a pattern matching more than
    /// `opts.max_keys` keys is refused ([`Error::InvalidConfig`] on `max_keys`) with nothing loaded.
    pub async fn warm_matching<F, Fut, E>(&self, pattern: &str, opts: Warm, loader: F) -> Result<WarmReport>
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<HashMap<String, V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        self.check_warm_matching(&opts)?;
        #[cfg(feature = "tier")]
        if let Some(tier) = self.inner.tier() {
            let listed = tier.keys_matching(pattern, opts.max_keys).await;
            let keys = listed.map_err(|e| Error::L2Unavailable { reason: e.to_string() })?;
            let Some(keys) = keys else {
                let problem = ConfigProblem::Rule("is below the number of keys the pattern matches");
                return Err(Error::invalid_config("max_keys", problem, Some(opts.max_keys as f64)));
            };
            return self.warm(&keys, opts, loader).await;
        }
        let _ = (pattern, loader);
        Err(no_tier_to_list())
    }

    /// What [`Cache::warm`] refuses before it loads anything (its options, a key over
    /// `max_key_len`), checked without loading; answers the batch size. A host whose call
    /// returns a future checks with it when called, not when awaited.
    pub fn check_warm_keys<K: AsRef<str>>(&self, keys: &[K], opts: &Warm) -> Result<usize> {
        let batch = self.check_warm(opts)?;
        for k in keys {
            self.inner.store.check_key(k.as_ref())?;
        }
        Ok(batch)
    }

    /// What [`Cache::warm_matching`] refuses before it lists anything: its options, and a cache
    /// without a shared tier to list the keys from.
    pub fn check_warm_matching(&self, opts: &Warm) -> Result<()> {
        self.check_warm(opts)?;
        if self.inner.tier().is_none() {
            return Err(no_tier_to_list());
        }
        Ok(())
    }
}

/// A pattern given to a cache with no shared tier to list its keys from.
fn no_tier_to_list() -> Error {
    Error::invalid_config("pattern", ConfigProblem::Needs("a shared tier to list the keys from"), None)
}

#[cfg(feature = "tier")]
impl Warming {
    /// The warm-up families of the Prometheus text, labelled `cache="<name>"` (already escaped).
    pub(crate) fn prometheus(&self, out: &mut String, name: &str, ready: bool, now_ns: u64) {
        use std::fmt::Write;
        let running = self.running.load(Relaxed);
        let took =
            if running > 0 { now_ns.saturating_sub(self.started_ns.load(Relaxed)) } else { self.took_ns.load(Relaxed) };
        let _ = write!(
            out,
            "# HELP healcache_warm_keys_total Keys of warm-ups, by outcome.\n# TYPE healcache_warm_keys_total counter\n\
             healcache_warm_keys_total{{cache=\"{name}\",outcome=\"answered\"}} {}\n\
             healcache_warm_keys_total{{cache=\"{name}\",outcome=\"failed\"}} {}\n\
             # HELP healcache_warm_seconds How long the last warm-up took (so far, while it runs).\n\
             # TYPE healcache_warm_seconds gauge\nhealcache_warm_seconds{{cache=\"{name}\"}} {}\n\
             # HELP healcache_warm_running Warm-ups under way.\n# TYPE healcache_warm_running gauge\n\
             healcache_warm_running{{cache=\"{name}\"}} {running}\n\
             # HELP healcache_ready Whether the cache is ready for traffic (1) or not (0).\n\
             # TYPE healcache_ready gauge\nhealcache_ready{{cache=\"{name}\"}} {}\n",
            self.answered.load(Relaxed),
            self.failed.load(Relaxed),
            took as f64 / 1e9,
            u8::from(ready),
        );
    }
}
