//! The removal queue of one cache, filled by the core's removal listener and taken by `drain`.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use healcache::RemovalCause;

use crate::heal::HealState;
use crate::value::NONE;
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
///   queued. A `set` value replaced by the wrapper's own write is not queued at all: the write
///   answers it ([`Removals::capturing`]).
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

/// What the removal listener does with a `set` value the wrapper's write on this thread replaces.
#[derive(Clone, Copy)]
enum Capture {
    /// No wrapper write under way on this thread: queue it.
    Off,
    /// A write under way: keep its handle for the write's answer instead of queueing it.
    Armed,
    /// A write under way that stores its value under the handle of the value it replaces
    /// ([`Removals::keeping`]): that replace is taken whatever else would queue it.
    Keep(f64),
    /// A write under way replaced this handle.
    Got(f64),
}

thread_local! {
    static CAPTURE: Cell<Capture> = const { Cell::new(Capture::Off) };
}

/// Disarms the capture when the write ends, also by a panic (a later removal on this thread,
/// such as a repair, must be queued).
struct Disarm;

impl Drop for Disarm {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.set(Capture::Off));
    }
}

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

    /// Runs `write`, a wrapper's write on this thread, and answers the `set` value it replaced
    /// when only the wrapper needs to hear of it ([`NONE`]: none), rather than queueing it: the
    /// wrapper frees its slot at once, and an overwrite costs no queued removal and no drain.
    /// The write's own key is the only one it replaces (other removals are evictions, or made
    /// on other threads), so the value answered is this write's.
    pub fn capturing<T>(&self, write: impl FnOnce() -> T) -> (T, f64) {
        Self::armed(Capture::Armed, write)
    }

    /// Within [`Removals::capturing`], before the write replaces anything: the write stores its
    /// value under handle `id`, that of the set value it replaces. That replace is never queued
    /// (a later drain would free the slot the new value then has), even if the healer began to
    /// watch the handle meanwhile; `capturing` answers `id` once the write replaced it.
    pub fn keep(&self, id: f64) {
        CAPTURE.with(|c| {
            if matches!(c.get(), Capture::Armed) {
                c.set(Capture::Keep(id));
            }
        });
    }

    /// Runs `write` with the capture in `mode`, disarmed after it (also by a panic); the handle
    /// it took, or [`NONE`].
    #[inline]
    fn armed<T>(mode: Capture, write: impl FnOnce() -> T) -> (T, f64) {
        CAPTURE.with(|c| c.set(mode));
        let disarm = Disarm;
        let r = write();
        let got = CAPTURE.with(|c| c.get());
        drop(disarm);
        (r, if let Capture::Got(h) = got { h } else { NONE })
    }

    /// The core's removal listener of a binding's cache.
    #[inline]
    pub fn record(&self, key: &str, handle: Handle, cause: RemovalCause, heal: &HealState) {
        if cause == RemovalCause::Replaced && self.kept(handle.id) {
            return;
        }
        let now = match cause {
            RemovalCause::Evicted | RemovalCause::Expired => true,
            // the wrapper knows of its own replaces and deletes, not of the healer's repairs
            _ => heal.take_watched(handle.id) || self.all.load(Relaxed),
        };
        if !now && cause == RemovalCause::Replaced && handle.from_set() && self.captured(handle.id) {
            return;
        }
        // a set value's handle goes without its key (its slot has it); negated when quiet
        let key = (!handle.from_set()).then(|| Arc::from(key));
        let entry = (key, if now { handle.id } else { -handle.id }, cause);
        let mut q = lock(&self.entries);
        q.push(entry);
        if now || q.len() >= QUIET_LIMIT {
            self.pending.store(true, Relaxed);
        }
    }

    /// Whether a write under way on this thread stores its value under `id`, replacing it.
    #[inline]
    fn kept(&self, id: f64) -> bool {
        CAPTURE.with(|c| match c.get() {
            Capture::Keep(k) if k == id => {
                c.set(Capture::Got(id));
                true
            }
            _ => false,
        })
    }

    /// Whether a write under way on this thread takes `id` for its answer.
    #[inline]
    fn captured(&self, id: f64) -> bool {
        CAPTURE.with(|c| match c.get() {
            Capture::Armed => {
                c.set(Capture::Got(id));
                true
            }
            _ => false,
        })
    }

    /// Takes the queue (and clears the flag).
    pub fn take(&self) -> Vec<Removal> {
        self.pending.store(false, Relaxed);
        std::mem::take(&mut *lock(&self.entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(id: f64) -> Handle {
        Handle { id, weight: 0, payload: None }
    }

    /// The set value a wrapper's write replaces is answered by the write, not queued; every other
    /// removal made meanwhile (an eviction, a loaded value replaced) is queued as before, and so
    /// is a replace made outside a write.
    #[test]
    fn the_set_value_a_write_replaces_is_answered_and_every_other_removal_queued() {
        let (r, heal) = (Removals::default(), HealState::default());
        let ((), got) = r.capturing(|| r.record("k", value(2.0), RemovalCause::Replaced, &heal));
        assert_eq!(got, 2.0);
        assert!(r.take().is_empty(), "not queued");
        r.record("k", value(4.0), RemovalCause::Replaced, &heal);
        let q = r.take();
        assert_eq!((q.len(), q[0].1), (1, -4.0), "outside a write: queued, quiet");
        let ((), got) = r.capturing(|| {
            r.record("e", value(6.0), RemovalCause::Evicted, &heal);
            r.record("k", value(8.0), RemovalCause::Replaced, &heal);
        });
        assert_eq!(got, 8.0);
        assert!(r.pending(), "the eviction raises the flag");
        let q = r.take();
        assert_eq!((q.len(), q[0].1), (1, 6.0), "only the eviction is queued");
        let ((), got) = r.capturing(|| r.record("k", value(3.0), RemovalCause::Replaced, &heal));
        assert_eq!(got, NONE, "a loaded value (odd handle) goes by the queue, with its key");
        assert_eq!(r.take()[0].0.as_deref(), Some("k"));
    }

    /// A write that stores its value under the handle it replaces takes that replace, and only
    /// that one: another value it replaces or evicts is queued, and a replace outside it is too.
    #[test]
    fn a_write_keeping_a_handle_takes_only_the_replace_of_that_handle() {
        let (r, heal) = (Removals::default(), HealState::default());
        let ((), got) = r.capturing(|| {
            r.keep(2.0);
            r.record("k", value(2.0), RemovalCause::Replaced, &heal);
        });
        assert_eq!(got, 2.0);
        assert!(r.take().is_empty(), "not queued");
        let ((), got) = r.capturing(|| {
            r.keep(2.0);
            r.record("e", value(6.0), RemovalCause::Evicted, &heal);
            r.record("j", value(4.0), RemovalCause::Replaced, &heal);
        });
        assert_eq!(got, NONE, "not the kept handle");
        let q = r.take();
        assert_eq!(q.iter().map(|e| e.1).collect::<Vec<_>>(), [6.0, -4.0], "both queued");
        let ((), got) = r.capturing(|| {
            r.keep(2.0);
            r.record("k", value(2.0), RemovalCause::Explicit, &heal);
        });
        assert_eq!(got, NONE, "a removal of the kept handle is no replace");
        assert_eq!(r.take().len(), 1);
        r.record("k", value(2.0), RemovalCause::Replaced, &heal);
        assert_eq!(r.take().len(), 1, "outside the write: queued");
        r.keep(2.0);
        r.record("k", value(2.0), RemovalCause::Replaced, &heal);
        assert_eq!(r.take().len(), 1, "a keep outside a write keeps nothing");
    }

    /// With every removal reported (the wrapper's `dispose`), a replaced set value is queued with
    /// its cause, so the callback hears of it.
    #[test]
    fn with_every_removal_reported_a_replaced_set_value_is_queued() {
        let (r, heal) = (Removals::default(), HealState::default());
        r.report_all();
        let ((), got) = r.capturing(|| r.record("k", value(2.0), RemovalCause::Replaced, &heal));
        assert_eq!(got, NONE);
        let q = r.take();
        assert_eq!((q.len(), q[0].1, q[0].2), (1, 2.0, RemovalCause::Replaced));
    }

    /// A write that panics leaves nothing armed: a replace on the same thread afterwards (a
    /// healer's repair, say) is queued.
    #[test]
    fn after_a_write_that_panics_a_replace_is_queued() {
        let (r, heal) = (Removals::default(), HealState::default());
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.capturing(|| panic!("the write failed"))));
        assert!(caught.is_err());
        r.record("k", value(2.0), RemovalCause::Replaced, &heal);
        assert_eq!(r.take().len(), 1);
    }
}
