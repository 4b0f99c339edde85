//! The read-through pipeline: [`Cache::get_or_load`] and [`Cache::fetch`] (and their blocking
//! twins) on top of the flight table, with every stampede layer the cache is configured with:
//! stale-while-revalidate, fail-safe and the soft timeout within the grace window, XFetch early
//! refresh, refresh-ahead, negative caching, and the fenced store of a loaded value.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{self, Either, FutureExt};

use crate::cache::{Cache, Ttl};
use crate::error::{ConfigProblem, Error, LoaderError, Result};
#[cfg(not(target_arch = "wasm32"))]
use crate::flight::Interrupt;
use crate::flight::{self, LoadFuture, Tracked};
use crate::settings::Unit;
use crate::stats::Status;
use crate::store::{Expect, LoadFence, Lookup};
use crate::tier::{L2Read, Rebuild, Wrote};
use crate::xfetch;

/// Where a flight's value came from, for the status of the call that started it.
const FROM_LOADER: u8 = 0;
const FROM_L2: u8 = 1;
const L2_SKIPPED: u8 = 2;
const FROM_FLEET: u8 = 3;
const FENCED_OUT: u8 = 4;
const REVALIDATED: u8 = 5;
/// The fresh L1 copy, suspect but not to be checked: L2 could not be asked.
const HELD: u8 = 6;

/// The tags a fetch's value carries (`None`: none). Nothing without the `tier` feature, so the
/// WebAssembly module's fetch path carries no tag code at all.
#[cfg(feature = "tier")]
type Tags = Option<Arc<[String]>>;
#[cfg(not(feature = "tier"))]
type Tags = ();
#[cfg(feature = "tier")]
const NO_TAGS: Tags = None;
#[cfg(not(feature = "tier"))]
const NO_TAGS: Tags = ();

/// What a loader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded<V> {
    /// The value.
    Value(V),
    /// The key does not exist at the source; cached for `negative_ttl` when that is set.
    NotFound,
}

/// Per-call overrides of [`Cache::fetch`]; `None` fields take the cache's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FetchOptions {
    /// TTL of a loaded value. Defaults to: the cache's TTL.
    pub ttl: Ttl,
    /// TTL of a "not found" answer. Defaults to: the cache's `negative_ttl`.
    pub negative_ttl: Option<Duration>,
    /// Serve a stale value at once while refreshing. Defaults to: `stale_while_revalidate`.
    pub stale_while_revalidate: Option<bool>,
    /// XFetch early refresh on this read. Defaults to: `xfetch`.
    pub xfetch: Option<bool>,
    /// Soft timeout of this load. Defaults to: `load_soft_timeout`.
    pub soft_timeout: Option<Duration>,
}

impl FetchOptions {
    /// Refuses a duration the settings' table would refuse (zero, over 100 years).
    pub(crate) fn check(&self) -> Result<()> {
        if let Ttl::For(d) = self.ttl {
            crate::config::call_duration("ttl", d)?;
        }
        for (field, d) in [("negative_ttl", self.negative_ttl), ("soft_timeout", self.soft_timeout)] {
            d.map_or(Ok(()), |d| crate::config::call_duration(field, d))?;
        }
        Ok(())
    }

    /// Refuses what a blocking load cannot honour rather than ignore it: it runs no background
    /// work (stale-while-revalidate, XFetch, a soft timeout). The "off" values are taken.
    #[cfg(not(target_arch = "wasm32"))]
    fn check_blocking(&self) -> Result<()> {
        let unsupported = [
            ("stale_while_revalidate", self.stale_while_revalidate == Some(true)),
            ("xfetch", self.xfetch == Some(true)),
            ("soft_timeout", self.soft_timeout.is_some()),
        ];
        match unsupported.into_iter().find(|(_, given)| *given) {
            Some((field, _)) => Err(Error::invalid_config(field, ConfigProblem::Rule(BLOCKING_ONLY), None)),
            None => Ok(()),
        }
    }
}

/// Why [`FetchOptions::check_blocking`] refuses an option.
#[cfg(not(target_arch = "wasm32"))]
const BLOCKING_ONLY: &str = "is not supported by a blocking load, which runs no background work: use the async call";

/// The answer of [`Cache::fetch`]: the value (`None`: not found) and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched<V> {
    /// The value, or `None` when the key does not exist at the source.
    pub value: Option<V>,
    /// What the call did.
    pub status: Status,
}

impl<V> Fetched<V> {
    /// The value, or [`Error::NotFound`] when the key does not exist at the source: what
    /// `get_or_load` answers in every language, where `fetch` answers the status with an option.
    pub fn into_value(self) -> Result<V> {
        self.value.ok_or(Error::NotFound)
    }
}

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// Returns `key`'s fresh value, or loads it with `loader`: concurrent callers for the same key
    /// share one loader call and its result (value or error). The loader's future is owned by the
    /// flight, not by this caller: dropping this future leaves the others waiting unharmed; once
    /// the last waiter is gone the load is dropped too, and nothing is stored. The
    /// value is stored fenced: if `key` was written while it loaded, the newer write is kept, and
    /// if it was removed (a delete, a clear, an invalidation), the value is returned but not kept.
    /// With a grace window, a stale value is served when the load fails (fail-safe). A loader
    /// that answers `Err(Error::NotFound)` says the key does not exist, as `Loaded::NotFound`
    /// says it to [`Cache::fetch`]: the call returns `Error::NotFound`, counted as a load (not a
    /// load error) and cached for `negative_ttl` when one is set.
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
        let trusted = self.inner.tier().is_none_or(|t| !t.any_suspect());
        if s.xfetch_beta.is_none() && s.refresh_after.is_none() && trusted {
            if let Some(v) = self.inner.store.try_hit(key, |slot| slot.value.clone()) {
                return Either::Left(future::ready(Ok(v)));
            }
        }
        let key = key.to_owned();
        Either::Right(async move {
            let f = self.fetch(&key, FetchOptions::default(), move || loader().map(|r| as_loaded(r))).await?;
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
    pub fn fetch<'a, F, Fut, E>(
        &'a self,
        key: &'a str,
        opts: FetchOptions,
        loader: F,
    ) -> impl Future<Output = Result<Fetched<V>>> + Send + use<'a, F, Fut, E, V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Loaded<V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        // the call's own future, not one wrapping it: one state machine less in every build
        self.fetch_with(key, opts, NO_TAGS, loader)
    }

    /// [`Cache::fetch`] of a value that carries tags (at most 16, each 1 to 128 bytes; see
    /// [`Cache::write_tagged`]): a loaded value records the tags' versions from before its load,
    /// so an [`Cache::invalidate_tag`] during the load leaves it uncached (the caller still gets
    /// it). A tag list out of bounds is refused with [`Error::InvalidConfig`] (field `tags`).
    ///
    /// ```
    /// use healcache::{Cache, FetchOptions, Loaded};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::<u64>::builder().build().unwrap();
    /// let load = || async { Ok::<_, std::io::Error>(Loaded::Value(7)) };
    /// cache.fetch_tagged("user:1", FetchOptions::default(), &["team:7"], load).await.unwrap();
    /// assert_eq!(cache.invalidate_tag("team:7", true).await.unwrap(), 1);
    /// assert_eq!(cache.get("user:1"), None);
    /// # });
    /// ```
    #[cfg(feature = "tier")]
    pub async fn fetch_tagged<F, Fut, E>(
        &self,
        key: &str,
        opts: FetchOptions,
        tags: &[&str],
        loader: F,
    ) -> Result<Fetched<V>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Loaded<V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        crate::tags::check(tags)?;
        let tags: Arc<[String]> = tags.iter().map(|t| t.to_string()).collect();
        self.fetch_with(key, opts, Some(tags), loader).await
    }

    /// Refuses what [`Cache::fetch`] (or `get_or_load`, `fetch_tagged` with `tags`) would refuse
    /// of its arguments before any work: the key, a duration out of range, a `negative_ttl` over
    /// `max_negative_ttl`, a soft timeout not below `load_timeout`, an unusable tag list. For a
    /// host whose call hands back an awaitable: it refuses them when called, not when awaited.
    pub fn check_fetch(&self, key: &str, opts: &FetchOptions, tags: &[&str]) -> Result<()> {
        let s = &self.inner.settings;
        self.inner.store.check_key(key)?;
        opts.check()?;
        if let Some(t) = opts.negative_ttl.filter(|t| *t > s.max_negative_ttl) {
            return Err(Error::invalid_config(
                "negative_ttl",
                ConfigProblem::MustNotExceed("max_negative_ttl"),
                Some(t.as_secs_f64() * 1000.0),
            ));
        }
        // as the setting is: a soft timeout at or past the hard one would never serve stale
        if let (Some(soft), Some(hard)) = (opts.soft_timeout, s.load_timeout) {
            if soft >= hard {
                let problem = ConfigProblem::MustBeBelow("load_timeout");
                let value = Some(soft.as_secs_f64() * 1000.0);
                return Err(Error::InvalidConfig { field: "soft_timeout", problem, value, unit: Unit::Duration });
            }
        }
        if !tags.is_empty() {
            crate::tags::check(tags)?;
        }
        // what the builder refuses for the settings, refused per call (not ignored); the
        // bindings always give a timer and a spawner, so the WebAssembly module leaves it out
        #[cfg(not(target_arch = "wasm32"))]
        {
            let inner = &self.inner;
            if opts.soft_timeout.is_some() && (inner.timer.is_none() || inner.spawner.is_none()) {
                return Err(Error::invalid_config("soft_timeout", ConfigProblem::Needs("a timer and a spawner"), None));
            }
            for (on, field) in [(opts.stale_while_revalidate, "stale_while_revalidate"), (opts.xfetch, "xfetch")] {
                if on == Some(true) && inner.spawner.is_none() {
                    let problem = ConfigProblem::Needs("a spawner (CacheBuilder::spawner) for background refreshes");
                    return Err(Error::invalid_config(field, problem, None));
                }
            }
        }
        Ok(())
    }

    async fn fetch_with<F, Fut, E>(&self, key: &str, opts: FetchOptions, tags: Tags, loader: F) -> Result<Fetched<V>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Loaded<V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        let inner = &self.inner;
        let s = &inner.settings;
        self.check_fetch(key, &opts, &[])?;
        let mut removed = Vec::new();
        let look = inner.store.lookup(key, &mut removed);
        self.done(removed);
        // An entry written before the shared tier's last outage ended may have missed an
        // invalidation: it is re-read from L2 (and serves as the stale value meanwhile).
        let look = match (look, inner.tier()) {
            (Lookup::Fresh(raw), Some(t)) if t.is_suspect(raw.written_at) => {
                t.reread_suspect();
                Lookup::Stale(raw)
            }
            (look, _) => look,
        };
        let stale = match look {
            Lookup::Fresh(raw) => {
                let Some(value) = raw.value else {
                    inner.counters.negative_hits.fetch_add(1, Relaxed);
                    return Ok(Fetched { value: None, status: Status::NegativeHit });
                };
                let mut status = Status::Hit;
                // the per-call option overrides the cache's setting both ways
                let xfetch_beta = match opts.xfetch {
                    None => s.xfetch_beta,
                    Some(true) => Some(s.xfetch_call_beta),
                    Some(false) => None,
                };
                if s.refresh_after.is_some() || xfetch_beta.is_some() {
                    let now = inner.store.now();
                    if let Some(ra) = s.refresh_after {
                        if now.saturating_sub(raw.written_at) >= ra.as_nanos() as u64 {
                            status = Status::RefreshAhead;
                        }
                    }
                    if let (Status::Hit, Some(beta)) = (status, xfetch_beta) {
                        if xfetch::should_refresh(now, raw.expires_at, raw.load_nanos, beta, self.unit()) {
                            status = Status::EarlyRefresh;
                        }
                    }
                    if status != Status::Hit {
                        if self.refresh_in_background(key, opts, tags, loader) {
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
                self.refresh_in_background(key, opts, tags, loader);
                inner.counters.stale_swr.fetch_add(1, Relaxed);
                return Ok(Fetched { value: stale.clone(), status: Status::Stale });
            }
        }
        let origin = Arc::new(AtomicU8::new(FROM_LOADER));
        let joined = match inner.flights.join_or_start(
            key,
            false,
            || self.trusted_peek(key),
            |id| {
                let key: Arc<str> = Arc::from(key);
                let fence = inner.store.begin_load(&key, id);
                self.load_future(key, fence, opts, tags, loader, origin.clone(), false)
            },
        ) {
            Ok(Err(v)) => {
                let status = if v.is_some() { Status::Hit } else { Status::NegativeHit };
                return Ok(Fetched { value: v, status });
            }
            Ok(Ok(j)) => j,
            // no room for another load: the stale value serves, as when a load fails
            Err(e @ Error::TooManyLoads { .. }) => match stale {
                Some(stale) => {
                    inner.counters.stale_fail_safe.fetch_add(1, Relaxed);
                    return Ok(Fetched { value: stale, status: Status::StaleFailSafe });
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let (started, id) = (joined.started, joined.id);
        let soft = opts.soft_timeout.or(s.soft_timeout);
        let result = match (&stale, soft, &inner.timer, &inner.spawner) {
            (Some(stale), Some(t), Some(timer), Some(spawner)) => {
                let keep = joined.load.clone();
                match future::select(Box::pin(flight::wait(joined)), timer.sleep(t)).await {
                    Either::Left((r, _)) => r,
                    Either::Right(_) => {
                        // The load goes on in the background and stores its value when done.
                        if !spawner.keeps_alive() {
                            inner.flights.abandon(key, id);
                        }
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
            #[cfg(not(target_arch = "wasm32"))]
            _ => Self::wait_joined(joined, s.load_timeout, inner.timer.as_deref()).await,
            // no blocking loads there
            #[cfg(target_arch = "wasm32")]
            _ => flight::wait(joined).await,
        };
        let status = |loaded| match (started, origin.load(Relaxed)) {
            (false, _) => Status::Coalesced,
            (true, FROM_L2) => Status::L2Hit,
            (true, L2_SKIPPED) => Status::L2Skipped,
            (true, FROM_FLEET) => Status::FleetCoalesced,
            (true, FENCED_OUT) => Status::FencedOut,
            (true, REVALIDATED) => Status::Revalidated,
            (true, HELD) if loaded == Status::NegativeLoaded => Status::NegativeHit,
            (true, HELD) => Status::Hit,
            _ => loaded,
        };
        match result {
            Ok(Some(v)) => Ok(Fetched { value: Some(v), status: status(Status::Loaded) }),
            Ok(None) => Ok(Fetched { value: None, status: status(Status::NegativeLoaded) }),
            Err(e @ (Error::RecursiveLoad | Error::KeyTooLong { .. })) => Err(e),
            Err(e) => {
                // (the fallback from L2 exists with the tier only, and leaves the build without)
                #[cfg(feature = "tier")]
                let stale = match stale.or_else(|| self.fallback_after_failure(key)) {
                    None if matches!(e, Error::LoadTimeout { .. }) => self.fallback_from_l2(key).await,
                    found => found,
                };
                match stale {
                    Some(stale) => {
                        inner.counters.stale_fail_safe.fetch_add(1, Relaxed);
                        Ok(Fetched { value: stale, status: Status::StaleFailSafe })
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// Starts a background refresh of `key` unless one is under way; true if it started.
    fn refresh_in_background<F, Fut, E>(&self, key: &str, opts: FetchOptions, tags: Tags, loader: F) -> bool
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Loaded<V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        let inner = &self.inner;
        let Some(spawner) = &inner.spawner else { return false };
        // one background refresh at a time, also while one the host may stop is under way
        if inner.flights.loading(key) {
            return false;
        }
        let joined = inner.flights.join_or_start(
            key,
            false,
            || None,
            |id| {
                let key: Arc<str> = Arc::from(key);
                let fence = inner.store.begin_load(&key, id);
                self.load_future(key, fence, opts, tags, loader, Arc::default(), true)
            },
        );
        match joined {
            Ok(Ok(j)) if j.started => {
                if !spawner.keeps_alive() {
                    inner.flights.abandon(key, j.id);
                }
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
    /// flights with the async variant. Waits at most `load_timeout` when that is set; a thread
    /// running a synchronous loader itself cannot be interrupted and returns when it finishes,
    /// with [`Error::LoadTimeout`] (the value not kept) if that was past the deadline, as every
    /// other caller of the flight gets.
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
        self.blocking_load(key, opts, move || as_loaded(loader()), None)
    }

    /// [`Cache::get_or_load_blocking_with`] whose wait `interrupt` may end: it is asked before
    /// the thread parks and at least every 50 ms while it waits (with whether the load is
    /// another caller's), and an error it answers is this call's, at once (no fail-safe to a
    /// stale value; the load goes on for the others). For hosts whose threads take signals (a
    /// Ctrl-C in Python) or must not wait on some loads (an event loop's own thread). Its loader
    /// may answer [`Loaded::NotFound`], as an async loader may: a "not found", not a failure.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn get_or_load_blocking_interruptible<F, E>(
        &self,
        key: &str,
        opts: FetchOptions,
        loader: F,
        interrupt: &mut Interrupt<'_>,
    ) -> Result<V>
    where
        F: FnOnce() -> std::result::Result<Loaded<V>, E> + Send + 'static,
        E: Into<LoaderError>,
    {
        self.blocking_load(key, opts, loader, Some(interrupt))
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn blocking_load<F, E>(
        &self,
        key: &str,
        opts: FetchOptions,
        loader: F,
        interrupt: Option<&mut Interrupt<'_>>,
    ) -> Result<V>
    where
        F: FnOnce() -> std::result::Result<Loaded<V>, E> + Send + 'static,
        E: Into<LoaderError>,
    {
        let inner = &self.inner;
        // first: what no blocking load can honour is named so, whatever the cache has
        opts.check_blocking()?;
        self.check_fetch(key, &opts, &[])?;
        let mut removed = Vec::new();
        let look = inner.store.lookup(key, &mut removed);
        self.done(removed);
        let stale = match look {
            Lookup::Fresh(raw) => {
                // as `fetch` counts it: the store counted a hit, which a "not found" is not
                if raw.value.is_none() {
                    inner.counters.negative_hits.fetch_add(1, Relaxed);
                }
                return raw.value.ok_or(Error::NotFound);
            }
            Lookup::Stale(raw) => Some(raw.value),
            Lookup::Absent => None,
        };
        let loader = move || future::lazy(move |_| loader());
        let joined = match inner.flights.join_or_start(
            key,
            true,
            || self.trusted_peek(key),
            |id| {
                let key: Arc<str> = Arc::from(key);
                let fence = inner.store.begin_load(&key, id);
                self.load_future(key, fence, opts, NO_TAGS, loader, Arc::default(), false)
            },
        )? {
            Err(v) => return v.ok_or(Error::NotFound),
            Ok(j) => j,
        };
        let done = match flight::wait_blocking(joined, inner.settings.load_timeout, interrupt, inner.spawner.as_deref())
        {
            flight::Waited::Done(r) => r,
            flight::Waited::Interrupted(e) => return Err(e),
        };
        match done {
            Ok(v) => v.ok_or(Error::NotFound),
            Err(e @ (Error::RecursiveLoad | Error::KeyTooLong { .. })) => Err(e),
            // fail-safe, as in `fetch`: within grace a failed load serves the stale value
            Err(e) => {
                #[cfg(all(feature = "tier", not(target_arch = "wasm32")))]
                let stale = match stale.or_else(|| self.fallback_after_failure(key)) {
                    None if matches!(e, Error::LoadTimeout { .. }) => self.fallback_from_l2_blocking(key),
                    found => found,
                };
                match stale {
                    Some(v) => {
                        inner.counters.stale_fail_safe.fetch_add(1, Relaxed);
                        v.ok_or(Error::NotFound)
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// The load of flight `fence.id`, begun by [`crate::store::Store::begin_load`].
    #[allow(clippy::too_many_arguments)]
    fn load_future<F, Fut, E>(
        &self,
        key: Arc<str>,
        fence: LoadFence,
        opts: FetchOptions,
        tags: Tags,
        loader: F,
        origin: Arc<AtomicU8>,
        background: bool,
    ) -> LoadFuture<Option<V>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Loaded<V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        let cache = self.clone();
        let id = fence.id;
        // Removes the table entry and the load's mark in the store however the flight ends:
        // done, or dropped by its last waiter, also before it was ever polled (so it is made
        // here, not in the future's body, which a future dropped unpolled never runs).
        struct Finish<V: Clone + Send + Sync + 'static>(Cache<V>, Arc<str>, u64);
        impl<V: Clone + Send + Sync + 'static> Drop for Finish<V> {
            fn drop(&mut self) {
                self.0.inner.store.end_load(&self.1, self.2);
                self.0.inner.flights.finish(&self.1, self.2);
            }
        }
        let finish = Finish(cache.clone(), key.clone(), id);
        async move {
            let _finish = finish;
            let inner = &cache.inner;
            let counters = &inner.flights.counters;
            // The shared tier first: a fresh L2 value ends the flight without the loader; a miss
            // there may take the fleet lock (one rebuild per fleet) or wait for its holder.
            let mut l2_expect: Option<crate::tier::Expect> = None;
            #[cfg(feature = "tier")]
            let mut lease: Option<crate::tier::lock::Lease> = None;
            // compiled out without the `tier` feature: a future awaited in place is polled from
            // this state machine even where its branch is never taken, so a branch that is only
            // dead at run time would keep the tier's code in the build
            #[cfg(feature = "tier")]
            if let Some(tier) = inner.tier() {
                // A fresh copy made suspect by a gap or an outage, whose token L2 still holds, is
                // trusted again after a 16-byte read instead of a read of its value. Not a tagged
                // one: a tag may have been invalidated meanwhile, which its token does not show.
                let now = inner.store.now();
                let held = inner.store.peek_stored(&key, |s| {
                    (s.expires_at > now && tier.is_suspect(s.written_at()))
                        .then(|| (s.value.clone(), s.version(), s.load_nanos()))
                });
                let held = held.flatten();
                if let Some((value, version, load_nanos)) = held.clone().filter(|_| !inner.tags.tagged(&key)) {
                    if let Some((token, grace)) = tier.recall(&key, version) {
                        if let Some(fresh) = tier.revalidate(&key, token, grace).await {
                            // the same value, trusted again: renewed in place, not replaced, so
                            // a host holding it under its handle is not told it was dropped
                            cache.renew_shared(&key, version, fresh, load_nanos, opts, (token, grace));
                            origin.store(REVALIDATED, Relaxed);
                            return Ok(value);
                        }
                    }
                }
                // a refresh ahead of expiry (the copy here still fresh) that finds the same copy
                // in L2, by its token, finds nothing newer: it loads (writing only over that
                // token); a copy L2 holds under another token is a newer one, taken as it is
                // (one refresh for the fleet). A stale copy's refresh takes any fresh L2 value.
                let ours = if background {
                    let version = inner.store.peek_stored(&key, |s| (s.expires_at > now).then_some(s.version()));
                    version.flatten().and_then(|v| tier.recall(&key, v)).map(|(t, _)| t)
                } else {
                    None
                };
                let mut read = tier.read(&key).await;
                if let (Some(ours), L2Read::Hit { token, .. }) = (ours, &read) {
                    if *token == ours {
                        read = L2Read::Miss(crate::tier::Expect::Token(ours));
                    }
                }
                if let L2Read::Miss(e) = read {
                    // a background refresh skips when another instance refreshes, but only while
                    // there is a value here to serve meanwhile
                    let serving = inner.store.peek_stored(&key, |slot| slot.value.clone());
                    let background = background && serving.is_some();
                    read = match tier.rebuild(&key, e, background, inner.settings.load_timeout, ours).await {
                        Rebuild::Load(l, e) => {
                            lease = l;
                            L2Read::Miss(e)
                        }
                        Rebuild::Fleet(r) => {
                            origin.store(FROM_FLEET, Relaxed);
                            r
                        }
                        Rebuild::Skip => return Ok(serving.flatten()),
                    };
                }
                match read {
                    L2Read::Hit { value, fresh, load_nanos, token, grace, tags } => {
                        cache.store_shared(&key, value.clone(), fresh, load_nanos, fence, opts, (token, grace), &tags);
                        if origin.load(Relaxed) != FROM_FLEET {
                            origin.store(FROM_L2, Relaxed);
                        }
                        return Ok(value);
                    }
                    L2Read::Miss(e) => l2_expect = Some(e),
                    // L2 cannot be asked (the breaker is open, or the read failed): a fresh copy
                    // made suspect by the outage itself is served as it is, so an outage of L2
                    // sends no instance's working set to the origin
                    L2Read::Skipped if held.is_some() => {
                        origin.store(HELD, Relaxed);
                        return Ok(held.and_then(|(value, ..)| value));
                    }
                    L2Read::Skipped => origin.store(L2_SKIPPED, Relaxed),
                }
            }
            // the tags' versions from before the load: an invalidation during it outdates the value
            #[cfg(feature = "tier")]
            let recorded: Vec<crate::codec::Tag> = match &tags {
                None => Vec::new(),
                Some(t) => {
                    let names: Vec<&str> = t.iter().map(String::as_str).collect();
                    match inner.tier() {
                        Some(tier) if l2_expect.is_some() => tier.versions_for_load(&names).await,
                        _ => inner.tags.versions_now(&names),
                    }
                }
            };
            #[cfg(not(feature = "tier"))]
            let () = tags;
            let started = inner.store.precise_now();
            let load = Tracked {
                id,
                // counted when called: a flight an L2 hit answers makes no trip to the source
                fut: future::lazy(|_| {
                    inner.flights.counters.loads.fetch_add(1, Relaxed);
                    loader()
                })
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
            // the host timer's time, not the cache clock's: the deadline is the timer's
            let began = web_time::Instant::now();
            let res = match (inner.settings.load_timeout, &inner.timer) {
                // The sleep is made once the loader is seen pending: a blocking loader answers
                // in the first poll, on its caller's thread, where the host timer's sleep may
                // not run (tokio's needs its runtime); its deadline is kept by the check below.
                #[cfg(not(target_arch = "wasm32"))]
                (Some(t), Some(timer)) => {
                    match future::select(load, future::lazy(|_| timer.sleep(t)).flatten()).await {
                        Either::Left((r, _)) => r,
                        Either::Right(_) => Err(Error::LoadTimeout { after_ms: t.as_millis() as u64 }),
                    }
                }
                #[cfg(target_arch = "wasm32")]
                (Some(t), Some(timer)) => match future::select(load, timer.sleep(t)).await {
                    Either::Left((r, _)) => r,
                    Either::Right(_) => Err(Error::LoadTimeout { after_ms: t.as_millis() as u64 }),
                },
                _ => load.await,
            };
            // A loader that holds its thread (a synchronous one) answers before the timer can
            // fire: an answer past the deadline is the timeout the timer would have given, so
            // every caller of the flight gets the same outcome and the late value is not kept.
            let res = match inner.settings.load_timeout {
                Some(t) if began.elapsed() >= t => Err(Error::LoadTimeout { after_ms: t.as_millis() as u64 }),
                _ => res,
            };
            let took = inner.store.precise_now().saturating_sub(started);
            inner.counters.load_latency.record(took);
            let mut keep = true;
            #[cfg(feature = "tier")]
            let mut written = None;
            #[cfg(feature = "tier")]
            if let (Ok(v), Some(tier), Some(expect)) = (&res, inner.tier(), l2_expect) {
                let ttl = match v {
                    Some(_) => Some(cache.resolve_ttl(opts.ttl)),
                    None => opts.negative_ttl.or(inner.settings.negative_ttl).map(Some),
                };
                if let Some(ttl) = ttl {
                    let grace = inner.settings.grace.unwrap_or_default();
                    // under the lease the write is fenced by its token, and releases the lock
                    let (expect, release) = match &lease {
                        Some(l) => (crate::tier::Expect::Fenced(l.token), Some(l.lockval.clone())),
                        None => (expect, None),
                    };
                    if let Some(w) = tier.write(&key, v.as_ref(), ttl, grace, took, expect, release, recorded.clone()) {
                        // a write still queued at the deadline lands later; if a newer value won
                        // meanwhile, the copy kept here is made stale (as the winner's bus
                        // message would)
                        let (c, k) = (cache.clone(), key.clone());
                        let late = move |wrote| {
                            if wrote == Wrote::FencedOut {
                                c.drop_local(&k, false);
                            }
                        };
                        let settled = tier.settle(w, late).await;
                        match settled {
                            // written, or still on its way: the write carries the lock's
                            // release, so the lease ends with it
                            None | Some(Wrote::Written(_)) => {
                                if let Some(Wrote::Written(t)) = settled {
                                    written = Some((tier, t, grace));
                                }
                                if let Some(l) = &mut lease {
                                    l.released = true;
                                }
                            }
                            // A newer write won: this value is not kept here either; L1 takes
                            // what L2 holds now (the winner's value), if it is fresh.
                            Some(Wrote::FencedOut) => {
                                keep = false;
                                origin.store(FENCED_OUT, Relaxed);
                                // what L2 holds is read after every change that beat this
                                // write: fenced from now, not from when the load began
                                let fence = inner.store.refence(&key, fence);
                                if let L2Read::Hit { value, fresh, load_nanos, token, grace, tags } =
                                    tier.read(&key).await
                                {
                                    cache.store_shared(
                                        &key,
                                        value,
                                        fresh,
                                        load_nanos,
                                        fence,
                                        opts,
                                        (token, grace),
                                        &tags,
                                    );
                                }
                            }
                            Some(Wrote::Failed) => {}
                        }
                    }
                }
            }
            #[cfg(feature = "tier")]
            drop(lease);
            // Fail-safe for an instance that holds no stale copy (a new one, or one that evicted
            // it): what L2 still holds within its grace window stands in for the failed load,
            // kept here as a stale entry (served only as a fallback) for this load's callers
            // and the next ones.
            #[cfg(feature = "tier")]
            if let (Err(e), Some(tier), Some(_)) = (&res, inner.tier(), l2_expect) {
                let usable = !matches!(e, Error::RecursiveLoad | Error::KeyTooLong { .. });
                if usable && inner.settings.grace_nanos() > 0 && inner.store.peek_stored(&key, |_| ()).is_none() {
                    if let Some((value, left, tags)) = tier.read_fallback(&key).await {
                        cache.store_fallback(&key, value, left, fence, &tags);
                    }
                }
            }
            // a tag invalidated while it loaded: the caller gets the value, the cache does not keep it
            #[cfg(feature = "tier")]
            if !recorded.is_empty() && !inner.tags.current(&recorded) {
                keep = false;
            }
            match &res {
                Ok(v) if keep => {
                    let _version = cache.store_loaded(&key, v.clone(), fence, took, opts);
                    #[cfg(feature = "tier")]
                    if let (Some(version), Some((tier, token, grace))) = (_version, written) {
                        tier.remember(&key, version, token, grace);
                    }
                    #[cfg(feature = "tier")]
                    if _version.is_some() && !recorded.is_empty() {
                        inner.tags.record(&key, &recorded, |k| inner.store.stored_version(k) != 0);
                    }
                }
                Ok(_) => {}
                Err(Error::LoadTimeout { .. }) => {
                    counters.load_timeouts.fetch_add(1, Relaxed);
                }
                Err(Error::LoaderPanicked { .. }) => {
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

    /// The fresh value of `key` in L1 unless it is suspect (written before the shared tier's
    /// last gap or outage): a flight about to start re-reads a suspect entry instead of
    /// answering with it.
    fn trusted_peek(&self, key: &str) -> Option<Option<V>> {
        let tier = self.inner.tier();
        self.inner
            .store
            .peek_with(key, |s, _| (s.value.clone(), s.written_at()))
            .filter(|(_, written)| tier.is_none_or(|t| !t.is_suspect(*written)))
            .map(|(v, _)| v)
    }

    /// Stores a value read from L2 for the life Redis has left (`fresh`; `None`: no expiry),
    /// within the cache's own TTL, unless a write or a removal landed here since the load began
    /// (counted as a fenced write); remembers its token (for a revalidation later) and its tags.
    #[cfg(feature = "tier")]
    #[allow(clippy::too_many_arguments)]
    fn store_shared(
        &self,
        key: &str,
        value: Option<V>,
        fresh: Option<Duration>,
        load_nanos: u64,
        fence: LoadFence,
        opts: FetchOptions,
        (token, grace): (crate::codec::Token, Duration),
        tags: &[crate::codec::Tag],
    ) {
        let ttl = match (fresh, self.resolve_ttl(opts.ttl)) {
            (None, _) => Ttl::Default,
            (Some(f), Some(own)) => Ttl::For(f.min(own)),
            (Some(f), None) => Ttl::For(f),
        };
        let _storing = crate::cache::StoringALoad::enter();
        match self.write_raw(key, value, ttl, Some(Expect::Load(fence)), load_nanos) {
            Ok(w) => {
                if let Some(tier) = self.inner.tier() {
                    tier.remember(key, w.version, token, grace);
                }
                if !tags.is_empty() {
                    self.inner.tags.record(key, tags, |k| self.inner.store.stored_version(k) != 0);
                }
            }
            Err(Error::VersionMismatch { .. }) => {
                self.inner.counters.fenced_writes.fetch_add(1, Relaxed);
            }
            Err(_) => {}
        }
    }

    /// Keeps `value`, what L2 held for `key` when its load failed, as a stale entry: served only
    /// as a fallback, for the cache's grace window at most and no longer than L2 would keep it
    /// (`left`), and only if nothing was written to `key` since the load began.
    #[cfg(feature = "tier")]
    fn store_fallback(
        &self,
        key: &str,
        value: Option<V>,
        left: Option<Duration>,
        fence: LoadFence,
        tags: &[crate::codec::Tag],
    ) {
        let now = self.inner.store.now();
        let left = left.map_or(u64::MAX, |l| u64::try_from(l.as_nanos()).unwrap_or(u64::MAX));
        let grace = left.min(self.inner.settings.grace_nanos());
        let grace_until = now.saturating_add(grace).min(crate::store::NEVER - 1);
        let meta = crate::store::Meta { expires_at: now, grace_until, load_nanos: 0 };
        let _storing = crate::cache::StoringALoad::enter();
        let stored = self.write_meta(key, value, meta, Some(Duration::ZERO), Some(Expect::Load(fence)), false, None);
        if stored.is_ok() && !tags.is_empty() {
            self.inner.tags.record(key, tags, |k| self.inner.store.stored_version(k) != 0);
        }
    }

    /// After a failed load, for a call that had no stale value to fall back on: the stale one
    /// the load kept from L2 meanwhile (see [`Cache::store_fallback`]), if any.
    #[cfg(feature = "tier")]
    fn fallback_after_failure(&self, key: &str) -> Option<Option<V>> {
        self.inner.tier()?;
        let now = self.inner.store.now();
        self.inner.store.peek_stored(key, |e| (e.expires_at <= now).then(|| e.value.clone())).flatten()
    }

    /// The fallback of a call whose wait for its load timed out: the load keeps what L2 holds
    /// once it has ended, but the call's own deadline ends its wait as the load's deadline ends
    /// the load, so the call reads L2 itself (one read, with the tier's deadline): a value
    /// within its grace window, for a cache with a grace window of its own.
    #[cfg(feature = "tier")]
    async fn fallback_from_l2(&self, key: &str) -> Option<Option<V>> {
        let tier = self.inner.tier()?;
        if self.inner.settings.grace_nanos() == 0 {
            return None;
        }
        tier.read_fallback(key).await.map(|(value, ..)| value)
    }

    /// [`Cache::fallback_from_l2`] for a thread blocked in a load, polled on that thread as the
    /// load's own reads of the tier are.
    #[cfg(all(feature = "tier", not(target_arch = "wasm32")))]
    fn fallback_from_l2_blocking(&self, key: &str) -> Option<Option<V>> {
        futures::executor::block_on(self.fallback_from_l2(key))
    }

    /// Renews the entry of `key` at `version` (a suspect copy L2 confirmed by its token) for
    /// `fresh` more (the cache's TTL at most), remembering the token for its new version.
    #[cfg(feature = "tier")]
    fn renew_shared(
        &self,
        key: &str,
        version: u64,
        fresh: Option<Duration>,
        load_nanos: u64,
        opts: FetchOptions,
        (token, grace): (crate::codec::Token, Duration),
    ) {
        let ttl = match (fresh, self.resolve_ttl(opts.ttl)) {
            (None, _) => Ttl::Default,
            (Some(f), Some(own)) => Ttl::For(f.min(own)),
            (Some(f), None) => Ttl::For(f),
        };
        let (meta, _) = self.meta(ttl, load_nanos);
        if let (Some(v), Some(tier)) = (self.inner.store.renew(key, version, meta), self.inner.tier()) {
            tier.remember(key, v, token, grace);
        }
    }

    /// Waits for a joined flight. A flight a blocking thread leads runs its loader inside that
    /// thread's poll, where the flight's own timer cannot end it: a caller that joins it waits
    /// with a timer of its own, up to `load_timeout`, as a blocking waiter does.
    #[cfg(not(target_arch = "wasm32"))]
    async fn wait_joined<T: Clone + Send + Sync + 'static>(
        joined: flight::Joined<T>,
        load_timeout: Option<Duration>,
        timer: Option<&dyn crate::Timer>,
    ) -> Result<T> {
        if let (true, Some(t), Some(timer)) = (joined.blocking, load_timeout, timer) {
            return match future::select(Box::pin(flight::wait(joined)), timer.sleep(t)).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => Err(Error::LoadTimeout { after_ms: t.as_millis() as u64 }),
            };
        }
        flight::wait(joined).await
    }

    /// Stores a loaded value unless a write or a removal landed since the load began (its
    /// fence). Answers the version stored, if it was.
    fn store_loaded(
        &self,
        key: &str,
        value: Option<V>,
        fence: LoadFence,
        load_nanos: u64,
        opts: FetchOptions,
    ) -> Option<u64> {
        let c = &self.inner.counters;
        let ttl = match &value {
            Some(_) => opts.ttl,
            None => {
                let t = opts.negative_ttl.or(self.inner.settings.negative_ttl)?;
                if c.negative_entries.load(Relaxed) >= self.inner.settings.max_negative {
                    c.negative_refused.fetch_add(1, Relaxed);
                    return None;
                }
                Ttl::For(t)
            }
        };
        let _storing = crate::cache::StoringALoad::enter();
        match self.write_raw(key, value, ttl, Some(Expect::Load(fence)), load_nanos) {
            Ok(w) => return Some(w.version),
            Err(Error::VersionMismatch { .. }) => {
                c.fenced_writes.fetch_add(1, Relaxed);
            }
            Err(_) => {
                c.oversize_rejections.fetch_add(1, Relaxed);
            }
        }
        None
    }
}

/// A value loader's answer as a read-through one: the crate's own [`Error::NotFound`] is the
/// source saying the key does not exist (what [`Loaded::NotFound`] says to `fetch`), so it is
/// counted and negatively cached as that, not as a failed load.
fn as_loaded<V, E: Into<LoaderError>>(r: std::result::Result<V, E>) -> std::result::Result<Loaded<V>, LoaderError> {
    match r {
        Ok(v) => Ok(Loaded::Value(v)),
        Err(e) => {
            let e = e.into();
            if matches!(e.downcast_ref::<Error>(), Some(Error::NotFound)) {
                Ok(Loaded::NotFound)
            } else {
                Err(e)
            }
        }
    }
}
