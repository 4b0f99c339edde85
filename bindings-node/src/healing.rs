//! Self-healing (issue 7): the core [`Healer`] over the cache's handles, and URL-template sources.
//!
//! Values live in JS, so a source's answer is compared there. The core asks a registered source
//! through [`JsSource`], which calls the wrapper's `verify(key, handle)` with the handle the core
//! holds (0: a cached "not found"). The wrapper calls the user's source, compares its answer with
//! the value of that handle and resolves to `[handle, weight, oldDigest, newDigest]`:
//! - the same handle: consistent (the core's comparator is handle equality);
//! - a fresh handle (> 0) with the new value's weight: drift, repaired by the core's fenced
//!   compare-and-set;
//! - 0: the source says "not found" (drift when a value is cached: a fenced removal);
//! - -1: the source failed or timed out (`Unavailable`: skipped, counted as a failure);
//! - -2: skip this key (`Refused`: neither drift nor failure).
//!
//! For drift the wrapper adds short digests of both values (FNV-1a of their bytes), which the
//! core's digest function reads back for its drift events. A handle found drifted is watched
//! until the wrapper has seen its interval end (`healingReset`): when the repair replaces or
//! removes it, the removal listener queues it like an eviction, so the wrapper's read mirror
//! drops the old value (see `js/cache.mjs`).
//!
//! Sampling, scoring, fenced repair, backoff, timeouts and settings are the core's.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{self, BoxFuture};
use healcache::{
    duration_ms, Cache, DriftEvent, Error, Healer, HealingConfig, IntervalReport, PrefixScore, Source, SourceAnswer,
    SourceError,
};
use healcache_http::{HttpOptions, HttpSource};
use napi::bindgen_prelude::{Buffer, Either, External, FnArgs, Promise, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;

use crate::cache::{lock, Backend, Handle};
use crate::error::into_js_error;

/// The wrapper's `verify(key, handle)`, resolving to the answer described above. Weak: a
/// registered source never keeps the process alive.
type Verify = ThreadsafeFunction<FnArgs<(String, f64)>, Promise<Vec<f64>>, FnArgs<(String, f64)>, Status, false, true>;

/// What the healer of one cache remembers during an interval: the handles found drifted (watched
/// for their repair) and the digests of drifted values (read back for drift events).
#[derive(Default)]
pub struct HealState {
    watching: AtomicBool,
    marks: Mutex<Marks>,
}

#[derive(Default)]
struct Marks {
    watched: HashSet<u64>,
    digests: HashMap<u64, u32>,
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
    verify: Arc<Verify>,
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
            None => return Box::pin(future::ready(Err(SourceError::Refused))),
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
