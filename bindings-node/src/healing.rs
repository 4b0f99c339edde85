//! Self-healing functions the JS wrapper calls (bodies in `healcache_js_common::Backend`), and
//! URL-template sources (native only: `healcache-http`). Host glue: the wrapper's `verify`
//! callback as the shared `VerifyCall`, promises.

use std::sync::Arc;

use healcache::{SourceAnswer, SourceError};
use healcache_http::{AllowPrivate, HttpOptions, HttpSource};
use healcache_js_common::{http, Backend, VerifyCall};
use napi::bindgen_prelude::{Buffer, Either, External, FnArgs, Promise, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;

use crate::convert::ToJs;
use crate::error::into_js_error;

/// The wrapper's `verify(key, handle)`, resolving to its answer row. Weak: a registered source
/// never keeps the process alive.
type Verify = ThreadsafeFunction<FnArgs<(String, f64)>, Promise<Vec<f64>>, FnArgs<(String, f64)>, Status, false, true>;

/// `Backend::register_source`: `verify` is the wrapper's per-source callback.
#[napi(
    ts_args_type = "c: ExternalObject<'Backend'>, prefix: string, verify: (key: string, handle: number) => Promise<number[]>"
)]
pub fn register_source(env: &Env, c: &External<Backend>, prefix: String, verify: Verify) -> napi::Result<()> {
    let verify = Arc::new(verify);
    let call: VerifyCall = Arc::new(move |key, held| {
        let verify = Arc::clone(&verify);
        Box::pin(async move {
            let pending = verify.call_async_catch(FnArgs::from((key, held))).await.map_err(|_| ())?;
            pending.await.map_err(|_| ())
        })
    });
    c.register_source(&prefix, call).map_err(|e| into_js_error(env, e))
}

/// `Backend::unregister_source`.
#[napi]
pub fn unregister_source(c: &External<Backend>, prefix: String) -> bool {
    c.unregister_source(&prefix)
}

/// `Backend::verify_now`, resolving to the interval's report.
#[napi(ts_return_type = "Promise<any>")]
pub fn verify_now<'env>(env: &'env Env, c: &External<Backend>) -> napi::Result<PromiseRaw<'env, ToJs>> {
    let fut = c.verify_now();
    env.spawn_future(async move { Ok(ToJs(fut.await)) })
}

/// `Backend::healing_intervals`.
#[napi]
pub fn healing_intervals(c: &External<Backend>) -> f64 {
    c.healing_intervals()
}

/// `Backend::healing_reset`.
#[napi]
pub fn healing_reset(c: &External<Backend>) {
    c.healing_reset();
}

/// `Backend::healing_set`.
#[napi]
pub fn healing_set(env: &Env, c: &External<Backend>, names: Vec<String>, values: Vec<f64>) -> napi::Result<()> {
    c.healing_set(&names, &values).map_err(|e| into_js_error(env, e))
}

/// `Backend::healing_get`.
#[napi]
pub fn healing_get(env: &Env, c: &External<Backend>, name: String) -> napi::Result<f64> {
    c.healing_get(&name).map_err(|e| into_js_error(env, e))
}

/// `Backend::score`.
#[napi(ts_return_type = "any")]
pub fn healing_score(c: &External<Backend>, prefix: String) -> ToJs {
    ToJs(c.score(&prefix))
}

/// `Backend::scores`.
#[napi(ts_return_type = "any[]")]
pub fn healing_scores(c: &External<Backend>) -> ToJs {
    ToJs(c.scores())
}

/// `Backend::healing_stats`.
#[napi(ts_return_type = "any")]
pub fn healing_stats(c: &External<Backend>) -> ToJs {
    ToJs(c.healing_stats())
}

/// `Backend::drift_events`.
#[napi(ts_return_type = "any[]")]
pub fn drift_events(c: &External<Backend>) -> ToJs {
    ToJs(c.drift_events())
}

/// A URL-template source (`healcache-http`): the template is checked by the core's rules,
/// requests end by the healer's current `healing.source_timeout` (the cache has a timer),
/// bodies above `maxBodyBytes` fail, and non-public destinations are refused unless `allowAll`
/// or the host is in `allowHosts`.
#[napi(ts_return_type = "ExternalObject<'HttpSource'>")]
pub fn http_source(
    env: &Env,
    template: String,
    max_body_bytes: f64,
    allow_all: bool,
    allow_hosts: Vec<String>,
) -> napi::Result<External<HttpSource>> {
    let make = || -> healcache::Result<HttpSource> {
        let max_body_bytes = if max_body_bytes.is_finite() { max_body_bytes as usize } else { 0 };
        let allow_private = match (allow_all, allow_hosts.is_empty()) {
            (true, _) => AllowPrivate::All,
            (false, true) => AllowPrivate::No,
            (false, false) => AllowPrivate::hosts(allow_hosts),
        };
        HttpSource::new(&template, HttpOptions { max_body_bytes, allow_private, ..HttpOptions::bounded_by_healer() })
    };
    make().map(External::new).map_err(|e| into_js_error(env, e))
}

/// Fetches `key` from a URL-template source, resolving to `[status, body?]`, `status` one of
/// the protocol's `http` outcomes (the body follows a 2xx answer).
#[napi(ts_return_type = "Promise<[number, Buffer?]>")]
pub fn http_fetch<'env>(
    env: &'env Env,
    src: &External<HttpSource>,
    key: String,
) -> napi::Result<PromiseRaw<'env, Vec<Either<u32, Buffer>>>> {
    let fetch = src.fetch_bytes(&key);
    env.spawn_future(async move {
        Ok(match fetch.await {
            Ok(SourceAnswer::Value(body)) => vec![Either::A(http::VALUE), Either::B(Buffer::from(body))],
            Ok(SourceAnswer::NotFound) => vec![Either::A(http::NOT_FOUND)],
            Err(SourceError::Timeout) => vec![Either::A(http::TIMEOUT)],
            Err(SourceError::Refused) => vec![Either::A(http::REFUSED)],
            Err(_) => vec![Either::A(http::UNAVAILABLE)],
        })
    })
}
