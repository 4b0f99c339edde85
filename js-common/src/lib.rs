//! What the Node (napi-rs) and WebAssembly (wasm-bindgen) bindings share: the [`Handle`] the core
//! stores for a JS value, and the self-healing side of the handle protocol ([`HealState`],
//! [`answer`], [`new_healer`]). No napi or wasm-bindgen types: each binding converts its own
//! arguments and calls these, so the protocol is written once.
//!
//! The healing protocol: the core asks a registered source through the binding, which calls the
//! wrapper's `verify(key, handle)` with the handle the core holds (0: a cached "not found"). The
//! wrapper calls the user's source, compares its answer with the value of that handle (values live
//! in JS) and resolves to `[handle, weight, oldDigest, newDigest]`:
//! - the same handle: consistent (the core's comparator is handle equality);
//! - a fresh handle (> 0) with the new value's weight: drift, repaired by the core's fenced
//!   compare-and-set;
//! - 0: the source says "not found" (drift when a value is cached: a fenced removal);
//! - -1: the source failed (`Unavailable`: skipped, counted as a failure);
//! - -2: skip this key (`Refused`: neither drift nor failure).
//!
//! For drift the wrapper adds short digests of both values, which the core's digest function reads
//! back for its drift events. A handle found drifted is watched until the wrapper has seen its
//! interval end (`reset`): when the repair replaces or removes it, the binding's removal listener
//! queues it like an eviction, so the wrapper's read mirror drops the old value.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use foldhash::fast::FixedState;
use healcache::{Cache, Healer, HealingConfig, RemovalCause, SourceAnswer, SourceError};

/// What the core stores per entry: the wrapper's handle of the value and the value's weight in
/// bytes (the wrapper's `sizeOf`), so `maxBytes` and `maxEntryBytes` bound the JS values too.
#[derive(Clone, Copy)]
pub struct Handle {
    /// The wrapper's id of the value (> 0). Even: a value `set` stored, in a slot of the wrapper's
    /// value table, reused once the core has dropped the handle and the wrapper has drained that.
    /// Odd: a loaded value or a repair (never reused).
    pub id: f64,
    /// The value's weight in bytes.
    pub weight: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Handle {
    /// Whether the value was stored by `set` (its slot in the wrapper's table is freed once the
    /// core drops it, whatever the cause).
    #[inline]
    pub fn from_set(&self) -> bool {
        // ids are integers below 2^53 (an integer test: `%` on f64 pulls fmod into the module)
        self.id as u64 & 1 == 0
    }
}

/// Removals queued without a flag before the binding flags them: bounds the queue between two
/// drains when only replaced and deleted `set` values are queued.
pub const QUIET_LIMIT: usize = 256;

/// The removal queue of one cache, filled by the core's removal listener and taken by `drain`:
/// `(key, handle)`, the key left out for `set` values (the wrapper has it in their slot, and the
/// handle is negated for the quiet ones below), of
/// - entries the core evicted or expired, and handles the healer watched: the wrapper's read
///   mirror must drop them before it answers again, so they raise `pending` (the flag a write
///   returns, after which the wrapper drains);
/// - `set` values replaced or removed: their slots in the wrapper's value table may be reused.
///   The wrapper knows of these writes itself (its mirror is right), so they wait, quietly, for
///   the next drain, or raise `pending` once `QUIET_LIMIT` are queued.
#[derive(Default)]
pub struct Removals {
    pub pending: AtomicBool,
    entries: Mutex<Vec<(Option<Arc<str>>, f64)>>,
}

impl Removals {
    /// The core's removal listener of a binding's cache.
    #[inline]
    pub fn record(&self, key: Arc<str>, handle: Handle, cause: RemovalCause, heal: &HealState) {
        let now = match cause {
            RemovalCause::Evicted | RemovalCause::Expired => true,
            // the wrapper knows of its own replaces and deletes, not of the healer's repairs
            _ if heal.take_watched(handle.id) => true,
            _ if handle.from_set() => false,
            _ => return,
        };
        // a set value's handle goes without its key, negated when the mirror is right already
        let entry = match (handle.from_set(), now) {
            (false, _) => (Some(key), handle.id),
            (true, true) => (None, handle.id),
            (true, false) => (None, -handle.id),
        };
        let mut q = lock(&self.entries);
        q.push(entry);
        if now || q.len() >= QUIET_LIMIT {
            self.pending.store(true, Relaxed);
        }
    }

    /// Takes the queue (and clears the flag).
    pub fn take(&self) -> Vec<(Option<Arc<str>>, f64)> {
        self.pending.store(false, Relaxed);
        std::mem::take(&mut *lock(&self.entries))
    }
}

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
struct Marks(hashbrown::HashMap<u64, Mark, FixedState>);

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
}

/// The healer of a new cache: handles compare by identity, digests come from the wrapper.
pub fn new_healer(cache: &Cache<Handle>, heal: &Arc<HealState>) -> healcache::Result<Healer<Handle>> {
    let h = Arc::clone(heal);
    Healer::with_comparator(
        cache.clone(),
        HealingConfig::default(),
        Arc::new(|a: &Handle, b: &Handle| a.id == b.id),
        Arc::new(move |v: &Handle| h.digest(v.id)),
    )
}

/// The handle the core holds for `key` when its source is asked: what the wrapper compares the
/// source's answer with (0: a cached "not found"); `Refused` if the entry went away since the
/// core sampled it. A write since then is answered for the newer value and loses nothing: the
/// core's repair is fenced on the version it read.
// inline: called once per binding; out of line it costs the wasm module 1.4 KB (measured)
#[inline]
pub fn held_handle(cache: &Cache<Handle>, key: &str) -> Result<f64, SourceError> {
    match cache.peek_versioned(key) {
        Some((Some(h), _)) => Ok(h.id),
        Some((None, _)) => Ok(0.0),
        None => Err(SourceError::Refused),
    }
}

/// The wrapper's answer for a key whose entry held `held` (protocol above).
pub fn answer(heal: &HealState, held: f64, got: &[f64]) -> Result<SourceAnswer<Handle>, SourceError> {
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
