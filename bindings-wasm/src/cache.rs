//! The backend functions the JS wrapper (`js/cache.js`) calls, as in `bindings-node`. The core
//! stores the numeric handle the wrapper gives (`Cache<f64>`); the wrapper keeps the values.
//! Evicted and expired (key, handle) pairs are queued by the removal listener; calls that may evict return a
//! flag (a negative version from `set`, `true` from `touch`) and the wrapper then calls `drain`.
//! Background refreshes of the core's stampede layers run through `spawn_local` (the [`Spawner`]).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::{AbortHandle, Abortable, BoxFuture, FutureExt, Shared, WeakShared};
use healcache::{
    duration_ms, Cache, CacheBuilder, Error, FetchOptions, Healer, Loaded, LoaderError, Spawner, Timer, Ttl,
    WriteOptions,
};
use js_sys::{Function, Promise};
use send_wrapper::SendWrapper;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::config::config;
use crate::error::into_js_error;
use healcache_js_common::{new_healer, HealState, Removals};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

pub use healcache_js_common::Handle;

/// One cache: the core instance, the queue of removed handles, the cancel handles of waiting
/// `getOrLoad` calls, and the cache's healer (see `healing.rs`).
#[wasm_bindgen]
pub struct Backend {
    pub(crate) cache: Cache<Handle>,
    removed: Arc<Removals>,
    cancels: Arc<Mutex<crate::Map<u32, AbortHandle>>>,
    pub(crate) healer: Healer<Handle>,
    pub(crate) heal: Arc<HealState>,
}

impl Backend {
    #[inline]
    fn pending(&self) -> bool {
        self.removed.pending.load(Relaxed)
    }
}

/// Delays for `load_timeout_ms` and `healing.source_timeout_ms` on host `setTimeout`s (the module
/// has no timer of its own). The healer asks for one delay per sampled key, so delays that end
/// within the same slice of time (1/32 of the delay, from 1 to 250 ms) share one host timeout: a
/// delay ends up to a slice later than asked, never earlier. A host timeout nobody waits for any
/// more is cleared, so none outlives its use or keeps a Node process alive.
struct JsTimer;

/// A host timeout's promise, awaited.
type HostWait = SendWrapper<Pin<Box<dyn Future<Output = ()>>>>;
/// One host timeout, shared by the delays that end with it.
type HostTimeout = Shared<HostWait>;

thread_local! {
    /// Host timeouts under way with their deadline (µs since `EPOCH`), held weakly (their waiters
    /// hold them): about 32 per delay length in use (one per 250 ms for delays over 8 s).
    static TIMEOUTS: RefCell<Vec<(u64, WeakShared<HostWait>)>> =
        const { RefCell::new(Vec::new()) };
    static EPOCH: web_time::Instant = web_time::Instant::now();
}

/// Clears a host timeout when dropped (a no-op once it fired).
struct ClearOnDrop(JsValue);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        clear_timeout(&self.0);
    }
}

fn host_timeout(ms: f64) -> HostTimeout {
    let mut id = JsValue::UNDEFINED;
    let p = Promise::new(&mut |resolve, _| {
        id = set_timeout(&resolve, ms);
    });
    let guard = ClearOnDrop(id);
    let fut: Pin<Box<dyn Future<Output = ()>>> = Box::pin(async move {
        let _guard = guard;
        let _ = JsFuture::from(p).await;
    });
    SendWrapper::new(fut).shared()
}

impl Timer for JsTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let now = EPOCH.with(|e| e.elapsed().as_secs_f64() * 1e3);
        let ms = d.as_secs_f64() * 1e3;
        let slice = (ms / 32.0).clamp(1.0, 250.0);
        let deadline = ((now + ms) / slice).ceil() * slice;
        let key = (deadline * 1e3) as u64;
        TIMEOUTS.with(|t| {
            let mut t = t.borrow_mut();
            // forget the timeouts that have fired
            let now_us = (now * 1e3) as u64;
            t.retain(|(at, _)| *at >= now_us);
            if let Some(shared) = t.iter().find(|(at, _)| *at == key).and_then(|(_, w)| w.upgrade()) {
                return shared.boxed();
            }
            let shared = host_timeout(deadline - now);
            if let Some(weak) = shared.downgrade() {
                t.retain(|(at, _)| *at != key);
                t.push((key, weak));
            }
            shared.boxed()
        })
    }
}

/// Runs background refreshes (stale-while-revalidate, XFetch, refresh-ahead, the tail of a
/// soft-timed-out load) on the host's event loop.
struct LocalSpawner;

impl Spawner for LocalSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        wasm_bindgen_futures::spawn_local(fut);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds a cache from core `Config` settings given by name (`names` comma-separated, one value
/// each: see `config::config`) and the seed.
#[wasm_bindgen]
pub fn create(names: String, values: Vec<f64>, seed: Option<u64>) -> Result<Backend, JsValue> {
    let cfg = config(&names, &values, seed).map_err(into_js_error)?;
    let removed = Arc::new(Removals::default());
    let heal = Arc::new(HealState::default());
    let (r, h) = (Arc::clone(&removed), Arc::clone(&heal));
    let cache = CacheBuilder::from_config(cfg)
        .weigher(|h: &Handle| h.weight)
        .timer(JsTimer)
        .spawner(LocalSpawner)
        .on_removal(move |key, handle, cause| r.record(key, handle, cause, &h))
        .build()
        .map_err(into_js_error)?;
    let healer = new_healer(&cache, &heal).map_err(into_js_error)?;
    Ok(Backend { cache, removed, cancels: Arc::default(), healer, heal })
}

/// Writes `handle` (a value of `weight` bytes) under `key`; `ttl` in ms (`undefined`: the cache's, `Infinity`: never),
/// `ifVersion` for a compare-and-set. Returns the new version, negated when removals are queued.
#[wasm_bindgen]
pub fn set(
    c: &Backend,
    key: &str,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    if_version: Option<f64>,
) -> Result<f64, JsValue> {
    let ttl = ttl_arg(ttl).map_err(into_js_error)?;
    let opts = WriteOptions { ttl, if_version: if_version.map(|v| v as u64) };
    let v = c.cache.write(key, Handle { id: handle, weight: weight as u64 }, opts).map_err(into_js_error)? as f64;
    Ok(if c.pending() { -v } else { v })
}

/// A TTL in ms: `undefined` is the cache's, `Infinity` never expires.
fn ttl_arg(ttl: Option<f64>) -> healcache::Result<Ttl> {
    Ok(match ttl {
        None => Ttl::Default,
        Some(t) if t == f64::INFINITY => Ttl::Never,
        Some(t) => Ttl::For(duration_ms("ttl", t)?),
    })
}

/// Removes `key`; returns the removed handle, or -1 if nothing live was there.
#[wasm_bindgen]
pub fn remove(c: &Backend, key: &str) -> f64 {
    c.cache.remove(key).map_or(-1.0, |h| h.id)
}

/// Removes `key` only if its live version is `expected` (0: absent), else throws VersionMismatch.
#[wasm_bindgen(js_name = removeIfVersion)]
pub fn remove_if_version(c: &Backend, key: &str, expected: f64) -> Result<(), JsValue> {
    c.cache.remove_if_version(key, expected as u64).map_err(into_js_error)
}

/// `[handle, version, expiresInMs (-1: never)]` of `key`'s live entry, `[]` if none.
#[wasm_bindgen]
pub fn peek(c: &Backend, key: &str) -> Vec<f64> {
    match c.cache.get_entry(key) {
        Some(e) => vec![e.value.id, e.version as f64, e.expires_in.map_or(-1.0, |d| d.as_secs_f64() * 1e3)],
        None => Vec::new(),
    }
}

/// `[flightsUnderWay, handle (-1: no fresh value), version, expiresInMs (-1: never)]` of `key`:
/// what the wrapper needs to follow a value a background refresh stored (counts as a read).
#[wasm_bindgen]
pub fn state(c: &Backend, key: &str) -> Vec<f64> {
    let flights = c.cache.in_flight() as f64;
    match c.cache.get_entry(key) {
        Some(e) => vec![flights, e.value.id, e.version as f64, e.expires_in.map_or(-1.0, |d| d.as_secs_f64() * 1e3)],
        None => vec![flights, -1.0, 0.0, 0.0],
    }
}

/// Reports a batch of reads answered by the wrapper's mirror, so the eviction policy sees them.
/// Returns whether removals are queued.
#[wasm_bindgen]
pub fn touch(c: &Backend, keys: Vec<String>) -> bool {
    for k in &keys {
        c.cache.get(k);
    }
    c.pending()
}

/// Takes the removal queue (`Removals`): `[key, handle, ...]`, a set value's (even) handle
/// without its key (negated: replaced or deleted).
#[wasm_bindgen]
pub fn drain(c: &Backend) -> js_sys::Array {
    let taken = c.removed.take();
    let out = js_sys::Array::new();
    for (k, h) in taken {
        if let Some(k) = k {
            out.push(&JsValue::from_str(&k));
        }
        out.push(&JsValue::from_f64(h));
    }
    out
}

/// Number of stored entries (expired ones not yet swept included).
#[wasm_bindgen]
pub fn len(c: &Backend) -> f64 {
    c.cache.len() as f64
}

/// Removes every entry.
#[wasm_bindgen]
pub fn clear(c: &Backend) {
    c.cache.clear();
}

/// Removes every expired entry now (queued as removals); returns how many.
#[wasm_bindgen(js_name = purgeExpired)]
pub fn purge_expired(c: &Backend) -> f64 {
    c.cache.purge_expired() as f64
}

/// Every counter of `healcache::Stats`, in its declaration order, then the 14 load-latency
/// bucket counts and their sum in nanoseconds.
#[wasm_bindgen]
pub fn stats(c: &Backend) -> Vec<f64> {
    let s = c.cache.stats();
    s.counters()
        .iter()
        .map(|&(_, n)| n)
        .chain(s.load_latency.counts)
        .chain([s.load_latency.sum_nanos])
        .map(|n| n as f64)
        .collect()
}

/// Core `Cache::prometheus` text, with the reads the wrapper's mirror answered as hits/misses
/// (the same numbers as its `stats()`).
#[wasm_bindgen]
pub fn prometheus(c: &Backend, name: &str, hits: f64, misses: f64) -> String {
    let mut s = c.cache.stats();
    s.hits = hits as u64;
    s.misses = misses as u64;
    healcache::metrics::prometheus_text(&s, name)
}

/// The JS loader as a core loader: `loader()` returns a promise of `[handle, weight]`, of `[0, 0]`
/// for "not found" (`NOT_FOUND`), or of `[-loadId, 0]` when the user's loader failed.
fn core_loader(
    loader: SendWrapper<Function>,
) -> impl FnOnce() -> BoxFuture<'static, Result<Loaded<Handle>, LoaderError>> + Send {
    move || {
        let called = loader.call0(&JsValue::UNDEFINED).map(|p| JsFuture::from(Promise::from(p)));
        SendWrapper::new(async move {
            let to_err = |_e: JsValue| LoaderError::new(0.0f64, "loader call failed");
            let got = js_sys::Array::from(&called.map_err(to_err)?.await.map_err(to_err)?);
            let (id, weight) = (got.get(0).as_f64(), got.get(1).as_f64());
            match (id, weight) {
                (Some(id), _) if id < 0.0 => Err(LoaderError::new(-id, "loader rejected")),
                (Some(0.0), _) => Ok(Loaded::NotFound),
                (Some(id), Some(weight)) => Ok(Loaded::Value(Handle { id, weight: weight as u64 })),
                _ => Err(LoaderError::new(0.0f64, "loader protocol: expected [handle, weight]")),
            }
        })
        .boxed()
    }
}

/// Core `fetch` for one caller with a cancel ticket, resolving to `[handle (-1: not found),
/// status]`; `must_value` makes "not found" the core `NotFound` error (`get_or_load`).
fn run_fetch(c: &Backend, key: String, loader: Function, ticket: u32, opts: FetchOptions, must_value: bool) -> Promise {
    let cache = c.cache.clone();
    let cancels = Arc::clone(&c.cancels);
    let (abort, reg) = AbortHandle::new_pair();
    lock(&cancels).insert(ticket, abort);
    let loader = SendWrapper::new(loader);
    future_to_promise(async move {
        let load = cache.fetch(&key, opts, core_loader(loader));
        let r = Abortable::new(load, reg).await.unwrap_or(Err(Error::Cancelled));
        lock(&cancels).remove(&ticket);
        let f = r.map_err(into_js_error)?;
        let handle = match f.value {
            Some(h) => h.id,
            None if must_value => return Err(into_js_error(Error::NotFound)),
            None => -1.0,
        };
        Ok(js_sys::Array::of2(&JsValue::from_f64(handle), &JsValue::from_str(f.status.as_str())).into())
    })
}

/// Core `get_or_load`: resolves to `[handle, status]` of `key`'s value, loaded once per flight
/// by calling `loader()`; "not found" rejects with `NotFound`. `ticket` lets `cancel` stop this
/// one caller's wait.
#[wasm_bindgen(js_name = getOrLoad)]
pub fn get_or_load(c: &Backend, key: String, loader: Function, ticket: u32) -> Promise {
    run_fetch(c, key, loader, ticket, FetchOptions::default(), true)
}

/// Core `fetch`: resolves to `[handle (-1: not found), status]`. Per-call options: `ttl` (ms;
/// `Infinity`: never), `negativeTtl` (ms), `staleWhileRevalidate`, `xfetch`, `softTimeout` (ms);
/// `undefined` takes the cache's setting.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn fetch(
    c: &Backend,
    key: String,
    loader: Function,
    ticket: u32,
    ttl: Option<f64>,
    negative_ttl: Option<f64>,
    stale_while_revalidate: Option<bool>,
    xfetch: Option<bool>,
    soft_timeout: Option<f64>,
) -> Result<Promise, JsValue> {
    let opts = FetchOptions {
        ttl: ttl_arg(ttl).map_err(into_js_error)?,
        negative_ttl: negative_ttl.map(|v| duration_ms("negative_ttl", v)).transpose().map_err(into_js_error)?,
        stale_while_revalidate,
        xfetch,
        soft_timeout: soft_timeout.map(|v| duration_ms("soft_timeout", v)).transpose().map_err(into_js_error)?,
    };
    Ok(run_fetch(c, key, loader, ticket, opts, false))
}

/// Stops the wait of the `getOrLoad` call with this ticket (it rejects with `Cancelled`); the
/// flight goes on for its other waiters.
#[wasm_bindgen]
pub fn cancel(c: &Backend, ticket: u32) {
    if let Some(a) = lock(&c.cancels).remove(&ticket) {
        a.abort();
    }
}

/// Test hook: panics inside the module, to check that the wrapper reports a poisoned instance.
#[wasm_bindgen(js_name = __panicForTest)]
pub fn panic_for_test() {
    panic!("healcache-wasm: panic requested by a test");
}
