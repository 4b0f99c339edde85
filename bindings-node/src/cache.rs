//! The backend functions the JS wrapper (`js/cache.js`) calls. Each converts its arguments, calls
//! the core once and converts the result. Values never cross: the core stores the numeric handle
//! the wrapper gives, with the value's weight (`Cache<Handle>`); the wrapper keeps the value.
//!
//! Removal events: the core's removal listener queues the (key, handle) of entries it evicted or
//! expired (the wrapper itself knows about replaced and deleted ones). Calls that may evict return
//! a flag (a negative version from `set`, `true` from `touch`); the wrapper then calls `drain` and
//! forgets those values, so its read mirror never answers for an entry the core dropped.
//!
//! Stampede layers (stale-while-revalidate, XFetch, refresh-ahead, soft timeout) live in the core;
//! this crate gives it a [`Spawner`] on napi's tokio runtime for their background refreshes, and
//! `state` lets the wrapper ask which value a key holds after a refresh it did not wait for.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::{AbortHandle, Abortable, BoxFuture};
use healcache::{
    duration_ms, Cache, CacheBuilder, Error, FetchOptions, Healer, Loaded, LoaderError, Spawner, Timer, Ttl,
    WriteOptions,
};
use napi::bindgen_prelude::{BigInt, Either, External, Promise, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;

use crate::config::config;
use crate::error::into_js_error;
use healcache_js_common::{new_healer, HealState, Removals};

/// The JS loader as the core sees it: resolves to `[handle, weight]` of the loaded value, to
/// `[0, 0]` when it answered "not found" (`NOT_FOUND`), or to `[-loadId, 0]` when the user's
/// loader threw or rejected (the wrapper keeps that value and hands it to every waiter).
type Loader = ThreadsafeFunction<(), Promise<Vec<f64>>, (), Status, false>;

pub use healcache_js_common::Handle;

/// One cache: the core instance plus the queue of removed handles, the cancel handles of
/// `getOrLoad` calls still waiting, and the cache's healer (see `healing.rs`).
pub struct Backend {
    pub(crate) cache: Cache<Handle>,
    removed: Arc<Removals>,
    cancels: Arc<Mutex<HashMap<u32, AbortHandle>>>,
    pub(crate) healer: Healer<Handle>,
    pub(crate) heal: Arc<HealState>,
}

impl Backend {
    #[inline]
    fn pending(&self) -> bool {
        self.removed.pending.load(Relaxed)
    }
}

/// Delays for `load_timeout_ms`, on napi's tokio runtime (where flights are polled).
struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Runs background refreshes (stale-while-revalidate, XFetch, refresh-ahead, the tail of a
/// soft-timed-out load) on napi's tokio runtime.
struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        napi::bindgen_prelude::spawn(fut);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds a cache from core `Config` settings given by name (`names` comma-separated, one value
/// each: see `config::config`) and the seed.
#[napi(ts_return_type = "ExternalObject<'Backend'>")]
pub fn create(env: &Env, names: String, values: Vec<f64>, seed: Option<BigInt>) -> napi::Result<External<Backend>> {
    let cfg = config(&names, &values, seed).map_err(|e| into_js_error(env, e))?;
    let removed = Arc::new(Removals::default());
    let heal = Arc::new(HealState::default());
    let (r, h) = (Arc::clone(&removed), Arc::clone(&heal));
    let cache = CacheBuilder::from_config(cfg)
        .weigher(|h: &Handle| h.weight)
        .timer(TokioTimer)
        .spawner(TokioSpawner)
        .on_removal(move |key, handle, cause| r.record(key, handle, cause, &h))
        .build()
        .map_err(|e| into_js_error(env, e))?;
    let healer = new_healer(&cache, &heal).map_err(|e| into_js_error(env, e))?;
    Ok(External::new(Backend { cache, removed, cancels: Arc::default(), healer, heal }))
}

/// Writes `handle` (a value of `weight` bytes) under `key`; `ttl` in ms (`undefined`: the cache's, `Infinity`: never),
/// `ifVersion` for a compare-and-set. Returns the new version, negated when removals are queued.
#[napi]
pub fn set(
    env: &Env,
    c: &External<Backend>,
    key: String,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    if_version: Option<f64>,
) -> napi::Result<f64> {
    let ttl = ttl_arg(ttl).map_err(|e| into_js_error(env, e))?;
    let opts = WriteOptions { ttl, if_version: if_version.map(|v| v as u64) };
    let v =
        c.cache.write(&key, Handle { id: handle, weight: weight as u64 }, opts).map_err(|e| into_js_error(env, e))?
            as f64;
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
#[napi]
pub fn remove(c: &External<Backend>, key: String) -> f64 {
    c.cache.remove(&key).map_or(-1.0, |h| h.id)
}

/// Removes `key` only if its live version is `expected` (0: absent), else throws VersionMismatch.
#[napi]
pub fn remove_if_version(env: &Env, c: &External<Backend>, key: String, expected: f64) -> napi::Result<()> {
    c.cache.remove_if_version(&key, expected as u64).map_err(|e| into_js_error(env, e))
}

/// `[handle, version, expiresInMs (-1: never)]` of `key`'s live entry, `[]` if none.
#[napi]
pub fn peek(c: &External<Backend>, key: String) -> Vec<f64> {
    match c.cache.get_entry(&key) {
        Some(e) => vec![e.value.id, e.version as f64, e.expires_in.map_or(-1.0, |d| d.as_secs_f64() * 1e3)],
        None => Vec::new(),
    }
}

/// `[flightsUnderWay, handle (-1: no fresh value), version, expiresInMs (-1: never)]` of `key`:
/// what the wrapper needs to follow a value a background refresh stored (counts as a read).
#[napi]
pub fn state(c: &External<Backend>, key: String) -> Vec<f64> {
    let flights = c.cache.in_flight() as f64;
    match c.cache.get_entry(&key) {
        Some(e) => vec![flights, e.value.id, e.version as f64, e.expires_in.map_or(-1.0, |d| d.as_secs_f64() * 1e3)],
        None => vec![flights, -1.0, 0.0, 0.0],
    }
}

/// Reports a batch of reads answered by the wrapper's mirror, so the eviction policy sees them.
/// Returns whether removals are queued.
#[napi]
pub fn touch(c: &External<Backend>, keys: Vec<String>) -> bool {
    for k in &keys {
        c.cache.get(k);
    }
    c.pending()
}

/// Takes the removal queue (`Removals`): `[key, handle, ...]`, a set value's (even) handle
/// without its key (negated: replaced or deleted).
#[napi(ts_return_type = "Array<string | number>")]
pub fn drain(c: &External<Backend>) -> Vec<Either<String, f64>> {
    let taken = c.removed.take();
    let mut out = Vec::with_capacity(2 * taken.len());
    for (k, h) in taken {
        if let Some(k) = k {
            out.push(Either::A(k.to_string()));
        }
        out.push(Either::B(h));
    }
    out
}

/// Number of stored entries (expired ones not yet swept included).
#[napi]
pub fn len(c: &External<Backend>) -> f64 {
    c.cache.len() as f64
}

/// Removes every entry.
#[napi]
pub fn clear(c: &External<Backend>) {
    c.cache.clear();
}

/// Removes every expired entry now (queued as removals); returns how many.
#[napi]
pub fn purge_expired(c: &External<Backend>) -> f64 {
    c.cache.purge_expired() as f64
}

/// Every counter of `healcache::Stats`, in its declaration order, then the 14 load-latency
/// bucket counts and their sum in nanoseconds.
#[napi]
pub fn stats(c: &External<Backend>) -> Vec<f64> {
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
#[napi]
pub fn prometheus(c: &External<Backend>, name: String, hits: f64, misses: f64) -> String {
    let mut s = c.cache.stats();
    s.hits = hits as u64;
    s.misses = misses as u64;
    healcache::metrics::prometheus_text(&s, &name)
}

/// What `fetch` resolves to: `[handle of the value (-1: not found), core Status::as_str]`.
type FetchAnswer = Vec<Either<f64, &'static str>>;

fn answer(handle: f64, status: healcache::Status) -> FetchAnswer {
    vec![Either::A(handle), Either::B(status.as_str())]
}

/// The JS loader as a core loader: one call per flight, on the JS thread.
fn core_loader(loader: Loader) -> impl FnOnce() -> BoxFuture<'static, Result<Loaded<Handle>, LoaderError>> + Send {
    move || {
        Box::pin(async move {
            let to_err = |e: napi::Error| LoaderError::new(0.0f64, e.reason.clone());
            let got = loader.call_async_catch(()).await.map_err(to_err)?.await.map_err(to_err)?;
            match got[..] {
                [id, _] if id < 0.0 => Err(LoaderError::new(-id, "loader rejected")),
                [0.0, _] => Ok(Loaded::NotFound),
                [id, weight] => Ok(Loaded::Value(Handle { id, weight: weight as u64 })),
                _ => Err(LoaderError::new(0.0f64, "loader protocol: expected [handle, weight]")),
            }
        })
    }
}

/// Core `fetch` for one caller with a cancel ticket; `must_value` makes "not found" the core
/// `NotFound` error (`get_or_load`).
fn run_fetch<'env>(
    env: &'env Env,
    c: &External<Backend>,
    key: String,
    loader: Loader,
    ticket: u32,
    opts: FetchOptions,
    must_value: bool,
) -> napi::Result<PromiseRaw<'env, FetchAnswer>> {
    let cache = c.cache.clone();
    let cancels = Arc::clone(&c.cancels);
    let (abort, reg) = AbortHandle::new_pair();
    lock(&cancels).insert(ticket, abort);
    let fut = async move {
        let load = cache.fetch(&key, opts, core_loader(loader));
        let r = Abortable::new(load, reg).await.unwrap_or(Err(Error::Cancelled));
        lock(&cancels).remove(&ticket);
        Ok(r.and_then(|f| match f.value {
            Some(h) => Ok(answer(h.id, f.status)),
            None if must_value => Err(Error::NotFound),
            None => Ok(answer(-1.0, f.status)),
        }))
    };
    env.spawn_future_with_callback(fut, |env, r| r.map_err(|e| into_js_error(env, e)))
}

/// Core `get_or_load`: resolves to `[handle, status]` of `key`'s value, loaded once per flight by calling
/// `loader` (on the JS thread); "not found" rejects with `NotFound`. `ticket` lets `cancel` stop
/// this one caller's wait.
#[napi(ts_return_type = "Promise<[number, string]>")]
pub fn get_or_load<'env>(
    env: &'env Env,
    c: &External<Backend>,
    key: String,
    loader: Loader,
    ticket: u32,
) -> napi::Result<PromiseRaw<'env, FetchAnswer>> {
    run_fetch(env, c, key, loader, ticket, FetchOptions::default(), true)
}

/// Core `fetch`: resolves to `[handle (-1: not found), status]`. Per-call options:
/// `ttl` (ms; `Infinity`: never), `negativeTtl` (ms), `staleWhileRevalidate`, `xfetch`,
/// `softTimeout` (ms); `undefined` takes the cache's setting.
#[napi(ts_return_type = "Promise<[number, string]>")]
#[allow(clippy::too_many_arguments)]
pub fn fetch<'env>(
    env: &'env Env,
    c: &External<Backend>,
    key: String,
    loader: Loader,
    ticket: u32,
    ttl: Option<f64>,
    negative_ttl: Option<f64>,
    stale_while_revalidate: Option<bool>,
    xfetch: Option<bool>,
    soft_timeout: Option<f64>,
) -> napi::Result<PromiseRaw<'env, FetchAnswer>> {
    let opts = fetch_options(ttl, negative_ttl, stale_while_revalidate, xfetch, soft_timeout)
        .map_err(|e| into_js_error(env, e))?;
    run_fetch(env, c, key, loader, ticket, opts, false)
}

/// Per-call options → core `FetchOptions`, validated by the core (`duration_ms`).
fn fetch_options(
    ttl: Option<f64>,
    negative_ttl: Option<f64>,
    stale_while_revalidate: Option<bool>,
    xfetch: Option<bool>,
    soft_timeout: Option<f64>,
) -> healcache::Result<FetchOptions> {
    Ok(FetchOptions {
        ttl: ttl_arg(ttl)?,
        negative_ttl: negative_ttl.map(|v| duration_ms("negative_ttl", v)).transpose()?,
        stale_while_revalidate,
        xfetch,
        soft_timeout: soft_timeout.map(|v| duration_ms("soft_timeout", v)).transpose()?,
    })
}

/// Stops the wait of the `getOrLoad` call with this ticket (it rejects with `Cancelled`); the
/// flight goes on for its other waiters.
#[napi]
pub fn cancel(c: &External<Backend>, ticket: u32) {
    if let Some(a) = lock(&c.cancels).remove(&ticket) {
        a.abort();
    }
}
