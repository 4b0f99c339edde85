//! Self-healing (issue 7): the core [`Healer`] over the cache's handles, as in `bindings-node`.
//!
//! Values live in JS, so a source's answer is compared there: [`JsSource`] calls the wrapper's
//! `verify(key, handle)` with the handle the core holds and hands its answer to
//! `healcache_js_common::answer`, where the handle protocol and the state it keeps are written
//! once for this crate and its twin (see `js/cache.mjs` for the JS side).
//!
//! The host's scheduler calls `verifyNow` (`runHealingInterval` in the wrapper); the module runs
//! no timer of its own, and has no HTTP client: a source is a function (which may call `fetch()`).

use std::sync::Arc;

use futures::future::{self, BoxFuture, FutureExt};
use healcache::{Cache, DriftEvent, Error, IntervalReport, PrefixScore, Source, SourceAnswer, SourceError};
use js_sys::{Array, Function, Promise};
use send_wrapper::SendWrapper;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use healcache_js_common::{answer, held_handle, Handle, HealState};

use crate::cache::Backend;
use crate::error::into_js_error;

/// A registered JS source, as the core sees it.
struct JsSource {
    verify: SendWrapper<Function>,
    cache: Cache<Handle>,
    heal: Arc<HealState>,
}

impl Source<Handle> for JsSource {
    fn fetch(&self, key: &str) -> BoxFuture<'static, Result<SourceAnswer<Handle>, SourceError>> {
        let held = match held_handle(&self.cache, key) {
            Ok(h) => h,
            Err(e) => return future::ready(Err(e)).boxed(),
        };
        let called = self.verify.call2(&JsValue::UNDEFINED, &JsValue::from_str(key), &JsValue::from_f64(held));
        let heal = Arc::clone(&self.heal);
        SendWrapper::new(async move {
            let p = called.map_err(|_| SourceError::Unavailable)?;
            let got = JsFuture::from(Promise::from(p)).await.map_err(|_| SourceError::Unavailable)?;
            let got: Vec<f64> = Array::from(&got).iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
            answer(&heal, held, &got)
        })
        .boxed()
    }
}

/// Core `Healer::register_source`: `verify` is the wrapper's per-source callback (above).
#[wasm_bindgen(js_name = registerSource)]
pub fn register_source(c: &Backend, prefix: &str, verify: Function) -> Result<(), JsValue> {
    let source = JsSource { verify: SendWrapper::new(verify), cache: c.cache.clone(), heal: Arc::clone(&c.heal) };
    c.healer.register_source(prefix, source).map_err(into_js_error)
}

/// Core `Healer::unregister_source`.
#[wasm_bindgen(js_name = unregisterSource)]
pub fn unregister_source(c: &Backend, prefix: &str) -> bool {
    c.healer.unregister_source(prefix)
}

/// Core `Healer::run_interval`, resolving to the report's fields in declaration order
/// (`overlapped` as 0/1).
#[wasm_bindgen(js_name = verifyNow)]
pub fn verify_now(c: &Backend) -> Promise {
    let healer = c.healer.clone();
    future_to_promise(async move {
        let r = healer.run_interval().await;
        let IntervalReport { drawn, verified, consistent, drift, repaired, skipped, failures, duration_ms, overlapped } =
            r;
        let fields =
            [drawn, verified, consistent, drift, repaired, skipped, failures, duration_ms, u64::from(overlapped)];
        Ok(fields.iter().map(|&n| JsValue::from_f64(n as f64)).collect::<Array>().into())
    })
}

/// Forgets what the healer watched (called by the wrapper once no interval it started is under
/// way: every repair has landed and been queued).
#[wasm_bindgen(js_name = healingReset)]
pub fn healing_reset(c: &Backend) {
    c.heal.reset();
}

/// Sets healing settings by core name (`healing.sample_rate`, ...) to numbers (flags 1/0), all or none.
#[wasm_bindgen(js_name = healingSet)]
pub fn healing_set(c: &Backend, names: Vec<String>, values: Vec<f64>) -> Result<(), JsValue> {
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
    set().map_err(into_js_error)
}

/// One healing setting by core name, as a number (flags 1/0).
#[wasm_bindgen(js_name = healingGet)]
pub fn healing_get(c: &Backend, name: &str) -> Result<f64, JsValue> {
    c.healer.config_get_number(name).map_err(into_js_error)
}

/// `[score, sampled, repaired]` of `prefix`, `[]` if it has no source.
#[wasm_bindgen(js_name = healingScore)]
pub fn healing_score(c: &Backend, prefix: &str) -> Vec<f64> {
    c.healer.score(prefix).map_or_else(Vec::new, |s| vec![s.score, s.sampled as f64, s.repaired as f64])
}

/// Every prefix's score, as `[prefix, score, sampled, repaired, prefix, ...]`.
#[wasm_bindgen(js_name = healingScores)]
pub fn healing_scores(c: &Backend) -> Array {
    let out = Array::new();
    for PrefixScore { prefix, score, sampled, repaired } in c.healer.scores() {
        out.push(&JsValue::from_str(&prefix));
        out.push(&JsValue::from_f64(score));
        out.push(&JsValue::from_f64(sampled as f64));
        out.push(&JsValue::from_f64(repaired as f64));
    }
    out
}

/// Core `HealingStats`: `[totalSampled, totalRepaired, avgScore, sourceFailures, lastIntervalMs,
/// totalDrift]`, then the 14 interval-duration bucket counts and their sum in nanoseconds.
#[wasm_bindgen(js_name = healingStats)]
pub fn healing_stats(c: &Backend) -> Vec<f64> {
    let s = c.healer.stats();
    let head = [s.total_sampled as f64, s.total_repaired as f64, s.avg_score, s.source_failures as f64];
    head.into_iter()
        .chain([s.last_interval_ms, s.total_drift as f64])
        .chain(s.interval_duration.counts.map(|n| n as f64))
        .chain([s.interval_duration.sum_nanos as f64])
        .collect()
}

/// Recent drift events, oldest first: `[key, prefix, atMs, oldDigest, newDigest, repaired (0/1), ...]`.
#[wasm_bindgen(js_name = driftEvents)]
pub fn drift_events(c: &Backend) -> Array {
    let out = Array::new();
    for DriftEvent { key, prefix, at_ms, old_digest, new_digest, repaired } in c.healer.drift_events() {
        out.push(&JsValue::from_str(&key));
        out.push(&JsValue::from_str(&prefix));
        out.push(&JsValue::from_f64(at_ms as f64));
        out.push(&JsValue::from_str(&old_digest));
        out.push(&JsValue::from_str(&new_digest));
        out.push(&JsValue::from_f64(f64::from(u8::from(repaired))));
    }
    out
}

/// Core `Healer::prometheus`: healing metrics labelled `cache="<name>"`.
#[wasm_bindgen(js_name = healingPrometheus)]
pub fn healing_prometheus(c: &Backend, name: &str) -> String {
    c.healer.prometheus(name)
}
