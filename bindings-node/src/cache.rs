//! The cache functions the JS wrapper calls: each converts its arguments and calls the shared
//! body (`healcache_js_common::Backend`). Host glue: delays and background work on napi's tokio
//! runtime, the JS loader as a core loader, promises.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::ptr;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::{self, BoxFuture};
use futures::FutureExt;
use healcache::{FetchOptions, Spawner, Timer};
use healcache_js_common::{fetch_options, loaded_from, loader_failed, Backend, BatchFuture, LoaderFuture, Out};
use napi::bindgen_prelude::{
    within_runtime_if_available, ArrayBuffer, Either, External, FromNapiRef, FromNapiValue, JsValue, Object, Promise,
    PromiseRaw, ToNapiValue, TypeName, ValueType,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{check_status, sys, Env, JsError, Status};
use napi_derive::napi;

use crate::convert::{Key, ToJs};
use crate::error::into_js_error;
use crate::shared::LoaderRow;

/// The JS loader as the core sees it: `run(false)` runs it and resolves to the answer row of
/// `loaded_from`; `run(true)` aborts its signal.
type Loader = ThreadsafeFunction<bool, Promise<LoaderRow>, bool, Status, false>;

/// Aborts the loader's signal when the core drops the load before it ended (every waiter has
/// gone, or the load timed out).
struct AbortOnDrop(Option<Loader>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(l) = self.0.take() {
            // queued to the JS thread: the wrapper's callback only aborts an AbortController
            let _ = l.call(true, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

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

/// The result row (`Out`) that `set`, `state` and `peek` fill: one per JS thread (each thread
/// has its own isolate and calls in turn), viewed from JS through `outRow` without a copy.
struct Row(UnsafeCell<[f64; Out::LEN]>);

thread_local! {
    static ROW: Row = const { Row(UnsafeCell::new([0.0; Out::LEN])) };
}

/// Runs `f` on this thread's result row.
pub(crate) fn with_row<R>(f: impl FnOnce(&mut [f64]) -> R) -> R {
    // SAFETY: the row belongs to this thread, and each exported function takes it once while it
    // runs; JS reads it only between calls.
    ROW.with(|r| f(unsafe { &mut *r.0.get() }))
}

/// A `Float64Array` over this thread's result row.
pub struct RowView;

impl TypeName for RowView {
    fn type_name() -> &'static str {
        "Float64Array"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for RowView {
    unsafe fn to_napi_value(env: sys::napi_env, _: Self) -> napi::Result<sys::napi_value> {
        let data = ROW.with(|r| r.0.get().cast::<c_void>());
        let (mut buffer, mut array) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: the row lives as long as this thread, and so as long as its isolate; no
        // finalizer is needed (nothing to free). `env` is the live environment napi passed in.
        unsafe {
            check_status!(sys::napi_create_external_arraybuffer(
                env,
                data,
                Out::LEN * 8,
                None,
                ptr::null_mut(),
                &mut buffer
            ))?;
            check_status!(sys::napi_create_typedarray(
                env,
                sys::TypedarrayType::float64_array,
                Out::LEN,
                buffer,
                0,
                &mut array
            ))?;
        }
        Ok(array)
    }
}

/// A view of the result row (the same memory on every call).
#[napi(ts_return_type = "Float64Array")]
pub fn out_row() -> RowView {
    RowView
}

/// New words of the process's ticking clock (`healcache_rt::tick`) as a 16-byte `ArrayBuffer`:
/// the time in ms as an `f64` at byte 0, the readers' request as a `u32` at byte 8. `null` when
/// its thread could not start or the runtime copies external buffers (the mirror then reads
/// `performance.now()` on every hit).
#[napi(ts_return_type = "ArrayBuffer | null")]
pub fn tick_clock(env: &Env) -> napi::Result<Option<ArrayBuffer<'_>>> {
    let Some(tick) = healcache_rt::tick::tick() else { return Ok(None) };
    let at = std::ptr::from_ref(tick).cast::<u8>().cast_mut();
    // SAFETY: 16 bytes (the two words, `repr(C)`), aligned, kept for the life of the process
    // (never freed, so no other buffer is ever made over them). JS loads the time without
    // atomics (an aligned 64-bit load is not torn) and stores the request as an aligned 32-bit
    // word, which the thread swaps atomically.
    let buffer = unsafe { ArrayBuffer::from_external(env, at, 16, (), |_, ()| {}) }?;
    Ok((buffer.as_ptr() == at.cast_const()).then_some(buffer))
}

/// `Backend::write`: returns the new version and fills the result row.
#[napi]
pub fn set(
    env: &Env,
    c: &External<Backend>,
    key: Key,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    if_version: Option<f64>,
) -> napi::Result<f64> {
    with_row(|out| c.write(key.as_str(), handle, weight, ttl, if_version, out)).map_err(|e| into_js_error(env, e))
}

/// `setPlain(c, key, handle, weight, keep)`: `Backend::write_plain_keeping`, the wrapper's common
/// write; returns the new version and fills the result row.
///
/// A raw napi callback rather than a `#[napi]` function: napi-rs wraps each of those in a
/// native-borrow scope (an `Arc` allocated and freed, thread-local pushes and mutex locks on
/// every call), which this function has no use for: it borrows its `External` only while it
/// runs, and calls no JS. The conversions are napi-rs' own, as a generated function makes them.
unsafe extern "C" fn set_plain(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: napi calls this with a live `env` and the call's `info`, on the JS thread.
    let r = unsafe { set_plain_args(env, info) }.and_then(|(c, key, handle, weight, keep)| {
        let w = with_row(|out| c.write_plain_keeping(key.as_str(), handle, weight, keep, out));
        // SAFETY: the same live `env`.
        w.map_err(|e| into_js_error(&Env::from(env), e)).and_then(|v| unsafe { f64::to_napi_value(env, v) })
    });
    r.unwrap_or_else(|e| {
        // SAFETY: the same live `env`; the thrown error is what the function returns to JS.
        unsafe { JsError::from(e).throw_into(env) };
        ptr::null_mut()
    })
}

/// The arguments of [`set_plain`], converted (a missing argument converts as `undefined`: a
/// type error).
///
/// # Safety
/// `env` and `info` are those napi passed to the callback, which is still running.
unsafe fn set_plain_args(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> napi::Result<(&'static External<Backend>, Key, f64, f64, bool)> {
    let mut argc = 5;
    let mut argv = [ptr::null_mut(); 5];
    // SAFETY (every call below): the caller's guarantee; `argv` holds `argc` values.
    unsafe {
        check_status!(sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut()
        ))?;
        if argc < 5 {
            return Err(napi::Error::new(Status::InvalidArg, "setPlain takes 5 arguments"));
        }
        let c = <External<Backend> as FromNapiRef>::from_napi_ref(env, argv[0])?;
        Ok((
            c,
            Key::from_napi_value(env, argv[1])?,
            f64::from_napi_value(env, argv[2])?,
            f64::from_napi_value(env, argv[3])?,
            bool::from_napi_value(env, argv[4])?,
        ))
    }
}

/// Adds the raw callbacks ([`set_plain`]) to the module's exports.
#[napi(module_exports)]
pub fn raw_exports(exports: Object, env: Env) -> napi::Result<()> {
    let mut f = ptr::null_mut();
    // SAFETY: `env` and `exports` are the live ones of the module being loaded; the name is
    // NUL-terminated and outlives the calls.
    unsafe {
        let name = c"setPlain";
        check_status!(sys::napi_create_function(
            env.raw(),
            name.as_ptr(),
            8,
            Some(set_plain),
            ptr::null_mut(),
            &mut f
        ))?;
        check_status!(sys::napi_set_named_property(env.raw(), exports.raw(), name.as_ptr(), f))?;
    }
    Ok(())
}

/// `Backend::close`: resolves to the L2 writes still under way at the deadline. (`closeCache`,
/// as in the WebAssembly module, whose exports shadow no global.)
#[napi(ts_return_type = "Promise<number>")]
pub fn close_cache<'env>(
    env: &'env Env,
    c: &External<Backend>,
    timeout: Option<f64>,
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    let fut = c.close(timeout).map_err(|e| into_js_error(env, e))?;
    promise(env, fut.map(Ok))
}

/// `Backend::close_all_shared`, for the process's `beforeExit`.
#[napi(ts_return_type = "Promise<number>")]
pub fn close_all_shared(env: &Env) -> napi::Result<PromiseRaw<'_, ToJs>> {
    promise(env, Backend::close_all_shared().map(Ok))
}

/// `Backend::close_all_write_behind`, for the process's `beforeExit`: the line to report on
/// stderr, if items were left.
#[napi(ts_return_type = "Promise<string | undefined>")]
pub fn close_all_write_behind(env: &Env) -> napi::Result<PromiseRaw<'_, ToJs>> {
    promise(env, Backend::close_all_write_behind().map(Ok))
}

/// `healcache::prometheus_join`.
#[napi]
pub fn prometheus_join(env: &Env, texts: Vec<String>) -> napi::Result<String> {
    healcache::prometheus_join(&texts).map_err(|e| into_js_error(env, e))
}

/// `Backend::remove`.
#[napi]
pub fn remove(c: &External<Backend>, key: Key) -> f64 {
    c.remove(key.as_str())
}

/// `Backend::remove_if_version`.
#[napi]
pub fn remove_if_version(env: &Env, c: &External<Backend>, key: Key, expected: f64) -> napi::Result<bool> {
    c.remove_if_version(key.as_str(), expected).map_err(|e| into_js_error(env, e))
}

/// `Backend::state`: a counted read of the core, into the result row.
#[napi]
pub fn state(c: &External<Backend>, key: Key) {
    with_row(|out| c.state(key.as_str(), out));
}

/// `Backend::peek`: `state` without counting a read, into the result row.
#[napi]
pub fn peek(c: &External<Backend>, key: Key) {
    with_row(|out| c.peek(key.as_str(), out));
}

/// `Backend::stored`.
#[napi]
pub fn stored(c: &External<Backend>, key: Key) -> f64 {
    c.stored(key.as_str())
}

/// `Backend::version`.
#[napi]
pub fn version(c: &External<Backend>, key: Key) -> f64 {
    c.version(key.as_str())
}

/// `Backend::keys`.
#[napi(ts_return_type = "string[]")]
pub fn keys(c: &External<Backend>) -> ToJs {
    ToJs(c.keys())
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

/// `Backend::report_removals`.
#[napi]
pub fn report_removals(c: &External<Backend>) {
    c.report_removals();
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

/// A JS call's failure as a loader's. The wrapper settles every promise it hands over, so one
/// napi-rs reports as dropped ("oneshot canceled") was collected unsettled: the user's promise
/// it waited on was unreachable, so it could never settle.
fn js_failed(e: napi::Error) -> healcache::LoaderError {
    if e.reason == "oneshot canceled" {
        return loader_failed("the loader's promise was collected before it settled: nothing could settle it");
    }
    loader_failed(e.reason)
}

/// The JS loader as a core loader: one call per flight, on the JS thread.
fn core_loader(loader: Loader) -> impl FnOnce() -> LoaderFuture + Send {
    move || {
        Box::pin(async move {
            let mut guard = AbortOnDrop(Some(loader));
            let r = match &guard.0 {
                Some(l) => match l.call_async_catch(false).await {
                    Ok(p) => p.await.map_err(js_failed),
                    Err(e) => Err(js_failed(e)),
                },
                None => Err(loader_failed("loader gone")),
            };
            // the load ended: its signal stays as it is
            guard.0 = None;
            let r = r?;
            let mut loaded = loaded_from(&r.nums)?;
            if let (healcache::Loaded::Value(h), Some(p)) = (&mut loaded, r.payload) {
                h.payload = Some(std::sync::Arc::new(p));
            }
            Ok(loaded)
        })
    }
}

/// A promise of a core call's future, polled once here, in call order: every call of one
/// synchronous burst joins the flight the first started (left to the runtime's tasks, a late
/// call could find that flight over already, a loader failing at once, and start another), and
/// a write-behind write that finds room is in the cache when the call returns. The task
/// re-polls with its own waker.
pub(crate) fn promise<'env, T, F>(env: &'env Env, fut: F) -> napi::Result<PromiseRaw<'env, ToJs>>
where
    T: Into<healcache_js_common::Js> + Send + 'static,
    F: std::future::Future<Output = healcache::Result<T>> + Send + 'static,
{
    let mut fut = fut.boxed();
    let first = within_runtime_if_available(|| fut.as_mut().poll(&mut Context::from_waker(Waker::noop())));
    let fut = match first {
        Poll::Ready(r) => future::ready(r).boxed(),
        Poll::Pending => fut,
    };
    env.spawn_future_with_callback(async move { Ok(fut.await) }, |env, r| {
        r.map(|v| ToJs(v.into())).map_err(|e| into_js_error(env, e))
    })
}

/// A core call's answer: the value itself when the future is ready at its first poll (a hit:
/// resolving a promise from here would cost a trip through the runtime and the event loop,
/// tens of microseconds, for a read that took one), else a promise of it as [`promise`] makes.
pub(crate) fn answer<'env, T, F>(env: &'env Env, fut: F) -> napi::Result<Either<ToJs, PromiseRaw<'env, ToJs>>>
where
    T: Into<healcache_js_common::Js> + Send + 'static,
    F: std::future::Future<Output = healcache::Result<T>> + Send + 'static,
{
    let mut fut = fut.boxed();
    match within_runtime_if_available(|| fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))) {
        Poll::Ready(Ok(v)) => Ok(Either::A(ToJs(v.into()))),
        Poll::Ready(Err(e)) => Err(into_js_error(env, e)),
        Poll::Pending => env
            .spawn_future_with_callback(async move { Ok(fut.await) }, |env, r| {
                r.map(|v| ToJs(v.into())).map_err(|e| into_js_error(env, e))
            })
            .map(Either::B),
    }
}

/// `Backend::fetch`: the answer at once when it is ready, else a promise.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_fetch<'env>(
    env: &'env Env,
    c: &External<Backend>,
    key: String,
    loader: Loader,
    ticket: u32,
    opts: FetchOptions,
    must_value: bool,
    tags: Option<Vec<String>>,
) -> napi::Result<Either<ToJs, PromiseRaw<'env, ToJs>>> {
    let fut = match tags {
        None => c.fetch(key, core_loader(loader), ticket, opts, must_value).boxed(),
        Some(t) => c.fetch_tagged(key, core_loader(loader), ticket, opts, must_value, t).boxed(),
    };
    answer(env, fut)
}

/// Core `get_or_load` for one caller: resolves to `{ handle, status }`; "not found" rejects
/// with `NotFound`. `ticket` lets `cancel` stop this one caller's wait.
#[napi(ts_return_type = "any")]
pub fn get_or_load<'env>(
    env: &'env Env,
    c: &External<Backend>,
    key: String,
    loader: Loader,
    ticket: u32,
) -> napi::Result<Either<ToJs, PromiseRaw<'env, ToJs>>> {
    run_fetch(env, c, key, loader, ticket, FetchOptions::default(), true, None)
}

/// Core `fetch` for one caller, with its per-call options (`undefined`: the cache's);
/// `must_value` makes "not found" reject with `NotFound` (`getOrLoad` given options).
#[napi(ts_return_type = "any")]
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
    must_value: bool,
) -> napi::Result<Either<ToJs, PromiseRaw<'env, ToJs>>> {
    let opts = fetch_options(ttl, negative_ttl, stale_while_revalidate, xfetch, soft_timeout)
        .map_err(|e| into_js_error(env, e))?;
    run_fetch(env, c, key, loader, ticket, opts, must_value, None)
}

/// Core `fetch_tagged` for one caller: `fetch` of a value carrying tags.
#[napi(ts_return_type = "any")]
#[allow(clippy::too_many_arguments)]
pub fn fetch_tagged<'env>(
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
    must_value: bool,
    tags: Vec<String>,
) -> napi::Result<Either<ToJs, PromiseRaw<'env, ToJs>>> {
    let opts = fetch_options(ttl, negative_ttl, stale_while_revalidate, xfetch, soft_timeout)
        .map_err(|e| into_js_error(env, e))?;
    run_fetch(env, c, key, loader, ticket, opts, must_value, Some(tags))
}

/// `Backend::cancel`.
#[napi]
pub fn cancel(c: &External<Backend>, ticket: u32) {
    c.cancel(ticket);
}

/// A batch loader as the core sees it: `run(keys)` runs the user's loader and resolves to its
/// answer ([`BatchRows`]).
type BatchLoader = ThreadsafeFunction<Vec<String>, Promise<BatchRows>, Vec<String>, Status, false>;

/// A batch loader's answer: `[key, row, key, row, ...]` with each `row` as a loader's
/// (`[handle, weight]`, and the value on a shared cache), or `[-loadId, text]` when it threw.
pub struct BatchRows(Result<Vec<(String, LoaderRow)>, healcache::LoaderError>);

impl TypeName for BatchRows {
    fn type_name() -> &'static str {
        "Array<unknown>"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl FromNapiValue for BatchRows {
    unsafe fn from_napi_value(env: sys::napi_env, v: sys::napi_value) -> napi::Result<Self> {
        // SAFETY (every call below): the live `env` and the array napi passed in.
        unsafe {
            let mut len = 0u32;
            check_status!(sys::napi_get_array_length(env, v, &mut len))?;
            let element = |i: u32| -> napi::Result<sys::napi_value> {
                let mut e = ptr::null_mut();
                check_status!(sys::napi_get_element(env, v, i, &mut e))?;
                Ok(e)
            };
            // a rejection starts with a number, a row with its key
            if len == 2 {
                if let Ok(id) = f64::from_napi_value(env, element(0)?) {
                    let text = String::from_napi_value(env, element(1)?)?;
                    return Ok(BatchRows(Err(healcache::LoaderError::new(-id, text))));
                }
            }
            let mut rows = Vec::with_capacity(len as usize / 2);
            for i in (0..len.saturating_sub(1)).step_by(2) {
                let key = String::from_napi_value(env, element(i)?)?;
                rows.push((key, LoaderRow::from_napi_value(env, element(i + 1)?)?));
            }
            Ok(BatchRows(Ok(rows)))
        }
    }
}

/// The JS batch loader as a core batch loader: one call per batch, on the JS thread.
fn core_batch(loader: BatchLoader) -> impl Fn(Vec<String>) -> BatchFuture + Send + Sync + 'static {
    let loader = std::sync::Arc::new(loader);
    move |keys| {
        let loader = std::sync::Arc::clone(&loader);
        Box::pin(async move {
            let rows = loader.call_async_catch(keys).await.map_err(js_failed)?.await.map_err(js_failed)?;
            let rows = rows.0?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for (key, row) in rows {
                if let healcache::Loaded::Value(mut h) = loaded_from(&row.nums)? {
                    h.payload = row.payload.map(std::sync::Arc::new);
                    found.insert(key, h);
                }
            }
            Ok(found)
        })
    }
}

/// Core `fetch_many`: resolves to `[handle, status, ...]`, a pair per key.
#[napi(ts_return_type = "Promise<any>")]
pub fn fetch_many<'env>(
    env: &'env Env,
    c: &External<Backend>,
    keys: Vec<String>,
    loader: BatchLoader,
    ttl: Option<f64>,
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    let fut = c.fetch_many(keys, core_batch(loader), ttl).map_err(|e| into_js_error(env, e))?;
    promise(env, fut)
}

/// Core `warm` of `keys`, or `warm_matching` of `pattern` when `keys` is undefined: resolves to
/// its report.
#[napi(ts_return_type = "Promise<any>")]
#[allow(clippy::too_many_arguments)]
pub fn warm<'env>(
    env: &'env Env,
    c: &External<Backend>,
    keys: Option<Vec<String>>,
    pattern: String,
    loader: BatchLoader,
    concurrency: Option<f64>,
    batch: Option<f64>,
    min_share: Option<f64>,
    max_keys: Option<f64>,
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    let opts = healcache_js_common::warm_options(concurrency, batch, min_share, max_keys)
        .map_err(|e| into_js_error(env, e))?;
    let fut = c.warm(keys, pattern, core_batch(loader), opts);
    promise(env, fut)
}

/// `Backend::ready`.
#[napi]
pub fn ready(c: &External<Backend>) -> bool {
    c.ready()
}

/// `Backend::warm_progress`.
#[napi(ts_return_type = "number[]")]
pub fn warm_progress(c: &External<Backend>) -> ToJs {
    ToJs(c.warm_progress())
}

/// The JS writer as the core's: `run()` runs the user's writer, resolving to 0, or to
/// `-loadId` when it threw.
type Writer = ThreadsafeFunction<bool, Promise<f64>, bool, Status, false>;

/// Core `write_through`: resolves to the new version.
#[napi(
    ts_return_type = "Promise<number>",
    ts_args_type = "c: ExternalObject<'Backend'>, key: string, handle: number, weight: number, ttl: number | undefined, invalidate: boolean, writer: (abort: boolean) => Promise<number>, value?: unknown"
)]
#[allow(clippy::too_many_arguments)]
pub fn write_through<'env>(
    env: &'env Env,
    c: &External<Backend>,
    key: String,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    invalidate: bool,
    writer: Writer,
    value: Option<crate::shared::Converted>,
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    let payload = value.map(|v| v.payload(env)).transpose()?;
    let run = move || -> BoxFuture<'static, Result<(), healcache::LoaderError>> {
        Box::pin(async move {
            let r = writer.call_async_catch(false).await.map_err(js_failed)?.await.map_err(js_failed)?;
            if r < 0.0 {
                return Err(healcache::LoaderError::new(-r, "writer rejected"));
            }
            Ok(())
        })
    };
    let fut = c.write_through(key, handle, weight, ttl, invalidate, payload, run).map_err(|e| into_js_error(env, e))?;
    promise(env, fut)
}
