//! Closing a cache's shared tier: new L2 operations stop, the fleet verifier's leases are
//! released, the writes under way are waited for (each until its bus message is queued), then
//! the transport sends what it holds and closes its connections, all within one deadline. A
//! closed tier skips every operation (counted as skipped, never replayed), so the cache goes on
//! from L1 alone.
//!
//! Every tier of the process is also listed, weakly, so a host's exit hook (Python's `atexit`,
//! Node's `beforeExit`) closes them all with one call: a batch job that exits right after its
//! last `set` would otherwise leave the writes still queued, and their bus messages, unsent.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use futures::future::{self, BoxFuture, Either, FutureExt};

use super::Tier;

/// How long a transport may take past the deadline it was given to close its connections.
const SHUT_GRACE: Duration = Duration::from_secs(1);

/// The tiers of this process, weakly: a dropped cache's entry is pruned at the next listing.
static TIERS: Mutex<Vec<Weak<dyn Closable>>> = Mutex::new(Vec::new());

/// A tier's writes under way and whether it is closed.
#[derive(Default)]
pub(super) struct Closing {
    /// Writes submitted and not yet done: answered, and their bus message queued.
    busy: AtomicUsize,
    closed: AtomicBool,
    /// Closes waiting for `busy` to reach 0.
    waiters: Mutex<Vec<Waker>>,
}

/// One write under way, until dropped (answered, failed, or abandoned).
pub(super) struct Busy(Arc<Closing>);

impl Drop for Busy {
    fn drop(&mut self) {
        // SeqCst with `Closing::close`'s store: a close either sees this write or it was seen closed
        if self.0.busy.fetch_sub(1, SeqCst) == 1 && self.0.closed.load(SeqCst) {
            for w in self.0.waiters.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
                w.wake();
            }
        }
    }
}

impl Closing {
    /// Resolves once no write is under way.
    fn idle(&self) -> impl Future<Output = ()> + '_ {
        future::poll_fn(move |cx| {
            let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            if self.busy.load(SeqCst) == 0 {
                return Poll::Ready(());
            }
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

impl<V: Clone + Send + Sync + 'static> Tier<V> {
    /// Lists the tier for [`close_all`].
    pub(super) fn listed(self: Arc<Self>) -> Arc<Self> {
        let weak: Weak<dyn Closable> = Arc::downgrade(&self) as Weak<Self>;
        let mut tiers = TIERS.lock().unwrap_or_else(PoisonError::into_inner);
        tiers.retain(|t| t.strong_count() > 0);
        tiers.push(weak);
        self
    }

    /// Marks a write under way (counted from before the check that admits it, so a close either
    /// waits for it or it is skipped).
    pub(super) fn busy(&self) -> Busy {
        self.closing.busy.fetch_add(1, SeqCst);
        Busy(Arc::clone(&self.closing))
    }

    /// Whether [`Tier::close`] was called: every operation is skipped from then on.
    pub(crate) fn is_closed(&self) -> bool {
        self.closing.closed.load(SeqCst)
    }

    /// Closes the tier: later operations are skipped; the fleet verifier's leases are released
    /// (each within the tier's deadline); the writes under way are waited for until `timeout`,
    /// then the transport gets what is left of it to send the bus messages it holds, and closes
    /// its connections. Answers how many writes were still under way at the deadline
    /// (they are abandoned; a write that failed is counted in the stats, as always). A second
    /// call waits again for what is left.
    pub(crate) async fn close(self: &Arc<Self>, timeout: Duration) -> usize {
        self.closing.closed.store(true, SeqCst);
        // The fleet verifier's leases are given back now, while the connections are open: another
        // instance then verifies their prefixes at once, not only once they expire. Each release
        // has the tier's own deadline, so a close with none left still sends them.
        #[cfg(feature = "tier")]
        let releasing = self.release_leases();
        let started = self.clock.precise_nanos();
        let expired = self.timer.sleep(timeout);
        let (left, expired) = match future::select(pin!(self.closing.idle()), expired).await {
            Either::Left(((), expired)) => (0, Some(expired)),
            Either::Right(((), _)) => (self.closing.busy.load(SeqCst), None),
        };
        #[cfg(feature = "tier")]
        releasing.await;
        let spent = Duration::from_nanos(self.clock.precise_nanos().saturating_sub(started));
        let rest = if expired.is_some() { timeout.saturating_sub(spent) } else { Duration::ZERO };
        let shut = self.transport.close(rest);
        // the deadline holds even if the transport's own timer runs late: then it closes at once
        let on_time = match expired {
            Some(expired) => matches!(future::select(shut, expired).await, Either::Left(_)),
            None => matches!(future::select(shut, self.timer.sleep(SHUT_GRACE)).await, Either::Left(_)),
        };
        if !on_time {
            let _ = future::select(self.transport.close(Duration::ZERO), self.timer.sleep(SHUT_GRACE)).await;
        }
        left
    }
}

/// A tier of any value type, as the process's list holds it.
trait Closable: Send + Sync {
    fn close_for(self: Arc<Self>, timeout: Duration) -> BoxFuture<'static, usize>;
    fn closed(&self) -> bool;
}

impl<V: Clone + Send + Sync + 'static> Closable for Tier<V> {
    fn close_for(self: Arc<Self>, timeout: Duration) -> BoxFuture<'static, usize> {
        async move { self.close(timeout).await }.boxed()
    }

    fn closed(&self) -> bool {
        self.is_closed()
    }
}

/// Closes the shared tier of every cache of this process that still has one open, all at once,
/// each as [`crate::Cache::close_shared`] does within `timeout`; answers how many writes were
/// still under way at the deadline, in all. For a host's exit hook: Python's `atexit`, Node's
/// `beforeExit`. Caches made afterwards are not affected.
pub fn close_all(timeout: Duration) -> impl Future<Output = usize> + Send + 'static {
    let open: Vec<Arc<dyn Closable>> = {
        let mut tiers = TIERS.lock().unwrap_or_else(PoisonError::into_inner);
        tiers.retain(|t| t.strong_count() > 0);
        tiers.iter().filter_map(Weak::upgrade).filter(|t| !t.closed()).collect()
    };
    future::join_all(open.into_iter().map(|t| t.close_for(timeout))).map(|left| left.into_iter().sum())
}
