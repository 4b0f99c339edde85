//! The cache functions the JS wrapper calls: each converts its arguments and calls the shared
//! body (`healcache_js_common::Backend`). Host glue: delays and background work on napi's tokio
//! runtime, the JS loader as a core loader, promises.

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::{self, BoxFuture};
use futures::FutureExt;
use healcache::{FetchOptions, Spawner, Timer};
use healcache_js_common::{fetch_options, loaded_from, loader_failed, Backend, LoaderFuture, Out};
use napi::bindgen_prelude::{within_runtime_if_available, External, Float64ArraySlice, Promise, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;

use crate::convert::{Key, ToJs};
use crate::error::into_js_error;

/// The JS loader as the core sees it: resolves to the answer row of `loaded_from`.
type Loader = ThreadsafeFunction<(), Promise<Vec<f64>>, (), Status, false>;

/// Delays (load timeouts, source timeouts, the healing loop's sleeps) on napi's tokio runtime.
pub(crate) struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Runs background work (stale-while-revalidate, XFetch, refresh-ahead, the tail of a
/// soft-timed-out load, the healing loop) on napi's tokio runtime.
#[derive(Clone)]
pub(crate) struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        napi::bindgen_prelude::spawn(fut);
    }
}

/// The wrapper's result row (`Out`), written in place.
fn row<'a>(out: &'a mut Float64ArraySlice) -> napi::Result<&'a mut [f64]> {
    // SAFETY: the slice is the wrapper's own Float64Array, borrowed for this call only; nothing
    // else reads or writes it while the call runs (JS is single-threaded and waits for it).
    let row = unsafe { out.as_mut() };
    if row.len() < Out::LEN {
        return Err(napi::Error::new(Status::InvalidArg, "result row too short"));
    }
    Ok(row)
}

/// `Backend::write`: returns the new version and fills `out`.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn set(
    env: &Env,
    c: &External<Backend>,
    key: Key,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    if_version: Option<f64>,
    mut out: Float64ArraySlice,
) -> napi::Result<f64> {
    let out = row(&mut out)?;
    c.write(key.as_str(), handle, weight, ttl, if_version, out).map_err(|e| into_js_error(env, e))
}

/// `Backend::write_plain`.
#[napi]
pub fn set_plain(env: &Env, c: &External<Backend>, key: Key, handle: f64, weight: f64) -> napi::Result<f64> {
    c.write_plain(key.as_str(), handle, weight).map_err(|e| into_js_error(env, e))
}

/// `Backend::default_freshness`.
#[napi(ts_return_type = "{ ms: number, exact: boolean }")]
pub fn freshness(c: &External<Backend>) -> ToJs {
    ToJs(c.default_freshness())
}

/// `Backend::remove`.
#[napi]
pub fn remove(c: &External<Backend>, key: Key) -> f64 {
    c.remove(key.as_str())
}

/// `Backend::remove_if_version`.
#[napi]
pub fn remove_if_version(env: &Env, c: &External<Backend>, key: Key, expected: f64) -> napi::Result<()> {
    c.remove_if_version(key.as_str(), expected).map_err(|e| into_js_error(env, e))
}

/// `Backend::state`: a counted read of the core, into `out`.
#[napi]
pub fn state(c: &External<Backend>, key: Key, mut out: Float64ArraySlice) -> napi::Result<()> {
    c.state(key.as_str(), row(&mut out)?);
    Ok(())
}

/// `Backend::touch`.
#[napi]
pub fn touch(c: &External<Backend>, keys: Vec<String>, hits: f64, missed: Vec<String>) -> bool {
    c.touch(&keys, hits, &missed)
}

/// `Backend::drain`.
#[napi(ts_return_type = "Array<string | number>")]
pub fn drain(c: &External<Backend>) -> ToJs {
    ToJs(c.drain())
}

/// `Backend::len`.
#[napi]
pub fn len(c: &External<Backend>) -> f64 {
    c.len()
}

/// `Backend::clear`.
#[napi]
pub fn clear(c: &External<Backend>) {
    c.clear();
}

/// `Backend::purge_expired`.
#[napi]
pub fn purge_expired(c: &External<Backend>) -> f64 {
    c.purge_expired()
}

/// `Backend::stats`.
#[napi(ts_return_type = "any")]
pub fn stats(c: &External<Backend>) -> ToJs {
    ToJs(c.stats())
}

/// `Backend::prometheus`.
#[napi]
pub fn prometheus(c: &External<Backend>, name: String) -> String {
    c.prometheus(&name)
}

/// The JS loader as a core loader: one call per flight, on the JS thread.
fn core_loader(loader: Loader) -> impl FnOnce() -> LoaderFuture + Send {
    move || {
        Box::pin(async move {
            let failed = |e: napi::Error| loader_failed(e.reason.clone());
            let got = loader.call_async_catch(()).await.map_err(failed)?.await.map_err(failed)?;
            loaded_from(&got)
        })
    }
}

/// `Backend::fetch` as a promise.
fn run_fetch<'env>(
    env: &'env Env,
    c: &External<Backend>,
    key: String,
    loader: Loader,
    ticket: u32,
    opts: FetchOptions,
    must_value: bool,
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    let mut fut = c.fetch(key, core_loader(loader), ticket, opts, must_value).boxed();
    // The core joins the key's flight or starts one on the first poll. Polling once here, in
    // call order, makes every call of one synchronous burst join the flight the first started;
    // left to the runtime's tasks, a late call could find that flight over already (a loader
    // failing at once) and start another. The task re-polls with its own waker.
    let first = within_runtime_if_available(|| fut.as_mut().poll(&mut Context::from_waker(Waker::noop())));
    let fut = match first {
        Poll::Ready(r) => future::ready(r).boxed(),
        Poll::Pending => fut,
    };
    env.spawn_future_with_callback(async move { Ok(fut.await) }, |env, r| {
        r.map(ToJs).map_err(|e| into_js_error(env, e))
    })
}

/// Core `get_or_load` for one caller: resolves to `{ handle, status }`; "not found" rejects
/// with `NotFound`. `ticket` lets `cancel` stop this one caller's wait.
#[napi(ts_return_type = "Promise<any>")]
pub fn get_or_load<'env>(
    env: &'env Env,
    c: &External<Backend>,
    key: String,
    loader: Loader,
    ticket: u32,
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    run_fetch(env, c, key, loader, ticket, FetchOptions::default(), true)
}

/// Core `fetch` for one caller, with its per-call options (`undefined`: the cache's).
#[napi(ts_return_type = "Promise<any>")]
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
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    let opts = fetch_options(ttl, negative_ttl, stale_while_revalidate, xfetch, soft_timeout)
        .map_err(|e| into_js_error(env, e))?;
    run_fetch(env, c, key, loader, ticket, opts, false)
}

/// `Backend::cancel`.
#[napi]
pub fn cancel(c: &External<Backend>, ticket: u32) {
    c.cancel(ticket);
}
