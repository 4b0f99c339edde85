//! The cache functions the JS wrapper calls: each converts its arguments and calls the shared
//! body (`healcache_js_common::Backend`). Host glue: delays on host `setTimeout`s, background
//! work on the host's event loop, the JS loader as a core loader, promises, the result row.

use std::cell::{RefCell, UnsafeCell};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use healcache::{FetchOptions, Spawner, Timer};
use healcache_js_common::{fetch_options, loaded_from, loader_failed, Backend, LoaderFuture, Out};
use js_sys::{Function, Promise};
use send_wrapper::SendWrapper;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::convert::to_js;
use crate::error::into_js_error;

/// One cache, as the wrapper holds it.
#[wasm_bindgen(js_name = Backend)]
pub struct Wasm(pub(crate) Backend);

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// Delays for `load_timeout_ms` and `healing.source_timeout_ms` on host `setTimeout`s (the module
/// has no timer of its own). The healer asks for one delay per sampled key, so delays that end
/// within the same slice of time (1/32 of the delay, from 1 to 250 ms) share one host timeout: a
/// delay ends up to a slice later than asked, never earlier. A host timeout nobody waits for any
/// more is cleared, so none outlives its use or keeps a Node process alive.
pub(crate) struct JsTimer;

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
/// soft-timed-out load, a healing loop) on the host's event loop.
#[derive(Clone)]
pub(crate) struct LocalSpawner;

impl Spawner for LocalSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        wasm_bindgen_futures::spawn_local(fut);
    }
}

/// The result row (`Out`) that `set` and `state` fill: one per module (the module runs on one
/// thread, and a call fills it before the wrapper reads it). Its address never changes; a view
/// of it goes stale when the module's memory grows, and the wrapper then asks for a new one.
struct Row(UnsafeCell<[f64; Out::LEN]>);

// SAFETY: wasm32-unknown-unknown runs this module on one thread; no call re-enters another.
unsafe impl Sync for Row {}

static ROW: Row = Row(UnsafeCell::new([0.0; Out::LEN]));

fn row() -> &'static mut [f64] {
    // SAFETY: one thread, and each exported function takes the row at most once while it runs.
    unsafe { &mut *ROW.0.get() }
}

/// A view of the result row (valid until the module's memory grows).
#[wasm_bindgen(js_name = outRow)]
pub fn out_row() -> js_sys::Float64Array {
    // SAFETY: the view is read by the wrapper between calls; it checks for a detached view.
    unsafe { js_sys::Float64Array::view(&*ROW.0.get()) }
}

/// `Backend::write`: returns the new version and fills the result row.
#[wasm_bindgen]
pub fn set(
    c: &Wasm,
    key: &str,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    if_version: Option<f64>,
) -> Result<f64, JsValue> {
    c.0.write(key, handle, weight, ttl, if_version, row()).map_err(into_js_error)
}

/// `Backend::write_plain`: returns the new version and fills the result row.
#[wasm_bindgen(js_name = setPlain)]
pub fn set_plain(c: &Wasm, key: &str, handle: f64, weight: f64) -> Result<f64, JsValue> {
    c.0.write_plain(key, handle, weight, row()).map_err(into_js_error)
}

/// `Backend::remove`.
#[wasm_bindgen]
pub fn remove(c: &Wasm, key: &str) -> f64 {
    c.0.remove(key)
}

/// `Backend::remove_if_version`.
#[wasm_bindgen(js_name = removeIfVersion)]
pub fn remove_if_version(c: &Wasm, key: &str, expected: f64) -> Result<(), JsValue> {
    c.0.remove_if_version(key, expected).map_err(into_js_error)
}

/// `Backend::state`: a counted read of the core, into the result row.
#[wasm_bindgen]
pub fn state(c: &Wasm, key: &str) {
    c.0.state(key, row());
}

/// `Backend::peek`: `state` without counting a read, into the result row.
#[wasm_bindgen]
pub fn peek(c: &Wasm, key: &str) {
    c.0.peek(key, row());
}

/// `Backend::keys`.
#[wasm_bindgen]
pub fn keys(c: &Wasm) -> JsValue {
    to_js(c.0.keys())
}

/// `Backend::touch`.
#[wasm_bindgen]
pub fn touch(c: &Wasm, keys: Vec<String>, hits: f64, missed: Vec<String>) -> bool {
    c.0.touch(&keys, hits, &missed)
}

/// `Backend::drain`.
#[wasm_bindgen]
pub fn drain(c: &Wasm) -> JsValue {
    to_js(c.0.drain())
}

/// `Backend::report_removals`.
#[wasm_bindgen(js_name = reportRemovals)]
pub fn report_removals(c: &Wasm) {
    c.0.report_removals();
}

/// `Backend::len`.
#[wasm_bindgen]
pub fn len(c: &Wasm) -> f64 {
    c.0.len()
}

/// `Backend::clear`.
#[wasm_bindgen]
pub fn clear(c: &Wasm) {
    c.0.clear();
}

/// `Backend::purge_expired`.
#[wasm_bindgen(js_name = purgeExpired)]
pub fn purge_expired(c: &Wasm) -> f64 {
    c.0.purge_expired()
}

/// `Backend::stats`.
#[wasm_bindgen]
pub fn stats(c: &Wasm) -> JsValue {
    to_js(c.0.stats())
}

/// `Backend::prometheus`.
#[wasm_bindgen]
pub fn prometheus(c: &Wasm, name: &str) -> String {
    c.0.prometheus(name)
}

/// Aborts the loader's signal when the core drops the load before it ended (every waiter has
/// gone, or the load timed out).
struct AbortOnDrop(Option<Function>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(l) = self.0.take() {
            // the wrapper's callback defers the abort to a microtask: no user code runs here
            let _ = l.call1(&JsValue::UNDEFINED, &JsValue::TRUE);
        }
    }
}

/// The JS loader as a core loader: `run(false)` returns a promise of the answer row of
/// `loaded_from`; `run(true)` aborts its signal.
fn core_loader(loader: SendWrapper<Function>) -> impl FnOnce() -> LoaderFuture + Send {
    move || {
        let called = loader.call1(&JsValue::UNDEFINED, &JsValue::FALSE).map(|p| JsFuture::from(Promise::from(p)));
        let guard = AbortOnDrop(Some(loader.take()));
        SendWrapper::new(async move {
            let mut guard = guard;
            let failed = |_e: JsValue| loader_failed("loader call failed");
            let r = match called {
                Ok(p) => p.await.map_err(failed),
                Err(e) => Err(failed(e)),
            };
            // the load ended: its signal stays as it is
            guard.0 = None;
            let got = js_sys::Array::from(&r?);
            let got: Vec<f64> = got.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
            loaded_from(&got)
        })
        .boxed()
    }
}

/// `Backend::fetch` as a promise.
fn run_fetch(c: &Wasm, key: String, loader: Function, ticket: u32, opts: FetchOptions, must_value: bool) -> Promise {
    let fut = c.0.fetch(key, core_loader(SendWrapper::new(loader)), ticket, opts, must_value);
    future_to_promise(async move { fut.await.map(to_js).map_err(into_js_error) })
}

/// Core `get_or_load` for one caller: resolves to `{ handle, status }`; "not found" rejects
/// with `NotFound`. `ticket` lets `cancel` stop this one caller's wait.
#[wasm_bindgen(js_name = getOrLoad)]
pub fn get_or_load(c: &Wasm, key: String, loader: Function, ticket: u32) -> Promise {
    run_fetch(c, key, loader, ticket, FetchOptions::default(), true)
}

/// Core `fetch` for one caller, with its per-call options (`undefined`: the cache's).
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn fetch(
    c: &Wasm,
    key: String,
    loader: Function,
    ticket: u32,
    ttl: Option<f64>,
    negative_ttl: Option<f64>,
    stale_while_revalidate: Option<bool>,
    xfetch: Option<bool>,
    soft_timeout: Option<f64>,
) -> Result<Promise, JsValue> {
    let opts = fetch_options(ttl, negative_ttl, stale_while_revalidate, xfetch, soft_timeout).map_err(into_js_error)?;
    Ok(run_fetch(c, key, loader, ticket, opts, false))
}

/// `Backend::cancel`.
#[wasm_bindgen]
pub fn cancel(c: &Wasm, ticket: u32) {
    c.0.cancel(ticket);
}

/// Test hook: panics inside the module, to check that the wrapper reports a poisoned instance.
#[wasm_bindgen(js_name = __panicForTest)]
pub fn panic_for_test() {
    panic!("healcache-wasm: panic requested by a test");
}
