//! Self-healing functions the JS wrapper calls (bodies in `healcache_js_common::Backend`). Host
//! glue: the wrapper's `verify` callback as the shared `VerifyCall`, promises. The module has no
//! HTTP client: a source is a function (which may call `fetch()`).

use std::sync::Arc;

use futures::future::FutureExt;
use healcache_js_common::VerifyCall;
use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::cache::{Local, Wasm};
use crate::convert::to_js;
use crate::error::into_js_error;

/// `Backend::register_source`: `verify` is the wrapper's per-source callback.
#[wasm_bindgen(js_name = registerSource)]
pub fn register_source(c: &Wasm, prefix: &str, verify: Function) -> Result<(), JsValue> {
    let verify = Local(verify);
    let call: VerifyCall = Arc::new(move |key, held| {
        let called = verify.call2(&JsValue::UNDEFINED, &JsValue::from_str(&key), &JsValue::from_f64(held));
        Local(async move {
            let got = JsFuture::from(Promise::from(called.map_err(|_| ())?)).await.map_err(|_| ())?;
            Ok(Array::from(&got).iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
        })
        .boxed()
    });
    c.0.register_source(prefix, call).map_err(into_js_error)
}

/// `Backend::unregister_source`.
#[wasm_bindgen(js_name = unregisterSource)]
pub fn unregister_source(c: &Wasm, prefix: &str) -> bool {
    c.0.unregister_source(prefix)
}

/// `Backend::verify_now`, resolving to the interval's report.
#[wasm_bindgen(js_name = verifyNow)]
pub fn verify_now(c: &Wasm) -> Promise {
    let fut = c.0.verify_now();
    future_to_promise(async move { Ok(to_js(fut.await)) })
}

/// `Backend::healing_intervals`.
#[wasm_bindgen(js_name = healingIntervals)]
pub fn healing_intervals(c: &Wasm) -> f64 {
    c.0.healing_intervals()
}

/// `Backend::healing_reset`.
#[wasm_bindgen(js_name = healingReset)]
pub fn healing_reset(c: &Wasm) {
    c.0.healing_reset();
}

/// `Backend::healing_set`.
#[wasm_bindgen(js_name = healingSet)]
pub fn healing_set(c: &Wasm, names: Vec<String>, values: Vec<f64>) -> Result<(), JsValue> {
    c.0.healing_set(&names, &values).map_err(into_js_error)
}

/// `Backend::healing_get`.
#[wasm_bindgen(js_name = healingGet)]
pub fn healing_get(c: &Wasm, name: &str) -> Result<f64, JsValue> {
    c.0.healing_get(name).map_err(into_js_error)
}

/// `Backend::score`.
#[wasm_bindgen(js_name = healingScore)]
pub fn healing_score(c: &Wasm, prefix: &str) -> JsValue {
    to_js(c.0.score(prefix))
}

/// `Backend::scores`.
#[wasm_bindgen(js_name = healingScores)]
pub fn healing_scores(c: &Wasm) -> JsValue {
    to_js(c.0.scores())
}

/// `Backend::healing_stats`.
#[wasm_bindgen(js_name = healingStats)]
pub fn healing_stats(c: &Wasm) -> JsValue {
    to_js(c.0.healing_stats())
}

/// `Backend::drift_events`.
#[wasm_bindgen(js_name = driftEvents)]
pub fn drift_events(c: &Wasm) -> JsValue {
    to_js(c.0.drift_events())
}
