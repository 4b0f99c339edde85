//! The removal queue of one cache, filled by the core's removal listener and taken by `drain`.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use healcache::RemovalCause;

use crate::heal::HealState;
use crate::{lock, Handle};

/// Removals queued without a flag before the binding flags them: bounds the queue between two
/// drains when only replaced and deleted `set` values are queued.
pub const QUIET_LIMIT: usize = 256;

/// `(key, handle)` pairs of every value the core drops, the key left out for `set` values (the
/// wrapper has it in their slot), the handle negated for the quiet ones below:
/// - entries the core evicted or expired, and handles the healer watched: the wrapper's read
///   mirror must drop them before it answers again, so they raise `pending` (the flag a write
///   returns, after which the wrapper drains);
/// - values replaced or removed: their slots in the wrapper's value table may be reused. The
///   wrapper knows of these writes itself, or has stopped answering for the key (a value on its
///   way), so they wait, quietly, for the next drain, or raise `pending` once `QUIET_LIMIT` are
///   queued.
///
/// With [`Removals::report_all`] (the wrapper's `dispose` callback), every removal is queued
/// with its cause and raises `pending`, so the wrapper can hand each value it let go to the
/// callback.
#[derive(Default)]
pub struct Removals {
    pending: AtomicBool,
    all: AtomicBool,
    entries: Mutex<Vec<Removal>>,
}

/// One queued removal: the key (left out for `set` values), the handle (negated when quiet) and
/// the cause.
pub type Removal = (Option<Arc<str>>, f64, RemovalCause);

/// The number of a removal cause as the wrapper reads it (names in `protocol().removal`).
pub fn cause_code(cause: RemovalCause) -> f64 {
    match cause {
        RemovalCause::Evicted => 0.0,
        RemovalCause::Expired => 1.0,
        RemovalCause::Replaced => 2.0,
        _ => 3.0,
    }
}

impl Removals {
    /// Whether the wrapper must drain before it answers again.
    #[inline]
    pub fn pending(&self) -> bool {
        self.pending.load(Relaxed)
    }

    /// Queues every removal from now on, with its cause.
    pub fn report_all(&self) {
        self.all.store(true, Relaxed);
    }

    /// Whether every removal is queued with its cause.
    pub fn reports_all(&self) -> bool {
        self.all.load(Relaxed)
    }

    /// The core's removal listener of a binding's cache.
    #[inline]
    pub fn record(&self, key: &str, handle: Handle, cause: RemovalCause, heal: &HealState) {
        let now = match cause {
            RemovalCause::Evicted | RemovalCause::Expired => true,
            // the wrapper knows of its own replaces and deletes, not of the healer's repairs
            _ => heal.take_watched(handle.id) || self.all.load(Relaxed),
        };
        // a set value's handle goes without its key (its slot has it); negated when quiet
        let key = (!handle.from_set()).then(|| Arc::from(key));
        let entry = (key, if now { handle.id } else { -handle.id }, cause);
        let mut q = lock(&self.entries);
        q.push(entry);
        if now || q.len() >= QUIET_LIMIT {
            self.pending.store(true, Relaxed);
        }
    }

    /// Takes the queue (and clears the flag).
    pub fn take(&self) -> Vec<Removal> {
        self.pending.store(false, Relaxed);
        std::mem::take(&mut *lock(&self.entries))
    }
}
