//! [`Cache`]: the store plus coalesced loading, behind one cheap-to-clone handle.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{self, Either, FutureExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::{CacheBuilder, Config, Settings, Weigher};
use crate::error::{Error, LoaderError, Result};
use crate::flight::{self, Flights, LoadFuture, Tracked};
use crate::store::{Entry, KeySample, RemovalCause, Removed, Store, StoreStats, NEVER};
use crate::sync::{lock, Mutex};
use crate::Timer;

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

/// Every counter of a cache, summed at the time of the call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
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
    /// Loader calls started by `get_or_load` (one per flight).
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
}

struct Inner<V> {
    store: Store<V>,
    flights: Flights<V>,
    settings: Settings,
    config: Config,
    weigher: Option<Weigher<V>>,
    listener: Option<RemovalListener<V>>,
    timer: Option<Arc<dyn Timer>>,
    rng: Mutex<SmallRng>,
    fenced_writes: AtomicU64,
    oversize_rejections: AtomicU64,
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
            return Err(Error::invalid("load_timeout_ms", "needs a timer (CacheBuilder::timer)"));
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
                flights: Flights::new(settings.max_in_flight),
                rng: Mutex::new(SmallRng::seed_from_u64(settings.seed ^ 0x5eed_5a3b_1e00_0001)),
                settings,
                config: self.config,
                weigher: self.weigher,
                listener: self.listener,
                timer: self.timer,
                fenced_writes: AtomicU64::new(0),
                oversize_rejections: AtomicU64::new(0),
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

    fn done(&self, removed: Removed<V>) {
        if removed.is_empty() {
            return;
        }
        if let Some(l) = &self.inner.listener {
            for (k, v, cause) in removed {
                l(k, v, cause);
            }
        }
    }

    fn weigh(&self, value: &V) -> u64 {
        match &self.inner.weigher {
            Some(w) => w(value),
            None => std::mem::size_of::<V>() as u64,
        }
    }

    fn expiry(&self, ttl: Ttl) -> u64 {
        match ttl {
            Ttl::Default => self.inner.store.expiry(self.inner.settings.ttl),
            Ttl::Never => NEVER,
            Ttl::For(d) => self.inner.store.expiry(Some(d)),
        }
    }

    /// The live value of `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<V> {
        let mut removed = Vec::new();
        let v = self.inner.store.get(key, &mut removed);
        self.done(removed);
        v
    }

    /// The live entry of `key` with its version and remaining TTL (counts as a read).
    pub fn get_entry(&self, key: &str) -> Option<Entry<V>> {
        let mut removed = Vec::new();
        let store = &self.inner.store;
        let v = store.get_with(key, &mut removed, |s| {
            let expires_in =
                (s.expires_at != NEVER).then(|| Duration::from_nanos(s.expires_at.saturating_sub(store.now())));
            Entry { value: s.value.clone(), version: s.version, expires_in }
        });
        self.done(removed);
        v
    }

    /// Whether `key` has a live entry (not counted as a read).
    pub fn contains(&self, key: &str) -> bool {
        self.inner.store.peek_with(key, |_, _| ()).is_some()
    }

    /// The version of `key`'s live entry, 0 if it has none.
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
        if let Ttl::For(d) = opts.ttl {
            if d.is_zero() {
                return Err(Error::invalid("ttl", "must be positive"));
            }
        }
        self.inner.store.check_key(key)?;
        let weight = self.weigh(&value);
        let expires_at = self.expiry(opts.ttl);
        let mut removed = Vec::new();
        let r = self.inner.store.write(key, value, weight, expires_at, opts.if_version, &mut removed);
        self.done(removed);
        r
    }

    /// Removes `key`; returns its value if it was live.
    pub fn remove(&self, key: &str) -> Option<V> {
        let mut removed = Vec::new();
        let live = self.inner.store.remove_where(key, &mut removed, RemovalCause::Explicit, |_| true);
        let v = match live {
            Some(true) => removed.last().map(|(_, v, _)| v.clone()),
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

    /// Removes every expired entry now; returns how many.
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

    /// Every counter.
    pub fn stats(&self) -> Stats {
        let StoreStats { hits, misses, inserts, updates, evictions, expirations, entries, weight } =
            self.inner.store.stats();
        let c = &self.inner.flights.counters;
        Stats {
            hits,
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
            fenced_writes: self.inner.fenced_writes.load(Relaxed),
            oversize_rejections: self.inner.oversize_rejections.load(Relaxed),
            in_flight: self.inner.flights.in_flight() as u64,
        }
    }

    /// Returns `key`'s live value, or loads it with `loader`: concurrent callers for the same key
    /// share one loader call and its result (value or error). The loader's future is owned by the
    /// flight, not by this caller: dropping this future leaves the others waiting unharmed. The
    /// value is stored fenced: if `key` was written while it loaded, the newer write is kept.
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
    pub async fn get_or_load<F, Fut, E>(&self, key: &str, loader: F) -> Result<V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        match self.join(key, loader)? {
            Err(v) => Ok(v),
            Ok(joined) => flight::wait(joined).await,
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
        match self.join(key, move || future::lazy(move |_| loader()))? {
            Err(v) => Ok(v),
            Ok(joined) => flight::wait_blocking(joined, self.inner.settings.load_timeout),
        }
    }

    fn join<F, Fut, E>(&self, key: &str, loader: F) -> Result<std::result::Result<flight::Joined<V>, V>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        self.inner.store.check_key(key)?;
        if let Some(v) = self.get(key) {
            return Ok(Err(v));
        }
        let inner = &self.inner;
        inner.flights.join_or_start(
            key,
            || inner.store.peek_with(key, |s, _| s.value.clone()),
            |id| {
                let fence = inner.store.version(key);
                self.load_future(Arc::from(key), id, fence, loader)
            },
        )
    }

    fn load_future<F, Fut, E>(&self, key: Arc<str>, id: u64, fence: u64, loader: F) -> LoadFuture<V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
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
            let counters = &cache.inner.flights.counters;
            let load =
                Tracked { id, fut: future::lazy(move |_| loader()).flatten().map(|r| r.map_err(Into::into)).boxed() };
            let res = match (cache.inner.settings.load_timeout, &cache.inner.timer) {
                (Some(t), Some(timer)) => match future::select(load, timer.sleep(t)).await {
                    Either::Left((r, _)) => r,
                    Either::Right(_) => Err(Error::LoadTimeout { after_ms: t.as_millis() as u64 }),
                },
                _ => load.await,
            };
            match &res {
                Ok(v) => cache.store_loaded(&key, v.clone(), fence),
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
    fn store_loaded(&self, key: &str, value: V, fence: u64) {
        let opts = WriteOptions { ttl: Ttl::Default, if_version: Some(fence) };
        match self.write(key, value, opts) {
            Ok(_) => {}
            Err(Error::VersionMismatch { .. }) => {
                self.inner.fenced_writes.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.inner.oversize_rejections.fetch_add(1, Relaxed);
            }
        }
    }
}
