//! [`Backend`]: one cache as the JS wrapper sees it, and every function body the bindings
//! export. Each converts its arguments, calls the core and converts the result; the bindings
//! add only their attributes and host glue.
//!
//! Removal events: the core's removal listener queues the (key, handle) of entries the wrapper
//! must forget ([`Removals`]). Calls that may evict say so (`Out::PENDING` after `set`, `touch`'s
//! answer); the wrapper then calls `drain`, so its read mirror never answers for an entry the
//! core dropped.
//!
//! Reads: the wrapper's read mirror answers repeated reads in JS. The reads it answered reach
//! the core in batches (`touch`), counted there like any read and seen by the eviction policy,
//! and every read it cannot answer is a read of the core (`state`). So the core's counters are
//! the only ones.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use futures::future::{AbortHandle, Abortable, BoxFuture};
use healcache::settings::js_name;
use healcache::{
    Cache, CacheBuilder, Config, Entry, Error, FetchOptions, Healer, Loaded, LoaderError, ManualClock, Result, Spawner,
    Timer, Warm, WriteOptions, WriteThrough, Written,
};

use crate::config::ttl_arg;
use crate::heal::{self, HealState, JsSource, VerifyCall};
use crate::removals::cause_code;
use crate::shared::{JsCodec, L2Values, Payload, L2_FIRST_ID};
use crate::value::{Out, NONE};
use crate::{lock, Handle, Js, Map, Removals};

/// The loader of one flight, as the binding bridges the JS function (see [`crate::loaded_from`]).
pub type LoaderFuture = BoxFuture<'static, std::result::Result<Loaded<Handle>, LoaderError>>;

/// One call of a batch loader (`getMany`, `warm`), as the binding bridges the JS function: the
/// values it found, by key.
pub type BatchFuture = BoxFuture<'static, std::result::Result<std::collections::HashMap<String, Handle>, LoaderError>>;

/// What `fetch` and `getOrLoad` resolve to: `{ handle, status }` (handle [`NONE`]: not found;
/// status: the core's `Status::as_str`).
pub type FetchAnswer = Js;

/// Milliseconds until an expiry the core decided (`Infinity`: never).
#[inline]
fn ms_left(d: Option<std::time::Duration>) -> f64 {
    d.map_or(f64::INFINITY, |d| d.as_secs_f64() * 1e3)
}

/// One cache: the core instance (built at its first use, see [`Backend::new`]), and the cancel
/// handles of the `getOrLoad` calls still waiting.
pub struct Backend {
    core: OnceLock<Core>,
    /// Builds the core from a seed (`None`: the core's); taken at the first use.
    make: Mutex<Option<MakeCore>>,
    /// Where the seed of a cache created without one comes from (the host's randomness).
    seed: Option<fn() -> u64>,
    cancels: Arc<Mutex<Map<u32, AbortHandle>>>,
    /// Values read from the shared tier, until the wrapper takes them.
    l2: Arc<L2Values>,
    /// Where the healing loop runs; `None` where the host schedules intervals itself.
    background: Option<Arc<dyn Spawner>>,
    heal_loop: Mutex<HealLoop>,
}

/// The core instance, its removal queue and its healer.
struct Core {
    cache: Cache<Handle>,
    removed: Arc<Removals>,
    heal: Arc<HealState>,
    healer: Healer<Handle>,
}

/// Gives a builder its shared tier with the codec of JS values (a binding that has a transport).
pub type AttachTier = Box<dyn FnOnce(CacheBuilder<Handle>, JsCodec) -> CacheBuilder<Handle> + Send>;

type MakeCore = Box<dyn FnOnce(Option<u64>) -> Result<Core> + Send>;

/// The background healing loop of one cache (the core's `Healer::run`).
enum HealLoop {
    /// Not started: healing was never enabled.
    Idle,
    /// Started the first time healing was enabled; idle while it is disabled.
    Running(AbortHandle),
    /// `close()` was called: never started again.
    Closed,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let HealLoop::Running(h) = &*lock(&self.heal_loop) {
            h.abort();
        }
    }
}

impl Backend {
    /// A cache from `config`, its delays on `timer`, its background refreshes on `spawner`, its
    /// time from `clock` (the host's monotonic clock when `None`); with `background`, its healing
    /// loop runs on `spawner` too. With `seed` (a host's randomness) and no `config.seed`, the
    /// settings are checked now and the core is built at the first call that uses it, seeded
    /// then: edge runtimes forbid randomness in global scope, where a cache is often created.
    /// Otherwise the core is built now (seeded by the core when `config.seed` is `None`).
    pub fn new<S: Spawner + Clone>(
        config: Config,
        timer: impl Timer,
        spawner: S,
        background: bool,
        clock: Option<ManualClock>,
        seed: Option<fn() -> u64>,
        tier: Option<AttachTier>,
    ) -> Result<Self> {
        config.check()?;
        let now = match (config.seed, seed) {
            (Some(_), _) | (None, None) => Some(config.seed),
            (None, Some(_)) => None,
        };
        let bg = background.then(|| Arc::new(spawner.clone()) as Arc<dyn Spawner>);
        let l2 = Arc::new(L2Values::default());
        let codec = JsCodec(Arc::clone(&l2));
        let make: MakeCore = Box::new(move |seed| {
            let removed = Arc::new(Removals::default());
            let heal = Arc::new(HealState::default());
            let (r, h) = (Arc::clone(&removed), Arc::clone(&heal));
            let mut builder = CacheBuilder::from_config(Config { seed, ..config });
            if let Some(c) = clock {
                builder = builder.clock(c);
            }
            if let Some(attach) = tier {
                builder = attach(builder, codec);
            }
            let cache = builder
                .weigher(|h: &Handle| h.weight)
                .timer(timer)
                .spawner(spawner)
                .on_removal(move |key, handle, cause| r.record(key, handle, cause, &h))
                .build()?;
            let healer = heal::new_healer(&cache, &heal)?;
            Ok(Core { cache, removed, heal, healer })
        });
        let b = Backend {
            core: OnceLock::new(),
            make: Mutex::new(Some(make)),
            seed,
            cancels: Arc::default(),
            l2,
            background: bg,
            heal_loop: Mutex::new(HealLoop::Idle),
        };
        if let Some(seed) = now {
            let make = lock(&b.make).take().expect("not built yet");
            let _ = b.core.set(make(seed)?);
        }
        Ok(b)
    }

    /// Bytes the core made room for up front (`Cache::reserved_bytes`; 0 before it is built): a
    /// host tells its garbage collector, so that dropped caches are collected in time.
    pub fn reserved_bytes(&self) -> u64 {
        self.core.get().map_or(0, |c| c.cache.reserved_bytes())
    }

    /// The core, built (and seeded) at the first use.
    #[inline]
    fn core(&self) -> &Core {
        self.core.get_or_init(|| {
            let make = lock(&self.make).take().expect("the core is built once");
            // the settings were checked by `new`, and the timer and the spawner are given (no
            // `expect`: the error's Debug text would grow the WebAssembly module by kilobytes)
            match make(self.seed.map(|f| f())) {
                Ok(core) => core,
                Err(_) => unreachable!("a checked config builds"),
            }
        })
    }

    /// Writes `handle` (a value of `weight` bytes) under `key`; `ttl` in ms (`None`: the cache's,
    /// `Infinity`: never), `if_version` for a compare-and-set. Returns the new version, and fills
    /// `out` with it, the time until the expiry the core decided and the pending flag.
    pub fn write(
        &self,
        key: &str,
        handle: f64,
        weight: f64,
        ttl: Option<f64>,
        if_version: Option<f64>,
        out: &mut [f64],
    ) -> Result<f64> {
        self.write_handle(key, Handle { id: handle, weight: weight as u64, payload: None }, ttl, if_version, out)
    }

    /// `write` on a cache with a shared tier: the value also as it crosses to other processes
    /// (converted by the binding), so the core can write it to L2.
    #[allow(clippy::too_many_arguments)]
    pub fn write_shared(
        &self,
        key: &str,
        handle: f64,
        weight: f64,
        ttl: Option<f64>,
        if_version: Option<f64>,
        payload: Payload,
        out: &mut [f64],
    ) -> Result<f64> {
        let h = Handle { id: handle, weight: weight as u64, payload: Some(Arc::new(payload)) };
        self.write_handle(key, h, ttl, if_version, out)
    }

    fn write_handle(
        &self,
        key: &str,
        h: Handle,
        ttl: Option<f64>,
        if_version: Option<f64>,
        out: &mut [f64],
    ) -> Result<f64> {
        let opts = WriteOptions { ttl: ttl_arg(ttl)?, if_version: if_version.map(|v| v as u64) };
        self.written(h.id, || self.core().cache.write_entry(key, h, opts), out)
    }

    /// The value read from L2 under handle `id`, while the core holds it (`None` once dropped).
    pub fn l2_value(&self, id: f64) -> Option<Arc<Payload>> {
        self.l2.get(id)
    }

    /// `Cache::local_generation`: what the wrapper's read mirror checks before a hit.
    pub fn local_generation(&self) -> Option<Arc<std::sync::atomic::AtomicU32>> {
        self.core().cache.local_generation()
    }

    /// `Cache::write_tagged`: `write` of a value carrying tags; `payload`: the value as it
    /// crosses to other processes, on a cache with a shared tier.
    #[cfg(feature = "tier")]
    #[allow(clippy::too_many_arguments)]
    pub fn write_tagged(
        &self,
        key: &str,
        handle: f64,
        weight: f64,
        ttl: Option<f64>,
        if_version: Option<f64>,
        tags: &[String],
        payload: Option<Payload>,
        out: &mut [f64],
    ) -> Result<f64> {
        let h = Handle { id: handle, weight: weight as u64, payload: payload.map(Arc::new) };
        let opts = WriteOptions { ttl: ttl_arg(ttl)?, if_version: if_version.map(|v| v as u64) };
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.written(h.id, || self.core().cache.write_tagged(key, h, opts, &tags), out)
    }

    /// Core `WriteBehind::new` for this cache: its drainer on the cache's spawner.
    #[cfg(feature = "tier")]
    pub fn write_behind(
        &self,
        writer: impl healcache::BatchWriter<Handle>,
        cfg: healcache::WriteBehindConfig,
    ) -> Result<healcache::WriteBehind<Handle>> {
        healcache::WriteBehind::new(self.core().cache.clone(), writer, cfg)
    }

    /// `Cache::invalidate_tag`: resolves to how many fresh entries of this process it invalidated.
    #[cfg(feature = "tier")]
    pub fn invalidate_tag(&self, tag: String, hard: bool) -> impl Future<Output = Result<f64>> + Send + 'static {
        let cache = self.core().cache.clone();
        async move { cache.invalidate_tag(&tag, hard).await.map(|n| n as f64) }
    }

    /// `write` with the cache's TTL and no condition, the common case, in fewer arguments.
    pub fn write_plain(&self, key: &str, handle: f64, weight: f64, out: &mut [f64]) -> Result<f64> {
        let h = Handle { id: handle, weight: weight as u64, payload: None };
        self.written(handle, || self.core().cache.write_entry(key, h, WriteOptions::default()), out)
    }

    /// [`Backend::write_plain`] that, with `keep` (the wrapper says only its mirror holds the
    /// key's set value), stores an overwrite of a fresh set value under that value's handle: the
    /// wrapper then keeps the key's slot and mirror entry and updates them in place, rather than
    /// taking a new slot and a `Map.set` (a third of an overwrite's time in JS). The core decides
    /// it under the write's own lock ([`healcache::Cache::write_adopting`]): one lookup of the
    /// key, as a plain write makes. Not while every removal is reported (`dispose` hears of each
    /// value replaced) or the healer watches handles. `out[HANDLE]` names the handle the core holds.
    /// (The WebAssembly module leaves it out: its size budget has no room for it.)
    pub fn write_plain_keeping(&self, key: &str, handle: f64, weight: f64, keep: bool, out: &mut [f64]) -> Result<f64> {
        let core = self.core();
        if !keep || core.removed.reports_all() || core.heal.watching() {
            return self.write_plain(key, handle, weight, out);
        }
        let removed = &core.removed;
        let mut kept = NONE;
        let mut adopt = |old: &Handle| {
            (old.from_set() && old.id < L2_FIRST_ID as f64).then(|| {
                kept = old.id;
                removed.keep(old.id);
                Handle { id: old.id, weight: weight as u64, payload: None }
            })
        };
        let h = Handle { id: handle, weight: weight as u64, payload: None };
        let (w, dropped) = removed.capturing(|| core.cache.write_adopting(key, h, &mut adopt));
        if kept == NONE {
            return self.answer(handle, false, w, dropped, out);
        }
        self.answer(kept, true, w, dropped, out)
    }

    /// Runs `write` of handle `id` and puts what it decided into `out`; returns the version.
    #[inline]
    fn written(&self, id: f64, write: impl FnOnce() -> Result<Written>, out: &mut [f64]) -> Result<f64> {
        let (w, dropped) = self.core().removed.capturing(write);
        self.answer(id, false, w, dropped, out)
    }

    /// Puts what write `w` of handle `id` decided into `out`, with `dropped` the set value it
    /// replaced (see [`crate::removals::Removals::capturing`]); returns the version. `kept`:
    /// `id` is that of the set value it replaced (see [`Backend::write_plain_keeping`]).
    #[inline]
    fn answer(&self, id: f64, kept: bool, w: Result<Written>, dropped: f64, out: &mut [f64]) -> Result<f64> {
        let w = w?;
        // a kept handle's replace is the write itself: nothing for the wrapper to free
        debug_assert!(!kept || dropped == id, "a kept write replaced another value");
        let dropped = if kept { NONE } else { dropped };
        let removed = &self.core().removed;
        out[Out::HANDLE] = id;
        let version = w.version as f64;
        out[Out::VERSION] = version;
        out[Out::EXPIRES] = ms_left(w.expires_in);
        out[Out::PENDING] = f64::from(u8::from(removed.pending()));
        out[Out::REPLACED] = f64::from(u8::from(w.replaced));
        out[Out::DROPPED] = dropped;
        Ok(version)
    }

    /// Removes `key`; returns the removed handle, or [`NONE`] if nothing live was there.
    pub fn remove(&self, key: &str) -> f64 {
        self.core().cache.remove(key).map_or(NONE, |h| h.id)
    }

    /// Removes `key` only if its live version is `expected` (0: absent), else `VersionMismatch`;
    /// whether a live entry was removed.
    pub fn remove_if_version(&self, key: &str, expected: f64) -> Result<bool> {
        self.core().cache.remove_if_version(key, expected as u64)
    }

    /// A read of `key` by the core (counted as a hit or a miss): fills `out` with the handle of
    /// its fresh value ([`NONE`] if none), its version and freshness, the loads under way (so the
    /// wrapper can follow a value a background refresh stored) and the pending flag.
    pub fn state(&self, key: &str, out: &mut [f64]) {
        out[Out::FLIGHTS] = self.core().cache.in_flight() as f64;
        self.entry_into(self.core().cache.get_entry(key), out);
    }

    /// `state` without counting a read or touching the entry's access counter (`peek`).
    pub fn peek(&self, key: &str, out: &mut [f64]) {
        out[Out::FLIGHTS] = self.core().cache.in_flight() as f64;
        self.entry_into(self.core().cache.peek_entry(key), out);
    }

    /// The handle of the entry the core keeps for `key`, fresh or stale within its grace window
    /// ([`NONE`] if none), without counting a read: the wrapper keeps a decided value only while
    /// the core may still hand it back, and asks only when it holds such a value.
    pub fn stored(&self, key: &str) -> f64 {
        self.core().cache.peek_stored(key).map_or(NONE, |h| h.id)
    }

    fn entry_into(&self, e: Option<Entry<Handle>>, out: &mut [f64]) {
        match e {
            Some(e) => {
                out[Out::HANDLE] = e.value.id;
                out[Out::VERSION] = e.version as f64;
                out[Out::EXPIRES] = ms_left(e.expires_in);
            }
            None => {
                out[Out::HANDLE] = NONE;
                out[Out::VERSION] = 0.0;
                out[Out::EXPIRES] = 0.0;
            }
        }
        out[Out::PENDING] = f64::from(u8::from(self.core().removed.pending()));
    }

    /// Every live key, in no particular order.
    pub fn keys(&self) -> Js {
        Js::List(self.core().cache.keys().into_iter().map(Js::Str).collect())
    }

    /// Reports the reads the wrapper's mirror answered: `hits` hits, of which `keys` is a
    /// sample (core `Cache::record_hits`: counted, and seen by the eviction policy, without
    /// reading a value), and the reads of `missed` keys it knew expired (reads of the core,
    /// counted as misses). Returns whether removals are queued.
    pub fn touch(&self, keys: &[String], hits: f64, missed: &[String]) -> bool {
        for k in missed {
            self.core().cache.get(k);
        }
        self.core().cache.record_hits(keys, hits.max(0.0) as u64);
        self.core().removed.pending()
    }

    /// Takes the removal queue ([`Removals`]): `[key, handle, ...]`, a set value's (even)
    /// handle without its key (negated: replaced or deleted); once `report_removals` was
    /// called, each handle followed by its cause ([`cause_code`]).
    pub fn drain(&self) -> Js {
        let taken = self.core().removed.take();
        let causes = self.core().removed.reports_all();
        let mut out = Vec::with_capacity(3 * taken.len());
        for (k, h, cause) in taken {
            if let Some(k) = k {
                out.push(Js::Str(k.to_string()));
            }
            out.push(Js::Num(h));
            if causes {
                out.push(Js::Num(cause_code(cause)));
            }
        }
        Js::List(out)
    }

    /// Queues every removal from now on, with its cause (the wrapper's `dispose` callback).
    pub fn report_removals(&self) {
        self.core().removed.report_all();
    }

    /// The version of `key`'s fresh entry, a cached "not found" included (0: none): the mirror
    /// holds no "not found" entries, so it asks the core for keys it lacks.
    pub fn version(&self, key: &str) -> f64 {
        self.core().cache.version(key) as f64
    }

    /// Number of stored entries (expired ones not yet swept included).
    pub fn len(&self) -> f64 {
        self.core().cache.len() as f64
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.core().cache.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.core().cache.clear();
    }

    /// Removes every expired entry now (queued as removals); returns how many.
    pub fn purge_expired(&self) -> f64 {
        self.core().cache.purge_expired() as f64
    }

    /// Every counter of the core's `Stats`, by its JS name, and the histograms (load latency,
    /// L2 latency, fleet lock waits).
    pub fn stats(&self) -> Js {
        let s = self.core().cache.stats();
        let mut fields: Vec<(String, Js)> =
            s.counters().iter().map(|&(name, n)| (js_name(name).into_owned(), n.into())).collect();
        for (name, h) in [
            ("loadLatency", &s.load_latency),
            ("l2Latency", &s.l2_latency),
            ("l2LockWait", &s.l2_lock_wait),
            ("l2BusLatency", &s.l2_bus_latency),
        ] {
            fields.push((name.to_string(), heal::histogram(h)));
        }
        Js::Named(fields)
    }

    /// The core's counters, then the healer's, in the Prometheus text format.
    pub fn prometheus(&self, name: &str) -> String {
        self.core().cache.prometheus(name) + &self.core().healer.prometheus(name)
    }

    /// Core `fetch` for one caller with a cancel `ticket` ([`Backend::cancel`]): the value of
    /// `key`, loaded once per flight by `loader`. `must_value` makes "not found" the core
    /// `NotFound` error (`getOrLoad`).
    pub fn fetch<L>(
        &self,
        key: String,
        loader: L,
        ticket: u32,
        opts: FetchOptions,
        must_value: bool,
    ) -> impl Future<Output = Result<FetchAnswer>> + Send + 'static
    where
        L: FnOnce() -> LoaderFuture + Send + 'static,
    {
        #[cfg(feature = "tier")]
        let none = None;
        #[cfg(not(feature = "tier"))]
        let none = ();
        self.fetch_with(key, loader, ticket, opts, must_value, none)
    }

    /// `fetch` of a value carrying tags (core `Cache::fetch_tagged`).
    #[cfg(feature = "tier")]
    pub fn fetch_tagged<L>(
        &self,
        key: String,
        loader: L,
        ticket: u32,
        opts: FetchOptions,
        must_value: bool,
        tags: Vec<String>,
    ) -> impl Future<Output = Result<FetchAnswer>> + Send + 'static
    where
        L: FnOnce() -> LoaderFuture + Send + 'static,
    {
        self.fetch_with(key, loader, ticket, opts, must_value, Some(tags))
    }

    fn fetch_with<L>(
        &self,
        key: String,
        loader: L,
        ticket: u32,
        opts: FetchOptions,
        must_value: bool,
        #[cfg(feature = "tier")] tags: Option<Vec<String>>,
        #[cfg(not(feature = "tier"))] tags: (),
    ) -> impl Future<Output = Result<FetchAnswer>> + Send + 'static
    where
        L: FnOnce() -> LoaderFuture + Send + 'static,
    {
        let cache = self.core().cache.clone();
        let cancels = Arc::clone(&self.cancels);
        let l2 = Arc::clone(&self.l2);
        let (abort, reg) = AbortHandle::new_pair();
        lock(&cancels).insert(ticket, abort);
        async move {
            let load = async {
                #[cfg(feature = "tier")]
                if let Some(t) = tags {
                    let t: Vec<&str> = t.iter().map(String::as_str).collect();
                    return cache.fetch_tagged(&key, opts, &t, loader).await;
                }
                #[cfg(not(feature = "tier"))]
                let () = tags;
                cache.fetch(&key, opts, loader).await
            };
            let r = Abortable::new(load, reg).await.unwrap_or(Err(Error::Cancelled));
            lock(&cancels).remove(&ticket);
            let f = r?;
            let status = f.status;
            let value = if must_value { Some(f.into_value()?) } else { f.value };
            let handle = match value {
                Some(h) => {
                    l2.answered(&h);
                    h.id
                }
                None => NONE,
            };
            Ok(Js::Obj(vec![("handle", Js::Num(handle)), ("status", Js::Str(status.as_str().to_string()))]))
        }
    }

    /// `Cache::fetch_many`: resolves to `[handle, status, ...]`, one pair per key of `keys` (a
    /// handle [`NONE`]: not found). `loader` is the batch loader as the binding bridges it.
    pub fn fetch_many<L>(
        &self,
        keys: Vec<String>,
        loader: L,
        ttl: Option<f64>,
    ) -> Result<impl Future<Output = Result<Js>> + Send + 'static>
    where
        L: Fn(Vec<String>) -> BatchFuture + Send + Sync + 'static,
    {
        let opts = FetchOptions { ttl: ttl_arg(ttl)?, ..FetchOptions::default() };
        let cache = self.core().cache.clone();
        let l2 = Arc::clone(&self.l2);
        Ok(async move {
            let got = cache.fetch_many(&keys, opts, loader).await?;
            let mut out = Vec::with_capacity(2 * got.len());
            for f in got {
                out.push(Js::Num(f.value.as_ref().map_or(NONE, |h| {
                    l2.answered(h);
                    h.id
                })));
                out.push(Js::Str(f.status.as_str().to_string()));
            }
            Ok(Js::List(out))
        })
    }

    /// `Cache::warm` of `keys`, or `Cache::warm_matching` of `pattern` when there are no keys:
    /// resolves to the report `{ total, found, notFound, failed, error }`.
    pub fn warm<L>(
        &self,
        keys: Option<Vec<String>>,
        pattern: String,
        loader: L,
        opts: Warm,
    ) -> impl Future<Output = Result<Js>> + Send + 'static
    where
        L: Fn(Vec<String>) -> BatchFuture + Send + Sync + 'static,
    {
        let cache = self.core().cache.clone();
        async move {
            let r = match keys {
                Some(keys) => cache.warm(&keys, opts, loader).await?,
                None => cache.warm_matching(&pattern, opts, loader).await?,
            };
            let error = r.error.map_or(Js::Undefined, Js::Str);
            Ok(Js::Obj(vec![
                ("total", Js::Num(r.total as f64)),
                ("found", Js::Num(r.found as f64)),
                ("notFound", Js::Num(r.not_found as f64)),
                ("failed", Js::Num(r.failed as f64)),
                ("error", error),
            ]))
        }
    }

    /// `Cache::ready`.
    pub fn ready(&self) -> bool {
        self.core().cache.ready()
    }

    /// `Cache::warm_progress` as `[answered, failed, total]`.
    pub fn warm_progress(&self) -> Js {
        let (a, f, t) = self.core().cache.warm_progress();
        Js::Nums(vec![a as f64, f as f64, t as f64])
    }

    /// `Cache::write_through` of `handle` (a value of `weight` bytes; `payload`: the value as it
    /// crosses to other processes, on a cache with a shared tier); `writer` is the user's
    /// writer as the binding bridges it. Resolves to the new version (0: invalidated).
    #[allow(clippy::too_many_arguments)]
    pub fn write_through<W>(
        &self,
        key: String,
        handle: f64,
        weight: f64,
        ttl: Option<f64>,
        invalidate: bool,
        payload: Option<Payload>,
        writer: W,
    ) -> Result<impl Future<Output = Result<f64>> + Send + 'static>
    where
        W: FnOnce() -> BoxFuture<'static, std::result::Result<(), LoaderError>> + Send + 'static,
    {
        let opts = WriteThrough { ttl: ttl_arg(ttl)?, invalidate };
        let h = Handle { id: handle, weight: weight as u64, payload: payload.map(Arc::new) };
        let cache = self.core().cache.clone();
        Ok(async move { cache.write_through(&key, h, opts, writer).await.map(|v| v as f64) })
    }

    /// Stops the wait of the call with this ticket (it fails with `Cancelled`); the flight goes
    /// on for its other waiters.
    pub fn cancel(&self, ticket: u32) {
        if let Some(a) = lock(&self.cancels).remove(&ticket) {
            a.abort();
        }
    }

    // ---- self-healing ----

    /// Core `Healer::register_source`, for a source the wrapper answers through `verify`.
    pub fn register_source(&self, prefix: &str, verify: VerifyCall) -> Result<()> {
        let source = JsSource::new(verify, self.core().cache.clone(), Arc::clone(&self.core().heal));
        self.core().healer.register_source(prefix, source)
    }

    /// Core `Healer::unregister_source`.
    pub fn unregister_source(&self, prefix: &str) -> bool {
        self.core().healer.unregister_source(prefix)
    }

    /// Core `Healer::run_interval`, resolving to its report.
    pub fn verify_now(&self) -> impl Future<Output = Js> + Send + 'static {
        let healer = self.core().healer.clone();
        async move { heal::report(&healer.run_interval().await) }
    }

    /// How many intervals have ended (the wrapper's answers during one are settled after it).
    pub fn healing_intervals(&self) -> f64 {
        self.core().healer.stats().interval_duration.counts.iter().sum::<u64>() as f64
    }

    /// Forgets what the healer watched (called by the wrapper once the intervals it awaited are
    /// over: their repairs have landed and been queued).
    pub fn healing_reset(&self) {
        self.core().heal.reset();
    }

    /// Sets healing settings by core name (`healing.sample_rate`, ...) to numbers (flags 1/0),
    /// all or none; starts the background loop the first time healing is enabled.
    pub fn healing_set(&self, names: &[String], values: &[f64]) -> Result<()> {
        if names.len() != values.len() {
            return Err(crate::config::one_value_each("healing"));
        }
        let mut cfg = self.core().healer.config();
        for (n, v) in names.iter().zip(values) {
            cfg.set(n, *v)?;
        }
        let enabled = cfg.enabled;
        // checked before anything changes: the call is refused as a whole
        if enabled && matches!(*lock(&self.heal_loop), HealLoop::Closed) {
            return Err(Error::healing_closed());
        }
        self.core().healer.set_config(cfg)?;
        if enabled {
            self.start_loop();
        }
        Ok(())
    }

    /// Starts the core's `Healer::run` on the background spawner, once, unless closed.
    fn start_loop(&self) {
        let Some(spawner) = &self.background else { return };
        let mut state = lock(&self.heal_loop);
        if !matches!(*state, HealLoop::Idle) {
            return;
        }
        let (abort, reg) = AbortHandle::new_pair();
        let healer = self.core().healer.clone();
        spawner.spawn(Box::pin(async move {
            let _ = Abortable::new(healer.run(), reg).await;
        }));
        *state = HealLoop::Running(abort);
    }

    /// One healing setting by core name, as a number (flags 1/0).
    pub fn healing_get(&self, name: &str) -> Result<f64> {
        self.core().healer.config_get_number(name)
    }

    /// `{ prefix, score, sampled, repaired }` of `prefix`, `undefined` if it has no source.
    pub fn score(&self, prefix: &str) -> Js {
        self.core().healer.score(prefix).map_or(Js::Undefined, heal::score)
    }

    /// Every prefix's score, sorted by prefix.
    pub fn scores(&self) -> Js {
        Js::List(self.core().healer.scores().into_iter().map(heal::score).collect())
    }

    /// The core's `HealingStats`.
    pub fn healing_stats(&self) -> Js {
        heal::stats(&self.core().healer.stats())
    }

    /// Recent drift events, oldest first.
    pub fn drift_events(&self) -> Js {
        Js::List(self.core().healer.drift_events().into_iter().map(heal::drift_event).collect())
    }

    /// `close()`: the core checks `timeout` (ms; `None`: its default, 0: wait for none) first, so
    /// a refused close stops nothing; then the background loop ends for good (after its current
    /// sleep or interval), and the future is `Cache::close_shared`'s: the L2 writes still under
    /// way at the deadline. Without the `tier` feature there is no shared tier: 0 at once, as the
    /// core answers (its `close_shared` is left out: it would grow the WebAssembly module by 2.6 KB).
    pub fn close(&self, timeout: Option<f64>) -> Result<impl Future<Output = f64> + Send + 'static> {
        let d = healcache::close_timeout_ms(timeout, healcache::DEFAULT_CLOSE_TIMEOUT)?;
        *lock(&self.heal_loop) = HealLoop::Closed;
        self.core().healer.stop();
        #[cfg(feature = "tier")]
        let closing = futures::FutureExt::map(self.core().cache.close_shared(d), |left| left as f64);
        #[cfg(not(feature = "tier"))]
        let closing = {
            let _ = d;
            futures::future::ready(0.0)
        };
        Ok(closing)
    }

    /// `healcache::tier::close_all` within the core's exit timeout, for the host's exit hook:
    /// every shared tier of the process still open, closed at once; resolves to the writes still
    /// under way at the deadline in all.
    #[cfg(feature = "tier")]
    pub fn close_all_shared() -> impl Future<Output = f64> + Send + 'static {
        futures::FutureExt::map(healcache::tier::close_all(healcache::EXIT_CLOSE_TIMEOUT), |left| left as f64)
    }

    /// `healcache::close_all_write_behind` within the core's exit timeout, for the host's exit
    /// hook: every write-behind queue still running sends what it holds; resolves to the line to
    /// report on stderr for the items left at the deadline (`undefined` when none was left).
    #[cfg(feature = "tier")]
    pub fn close_all_write_behind() -> impl Future<Output = Js> + Send + 'static {
        futures::FutureExt::map(healcache::close_all_write_behind(healcache::EXIT_CLOSE_TIMEOUT), |left| {
            healcache::write_behind_exit_report(left).map_or(Js::Undefined, Js::Str)
        })
    }
}
