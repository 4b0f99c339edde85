//! [`Cache`]: the store plus coalesced loading, behind one cheap-to-clone handle.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{self, Either, FutureExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::{CacheBuilder, Config, Settings, Weigher};
use crate::error::{ConfigProblem, Error, LoaderError, Result};
use crate::flight::{self, Flights, LoadFuture, Tracked};
use crate::metrics::{HistogramSnapshot, StampedeCounters};
use crate::sampler::KeySample;
use crate::settings::Unit;
use crate::store::{Entry, Expect, Lookup, Meta, Read, RemovalCause, Removed, Store, StoreStats, NEVER};
use crate::sync::{lock, Mutex};
use crate::xfetch;
use crate::{Spawner, Timer};

/// Called with each entry that leaves the cache, after the cache's locks are released.
pub type RemovalListener<V> = Arc<dyn Fn(Arc<str>, V, RemovalCause) + Send + Sync>;

/// How long a written entry lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ttl {
    /// The cache's `ttl_ms` (no expiry if it has none).
    #[default]
    Default,
    /// Never expires.
    Never,
    /// Expires after this long.
    For(Duration),
}

/// Options of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// The entry's lifetime. Defaults to: the cache's TTL.
    pub ttl: Ttl,
    /// Write only if the live entry has this version (0: only if absent). Defaults to: always write.
    pub if_version: Option<u64>,
}

/// What a loader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded<V> {
    /// The value.
    Value(V),
    /// The key does not exist at the source; cached for `negative_ttl_ms` when that is set.
    NotFound,
}

/// Per-call overrides of [`Cache::fetch`]; `None` fields take the cache's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FetchOptions {
    /// TTL of a loaded value. Defaults to: the cache's TTL.
    pub ttl: Ttl,
    /// TTL of a "not found" answer. Defaults to: the cache's `negative_ttl_ms`.
    pub negative_ttl: Option<Duration>,
    /// Serve a stale value at once while refreshing. Defaults to: `stale_while_revalidate`.
    pub stale_while_revalidate: Option<bool>,
    /// XFetch early refresh on this read. Defaults to: `xfetch`.
    pub xfetch: Option<bool>,
    /// Soft timeout of this load. Defaults to: `load_soft_timeout_ms`.
    pub soft_timeout: Option<Duration>,
}

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
        }
    }
}

/// The answer of [`Cache::fetch`]: the value (`None`: not found) and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched<V> {
    /// The value, or `None` when the key does not exist at the source.
    pub value: Option<V>,
    /// What the call did.
    pub status: Status,
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
    /// Loads that hit `load_timeout_ms`.
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
}

impl Stats {
    /// Every counter with its field name, in declaration order (the load-latency histogram aside):
    /// the one list bindings walk instead of naming each field again.
    pub fn counters(&self) -> [(&'static str, u64); 24] {
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
        ]
    }
}

struct Inner<V> {
    store: Store<Option<V>>,
    flights: Flights<Option<V>>,
    settings: Settings,
    config: Config,
    weigher: Option<Weigher<V>>,
    listener: Option<RemovalListener<V>>,
    timer: Option<Arc<dyn Timer>>,
    spawner: Option<Arc<dyn Spawner>>,
    rng: Mutex<SmallRng>,
    draws: AtomicU64,
    seed: u64,
    counters: StampedeCounters,
}

/// A bounded, concurrent cache from string keys to values of type `V`.
///
/// Cloning a `Cache` is cheap and gives another handle to the same cache.
///
/// ```
/// use healcache::Cache;
///
/// let cache = Cache::<u64>::builder().max_entries(1000).build().unwrap();
/// let v1 = cache.set("a", 1).unwrap();
/// assert_eq!(cache.get("a"), Some(1));
/// // compare-and-set on the version returned by the write
/// let v2 = cache.set_if_version("a", 2, v1).unwrap();
/// assert!(v2 > v1);
/// assert_eq!(cache.set_if_version("a", 3, v1).unwrap_err().code(), "VersionMismatch");
/// assert_eq!(cache.get("a"), Some(2));
/// ```
pub struct Cache<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for Cache<V> {
    fn clone(&self) -> Self {
        Cache { inner: Arc::clone(&self.inner) }
    }
}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl<V: Clone + Send + Sync + 'static> CacheBuilder<V> {
    /// Validates every setting and builds the cache.
    pub fn build(mut self) -> Result<Cache<V>> {
        let settings = self.config.validate()?;
        if settings.load_timeout.is_some() && self.timer.is_none() {
            return Err(Error::invalid_config(
                "load_timeout",
                ConfigProblem::Needs("a timer (CacheBuilder::timer)"),
                None,
            ));
        }
        if settings.soft_timeout.is_some() && (self.timer.is_none() || self.spawner.is_none()) {
            return Err(Error::invalid_config(
                "load_soft_timeout",
                ConfigProblem::Needs("a timer and a spawner"),
                None,
            ));
        }
        for (on, field) in [
            (settings.stale_while_revalidate, "stale_while_revalidate"),
            (settings.xfetch_beta.is_some(), "xfetch"),
            (settings.refresh_after.is_some(), "refresh_after"),
        ] {
            if on && self.spawner.is_none() {
                let problem = ConfigProblem::Needs("a spawner (CacheBuilder::spawner) for background refreshes");
                return Err(Error::invalid_config(field, problem, None));
            }
        }
        let clock = self.take_clock();
        let store = Store::new(
            settings.shards,
            settings.max_entries,
            settings.max_bytes,
            settings.max_key_len,
            settings.max_entry_bytes,
            settings.seed,
            clock,
        );
        Ok(Cache {
            inner: Arc::new(Inner {
                store,
                flights: Flights::new(settings.max_in_flight, settings.seed),
                rng: Mutex::new(SmallRng::seed_from_u64(settings.seed ^ 0x5eed_5a3b_1e00_0001)),
                draws: AtomicU64::new(0),
                seed: settings.seed,
                settings,
                config: self.config,
                weigher: self.weigher,
                listener: self.listener,
                timer: self.timer,
                spawner: self.spawner,
                counters: StampedeCounters::default(),
            }),
        })
    }

    /// Called with each entry that leaves the cache (evicted, expired, replaced, removed),
    /// after the cache's locks are released. Defaults to: none.
    pub fn on_removal(mut self, f: impl Fn(Arc<str>, V, RemovalCause) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(f));
        self
    }
}

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// A builder with default settings.
    pub fn builder() -> CacheBuilder<V> {
        CacheBuilder::new()
    }

    /// A cache from a [`Config`], validated.
    pub fn from_config(config: Config) -> Result<Self> {
        CacheBuilder::from_config(config).build()
    }

    /// The configuration the cache was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn done(&self, removed: Removed<Option<V>>) {
        if removed.is_empty() {
            return;
        }
        for (k, v, cause) in removed {
            match v {
                Some(v) => {
                    if let Some(l) = &self.inner.listener {
                        l(Arc::from(k.as_str()), v, cause);
                    }
                }
                None => {
                    self.inner.counters.negative_entries.fetch_sub(1, Relaxed);
                }
            }
        }
    }

    fn weigh(&self, value: &Option<V>) -> u64 {
        match (value, &self.inner.weigher) {
            (None, _) => 0,
            (Some(v), Some(w)) => w(v),
            (Some(_), None) => std::mem::size_of::<V>() as u64,
        }
    }

    /// A uniform variate in (0, 1] from the cache's seeded stream, without a lock.
    fn unit(&self) -> f64 {
        xfetch::unit(xfetch::splitmix64(self.inner.seed ^ self.inner.draws.fetch_add(1, Relaxed)))
    }

    fn meta(&self, ttl: Ttl, load_nanos: u64) -> Meta {
        let s = &self.inner.settings;
        let ttl = match ttl {
            Ttl::Default => s.ttl,
            Ttl::Never => None,
            Ttl::For(d) => Some(d),
        };
        let Some(ttl) = ttl else {
            return Meta { expires_at: NEVER, grace_until: NEVER, load_nanos };
        };
        let mut nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        if s.ttl_jitter > 0.0 {
            nanos = nanos.saturating_add((nanos as f64 * s.ttl_jitter * (1.0 - self.unit())) as u64);
        }
        let expires_at = self.inner.store.now().saturating_add(nanos).min(NEVER - 1);
        let grace = s.grace.map_or(0, |g| u64::try_from(g.as_nanos()).unwrap_or(u64::MAX));
        Meta { expires_at, grace_until: expires_at.saturating_add(grace).min(NEVER - 1), load_nanos }
    }

    /// The fresh value of `key` (`None` also for a cached "not found").
    #[inline]
    pub fn get(&self, key: &str) -> Option<V> {
        match self.inner.store.get_with(key, |s| s.value.clone()) {
            Read::Hit(Some(v)) => Some(v),
            Read::Hit(None) => {
                self.inner.counters.negative_hits.fetch_add(1, Relaxed);
                None
            }
            Read::Miss => None,
            Read::Gone(version) => {
                self.expire(key, version);
                None
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn expire(&self, key: &str, version: u64) {
        let mut removed = Vec::new();
        self.inner.store.remove_gone(key, version, &mut removed);
        self.done(removed);
    }

    /// The fresh entry of `key` with its version and remaining TTL (counts as a read).
    pub fn get_entry(&self, key: &str) -> Option<Entry<V>> {
        let store = &self.inner.store;
        match store.get_with(key, |s| {
            let expires_in =
                (s.expires_at != NEVER).then(|| Duration::from_nanos(s.expires_at.saturating_sub(store.now())));
            s.value.clone().map(|value| Entry { value, version: s.version, expires_in })
        }) {
            Read::Hit(e) => e,
            Read::Miss => None,
            Read::Gone(version) => {
                self.expire(key, version);
                None
            }
        }
    }

    /// Whether `key` has a fresh value (not counted as a read).
    pub fn contains(&self, key: &str) -> bool {
        self.inner.store.peek_with(key, |s, _| s.value.is_some()).unwrap_or(false)
    }

    /// The fresh entry of `key` as stored (a `None` value is a cached "not found") with its
    /// version, without counting a read or touching its access counter.
    pub fn peek_versioned(&self, key: &str) -> Option<(Option<V>, u64)> {
        self.inner.store.peek_with(key, |s, _| (s.value.clone(), s.version))
    }

    pub(crate) fn now_nanos(&self) -> u64 {
        self.inner.store.now()
    }

    /// The clock at full resolution, for timing durations.
    pub(crate) fn precise_nanos(&self) -> u64 {
        self.inner.store.precise_now()
    }

    pub(crate) fn timer(&self) -> Option<Arc<dyn Timer>> {
        self.inner.timer.clone()
    }

    /// The version of `key`'s fresh entry (a cached "not found" included), 0 if it has none.
    pub fn version(&self, key: &str) -> u64 {
        self.inner.store.version(key)
    }

    /// Writes `value` with the cache's default TTL; returns the entry's new version.
    pub fn set(&self, key: &str, value: V) -> Result<u64> {
        self.write(key, value, WriteOptions::default())
    }

    /// Writes `value` with its own TTL (`None`: never expires); returns the new version.
    pub fn set_with_ttl(&self, key: &str, value: V, ttl: Option<Duration>) -> Result<u64> {
        let ttl = ttl.map_or(Ttl::Never, Ttl::For);
        self.write(key, value, WriteOptions { ttl, if_version: None })
    }

    /// Writes `value` only if `key`'s live version is `expected` (0: only if absent).
    /// Fails with [`Error::VersionMismatch`], changing nothing, otherwise.
    pub fn set_if_version(&self, key: &str, value: V, expected: u64) -> Result<u64> {
        self.write(key, value, WriteOptions { ttl: Ttl::Default, if_version: Some(expected) })
    }

    /// Writes with explicit [`WriteOptions`]; returns the new version.
    pub fn write(&self, key: &str, value: V, opts: WriteOptions) -> Result<u64> {
        self.write_raw(key, Some(value), opts.ttl, opts.if_version.map(Expect::Live), 0)
    }

    fn write_raw(
        &self,
        key: &str,
        value: Option<V>,
        ttl: Ttl,
        if_version: Option<Expect>,
        load_nanos: u64,
    ) -> Result<u64> {
        if let Ttl::For(d) = ttl {
            if d.is_zero() {
                return Err(Error::InvalidConfig {
                    field: "ttl",
                    problem: ConfigProblem::NotPositive,
                    value: Some(0.0),
                    unit: Unit::Duration,
                });
            }
        }
        self.inner.store.check_key(key)?;
        let negative = value.is_none();
        let weight = self.weigh(&value);
        let meta = self.meta(ttl, load_nanos);
        let mut removed = Vec::new();
        let r = self.inner.store.write(key, value, weight, meta, if_version, &mut removed);
        if negative && r.is_ok() {
            self.inner.counters.negative_entries.fetch_add(1, Relaxed);
        }
        self.done(removed);
        r
    }

    /// Removes `key`; returns its value if it was fresh.
    pub fn remove(&self, key: &str) -> Option<V> {
        let mut removed = Vec::new();
        let live = self.inner.store.remove_where(key, &mut removed, RemovalCause::Explicit, |_| true);
        let v = match live {
            Some(true) => removed.last().and_then(|(_, v, _)| v.clone()),
            _ => None,
        };
        self.done(removed);
        v
    }

    /// Removes `key` only if its live version is `expected`; fails with
    /// [`Error::VersionMismatch`], changing nothing, otherwise.
    pub fn remove_if_version(&self, key: &str, expected: u64) -> Result<()> {
        let mut removed = Vec::new();
        let mut current = 0;
        let now = self.inner.store.now();
        let r = self.inner.store.remove_where(key, &mut removed, RemovalCause::Explicit, |s| {
            current = if s.expires_at > now { s.version } else { 0 };
            current == expected
        });
        self.done(removed);
        match r {
            Some(_) => Ok(()),
            None => Err(Error::VersionMismatch { expected, current }),
        }
    }

    /// Number of stored entries (expired entries not yet swept included; see [`Cache::purge_expired`]).
    pub fn len(&self) -> usize {
        self.inner.store.len()
    }

    /// Whether the cache stores no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let mut removed = Vec::new();
        self.inner.store.clear(&mut removed);
        self.done(removed);
    }

    /// Removes every entry past its TTL and grace window now; returns how many.
    pub fn purge_expired(&self) -> usize {
        let mut removed = Vec::new();
        let n = self.inner.store.purge_expired(&mut removed);
        self.done(removed);
        n
    }

    /// Up to `k` live keys drawn uniformly at random without replacement, in O(k).
    pub fn sample_keys(&self, k: usize) -> KeySample {
        let mut rng = lock(&self.inner.rng);
        self.inner.store.sample_keys(k, &mut rng)
    }

    /// A random `u64` from the cache's seeded generator.
    pub fn random_u64(&self) -> u64 {
        lock(&self.inner.rng).random()
    }

    /// Loads under way now (`stats().in_flight`, without summing every shard's counters).
    pub fn in_flight(&self) -> usize {
        self.inner.flights.in_flight()
    }

    /// Every counter.
    pub fn stats(&self) -> Stats {
        let StoreStats { hits, misses, inserts, updates, evictions, expirations, entries, weight } =
            self.inner.store.stats();
        let c = &self.inner.flights.counters;
        let s = &self.inner.counters;
        let negative_hits = s.negative_hits.load(Relaxed);
        Stats {
            hits: hits.saturating_sub(negative_hits),
            misses,
            inserts,
            updates,
            evictions,
            expirations,
            entries,
            weight,
            loads: c.loads.load(Relaxed),
            coalesced: c.coalesced.load(Relaxed),
            load_errors: c.load_errors.load(Relaxed),
            load_panics: c.load_panics.load(Relaxed),
            load_timeouts: c.load_timeouts.load(Relaxed),
            fenced_writes: s.fenced_writes.load(Relaxed),
            oversize_rejections: s.oversize_rejections.load(Relaxed),
            in_flight: self.inner.flights.in_flight() as u64,
            stale_served_swr: s.stale_swr.load(Relaxed),
            stale_served_fail_safe: s.stale_fail_safe.load(Relaxed),
            stale_served_soft_timeout: s.stale_soft_timeout.load(Relaxed),
            early_refreshes: s.early_refreshes.load(Relaxed),
            refresh_ahead: s.refresh_ahead.load(Relaxed),
            negative_hits,
            negative_entries: s.negative_entries.load(Relaxed),
            negative_refused: s.negative_refused.load(Relaxed),
            load_latency: s.load_latency.snapshot(),
        }
    }

    /// Every counter in the Prometheus text exposition format, labelled `cache="<name>"`.
    pub fn prometheus(&self, name: &str) -> String {
        crate::metrics::prometheus_text(&self.stats(), name)
    }

    /// Returns `key`'s fresh value, or loads it with `loader`: concurrent callers for the same key
    /// share one loader call and its result (value or error). The loader's future is owned by the
    /// flight, not by this caller: dropping this future leaves the others waiting unharmed. The
    /// value is stored fenced: if `key` was written while it loaded, the newer write is kept.
    /// With a grace window, a stale value is served when the load fails (fail-safe).
    ///
    /// ```
    /// use healcache::Cache;
    /// # futures::executor::block_on(async {
    /// let cache = Cache::<String>::builder().build().unwrap();
    /// let v = cache
    ///     .get_or_load("user:1", || async { Ok::<_, std::io::Error>("Ada".to_string()) })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(v, "Ada");
    /// assert_eq!(cache.stats().loads, 1);
    /// # });
    /// ```
    pub fn get_or_load<F, Fut, E>(&self, key: &str, loader: F) -> impl Future<Output = Result<V>> + Send + '_
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        // Fast path: a fresh value, when no refresh layer needs to see the read, is returned
        // without building the load machinery.
        let s = &self.inner.settings;
        if s.xfetch_beta.is_none() && s.refresh_after.is_none() {
            if let Some(v) = self.inner.store.try_hit(key, |slot| slot.value.clone()) {
                return Either::Left(future::ready(Ok(v)));
            }
        }
        let key = key.to_owned();
        Either::Right(async move {
            let f = self.fetch(&key, FetchOptions::default(), move || loader().map(|r| r.map(Loaded::Value))).await?;
            f.value.ok_or(Error::NotFound)
        })
    }

    /// The full read-through call: [`Cache::get_or_load`] plus "not found" answers (negative
    /// caching), per-call options, and the [`Status`] of what happened. Every stampede layer the
    /// cache is configured with applies: stale-while-revalidate, fail-safe and soft timeout within
    /// the grace window, XFetch early refresh, refresh-ahead, TTL jitter.
    ///
    /// ```
    /// use healcache::{Cache, FetchOptions, Loaded, Status};
    /// use std::time::Duration;
    /// # futures::executor::block_on(async {
    /// let cache = Cache::<String>::builder().negative_ttl(Duration::from_secs(5)).build().unwrap();
    /// let missing = || async { Ok::<_, std::io::Error>(Loaded::NotFound) };
    /// let f = cache.fetch("user:404", FetchOptions::default(), missing).await.unwrap();
    /// assert_eq!((f.value, f.status), (None, Status::NegativeLoaded));
    /// let f = cache.fetch("user:404", FetchOptions::default(), missing).await.unwrap();
    /// assert_eq!(f.status, Status::NegativeHit);
    /// # });
    /// ```
    pub async fn fetch<F, Fut, E>(&self, key: &str, opts: FetchOptions, loader: F) -> Result<Fetched<V>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Loaded<V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        let inner = &self.inner;
        let s = &inner.settings;
        inner.store.check_key(key)?;
        let mut removed = Vec::new();
        let look = inner.store.lookup(key, &mut removed);
        self.done(removed);
        let stale = match look {
            Lookup::Fresh(raw) => {
                let Some(value) = raw.value else {
                    inner.counters.negative_hits.fetch_add(1, Relaxed);
                    return Ok(Fetched { value: None, status: Status::NegativeHit });
                };
                let mut status = Status::Hit;
                if s.refresh_after.is_some() || s.xfetch_beta.is_some() {
                    let now = inner.store.now();
                    if let Some(ra) = s.refresh_after {
                        if now.saturating_sub(raw.written_at) >= ra.as_nanos() as u64 {
                            status = Status::RefreshAhead;
                        }
                    }
                    if let (Status::Hit, Some(beta), true) = (status, s.xfetch_beta, opts.xfetch.unwrap_or(true)) {
                        if xfetch::should_refresh(now, raw.expires_at, raw.load_nanos, beta, self.unit()) {
                            status = Status::EarlyRefresh;
                        }
                    }
                    if status != Status::Hit {
                        if self.refresh_in_background(key, opts, loader) {
                            let c = if status == Status::EarlyRefresh {
                                &inner.counters.early_refreshes
                            } else {
                                &inner.counters.refresh_ahead
                            };
                            c.fetch_add(1, Relaxed);
                        } else {
                            status = Status::Hit;
                        }
                    }
                }
                return Ok(Fetched { value: Some(value), status });
            }
            // a stale "not found" is served like a stale value
            Lookup::Stale(raw) => Some(raw.value),
            Lookup::Absent => None,
        };
        if let Some(stale) = &stale {
            if opts.stale_while_revalidate.unwrap_or(s.stale_while_revalidate) && inner.spawner.is_some() {
                self.refresh_in_background(key, opts, loader);
                inner.counters.stale_swr.fetch_add(1, Relaxed);
                return Ok(Fetched { value: stale.clone(), status: Status::Stale });
            }
        }
        let joined = match inner.flights.join_or_start(
            key,
            || inner.store.peek_with(key, |s, _| s.value.clone()),
            |id| self.load_future(Arc::from(key), id, inner.store.stored_version(key), opts, loader),
        )? {
            Err(v) => {
                let status = if v.is_some() { Status::Hit } else { Status::NegativeHit };
                return Ok(Fetched { value: v, status });
            }
            Ok(j) => j,
        };
        let started = joined.started;
        let soft = opts.soft_timeout.or(s.soft_timeout);
        let result = match (&stale, soft, &inner.timer, &inner.spawner) {
            (Some(stale), Some(t), Some(timer), Some(spawner)) => {
                let keep = joined.load.clone();
                match future::select(Box::pin(flight::wait(joined)), timer.sleep(t)).await {
                    Either::Left((r, _)) => r,
                    Either::Right(_) => {
                        // The load goes on in the background and stores its value when done.
                        spawner.spawn(
                            async move {
                                let _ = keep.await;
                            }
                            .boxed(),
                        );
                        inner.counters.stale_soft_timeout.fetch_add(1, Relaxed);
                        return Ok(Fetched { value: stale.clone(), status: Status::StaleSoftTimeout });
                    }
                }
            }
            _ => flight::wait(joined).await,
        };
        match result {
            Ok(Some(v)) => {
                Ok(Fetched { value: Some(v), status: if started { Status::Loaded } else { Status::Coalesced } })
            }
            Ok(None) => Ok(Fetched { value: None, status: Status::NegativeLoaded }),
            Err(e @ (Error::RecursiveLoad | Error::KeyTooLong { .. })) => Err(e),
            Err(e) => match stale {
                Some(stale) => {
                    inner.counters.stale_fail_safe.fetch_add(1, Relaxed);
                    Ok(Fetched { value: stale, status: Status::StaleFailSafe })
                }
                None => Err(e),
            },
        }
    }

    /// Starts a background refresh of `key` unless one is under way; true if it started.
    fn refresh_in_background<F, Fut, E>(&self, key: &str, opts: FetchOptions, loader: F) -> bool
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Loaded<V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        let inner = &self.inner;
        let Some(spawner) = &inner.spawner else { return false };
        let joined = inner.flights.join_or_start(
            key,
            || None,
            |id| self.load_future(Arc::from(key), id, inner.store.stored_version(key), opts, loader),
        );
        match joined {
            Ok(Ok(j)) if j.started => {
                let load = j.load;
                spawner.spawn(
                    async move {
                        let _ = load.await;
                    }
                    .boxed(),
                );
                true
            }
            _ => false,
        }
    }

    /// The blocking twin of [`Cache::get_or_load`] for threaded code (native only). It shares
    /// flights with the async variant. Waits at most `load_timeout_ms` when that is set; a thread
    /// running a synchronous loader itself cannot be interrupted and returns when it finishes.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn get_or_load_blocking<F, E>(&self, key: &str, loader: F) -> Result<V>
    where
        F: FnOnce() -> std::result::Result<V, E> + Send + 'static,
        E: Into<LoaderError>,
    {
        self.get_or_load_blocking_with(key, FetchOptions::default(), loader)
    }

    /// [`Cache::get_or_load_blocking`] with per-call [`FetchOptions`] (e.g. the loaded value's
    /// TTL), as [`Cache::fetch`] takes them: the threaded twin of a `fetch` that returns a value.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn get_or_load_blocking_with<F, E>(&self, key: &str, opts: FetchOptions, loader: F) -> Result<V>
    where
        F: FnOnce() -> std::result::Result<V, E> + Send + 'static,
        E: Into<LoaderError>,
    {
        let inner = &self.inner;
        inner.store.check_key(key)?;
        let mut removed = Vec::new();
        let look = inner.store.lookup(key, &mut removed);
        self.done(removed);
        let stale = match look {
            Lookup::Fresh(raw) => return raw.value.ok_or(Error::NotFound),
            Lookup::Stale(raw) => Some(raw.value),
            Lookup::Absent => None,
        };
        let loader = move || future::lazy(move |_| loader().map(Loaded::Value));
        let joined = match inner.flights.join_or_start(
            key,
            || inner.store.peek_with(key, |s, _| s.value.clone()),
            |id| self.load_future(Arc::from(key), id, inner.store.stored_version(key), opts, loader),
        )? {
            Err(v) => return v.ok_or(Error::NotFound),
            Ok(j) => j,
        };
        match flight::wait_blocking(joined, inner.settings.load_timeout) {
            Ok(v) => v.ok_or(Error::NotFound),
            Err(e @ (Error::RecursiveLoad | Error::KeyTooLong { .. })) => Err(e),
            // fail-safe, as in `fetch`: within grace a failed load serves the stale value
            Err(e) => match stale {
                Some(v) => {
                    inner.counters.stale_fail_safe.fetch_add(1, Relaxed);
                    v.ok_or(Error::NotFound)
                }
                None => Err(e),
            },
        }
    }

    fn load_future<F, Fut, E>(
        &self,
        key: Arc<str>,
        id: u64,
        fence: u64,
        opts: FetchOptions,
        loader: F,
    ) -> LoadFuture<Option<V>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Loaded<V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        let cache = self.clone();
        async move {
            // Removes the table entry however the flight ends: done, or dropped by its last waiter.
            struct Finish<V: Clone + Send + Sync + 'static>(Cache<V>, Arc<str>, u64);
            impl<V: Clone + Send + Sync + 'static> Drop for Finish<V> {
                fn drop(&mut self) {
                    self.0.inner.flights.finish(&self.1, self.2);
                }
            }
            let _finish = Finish(cache.clone(), key.clone(), id);
            let inner = &cache.inner;
            let counters = &inner.flights.counters;
            let started = inner.store.precise_now();
            let load = Tracked {
                id,
                fut: future::lazy(move |_| loader())
                    .flatten()
                    .map(|r| {
                        r.map(|l| match l {
                            Loaded::Value(v) => Some(v),
                            Loaded::NotFound => None,
                        })
                        .map_err(Into::into)
                    })
                    .boxed(),
            };
            let res = match (inner.settings.load_timeout, &inner.timer) {
                (Some(t), Some(timer)) => match future::select(load, timer.sleep(t)).await {
                    Either::Left((r, _)) => r,
                    Either::Right(_) => Err(Error::LoadTimeout { after_ms: t.as_millis() as u64 }),
                },
                _ => load.await,
            };
            let took = inner.store.precise_now().saturating_sub(started);
            inner.counters.load_latency.record(took);
            match &res {
                Ok(v) => cache.store_loaded(&key, v.clone(), fence, took, opts),
                Err(Error::LoadTimeout { .. }) => {
                    counters.load_timeouts.fetch_add(1, Relaxed);
                }
                Err(Error::LoaderPanicked) => {
                    counters.load_panics.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    counters.load_errors.fetch_add(1, Relaxed);
                }
            }
            res
        }
        .boxed()
    }

    /// Stores a loaded value unless a write landed since the load began (its version fence).
    fn store_loaded(&self, key: &str, value: Option<V>, fence: u64, load_nanos: u64, opts: FetchOptions) {
        let c = &self.inner.counters;
        let ttl = match &value {
            Some(_) => opts.ttl,
            None => {
                let Some(t) = opts.negative_ttl.or(self.inner.settings.negative_ttl) else { return };
                if c.negative_entries.load(Relaxed) >= self.inner.settings.max_negative {
                    c.negative_refused.fetch_add(1, Relaxed);
                    return;
                }
                Ttl::For(t)
            }
        };
        match self.write_raw(key, value, ttl, Some(Expect::Stored(fence)), load_nanos) {
            Ok(_) => {}
            Err(Error::VersionMismatch { .. }) => {
                c.fenced_writes.fetch_add(1, Relaxed);
            }
            Err(_) => {
                c.oversize_rejections.fetch_add(1, Relaxed);
            }
        }
    }
}
