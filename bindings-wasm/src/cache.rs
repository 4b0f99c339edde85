//! The cache functions the JS wrapper calls: each converts its arguments and calls the shared
//! body (`healcache_js_common::Backend`). Host glue: delays on host `setTimeout`s, background
//! work on the host's event loop or its `waitUntil`, the host's randomness, the JS loader as a
//! core loader, promises (answered in each caller's own request context), the result row.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use healcache::{FetchOptions, Spawner, Timer};
use healcache_js_common::{fetch_options, loaded_from, loader_failed, Backend, LoaderFuture, Out};
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::convert::to_js;
use crate::error::into_js_error;

/// A JS value, or a future holding JS values, marked `Send` so the core's `Send` bounds take it.
/// Sound because this module has one thread: wasm32-unknown-unknown without the `atomics` target
/// feature runs no other (a build with it is refused below). The send_wrapper crate does the same
/// with a thread-id check on every access, which links std's thread registry (about 3 KB) into a
/// module that cannot have a second thread.
pub(crate) struct Local<T>(pub T);

#[cfg(target_feature = "atomics")]
compile_error!("healcache-wasm marks JS values `Send` (`Local`): it must run on one thread");

// SAFETY: one thread (above).
unsafe impl<T> Send for Local<T> {}

impl<T> std::ops::Deref for Local<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<F: Future> Future for Local<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        // SAFETY: structural pinning: the field is never moved out of a pinned `Local`.
        unsafe { self.map_unchecked_mut(|l| &mut l.0) }.poll(cx)
    }
}

/// One cache, as the wrapper holds it, with its host hooks.
#[wasm_bindgen(js_name = Backend)]
pub struct Wasm(pub(crate) Backend, pub(crate) Host);

/// What one cache keeps of its host.
#[derive(Default)]
pub(crate) struct Host {
    /// The cache's `waitUntil` (background work of calls that give none of their own).
    wait_until: RefCell<Option<Function>>,
    /// Key -> the promise of its flight's loader call, while it is pending (see `answer`).
    loading: Rc<js_sys::Map>,
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    fn get_random_values(buf: &js_sys::Uint32Array) -> Result<JsValue, JsValue>;
}

/// The seed of a cache created without one, drawn at its first use (edge runtimes refuse
/// `crypto.getRandomValues` in global scope, where caches are often created): the host's
/// `crypto`, or `Math.random` on a host without it.
pub(crate) fn host_seed() -> u64 {
    let words = js_sys::Uint32Array::new_with_length(2);
    if get_random_values(&words).is_err() {
        for i in 0..2 {
            words.set_index(i, (js_sys::Math::random() * 4_294_967_296.0) as u32);
        }
    }
    (u64::from(words.get_index(0)) << 32) | u64::from(words.get_index(1))
}

/// Delays for `load_timeout_ms` and `healing.source_timeout_ms` on host `setTimeout`s (the module
/// has no timer of its own). The healer asks for one delay per sampled key, so delays that end
/// within the same slice of time (1/32 of the delay, from 1 to 250 ms) share one host timeout: a
/// delay ends up to a slice later than asked, never earlier. A host timeout nobody waits for any
/// more is cleared, so none outlives its use or keeps a Node process alive. A host timeout lasts
/// at most `HOST_MAX_MS`: a longer delay is waited in legs, each armed when the one before ends
/// for what the clock says is left (delays go up to 100 years).
pub(crate) struct JsTimer;

/// The longest delay one host timeout takes: setTimeout's delay is a 32-bit signed int, and Node
/// and browsers (WebIDL) run a longer one after about 1 ms.
const HOST_MAX_MS: f64 = 2_147_483_647.0;

thread_local! {
    /// Host timeouts under way with their deadline (µs since `EPOCH`): the promise each waiter
    /// awaits, and its guard held weakly (its waiters hold it): about 32 per delay length in use
    /// (one per 250 ms for delays over 8 s).
    static TIMEOUTS: RefCell<Vec<(u64, Promise, Weak<ClearOnDrop>)>> = const { RefCell::new(Vec::new()) };
    static EPOCH: web_time::Instant = web_time::Instant::now();
}

/// Clears a host timeout when dropped, by its last waiter (a no-op once it fired); and whether
/// the timeout ends its delay (`false`: a leg before the last).
struct ClearOnDrop(JsValue, bool);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        clear_timeout(&self.0);
    }
}

/// Milliseconds since `EPOCH`.
fn now_ms() -> f64 {
    EPOCH.with(|e| e.elapsed().as_secs_f64() * 1e3)
}

/// The host timeout to wait on now for `deadline` (ms since `EPOCH`): the one under way for it,
/// else a new one of what is left, at most `HOST_MAX_MS`: its promise and its guard.
fn leg(deadline: f64, now: f64) -> (Promise, Rc<ClearOnDrop>) {
    let key = (deadline * 1e3) as u64;
    TIMEOUTS.with(|t| {
        let mut t = t.borrow_mut();
        // forget the timeouts that have fired
        let now_us = (now * 1e3) as u64;
        t.retain(|(at, _, _)| *at >= now_us);
        let live = t.iter().find(|(at, _, _)| *at == key).and_then(|(_, p, w)| Some((p.clone(), w.upgrade()?)));
        if let Some(live) = live {
            return live;
        }
        let ms = deadline - now;
        let mut id = JsValue::UNDEFINED;
        let p = Promise::new(&mut |resolve, _| {
            id = set_timeout(&resolve, ms.min(HOST_MAX_MS));
        });
        let guard = Rc::new(ClearOnDrop(id, ms <= HOST_MAX_MS));
        t.retain(|(at, _, _)| *at != key);
        t.push((key, p.clone(), Rc::downgrade(&guard)));
        (p, guard)
    })
}

impl Timer for JsTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let now = now_ms();
        let ms = d.as_secs_f64() * 1e3;
        let slice = (ms / 32.0).clamp(1.0, 250.0);
        let deadline = ((now + ms) / slice).ceil() * slice;
        // armed now, not at the first poll
        let (p, guard) = leg(deadline, now);
        Local(Sleep { deadline, wait: JsFuture::from(p), guard }).boxed()
    }
}

/// A sleep: waits on the host timeout of its deadline (a JS promise takes any number of waiters,
/// so no futures `Shared` is needed), holding its guard until it ends or is dropped.
struct Sleep {
    deadline: f64,
    wait: JsFuture,
    guard: Rc<ClearOnDrop>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        loop {
            // An edge host stops a request's timeouts once it has answered: a sleep armed by a
            // request that is over would never end, and a load it times would be joined for good.
            // A poll past the deadline (a later request joining that load) ends it.
            if now_ms() >= self.deadline {
                return std::task::Poll::Ready(());
            }
            if self.wait.poll_unpin(cx).is_pending() {
                return std::task::Poll::Pending;
            }
            if self.guard.1 {
                return std::task::Poll::Ready(());
            }
            // A leg before the last ended: its first waiter forgets it, so that no waiter finds
            // it again, and every waiter goes on to the next leg.
            let fired = Rc::as_ptr(&self.guard);
            TIMEOUTS.with(|t| t.borrow_mut().retain(|(_, _, w)| !std::ptr::eq(w.as_ptr(), fired)));
            let (p, guard) = leg(self.deadline, now_ms());
            self.wait = JsFuture::from(p);
            self.guard = guard;
        }
    }
}

thread_local! {
    /// The `waitUntil` of the call being polled (its own, else its cache's), if any.
    static WAIT_UNTIL: RefCell<Option<Function>> = const { RefCell::new(None) };
    /// Whether the host stops a request's work once it has answered (set by the edge entry).
    static ENDS_REQUESTS: Cell<bool> = const { Cell::new(false) };
}

/// Tells the module that its host stops a request's work once it has answered (edge runtimes),
/// so background work handed to no `waitUntil` may never finish.
#[wasm_bindgen(js_name = hostEndsRequests)]
pub fn host_ends_requests(on: bool) {
    ENDS_REQUESTS.with(|e| e.set(on));
}

/// Runs background refreshes (stale-while-revalidate, XFetch, refresh-ahead, the tail of a
/// soft-timed-out load, a healing loop): handed to the `waitUntil` of the call that started
/// them when there is one, else on the host's event loop.
#[derive(Clone)]
pub(crate) struct LocalSpawner;

impl Spawner for LocalSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        match WAIT_UNTIL.with(|w| w.borrow().clone()) {
            Some(wait_until) => {
                // a promise settled when `fut` ends (not `future_to_promise`: a second copy of it
                // for this future type would grow the module)
                let mut settle = JsValue::UNDEFINED;
                let p = Promise::new(&mut |resolve, _| settle = resolve.into());
                wasm_bindgen_futures::spawn_local(async move {
                    fut.await;
                    let _ = Function::from(settle).call0(&JsValue::UNDEFINED);
                });
                // the task runs anyway; a host that refuses it (its request is over) only loses the keep-alive
                let _ = wait_until.call1(&JsValue::UNDEFINED, &p);
            }
            None => wasm_bindgen_futures::spawn_local(fut),
        }
    }

    fn keeps_alive(&self) -> bool {
        WAIT_UNTIL.with(|w| w.borrow().is_some()) || !ENDS_REQUESTS.with(Cell::get)
    }
}

/// A caller's future, polled with its `waitUntil` in reach of the spawner.
struct Kept<F> {
    wait_until: Option<Function>,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for Kept<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let outer = WAIT_UNTIL.with(|w| w.replace(self.wait_until.clone()));
        let r = self.fut.as_mut().poll(cx);
        WAIT_UNTIL.with(|w| *w.borrow_mut() = outer);
        r
    }
}

/// Sets the cache's `waitUntil` (`undefined`: none): background work of calls that give no
/// `waitUntil` of their own is handed to it.
#[wasm_bindgen(js_name = setWaitUntil)]
pub fn set_wait_until(c: &Wasm, wait_until: Option<Function>) {
    *c.1.wait_until.borrow_mut() = wait_until;
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
pub fn remove_if_version(c: &Wasm, key: &str, expected: f64) -> Result<bool, JsValue> {
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

/// `Backend::stored`.
#[wasm_bindgen]
pub fn stored(c: &Wasm, key: &str) -> f64 {
    c.0.stored(key)
}

/// `Backend::version`.
#[wasm_bindgen]
pub fn version(c: &Wasm, key: &str) -> f64 {
    c.0.version(key)
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
/// `loaded_from` (while it is pending it stands for its key's flight in `loading`); `run(true)`
/// aborts its signal.
fn core_loader(
    loader: Local<Function>,
    key: String,
    loading: Local<Rc<js_sys::Map>>,
) -> impl FnOnce() -> LoaderFuture + Send {
    move || {
        let called = loader.call1(&JsValue::UNDEFINED, &JsValue::FALSE).map(Promise::from);
        let key = JsValue::from_str(&key);
        if let Ok(p) = &called {
            loading.set(&key, p);
        }
        let guard = AbortOnDrop(Some(loader.0));
        Local(async move {
            let mut guard = guard;
            let failed = |_e: JsValue| loader_failed("loader call failed");
            let promise = match called {
                Ok(p) => p,
                Err(e) => {
                    guard.0 = None;
                    return Err(failed(e));
                }
            };
            let got = JsFuture::from(promise.clone()).await;
            if loading.get(&key) == JsValue::from(promise.clone()) {
                loading.delete(&key);
            }
            // the load ended: its signal stays as it is
            guard.0 = None;
            let got = js_sys::Array::from(&got.map_err(failed)?);
            let got: Vec<f64> = got.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
            loaded_from(&got)
        })
        .boxed()
    }
}

thread_local! {
    /// `() => new Promise(() => {})`, made once.
    static NEVER: Closure<dyn Fn(JsValue) -> JsValue> =
        Closure::new(|_| Promise::new(&mut |_, _| {}).into());
}

/// The promise a caller awaits. Edge runtimes answer a request only from its own context and
/// cancel a request that waits on nothing it started: a caller that joined another request's
/// flight waits on that flight's loader call too (as with a plain shared promise), and then only
/// on its own answer, which the host delivers in the caller's own context.
fn answer(own: Promise, joined: Option<Promise>) -> Promise {
    match joined {
        None => own,
        Some(flight) => NEVER.with(|never| {
            let never = never.as_ref().unchecked_ref::<Function>();
            // `flight.then(never, never)`: js-sys's `then` takes closures, this is one function
            let then = js_sys::Reflect::get(&flight, &JsValue::from_str("then")).map(Function::from);
            let Ok(keep) = then.and_then(|then| then.call2(&flight, never, never)) else { return own };
            Promise::race(&js_sys::Array::of2(&own, &keep))
        }),
    }
}

/// `Backend::fetch` as a promise.
#[allow(clippy::too_many_arguments)]
fn run_fetch(
    c: &Wasm,
    key: String,
    loader: Function,
    ticket: u32,
    opts: FetchOptions,
    must_value: bool,
    wait_until: Option<Function>,
) -> Promise {
    let loading = Rc::clone(&c.1.loading);
    let joined = loading.get(&JsValue::from_str(&key)).dyn_into::<Promise>().ok();
    let load = core_loader(Local(loader), key.clone(), Local(loading));
    let fut = c.0.fetch(key, load, ticket, opts, must_value);
    let wait_until = wait_until.or_else(|| c.1.wait_until.borrow().clone());
    let fut = Kept { wait_until, fut: Box::pin(fut) };
    answer(future_to_promise(async move { fut.await.map(to_js).map_err(into_js_error) }), joined)
}

/// Core `get_or_load` for one caller: resolves to `{ handle, status }`; "not found" rejects
/// with `NotFound`. `ticket` lets `cancel` stop this one caller's wait; background work it
/// starts goes to `waitUntil` (else the cache's).
#[wasm_bindgen(js_name = getOrLoad)]
pub fn get_or_load(c: &Wasm, key: String, loader: Function, ticket: u32, wait_until: Option<Function>) -> Promise {
    run_fetch(c, key, loader, ticket, FetchOptions::default(), true, wait_until)
}

/// Core `fetch` for one caller, with its per-call options (`undefined`: the cache's);
/// `must_value` makes "not found" reject with `NotFound` (`getOrLoad` given options). Exported
/// as `fetchWith`: a module export named `fetch` would shadow the global `fetch` in the glue
/// that loads the module.
#[wasm_bindgen(js_name = fetchWith)]
#[allow(clippy::too_many_arguments)]
pub fn fetch_with(
    c: &Wasm,
    key: String,
    loader: Function,
    ticket: u32,
    ttl: Option<f64>,
    negative_ttl: Option<f64>,
    stale_while_revalidate: Option<bool>,
    xfetch: Option<bool>,
    soft_timeout: Option<f64>,
    must_value: bool,
    wait_until: Option<Function>,
) -> Result<Promise, JsValue> {
    let opts = fetch_options(ttl, negative_ttl, stale_while_revalidate, xfetch, soft_timeout).map_err(into_js_error)?;
    Ok(run_fetch(c, key, loader, ticket, opts, must_value, wait_until))
}

/// `Backend::close`: resolves to 0 (the module has no shared tier, so no write under way).
/// Exported as `closeCache`: a module export named `close` would shadow the worker's global
/// `close` in the glue.
#[wasm_bindgen(js_name = closeCache)]
pub fn close_cache(c: &Wasm, timeout: Option<f64>) -> Result<Promise, JsValue> {
    let fut = c.0.close(timeout).map_err(into_js_error)?;
    Ok(future_to_promise(async move { Ok(JsValue::from_f64(fut.await)) }))
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
