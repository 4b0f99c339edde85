//! Self-healing (issue 7): the core [`Healer`] over the cache's handles, and URL-template sources.
//!
//! Values live in JS, so a source's answer is compared there: [`JsSource`] calls the wrapper's
//! `verify(key, handle)` with the handle the core holds and hands its answer to
//! `healcache_js_common::answer`, where the handle protocol and the state it keeps are written
//! once for this crate and its twin (see `js/cache.mjs` for the JS side).
//!
//! Sampling, scoring, fenced repair, backoff, timeouts and settings are the core's.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{self, BoxFuture};
use healcache::{
    duration_ms, Cache, DriftEvent, Error, IntervalReport, PrefixScore, Source, SourceAnswer, SourceError,
};
use healcache_http::{HttpOptions, HttpSource};
use napi::bindgen_prelude::{Buffer, Either, External, FnArgs, Promise, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;

use healcache_js_common::{answer, held_handle, Handle, HealState};

use crate::cache::Backend;
use crate::error::into_js_error;

/// The wrapper's `verify(key, handle)`, resolving to the answer described above. Weak: a
/// registered source never keeps the process alive.
type Verify = ThreadsafeFunction<FnArgs<(String, f64)>, Promise<Vec<f64>>, FnArgs<(String, f64)>, Status, false, true>;

/// A registered JS source, as the core sees it.
struct JsSource {
    verify: Arc<Verify>,
    cache: Cache<Handle>,
    heal: Arc<HealState>,
}

impl Source<Handle> for JsSource {
    fn fetch(&self, key: &str) -> BoxFuture<'static, Result<SourceAnswer<Handle>, SourceError>> {
        let held = match held_handle(&self.cache, key) {
            Ok(h) => h,
            Err(e) => return Box::pin(future::ready(Err(e))),
        };
        let (verify, heal, key) = (Arc::clone(&self.verify), Arc::clone(&self.heal), key.to_string());
        Box::pin(async move {
            let pending = verify.call_async_catch(FnArgs::from((key, held))).await;
            let got = pending.map_err(|_| SourceError::Unavailable)?.await.map_err(|_| SourceError::Unavailable)?;
            answer(&heal, held, &got)
        })
    }
}

/// Core `Healer::register_source`: `verify` is the wrapper's per-source callback (above).
#[napi(
    ts_args_type = "c: ExternalObject<'Backend'>, prefix: string, verify: (key: string, handle: number) => Promise<number[]>"
)]
pub fn register_source(env: &Env, c: &External<Backend>, prefix: String, verify: Verify) -> napi::Result<()> {
    let source = JsSource { verify: Arc::new(verify), cache: c.cache.clone(), heal: Arc::clone(&c.heal) };
    c.healer.register_source(&prefix, source).map_err(|e| into_js_error(env, e))
}

/// Core `Healer::unregister_source`.
#[napi]
pub fn unregister_source(c: &External<Backend>, prefix: String) -> bool {
    c.healer.unregister_source(&prefix)
}

/// Core `Healer::run_interval`, resolving to the report's fields in declaration order
/// (`overlapped` as 0/1).
#[napi(ts_return_type = "Promise<number[]>")]
pub fn verify_now<'env>(env: &'env Env, c: &External<Backend>) -> napi::Result<PromiseRaw<'env, Vec<f64>>> {
    let healer = c.healer.clone();
    env.spawn_future(async move {
        let r = healer.run_interval().await;
        Ok(report(&r))
    })
}

/// Forgets what the healer watched (called by the wrapper once no interval it started is under
/// way: every repair has landed and been queued).
#[napi]
pub fn healing_reset(c: &External<Backend>) {
    c.heal.reset();
}

fn report(r: &IntervalReport) -> Vec<f64> {
    let IntervalReport { drawn, verified, consistent, drift, repaired, skipped, failures, duration_ms, overlapped } =
        *r;
    [drawn, verified, consistent, drift, repaired, skipped, failures, duration_ms, u64::from(overlapped)]
        .map(|n| n as f64)
        .to_vec()
}

/// Sets healing settings by core name (`healing.sample_rate`, ...) to numbers (flags 1/0), all or none.
#[napi]
pub fn healing_set(env: &Env, c: &External<Backend>, names: Vec<String>, values: Vec<f64>) -> napi::Result<()> {
    let set = || -> healcache::Result<()> {
        if names.len() != values.len() {
            return Err(Error::InvalidConfig { field: "healing", reason: "one value per setting name".into() });
        }
        let mut cfg = c.healer.config();
        for (n, v) in names.iter().zip(&values) {
            cfg.set(n, *v)?;
        }
        c.healer.set_config(cfg)
    };
    set().map_err(|e| into_js_error(env, e))
}

/// One healing setting by core name, as a number (flags 1/0).
#[napi]
pub fn healing_get(env: &Env, c: &External<Backend>, name: String) -> napi::Result<f64> {
    c.healer.config_get_number(&name).map_err(|e| into_js_error(env, e))
}

/// `[score, sampled, repaired]` of `prefix`, `[]` if it has no source.
#[napi]
pub fn healing_score(c: &External<Backend>, prefix: String) -> Vec<f64> {
    c.healer.score(&prefix).map_or_else(Vec::new, |s| vec![s.score, s.sampled as f64, s.repaired as f64])
}

/// Every prefix's score, as `[prefix, score, sampled, repaired, prefix, ...]`.
#[napi(ts_return_type = "Array<string | number>")]
pub fn healing_scores(c: &External<Backend>) -> Vec<Either<String, f64>> {
    let scores = c.healer.scores();
    let mut out = Vec::with_capacity(4 * scores.len());
    for PrefixScore { prefix, score, sampled, repaired } in scores {
        out.extend([Either::A(prefix), Either::B(score), Either::B(sampled as f64), Either::B(repaired as f64)]);
    }
    out
}

/// Core `HealingStats`: `[totalSampled, totalRepaired, avgScore, sourceFailures, lastIntervalMs,
/// totalDrift]`, then the 14 interval-duration bucket counts and their sum in nanoseconds.
#[napi]
pub fn healing_stats(c: &External<Backend>) -> Vec<f64> {
    let s = c.healer.stats();
    let head = [s.total_sampled as f64, s.total_repaired as f64, s.avg_score, s.source_failures as f64];
    head.into_iter()
        .chain([s.last_interval_ms, s.total_drift as f64])
        .chain(s.interval_duration.counts.map(|n| n as f64))
        .chain([s.interval_duration.sum_nanos as f64])
        .collect()
}

/// Recent drift events, oldest first: `[key, prefix, atMs, oldDigest, newDigest, repaired (0/1), ...]`.
#[napi(ts_return_type = "Array<string | number>")]
pub fn drift_events(c: &External<Backend>) -> Vec<Either<String, f64>> {
    let events = c.healer.drift_events();
    let mut out = Vec::with_capacity(6 * events.len());
    for DriftEvent { key, prefix, at_ms, old_digest, new_digest, repaired } in events {
        out.extend([
            Either::A(key),
            Either::A(prefix),
            Either::B(at_ms as f64),
            Either::A(old_digest),
            Either::A(new_digest),
            Either::B(f64::from(u8::from(repaired))),
        ]);
    }
    out
}

/// Core `Healer::prometheus`: healing metrics labelled `cache="<name>"`.
#[napi]
pub fn healing_prometheus(c: &External<Backend>, name: String) -> String {
    c.healer.prometheus(&name)
}

/// A URL-template source (`healcache-http`): the template is checked by the core's rules
/// (PROMISES.md), requests time out after `timeoutMs` and bodies above `maxBodyBytes` fail.
#[napi(ts_return_type = "ExternalObject<'HttpSource'>")]
pub fn http_source(
    env: &Env,
    template: String,
    timeout_ms: f64,
    max_body_bytes: f64,
) -> napi::Result<External<HttpSource>> {
    let make = || -> healcache::Result<HttpSource> {
        let timeout: Duration = duration_ms("healing.source_timeout_ms", timeout_ms)?;
        let max_body_bytes = if max_body_bytes.is_finite() { max_body_bytes as usize } else { 0 };
        HttpSource::new(&template, HttpOptions { timeout, max_body_bytes })
    };
    make().map(External::new).map_err(|e| into_js_error(env, e))
}

/// Fetches `key` from a URL-template source, resolving to `[0, body]` (2xx), `[1]` (404/410:
/// not found), `[2]` (unavailable), `[3]` (timed out) or `[4]` (the key cannot be a URL segment).
#[napi(ts_return_type = "Promise<[number, Buffer?]>")]
pub fn http_fetch<'env>(
    env: &'env Env,
    src: &External<HttpSource>,
    key: String,
) -> napi::Result<PromiseRaw<'env, Vec<Either<u32, Buffer>>>> {
    let fetch = src.fetch_bytes(&key);
    env.spawn_future(async move {
        Ok(match fetch.await {
            Ok(SourceAnswer::Value(body)) => vec![Either::A(0), Either::B(Buffer::from(body))],
            Ok(SourceAnswer::NotFound) => vec![Either::A(1)],
            Err(SourceError::Timeout) => vec![Either::A(3)],
            Err(SourceError::Refused) => vec![Either::A(4)],
            Err(_) => vec![Either::A(2)],
        })
    })
}
