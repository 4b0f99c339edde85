//! [`Cache`]: the store plus coalesced loading, behind one cheap-to-clone handle: reads,
//! writes, removals and sampling here; the read-through calls (`get_or_load`, `fetch`) in
//! [`crate::fetch`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::SeededRng;
use rand::{Rng, SeedableRng};

use crate::clock::Clock;
use crate::config::{CacheBuilder, Config, RemovalListener, Settings, Weigher};
use crate::error::{ConfigProblem, Error, Result};
use crate::flight::Flights;
use crate::sampler::KeySample;
use crate::stats::{StampedeCounters, Stats, StoreStats};
use crate::store::{Expect, Meta, Read, RemovalCause, Removed, Store, StoreConfig, Supersede, Weigh, NEVER};
use crate::sync::{lock, Mutex};
use crate::tags::TagIndex;
use crate::tier::{self, Tier};
use crate::xfetch;
use crate::{Spawner, Timer};

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    /// Set while this thread stores a load's value (see [`StoringALoad`]).
    static LOAD_STORE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While it lives, a removal listener's panic stays inside the load's store under way on this
/// thread (see `Cache::done`); dropped (on unwinding too), the thread is as it was. Nothing on
/// wasm32, where a panic aborts.
pub(crate) struct StoringALoad {
    #[cfg(not(target_arch = "wasm32"))]
    outer: bool,
}

impl StoringALoad {
    pub(crate) fn enter() -> Self {
        StoringALoad {
            #[cfg(not(target_arch = "wasm32"))]
            outer: LOAD_STORE.with(|d| d.replace(true)),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Drop for StoringALoad {
    fn drop(&mut self) {
        LOAD_STORE.with(|d| d.set(self.outer));
    }
}

/// How long a written entry lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ttl {
    /// The cache's `ttl` (no expiry if it has none).
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

/// A read of an entry with its metadata.
#[derive(Debug, Clone)]
pub struct Entry<V> {
    /// The value.
    pub value: V,
    /// The entry's version (monotonic per cache, never 0).
    pub version: u64,
    /// Time left before expiry, `None` if it never expires.
    pub expires_in: Option<Duration>,
}

/// What a write decided: the entry's new version and how long it stays fresh (`None`: it never
/// expires), with the cache's TTL jitter applied. A host that mirrors entries takes the expiry
/// from here instead of working it out from the TTL it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The entry's version (monotonic per cache, never 0).
    pub version: u64,
    /// Time from the write until the entry stops being fresh, `None` if it never expires.
    pub expires_in: Option<Duration>,
    /// Whether the write replaced a live entry of the key (a fresh value or a cached "not
    /// found"); `false` for a new key, or one whose entry had expired.
    pub replaced: bool,
}

/// The shared state behind every handle of one cache. A stored `None` is a cached "not found".
pub(crate) struct Inner<V> {
    pub store: Store<Option<V>>,
    pub flights: Flights<Option<V>>,
    pub settings: Settings,
    config: Config,
    weigher: Option<Weigher<V>>,
    listener: Option<RemovalListener<V>>,
    pub timer: Option<Arc<dyn Timer>>,
    pub spawner: Option<Arc<dyn Spawner>>,
    rng: Mutex<SeededRng>,
    draws: AtomicU64,
    seed: u64,
    pub counters: StampedeCounters,
    /// Progress of the warm-ups, read by the readiness check.
    pub warming: crate::warm::Warming,
    /// The shared tier (L2), when the cache has one: read through [`Inner::tier`].
    tier: Option<Arc<Tier<V>>>,
    /// Tags of the entries.
    #[cfg(feature = "tier")]
    pub tags: Arc<TagIndex>,
}

impl<V> Inner<V> {
    /// The shared tier, when the cache has one. Without the `tier` feature it is always `None`,
    /// a constant the compiler sees: every shared-tier path, and the tier's code with it, leaves
    /// the build (the WebAssembly module, whose size counts and which has no sockets).
    #[inline(always)]
    pub fn tier(&self) -> Option<&Arc<Tier<V>>> {
        if cfg!(feature = "tier") {
            self.tier.as_ref()
        } else {
            None
        }
    }
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
    pub(crate) inner: Arc<Inner<V>>,
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
        if self.tier.is_some() && !cfg!(feature = "tier") {
            let problem = ConfigProblem::Rule("needs healcache's `tier` feature (on by default)");
            return Err(Error::invalid_config("shared_tier", problem, None));
        }
        if self.tier.is_some() && self.timer.is_none() {
            let problem = ConfigProblem::Needs("a timer (CacheBuilder::timer) for the shared tier's deadlines");
            return Err(Error::invalid_config("shared_tier", problem, None));
        }
        if self.tier.is_some() && settings.max_key_len > crate::tier::bus::MAX_KEY_BYTES {
            let problem = ConfigProblem::Rule(
                "must be at most 65,482 bytes with a shared tier (a key's bus message fits in 64 KiB)",
            );
            return Err(Error::invalid_config("max_key_len", problem, Some(settings.max_key_len as f64)));
        }
        let clock = self.take_clock();
        Ok(Cache::assemble(settings, clock, self))
    }
}

/// A value's weight: the weigher's, else the size of `V`.
fn value_weight<V>(weigher: Option<&Weigher<V>>, value: &V) -> u64 {
    weigher.map_or(std::mem::size_of::<V>() as u64, |w| w(value))
}

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// The cache of a builder whose settings [`CacheBuilder::build`] validated.
    pub(crate) fn assemble(settings: Settings, clock: Arc<dyn Clock>, b: CacheBuilder<V>) -> Self {
        let weigher = b.weigher.clone();
        // a negative entry weighs its key alone
        let weigh: Weigh<Option<V>> =
            Arc::new(move |v: &Option<V>| v.as_ref().map_or(0, |v| value_weight(weigher.as_ref(), v)));
        let config = StoreConfig {
            shards: settings.shards,
            max_entries: settings.max_entries,
            max_bytes: settings.max_bytes,
            max_key_len: settings.max_key_len,
            max_entry_bytes: settings.max_entry_bytes,
            seed: settings.seed,
            weigh,
            keep_written: settings.refresh_after.is_some() || b.tier.is_some(),
        };
        let store = Store::new(config, Arc::clone(&clock));
        let max_entries = usize::try_from(settings.max_entries).unwrap_or(usize::MAX);
        #[cfg(feature = "tier")]
        let tags = Arc::new(TagIndex::new(max_entries));
        let tier = b.tier.filter(|_| cfg!(feature = "tier")).map(|(transport, codec)| {
            #[cfg(feature = "tier")]
            let tags = Arc::clone(&tags);
            // never reached without the feature (the filter above)
            #[cfg(not(feature = "tier"))]
            let tags = Arc::new(TagIndex::new(0));
            let timer = b.timer.clone();
            Tier::new(
                transport,
                codec,
                settings.tier.clone(),
                settings.max_entry_bytes,
                settings.seed,
                timer.expect("checked by build"),
                Arc::clone(&clock),
                max_entries,
                tags,
            )
        });
        let cache = Cache {
            inner: Arc::new(Inner {
                tier,
                #[cfg(feature = "tier")]
                tags,
                store,
                flights: Flights::new(settings.max_in_flight, settings.seed),
                rng: Mutex::new(SeededRng::seed_from_u64(settings.seed ^ 0x5eed_5a3b_1e00_0001)),
                draws: AtomicU64::new(0),
                seed: settings.seed,
                settings,
                config: b.config,
                weigher: b.weigher,
                listener: b.listener,
                timer: b.timer,
                spawner: b.spawner,
                counters: StampedeCounters::default(),
                warming: Default::default(),
            }),
        };
        #[cfg(feature = "tier")]
        if let Some(tier) = cache.inner.tier() {
            // other instances' writes drop this cache's L1 copies (weakly: the bus does not keep
            // a dropped cache alive)
            let weak = Arc::downgrade(&cache.inner);
            let weak_tags = weak.clone();
            tier.start_bus(
                Box::new(move |key, removed, token| {
                    weak.upgrade().is_some_and(|inner| Cache { inner }.heard_of(key, removed, token))
                }),
                Box::new(move |tag, version, hard| {
                    weak_tags.upgrade().map_or(0, |inner| Cache { inner }.tag_bumped(tag, version, hard))
                }),
            );
        }
        cache
    }

    /// Another instance's message: it replaced `key` in L2 under `token`, or deleted it
    /// (`deleted`); see [`Cache::drop_local`]. A copy already holding that very write (read from
    /// L2 after it landed, its token remembered) stays fresh: the message often arrives after
    /// such a read.
    fn heard_of(&self, key: &str, deleted: bool, token: crate::codec::Token) -> bool {
        if !deleted {
            let held = self.inner.tier().and_then(|t| t.recall(key, self.inner.store.version(key)));
            if held.is_some_and(|(t, _)| t == token) {
                return false;
            }
        }
        self.drop_local(key, deleted)
    }

    /// Another instance replaced `key` in L2 (this L1 copy becomes stale: a fallback within its
    /// grace window, re-read before it is served fresh) or deleted it (`deleted`: removed here
    /// too, and a load of `key` under way here is not stored: it may have read what was deleted);
    /// true if there was a fresh copy. A replaced value leaves loads alone: the bus announces
    /// writes a load here may have read already, and a loader's own L2 write is fenced by token.
    pub(crate) fn drop_local(&self, key: &str, deleted: bool) -> bool {
        let had = if deleted {
            let mut removed = Vec::new();
            let had = self.inner.store.remove_where(
                key,
                &mut removed,
                RemovalCause::Explicit,
                Supersede::Always,
                &mut |_| true,
            );
            self.done(removed);
            had == Some(true)
        } else {
            // an entry that never expired has no grace window of its own: the cache's, from now
            self.inner.store.make_stale(key, self.inner.settings.grace_nanos())
        };
        // only a fresh copy can be mirrored by a host; a message about anything else leaves
        // every mirrored entry trusted
        if had {
            if let Some(tier) = self.inner.tier() {
                tier.changed();
            }
        }
        had
    }

    /// A counter bumped after L1 entries change without a call of this process (another
    /// instance's write or delete arriving on the bus, L1 made suspect after a gap or an
    /// outage); `None` without a shared tier, where only calls change L1. A host that answers
    /// repeated reads from a mirror of L1 (the Node package does) asks the cache again for any
    /// entry it mirrored before the counter moved.
    pub fn local_generation(&self) -> Option<Arc<AtomicU32>> {
        self.inner.tier().map(|t| t.local_changes())
    }

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

    pub(crate) fn done(&self, removed: Removed<Option<V>>) {
        if removed.is_empty() {
            return;
        }
        // A listener that panics on one entry does not cost the others their report; its panic
        // reaches the caller once all are reported (no lock is held meanwhile). Within a load's
        // store it stops there (the panic hook has reported it): the load is shared, and one
        // listener's panic must not cost every waiter the value that was stored. On wasm32 a
        // panic aborts, so there is nothing to catch.
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut panicked = None;
            for (k, v, cause) in removed {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.gone(&k, v, cause)));
                if let Err(p) = r {
                    panicked.get_or_insert(p);
                }
            }
            if let Some(p) = panicked {
                if !LOAD_STORE.with(|d| d.get()) {
                    std::panic::resume_unwind(p);
                }
            }
        }
        #[cfg(target_arch = "wasm32")]
        for (k, v, cause) in removed {
            self.gone(&k, v, cause);
        }
    }

    /// Reports one entry that left: to the removal listener, or, for a cached "not found", to
    /// the count of those.
    #[inline]
    fn gone(&self, key: &str, value: Option<V>, cause: RemovalCause) {
        match value {
            Some(v) => {
                if let Some(l) = &self.inner.listener {
                    l(key, v, cause);
                }
            }
            None => {
                self.inner.counters.negative_entries.fetch_sub(1, Relaxed);
            }
        }
    }

    pub(crate) fn weigh_value(&self, value: &V) -> u64 {
        value_weight(self.inner.weigher.as_ref(), value)
    }

    /// A uniform variate in (0, 1] from the cache's seeded stream, without a lock.
    pub(crate) fn unit(&self) -> f64 {
        xfetch::unit(xfetch::splitmix64(self.inner.seed ^ self.inner.draws.fetch_add(1, Relaxed)))
    }

    /// When an entry written now with `ttl` expires, and how long from now that is (the TTL the
    /// cache decided, its jitter included; `None`: never).
    pub(crate) fn meta(&self, ttl: Ttl, load_nanos: u64) -> (Meta, Option<Duration>) {
        let s = &self.inner.settings;
        let ttl = match ttl {
            Ttl::Default => s.ttl,
            Ttl::Never => None,
            Ttl::For(d) => Some(d),
        };
        let Some(ttl) = ttl else {
            return (Meta { expires_at: NEVER, grace_until: NEVER, load_nanos }, None);
        };
        let mut nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        if s.ttl_jitter > 0.0 {
            nanos = nanos.saturating_add((nanos as f64 * s.ttl_jitter * (1.0 - self.unit())) as u64);
        }
        let now = self.inner.store.now();
        let expires_at = now.saturating_add(nanos).min(NEVER - 1);
        let grace = s.grace_nanos();
        let meta = Meta { expires_at, grace_until: expires_at.saturating_add(grace).min(NEVER - 1), load_nanos };
        (meta, Some(Duration::from_nanos(expires_at - now)))
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
            s.value.clone().map(|value| Entry { value, version: s.version(), expires_in })
        }) {
            Read::Hit(Some(e)) => Some(e),
            // a cached "not found", counted as `get` counts it
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

    /// Whether `key` has a fresh value (not counted as a read).
    pub fn contains(&self, key: &str) -> bool {
        self.inner.store.peek_with(key, |s, _| s.value.is_some()).unwrap_or(false)
    }

    /// The fresh entry of `key` as stored (a `None` value is a cached "not found") with its
    /// version, without counting a read or touching its access counter.
    pub fn peek_versioned(&self, key: &str) -> Option<(Option<V>, u64)> {
        self.inner.store.peek_with(key, |s, _| (s.value.clone(), s.version()))
    }

    /// The fresh entry of `key` with its version and remaining TTL, like [`Cache::get_entry`] but
    /// without counting a read or touching its access counter (a cached "not found" is `None`).
    pub fn peek_entry(&self, key: &str) -> Option<Entry<V>> {
        self.inner.store.peek_with(key, |s, now| {
            let expires_in = (s.expires_at != NEVER).then(|| Duration::from_nanos(s.expires_at.saturating_sub(now)));
            s.value.clone().map(|value| Entry { value, version: s.version(), expires_in })
        })?
    }

    /// Counts `hits` reads answered outside the cache (a host's copy of fresh entries, as the
    /// JS packages keep) as hits. `sample` is a sample of the keys read: each stands for its
    /// share of the hits on its access counter, so eviction sees what is read as if every read
    /// had come here. No value is read; keys no longer fresh are passed over.
    pub fn record_hits<K: AsRef<str>>(&self, sample: &[K], hits: u64) {
        if sample.is_empty() {
            self.inner.store.count_hits(hits);
            return;
        }
        let n = sample.len() as u64;
        let (each, extra) = (hits / n, hits % n);
        for (i, k) in sample.iter().enumerate() {
            self.inner.store.hit_key(k.as_ref(), each + u64::from((i as u64) < extra));
        }
    }

    /// The value the cache keeps for `key`, fresh or stale within its grace window (what a
    /// fetch's fail-safe could still serve), without counting a read; `None` for none or a cached
    /// "not found". For a host that keeps its values apart (the JS wrapper), to know which of
    /// them the cache may still hand back.
    pub fn peek_stored(&self, key: &str) -> Option<V> {
        self.inner.store.peek_stored(key, |s| s.value.clone()).flatten()
    }

    /// The fresh value of `key` without counting a read or touching its access counter, so
    /// looking does not change what is evicted next (`None` also for a cached "not found").
    pub fn peek(&self, key: &str) -> Option<V> {
        self.peek_versioned(key).and_then(|(v, _)| v)
    }

    /// Every key with a fresh value, in no particular order: a snapshot, so keys written or
    /// removed meanwhile may or may not appear. O(entries); counts no read. Holds every shard's
    /// read lock while it copies the stored keys: writers wait that long, readers do not.
    pub fn keys(&self) -> Vec<String> {
        // Every stored key once (a sample as large as the store), then only those holding a
        // value: a cached "not found" is no key of the cache, as `contains` says.
        let all = self.sample_keys(usize::MAX);
        all.iter().filter(|k| self.contains(k)).map(str::to_owned).collect()
    }

    /// Every key with a fresh value and that value, in no particular order: a snapshot as
    /// [`Cache::keys`] is, counting no read (a value removed between the two steps is left out).
    pub fn entries(&self) -> Vec<(String, V)> {
        self.keys().into_iter().filter_map(|k| self.peek(&k).map(|v| (k, v))).collect()
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
    ///
    /// With a shared tier, the value is also written to L2 (queued in call order, unconditional:
    /// a plain write is the newest by definition); a value the tier cannot encode is refused with
    /// [`Error::ValueNotEncodable`], changing nothing.
    pub fn write(&self, key: &str, value: V, opts: WriteOptions) -> Result<u64> {
        self.write_entry(key, value, opts).map(|w| w.version)
    }

    /// [`Cache::write`], returning what the cache decided: the version and the expiry.
    ///
    /// ```
    /// use healcache::{Cache, Ttl, WriteOptions};
    /// use std::time::Duration;
    ///
    /// let cache = Cache::<u64>::builder().ttl(Duration::from_secs(60)).build().unwrap();
    /// let w = cache.write_entry("a", 1, WriteOptions::default()).unwrap();
    /// assert_eq!(w.expires_in, Some(Duration::from_secs(60)));
    /// let w = cache.write_entry("b", 2, WriteOptions { ttl: Ttl::Never, ..Default::default() }).unwrap();
    /// assert_eq!(w.expires_in, None);
    /// ```
    pub fn write_entry(&self, key: &str, value: V, opts: WriteOptions) -> Result<Written> {
        let Some(tier) = self.inner.tier() else {
            return self.write_raw(key, Some(value), opts.ttl, opts.if_version.map(Expect::Live), 0);
        };
        let payload = tier.encode(&value)?;
        let written = self.write_raw(key, Some(value), opts.ttl, opts.if_version.map(Expect::Live), 0)?;
        if let Some(w) = self.l2_write(tier, key, payload, opts.ttl, &written, tier::Expect::Any, Vec::new()) {
            tier.spawn(w);
        }
        Ok(written)
    }

    /// The L2 write of a value just written to L1 (`written`): the same TTL and grace, its token
    /// remembered under the L1 version; `None` when there is nothing to write.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn l2_write(
        &self,
        tier: &Arc<Tier<V>>,
        key: &str,
        payload: (crate::codec::PayloadCodec, Vec<u8>),
        ttl: Ttl,
        written: &Written,
        expect: tier::Expect,
        tags: Vec<crate::codec::Tag>,
    ) -> Option<futures::future::BoxFuture<'static, tier::Wrote>> {
        let grace = self.inner.settings.grace.unwrap_or_default();
        let ttl = self.resolve_ttl(ttl);
        tier.write_encoded(key, Some(payload), ttl, grace, 0, expect, None, tags, Some(written.version))
    }

    /// The lifetime a [`Ttl`] gives, before jitter (`None`: no expiry).
    pub(crate) fn resolve_ttl(&self, ttl: Ttl) -> Option<Duration> {
        match ttl {
            Ttl::Default => self.inner.settings.ttl,
            Ttl::Never => None,
            Ttl::For(d) => Some(d),
        }
    }

    pub(crate) fn write_raw(
        &self,
        key: &str,
        value: Option<V>,
        ttl: Ttl,
        if_version: Option<Expect>,
        load_nanos: u64,
    ) -> Result<Written> {
        if let Ttl::For(d) = ttl {
            crate::config::call_duration("ttl", d)?;
        }
        self.inner.store.check_key(key)?;
        let (meta, expires_in) = self.meta(ttl, load_nanos);
        self.write_meta(key, value, meta, expires_in, if_version, false, None)
    }

    /// [`Cache::write_entry`] with the default options, whose value, when it overwrites a fresh
    /// entry, may be one `adopt` makes from the value it replaces, under the same lock as the
    /// write (so no other write comes between the look and the write). For a host that keeps
    /// its values apart and names them by handle: the JS wrapper stores an overwrite under the
    /// handle of the value it replaces, and so keeps that value's slot. `adopt` answers a value
    /// that weighs as `value` does, or `None` to store `value`. With a shared tier it is not
    /// asked (the write is [`Cache::write_entry`]'s).
    pub fn write_adopting(&self, key: &str, value: V, adopt: &mut dyn FnMut(&V) -> Option<V>) -> Result<Written> {
        if self.inner.tier().is_some() {
            return self.write_entry(key, value, WriteOptions::default());
        }
        self.inner.store.check_key(key)?;
        let (meta, expires_in) = self.meta(Ttl::Default, 0);
        let adopt = &mut |old: &Option<V>| old.as_ref().and_then(&mut *adopt).map(Some);
        self.write_meta(key, Some(value), meta, expires_in, None, false, Some(adopt))
    }

    /// [`Cache::write_raw`] of an expiry already decided (`meta`, `expires_in` from now); with
    /// `keep_tags` the key keeps the tags it had (a repair), else it loses them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_meta(
        &self,
        key: &str,
        value: Option<V>,
        meta: Meta,
        expires_in: Option<Duration>,
        if_version: Option<Expect>,
        keep_tags: bool,
        adopt: Option<crate::store::Adopt<'_, Option<V>>>,
    ) -> Result<Written> {
        let negative = value.is_none();
        let mut removed = Vec::new();
        let r = self.inner.store.put(key, value, meta, if_version, adopt, &mut removed);
        if negative && r.is_ok() {
            self.inner.counters.negative_entries.fetch_add(1, Relaxed);
        }
        // a value written without tags leaves the tags its key had (a tagged write records its
        // own after this)
        #[cfg(feature = "tier")]
        if r.is_ok() && !keep_tags && self.inner.tags.used() {
            self.inner.tags.record(key, &[], |_| true);
        }
        #[cfg(not(feature = "tier"))]
        let _ = keep_tags;
        // the replaced value is reported before the entries the write evicted, as they left
        let r = r.map(|(version, replaced)| match replaced {
            Some((old, cause)) => {
                self.gone(key, old, cause);
                (version, cause == RemovalCause::Replaced)
            }
            None => (version, false),
        });
        self.done(removed);
        r.map(|(version, replaced)| Written { version, expires_in, replaced })
    }

    /// Removes `key`; returns its value if it was fresh. A load of `key` under way does not store
    /// its value (its callers still get it). With a shared tier, L2 gets a tombstone: other
    /// processes read a miss, and a rebuild that read the key before is fenced out.
    pub fn remove(&self, key: &str) -> Option<V> {
        if let Some(tier) = self.inner.tier() {
            if let Some(w) = tier.tombstone(key) {
                tier.spawn(w);
            }
        }
        self.remove_local(key)
    }

    /// Removes `key` from L1 only; returns its value if it was fresh. A load of `key` under way
    /// is not stored (whether there was an entry or not).
    pub(crate) fn remove_local(&self, key: &str) -> Option<V> {
        let mut removed = Vec::new();
        let live =
            self.inner.store.remove_where(key, &mut removed, RemovalCause::Explicit, Supersede::Always, &mut |_| true);
        let v = match live {
            Some(true) => removed.last().and_then(|(_, v, _)| v.clone()),
            _ => None,
        };
        self.done(removed);
        v
    }

    /// Removes `key` only if its live version is `expected` (0: only if absent, which removes
    /// nothing, not even a stale copy kept for fail-safe); answers whether it removed a live
    /// entry. Fails with [`Error::VersionMismatch`], changing nothing, otherwise.
    ///
    /// ```
    /// use healcache::Cache;
    ///
    /// let cache = Cache::<u64>::builder().build().unwrap();
    /// assert!(!cache.remove_if_version("a", 0).unwrap(), "absent: nothing removed");
    /// let v = cache.set("a", 1).unwrap();
    /// assert_eq!(cache.remove_if_version("a", v + 1).unwrap_err().code(), "VersionMismatch");
    /// assert!(cache.remove_if_version("a", v).unwrap());
    /// assert_eq!(cache.get("a"), None);
    /// ```
    pub fn remove_if_version(&self, key: &str, expected: u64) -> Result<bool> {
        self.remove_if_version_shared(key, expected, tier::Expect::Any)
    }

    /// [`Cache::repair_if_version`] whose L2 write lands only as `l2` allows: a healer's repair
    /// of an entry L2 did not hold when it looked, which must not overwrite what another instance
    /// wrote since. L2 gets the value for the time the L1 entry has left.
    #[cfg(feature = "tier")]
    pub(crate) fn set_if_version_shared(&self, key: &str, value: V, expected: u64, l2: tier::Expect) -> Result<u64> {
        let Some(tier) = self.inner.tier() else {
            return self.repair_if_version(key, value, expected).map(|w| w.version);
        };
        let payload = tier.encode(&value)?;
        let written = self.repair_if_version(key, value, expected)?;
        let ttl = written.expires_in.map_or(Ttl::Never, Ttl::For);
        // the L2 copy carries the key's tags too, at the versions they had when it was written
        let tags = self.inner.tags.of(key);
        if let Some(w) = self.l2_write(tier, key, payload, ttl, &written, l2, tags) {
            tier.spawn(w);
        }
        Ok(written.version)
    }

    /// A healer's repair of `key` in L1: `value` replaces the entry only if its live version is
    /// `expected`, and keeps the entry's expiry (its time left, grace window and load time). A
    /// repair corrects what is cached, not how long it may be: the cache's default TTL would
    /// stretch a short-lived entry or shorten one that never expires. Fails with
    /// [`Error::VersionMismatch`], changing nothing, when the entry changed or expired.
    pub(crate) fn repair_if_version(&self, key: &str, value: V, expected: u64) -> Result<Written> {
        let grace = self.inner.settings.grace_nanos();
        let kept = self.inner.store.peek_with(key, |e, now| {
            let meta = Meta {
                expires_at: e.expires_at,
                // as `meta` gives it: no expiry has no grace end either
                grace_until: if e.expires_at == NEVER {
                    NEVER
                } else {
                    e.expires_at.saturating_add(grace).min(NEVER - 1)
                },
                load_nanos: e.load_nanos(),
            };
            let left = (e.expires_at != NEVER).then(|| Duration::from_nanos(e.expires_at.saturating_sub(now)));
            (e.version(), meta, left)
        });
        // the write below checks the version again, under the shard's lock: an entry changed
        // since this read fails there, so the expiry kept is always the replaced entry's own
        let (meta, left) = match kept {
            Some((version, meta, left)) if version == expected => (meta, left),
            other => {
                let current = other.map_or(0, |(v, ..)| v);
                return Err(Error::VersionMismatch { expected, current });
            }
        };
        // and keeps the key's tags: a repair corrects the value, not what it belongs to
        self.write_meta(key, Some(value), meta, left, Some(Expect::Live(expected)), true, None)
    }

    /// [`Cache::remove_if_version`] whose L2 tombstone lands only as `l2` allows (see
    /// [`Cache::set_if_version_shared`]); `Expect::Any` for a plain one.
    pub(crate) fn remove_if_version_shared(&self, key: &str, expected: u64, l2: tier::Expect) -> Result<bool> {
        let mut removed = Vec::new();
        let mut current = 0;
        let now = self.inner.store.now();
        let r =
            self.inner.store.remove_where(key, &mut removed, RemovalCause::Explicit, Supersede::IfRemoved, &mut |s| {
                current = if s.expires_at > now { s.version() } else { 0 };
                // version 0 ("absent") holds for a stale entry but removes nothing: its copy
                // stays for fail-safe, as after any refused compare-and-delete
                current == expected && expected != 0
            });
        self.done(removed);
        match r {
            Some(live) => {
                if let Some(tier) = self.inner.tier() {
                    if let Some(w) = tier.tombstone_expect(key, l2) {
                        tier.spawn(w);
                    }
                }
                Ok(live)
            }
            // Version 0 means "absent": an absent key meets it as an expired one does.
            None if expected == 0 && current == 0 => Ok(false),
            None => Err(Error::VersionMismatch { expected, current }),
        }
    }

    /// Unlinks from the shared tier every value whose key matches the glob `pattern` (`*`, `?`,
    /// `[...]`; escape a literal metacharacter with `\\`), with SCAN and UNLINK in batches (never
    /// KEYS); answers how many. This process's L1 copies stay until they expire or are replaced.
    /// Without a shared tier: 0. [`Error::L2Unavailable`] when it cannot be reached.
    pub async fn unlink_shared(&self, pattern: &str) -> Result<u64> {
        let Some(tier) = self.inner.tier() else { return Ok(0) };
        tier.unlink_matching(pattern.to_string()).await.map_err(|e| Error::L2Unavailable { reason: e.to_string() })
    }

    /// Closes the shared tier: waits until the L2 writes under way (each with the bus message
    /// announcing it) have gone, for `timeout` at most, then closes the tier's connections.
    /// Answers how many writes were still under way at the deadline (abandoned; a write that
    /// failed is counted in the stats, as always). A process that exits right after its last
    /// write calls it first, or those writes never reach L2 and other instances keep their old
    /// copies. From then on the cache works from L1 alone: L2 reads, writes and deletes are
    /// skipped (counted in `l2_skipped`), never an error. Without a shared tier: 0 at once.
    ///
    /// ```
    /// # use healcache::Cache;
    /// # use std::time::Duration;
    /// let cache = Cache::<u64>::builder().build().unwrap();
    /// assert_eq!(futures::executor::block_on(cache.close_shared(Duration::from_secs(5))), 0);
    /// ```
    pub fn close_shared(&self, timeout: Duration) -> impl std::future::Future<Output = usize> + Send + 'static {
        let tier = self.inner.tier().cloned();
        async move {
            match tier {
                Some(t) => t.close(timeout).await,
                None => 0,
            }
        }
    }

    /// Number of stored entries: expired entries not yet swept (see [`Cache::purge_expired`]),
    /// stale ones kept for their grace window and cached "not found" answers included, as the
    /// `max_entries` bound counts them; [`Cache::keys`] lists only keys holding a fresh value.
    pub fn len(&self) -> usize {
        self.inner.store.len()
    }

    /// Bytes the cache made room for up front (its entries' slots; the key and the value of each
    /// entry are their own allocations). On native targets this is address space the system
    /// hands out as entries fill it. For a host whose garbage collector should know what a
    /// cache object holds: a Node process that drops caches without hearing of their memory
    /// collects them too rarely.
    pub fn reserved_bytes(&self) -> u64 {
        self.inner.store.reserved_bytes()
    }

    /// Whether the cache stores no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with every value the cache holds (stale and expired ones not yet removed
    /// included), holding one shard's read lock at a time; stops at `f`'s first error. For a
    /// host's garbage collector, which must see every object a cache refers to; `f` must not use
    /// this cache.
    pub fn for_each_value<E>(&self, mut f: impl FnMut(&V) -> Result<(), E>) -> Result<(), E> {
        self.inner.store.for_each_value(|v| v.as_ref().map_or(Ok(()), &mut f))
    }

    /// Removes every entry. No load under way stores its value after it (its callers still get it).
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
        let l2 = self.inner.tier().map(|t| t.stats()).unwrap_or_default();
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
            l2_hits: l2.hits,
            l2_misses: l2.misses,
            l2_errors: l2.errors,
            l2_timeouts: l2.timeouts,
            l2_skipped: l2.skipped,
            l2_writes: l2.writes,
            l2_fenced_out: l2.fenced_out,
            l2_codec_errors: l2.codec_errors,
            l2_breaker_state: l2.breaker_state,
            l2_breaker_opens: l2.breaker_opens,
            l2_recovery_depth: l2.recovery_depth,
            l2_recovery_dropped: l2.recovery_dropped,
            l2_lock_acquired: l2.lock_acquired,
            l2_lock_contended: l2.lock_contended,
            l2_lock_skipped: l2.lock_skipped,
            l2_lock_timeouts: l2.lock_timeouts,
            l2_lock_lease_lost: l2.lock_lease_lost,
            l2_bus_sent: l2.bus_sent,
            l2_bus_publish_failed: l2.bus_publish_failed,
            l2_bus_received: l2.bus_received,
            l2_bus_invalidated: l2.bus_invalidated,
            l2_bus_gaps: l2.bus_gaps,
            l2_bus_malformed: l2.bus_malformed,
            l2_suspect_rereads: l2.suspect_rereads,
            #[cfg(feature = "tier")]
            l2_revalidated: l2.revalidated,
            #[cfg(feature = "tier")]
            l2_tag_invalidations: l2.tag_invalidations,
            #[cfg(feature = "tier")]
            l2_tag_received: l2.tag_received,
            #[cfg(feature = "tier")]
            l2_tag_outdated: l2.tag_outdated,
            #[cfg(feature = "tier")]
            l2_verifier_acquired: l2.verifier_acquired,
            #[cfg(feature = "tier")]
            l2_verifier_lost: l2.verifier_lost,
            #[cfg(feature = "tier")]
            l2_verifier_held: l2.verifier_held,
            #[cfg(feature = "tier")]
            l2_verifier_sampled: l2.verifier_sampled,
            #[cfg(feature = "tier")]
            l2_verifier_repaired: l2.verifier_repaired,
            l2_lock_wait: l2.lock_wait,
            l2_latency: l2.latency,
            l2_bus_latency: l2.bus_latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Cache, FetchOptions, Loaded, ManualClock};

    fn cache(max: u64) -> (Cache<u64>, ManualClock) {
        let clock = ManualClock::new();
        let c = Cache::builder().max_entries(max).shards(1).seed(1).clock(clock.clone()).build().unwrap();
        (c, clock)
    }

    /// Hits answered outside the cache (the JS mirror's) are counted on the shards their sampled
    /// keys live in, as reads here would be: each shard's eviction policy steers by its own
    /// shard's hit ratio, so hits piled on one shard would misdirect all of them.
    #[test]
    fn hits_answered_outside_count_on_the_shards_of_their_keys() {
        let c: Cache<u64> = Cache::builder().max_entries(4096).shards(4).seed(1).build().unwrap();
        let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
        for k in &keys {
            c.set(k, 1).unwrap();
        }
        c.record_hits(&keys, 6400);
        let store = &c.inner.store;
        let per_shard: Vec<u64> = store.shards.iter().map(|s| s.reads().0).collect();
        assert_eq!(per_shard.iter().sum::<u64>(), 6400, "{per_shard:?}");
        assert_eq!(c.stats().hits, 6400);
        let mut expected = vec![0u64; 4];
        for k in &keys {
            expected[store.shard_of(k)] += 100;
        }
        assert_eq!(per_shard, expected);
        // with no sample the hits are still counted
        c.record_hits::<&str>(&[], 5);
        assert_eq!(c.stats().hits, 6405);
    }

    #[test]
    fn peek_reads_without_counting_or_expiring() {
        let (c, clock) = cache(10);
        assert_eq!(c.peek("a"), None);
        c.set("a", 1).unwrap();
        c.set_with_ttl("t", 2, Some(Duration::from_secs(1))).unwrap();
        let before = c.stats();
        assert_eq!(c.peek("a"), Some(1));
        assert_eq!(c.peek("t"), Some(2));
        let after = c.stats();
        assert_eq!((after.hits, after.misses), (before.hits, before.misses));
        clock.advance(Duration::from_secs(2));
        assert_eq!(c.peek("t"), None, "an expired entry is not returned");
        assert_eq!(c.stats().expirations, before.expirations, "and peek does not remove it either");
    }

    #[test]
    fn peek_leaves_eviction_order_alone() {
        // Two entries, one slot to free. Whether "a" survives the next insert depends on its
        // read counter (read, it moves to the main queue and "b" leaves): peeking at "a" must
        // give, seed for seed, the outcome of not looking at it at all.
        let survives = |seed: u64, look: &dyn Fn(&Cache<u64>)| {
            let c = Cache::builder().max_entries(2).shards(1).seed(seed).build().unwrap();
            c.set("a", 1).unwrap();
            c.set("b", 2).unwrap();
            look(&c);
            c.set("c", 3).unwrap();
            c.peek("a").is_some()
        };
        let mut reads_matter = false;
        for seed in 0..64 {
            let untouched = survives(seed, &|_| {});
            let peeked = survives(seed, &|c| (0..50).for_each(|_| assert_eq!(c.peek("a"), Some(1))));
            let read = survives(seed, &|c| (0..50).for_each(|_| assert_eq!(c.get("a"), Some(1))));
            assert_eq!(peeked, untouched, "seed {seed}");
            reads_matter |= read != untouched;
        }
        assert!(reads_matter, "reads of \"a\" never changed an eviction: this test could not see a touch");
    }

    #[test]
    fn keys_lists_fresh_values_only() {
        let (c, clock) = cache(100);
        assert!(c.keys().is_empty());
        for i in 0..20 {
            c.set(&format!("k{i}"), i).unwrap();
        }
        c.set_with_ttl("short", 0, Some(Duration::from_secs(1))).unwrap();
        let loaded: Loaded<u64> = Loaded::NotFound;
        let _ = futures::executor::block_on(c.fetch(
            "missing",
            FetchOptions { negative_ttl: Some(Duration::from_secs(60)), ..FetchOptions::default() },
            move || async move { Ok::<_, std::io::Error>(loaded) },
        ));
        assert!(!c.contains("missing"));
        clock.advance(Duration::from_secs(2));
        let before = c.stats();
        let mut keys = c.keys();
        keys.sort();
        let mut want: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
        want.sort();
        assert_eq!(keys, want, "no expired key, no cached \"not found\"");
        assert_eq!((c.stats().hits, c.stats().misses), (before.hits, before.misses));
    }
}
