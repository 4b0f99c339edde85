//! The removal queue of one cache, filled by the core's removal listener and taken by `drain`.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use healcache::RemovalCause;

use crate::heal::HealState;
use crate::{lock, Handle};

/// Removals queued without a flag before the binding flags them: bounds the queue between two
/// drains when only replaced and deleted `set` values are queued.
pub const QUIET_LIMIT: usize = 256;

/// `(key, handle)` pairs, the key left out for `set` values (the wrapper has it in their slot,
/// and the handle is negated for the quiet ones below), of
/// - entries the core evicted or expired, and handles the healer watched: the wrapper's read
///   mirror must drop them before it answers again, so they raise `pending` (the flag a write
///   returns, after which the wrapper drains);
/// - `set` values replaced or removed: their slots in the wrapper's value table may be reused.
///   The wrapper knows of these writes itself (its mirror is right), so they wait, quietly, for
///   the next drain, or raise `pending` once `QUIET_LIMIT` are queued.
#[derive(Default)]
pub struct Removals {
    pending: AtomicBool,
    entries: Mutex<Vec<(Option<Arc<str>>, f64)>>,
}

impl Removals {
    /// Whether the wrapper must drain before it answers again.
    #[inline]
    pub fn pending(&self) -> bool {
        self.pending.load(Relaxed)
    }

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
