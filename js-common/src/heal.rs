//! Self-healing over JS values: what the healer of one cache remembers ([`HealState`]), the
//! source that asks the wrapper ([`JsSource`]), and the records the healer reports, as [`Js`].
//!
//! The protocol: the core asks a registered source through the binding, which calls the
//! wrapper's `verify(key, handle)` with the handle the core holds (0: a cached "not found"). The
//! wrapper calls the user's source, compares its answer with the value of that handle (values
//! live in JS) and resolves to a row `[handle, weight, oldDigest, newDigest]`:
//! - the same handle: consistent (the core's comparator is handle equality);
//! - a fresh handle (> 0) with the new value's weight: drift, repaired by the core's fenced
//!   compare-and-set;
//! - `NOT_FOUND`: the source says "not found" (drift when a value is cached: a fenced removal);
//! - `SOURCE_FAILED`: the source failed (skipped, counted as a failure);
//! - `SOURCE_SKIP`: skip this key (neither drift nor failure).
//!
//! For drift the wrapper adds short digests of both values, which the core's digest function
//! reads back for its drift events. A handle found drifted is watched until the wrapper has seen
//! its interval end (`reset`): when the repair replaces or removes it, the removal listener
//! queues it like an eviction, so the wrapper's read mirror drops the old value.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use futures::future::{self, BoxFuture, FutureExt};
use healcache::{
    Cache, DriftEvent, Healer, HealingConfig, HealingStats, HistogramSnapshot, IntervalReport, PrefixScore, Source,
    SourceAnswer, SourceError,
};

use crate::value::{answer as row, NOT_FOUND, SOURCE_SKIP};
use crate::{lock, Handle, Js, Map};

/// What the healer of one cache remembers during an interval: the handles found drifted (watched
/// for their repair) and the digests of drifted values (read back for drift events).
#[derive(Default)]
pub struct HealState {
    watching: AtomicBool,
    marks: Mutex<Marks>,
}

/// By handle (its bits): whether it is watched for its repair, and its digest if not yet read.
/// One map for both (one hash table in the WebAssembly module).
#[derive(Default)]
struct Marks(Map<u64, Mark>);

#[derive(Default, Clone, Copy)]
struct Mark {
    watched: bool,
    digest: Option<u32>,
}

impl Marks {
    /// Applies `f` to `id`'s mark, dropping the mark once it is empty.
    fn update<T>(&mut self, id: f64, f: impl FnOnce(&mut Mark) -> T) -> T {
        let m = self.0.entry(id.to_bits()).or_default();
        let out = f(m);
        if !m.watched && m.digest.is_none() {
            self.0.remove(&id.to_bits());
        }
        out
    }
}

impl HealState {
    /// Whether the healer may be watching a handle (an interval found drift and is not over).
    #[inline]
    pub fn watching(&self) -> bool {
        self.watching.load(Relaxed)
    }

    /// Whether a replaced or removed handle is one the healer found drifted (it is forgotten).
    /// Costs one relaxed load outside intervals that found drift.
    #[inline]
    pub fn take_watched(&self, id: f64) -> bool {
        self.watching.load(Relaxed) && lock(&self.marks).update(id, |m| std::mem::take(&mut m.watched))
    }

    /// Drift on the entry holding `old`: watch it, keep both digests.
    fn mark(&self, old: f64, old_digest: Option<f64>, new: Option<(f64, Option<f64>)>) {
        let mut m = lock(&self.marks);
        if old > 0.0 {
            m.update(old, |m| m.watched = true);
            self.watching.store(true, Relaxed);
        }
        if let Some(d) = old_digest {
            m.update(old, |m| m.digest = Some(d as u32));
        }
        if let Some((id, Some(d))) = new {
            m.update(id, |m| m.digest = Some(d as u32));
        }
    }

    fn digest(&self, id: f64) -> u64 {
        lock(&self.marks).update(id, |m| m.digest.take()).map_or(0, u64::from)
    }

    /// Once no interval runs: their repairs are done, nothing needs watching any more.
    pub fn reset(&self) {
        let mut m = lock(&self.marks);
        self.watching.store(false, Relaxed);
        m.0.clear();
    }

    /// The wrapper's answer for a key whose entry held `held` (protocol above).
    fn answer(&self, held: f64, got: &[f64]) -> Result<SourceAnswer<Handle>, SourceError> {
        let Some(&id) = got.get(row::HANDLE) else { return Err(SourceError::Unavailable) };
        let weight = got.get(row::WEIGHT).copied().unwrap_or(0.0);
        let (old_digest, new_digest) = (got.get(row::OLD_DIGEST).copied(), got.get(row::NEW_DIGEST).copied());
        if id == SOURCE_SKIP {
            Err(SourceError::Refused)
        } else if id < 0.0 || id.is_nan() {
            Err(SourceError::Unavailable)
        } else if id == NOT_FOUND {
            if held > 0.0 {
                self.mark(held, old_digest, None);
            }
            Ok(SourceAnswer::NotFound)
        } else {
            if id != held {
                self.mark(held, old_digest, Some((id, new_digest)));
            }
            Ok(SourceAnswer::Value(Handle { id, weight: weight as u64, payload: None }))
        }
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

/// How a binding calls the wrapper's `verify(key, handle)`: a future of the answer row, `Err`
/// when the call itself failed (the binding bridges the JS promise).
pub type VerifyCall = Arc<dyn Fn(String, f64) -> BoxFuture<'static, Result<Vec<f64>, ()>> + Send + Sync>;

/// A registered JS source, as the core sees it.
pub struct JsSource {
    verify: VerifyCall,
    cache: Cache<Handle>,
    heal: Arc<HealState>,
}

impl JsSource {
    pub(crate) fn new(verify: VerifyCall, cache: Cache<Handle>, heal: Arc<HealState>) -> Self {
        JsSource { verify, cache, heal }
    }
}

impl Source<Handle> for JsSource {
    fn fetch(&self, key: &str) -> BoxFuture<'static, Result<SourceAnswer<Handle>, SourceError>> {
        // The handle the core holds for `key` now: what the wrapper compares the source's answer
        // with (0: a cached "not found"); `Refused` if the entry went away since the core sampled
        // it. A write since then is answered for the newer value and loses nothing: the core's
        // repair is fenced on the version it read.
        let held = match self.cache.peek_versioned(key) {
            Some((Some(h), _)) => h.id,
            Some((None, _)) => NOT_FOUND,
            None => return future::ready(Err(SourceError::Refused)).boxed(),
        };
        let call = (self.verify)(key.to_string(), held);
        let heal = Arc::clone(&self.heal);
        async move {
            let got = call.await.map_err(|()| SourceError::Unavailable)?;
            heal.answer(held, &got)
        }
        .boxed()
    }
}

pub(crate) fn histogram(h: &HistogramSnapshot) -> Js {
    Js::Obj(vec![("counts", Js::Nums(h.counts.iter().map(|&n| n as f64).collect())), ("sumNanos", h.sum_nanos.into())])
}

pub(crate) fn report(r: &IntervalReport) -> Js {
    let IntervalReport { drawn, verified, consistent, drift, repaired, skipped, failures, duration_ms, overlapped } =
        *r;
    Js::Obj(vec![
        ("drawn", drawn.into()),
        ("verified", verified.into()),
        ("consistent", consistent.into()),
        ("drift", drift.into()),
        ("repaired", repaired.into()),
        ("skipped", skipped.into()),
        ("failures", failures.into()),
        ("durationMs", duration_ms.into()),
        ("overlapped", overlapped.into()),
    ])
}

pub(crate) fn score(s: PrefixScore) -> Js {
    let PrefixScore { prefix, score, sampled, repaired } = s;
    Js::Obj(vec![
        ("prefix", prefix.into()),
        ("score", score.into()),
        ("sampled", sampled.into()),
        ("repaired", repaired.into()),
    ])
}

pub(crate) fn stats(s: &HealingStats) -> Js {
    Js::Obj(vec![
        ("totalSampled", s.total_sampled.into()),
        ("totalRepaired", s.total_repaired.into()),
        ("avgScore", s.avg_score.into()),
        ("sourceFailures", s.source_failures.into()),
        ("lastIntervalMs", s.last_interval_ms.into()),
        ("totalDrift", s.total_drift.into()),
        ("intervalDuration", histogram(&s.interval_duration)),
    ])
}

pub(crate) fn drift_event(e: DriftEvent) -> Js {
    let DriftEvent { key, prefix, at_ms, old_digest, new_digest, repaired } = e;
    Js::Obj(vec![
        ("key", key.into()),
        ("prefix", prefix.into()),
        ("atMs", at_ms.into()),
        ("oldDigest", old_digest.into()),
        ("newDigest", new_digest.into()),
        ("repaired", repaired.into()),
    ])
}
