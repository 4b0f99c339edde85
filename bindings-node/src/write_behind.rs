//! The write-behind functions the JS wrapper calls (`WriteBehind` in js/write_behind.mjs): each
//! converts its arguments and calls the shared body (`healcache_js_common::JsWriteBehind`).
//! Host glue: the JS writer as the core's `BatchWriter`, called on the JS thread; promises.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use healcache::{BatchWriter, Op};
use healcache_js_common::{batch_js, Backend, Handle, JsWriteBehind, WriteBehindArgs};
use napi::bindgen_prelude::{External, Promise, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;

use crate::cache::promise;
use crate::convert::ToJs;
use crate::error::into_js_error;
use crate::shared::Converted;

/// The wrapper's writer: `run(batch)` runs the user's writer on the batch (handles resolved to
/// values) and resolves to `null`, or to the error's text. Weak: a queue left open does not keep
/// the process alive.
type JsWriter = ThreadsafeFunction<ToJs, Promise<Option<String>>, ToJs, Status, false, true>;

/// The JS writer as the core's: one call per batch, on the JS thread.
struct Writer(Arc<JsWriter>);

impl BatchWriter<Handle> for Writer {
    fn write(&self, batch: Vec<Op<Handle>>) -> BoxFuture<'static, Result<(), String>> {
        let w = Arc::clone(&self.0);
        Box::pin(async move {
            let p = w.call_async_catch(ToJs(batch_js(batch))).await.map_err(|e| e.reason.clone())?;
            match p.await.map_err(|e| e.reason.clone())? {
                None => Ok(()),
                Some(text) => Err(text),
            }
        })
    }
}

/// A write-behind queue for cache `c` in front of `writer`; settings as `WriteBehindArgs`
/// (`undefined`: the core's default; `block`: ms to wait for room, `undefined`: refuse).
#[napi(
    ts_args_type = "c: ExternalObject<'Backend'>, writer: (batch: Array<{ op: 'put' | 'delete', key: string, handle?: number }>) => Promise<string | null>, maxQueue?: number, batch?: number, flushInterval?: number, retryMin?: number, retryMax?: number, attempts?: number, block?: number"
)]
#[allow(clippy::too_many_arguments)]
pub fn wb_create(
    env: &Env,
    c: &External<Backend>,
    writer: JsWriter,
    max_queue: Option<f64>,
    batch: Option<f64>,
    flush_interval: Option<f64>,
    retry_min: Option<f64>,
    retry_max: Option<f64>,
    attempts: Option<f64>,
    block: Option<f64>,
) -> napi::Result<External<JsWriteBehind>> {
    let args = WriteBehindArgs { max_queue, batch, flush_interval, retry_min, retry_max, attempts, block };
    JsWriteBehind::new(c, Writer(Arc::new(writer)), &args).map(External::new).map_err(|e| into_js_error(env, e))
}

/// `JsWriteBehind::set`: resolves to the entry's new version; `value` on a cache with a shared
/// tier (converted for L2).
#[napi(
    ts_return_type = "Promise<number>",
    ts_args_type = "wb: ExternalObject<'JsWriteBehind'>, key: string, handle: number, weight: number, ttl: number | undefined, value?: unknown"
)]
pub fn wb_set<'env>(
    env: &'env Env,
    wb: &External<JsWriteBehind>,
    key: String,
    handle: f64,
    weight: f64,
    ttl: Option<f64>,
    value: Option<Converted>,
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    let payload = value.map(|v| v.payload(env)).transpose()?;
    let fut = wb.set(key, handle, weight, ttl, payload).map_err(|e| into_js_error(env, e))?;
    promise(env, fut)
}

/// `JsWriteBehind::delete`: resolves to whether the cache held a fresh value.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn wb_delete<'env>(
    env: &'env Env,
    wb: &External<JsWriteBehind>,
    key: String,
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    promise(env, wb.delete(key))
}

/// `JsWriteBehind::close`: resolves to the items left unflushed.
#[napi(ts_return_type = "Promise<number>")]
pub fn wb_close<'env>(
    env: &'env Env,
    wb: &External<JsWriteBehind>,
    timeout: f64,
) -> napi::Result<PromiseRaw<'env, ToJs>> {
    let fut = wb.close(timeout).map_err(|e| into_js_error(env, e))?;
    promise(env, fut.map(Ok))
}

/// `JsWriteBehind::closed`.
#[napi]
pub fn wb_closed(wb: &External<JsWriteBehind>) -> bool {
    wb.closed()
}

/// `JsWriteBehind::failed`.
#[napi(
    ts_return_type = "Array<{ op: 'put' | 'delete', key: string, handle?: number, attempts: number, error: string }>"
)]
pub fn wb_failed(wb: &External<JsWriteBehind>, take: bool) -> ToJs {
    ToJs(wb.failed(take))
}

/// `JsWriteBehind::held`.
#[napi(ts_return_type = "number[]")]
pub fn wb_held(wb: &External<JsWriteBehind>) -> ToJs {
    ToJs(wb.held())
}

/// `JsWriteBehind::stats`.
#[napi(ts_return_type = "any")]
pub fn wb_stats(wb: &External<JsWriteBehind>) -> ToJs {
    ToJs(wb.stats())
}

/// `JsWriteBehind::prometheus`.
#[napi]
pub fn wb_prometheus(wb: &External<JsWriteBehind>, name: String) -> String {
    wb.prometheus(&name)
}
