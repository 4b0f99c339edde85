//! Self-healing (issue 7): the core [`Healer`] over the cache's handles, as in `bindings-node`.
//!
//! Values live in JS, so a source's answer is compared there. The core asks a registered source
//! through [`JsSource`], which calls the wrapper's `verify(key, handle)` with the handle the core
//! holds (0: a cached "not found"). The wrapper calls the user's source (a function; a WASM build
//! has no HTTP client of its own: the function calls `fetch()`), compares its answer with the
//! value of that handle and resolves to `[handle, weight, oldDigest, newDigest]`:
//! - the same handle: consistent (the core's comparator is handle equality);
//! - a fresh handle (> 0) with the new value's weight: drift, repaired by the core's fenced
//!   compare-and-set;
//! - 0: the source says "not found" (drift when a value is cached: a fenced removal);
//! - -1: the source failed (`Unavailable`: skipped, counted as a failure);
//! - -2: skip this key (`Refused`: neither drift nor failure).
//!
//! For drift the wrapper adds short digests of both values, which the core's digest function
//! reads back for its drift events. A handle found drifted is watched until the wrapper has seen
//! its interval end (`healingReset`): when the repair replaces or removes it, the removal listener
//! queues it like an eviction, so the wrapper's read mirror drops the old value. The host's scheduler calls `verifyNow`
//! (`runHealingInterval` in the wrapper); the module runs no timer of its own.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use futures::future::{self, BoxFuture, FutureExt};
use healcache::{
    Cache, DriftEvent, Error, Healer, HealingConfig, IntervalReport, PrefixScore, Source, SourceAnswer, SourceError,
};
use js_sys::{Array, Function, Promise};
use send_wrapper::SendWrapper;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::cache::{lock, Backend, Handle};
use crate::error::into_js_error;

/// What the healer of one cache remembers during an interval: the handles found drifted (watched
/// for their repair) and the digests of drifted values (read back for drift events).
#[derive(Default)]
pub struct HealState {
    watching: AtomicBool,
    marks: Mutex<Marks>,
}

#[derive(Default)]
struct Marks {
    watched: hashbrown::HashSet<u64, foldhash::fast::FixedState>,
    digests: crate::Map<u64, u32>,
}

impl HealState {
    /// Whether a replaced or removed handle is one the healer found drifted (it is forgotten).
    /// Costs one relaxed load outside intervals that found drift.
    #[inline]
    pub(crate) fn take_watched(&self, id: f64) -> bool {
        self.watching.load(Relaxed) && lock(&self.marks).watched.remove(&id.to_bits())
    }

    /// Drift on the entry holding `old`: watch it, keep both digests.
    fn mark(&self, old: f64, old_digest: Option<f64>, new: Option<(f64, Option<f64>)>) {
        let mut m = lock(&self.marks);
        if old > 0.0 {
            m.watched.insert(old.to_bits());
            self.watching.store(true, Relaxed);
        }
        if let Some(d) = old_digest {
            m.digests.insert(old.to_bits(), d as u32);
        }
        if let Some((id, Some(d))) = new {
            m.digests.insert(id.to_bits(), d as u32);
        }
    }

    fn digest(&self, id: f64) -> u64 {
        lock(&self.marks).digests.remove(&id.to_bits()).map_or(0, u64::from)
    }

    /// Once no interval runs: their repairs are done, nothing needs watching any more.
    fn reset(&self) {
        let mut m = lock(&self.marks);
        self.watching.store(false, Relaxed);
        m.watched.clear();
        m.digests.clear();
    }
}

/// The healer of a new cache: handles compare by identity, digests come from the wrapper.
pub(crate) fn new_healer(cache: &Cache<Handle>, heal: &Arc<HealState>) -> healcache::Result<Healer<Handle>> {
    let h = Arc::clone(heal);
    Healer::with_comparator(
        cache.clone(),
        HealingConfig::default(),
        Arc::new(|a: &Handle, b: &Handle| a.id == b.id),
        Arc::new(move |v: &Handle| h.digest(v.id)),
    )
}

/// The wrapper's answer for a key whose entry held `held` (protocol above).
fn answer(heal: &HealState, held: f64, got: &[f64]) -> Result<SourceAnswer<Handle>, SourceError> {
    let Some(&id) = got.first() else { return Err(SourceError::Unavailable) };
    let weight = got.get(1).copied().unwrap_or(0.0);
    let (old_digest, new_digest) = (got.get(2).copied(), got.get(3).copied());
    if id == -2.0 {
        Err(SourceError::Refused)
    } else if id < 0.0 || id.is_nan() {
        Err(SourceError::Unavailable)
    } else if id == 0.0 {
        if held > 0.0 {
            heal.mark(held, old_digest, None);
        }
        Ok(SourceAnswer::NotFound)
    } else if id == held {
        Ok(SourceAnswer::Value(Handle { id, weight: weight as u64 }))
    } else {
        heal.mark(held, old_digest, Some((id, new_digest)));
        Ok(SourceAnswer::Value(Handle { id, weight: weight as u64 }))
    }
}

/// A registered JS source, as the core sees it.
struct JsSource {
    verify: SendWrapper<Function>,
    cache: Cache<Handle>,
    heal: Arc<HealState>,
}

impl Source<Handle> for JsSource {
    fn fetch(&self, key: &str) -> BoxFuture<'static, Result<SourceAnswer<Handle>, SourceError>> {
        // The core read the entry just before; a write since then is answered for the newer value
        // (and loses nothing: the core's repair is fenced on the version it read).
        let held = match self.cache.peek_versioned(key) {
            Some((Some(h), _)) => h.id,
            Some((None, _)) => 0.0,
            None => return future::ready(Err(SourceError::Refused)).boxed(),
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
