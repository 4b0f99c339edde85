//! The shared tier's health: the deadline and breaker around every operation, probing while
//! the breaker is open, and what recovery does when L2 answers again.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{self, BoxFuture, Either, FutureExt};

use super::Tier;
use crate::tier::breaker::{Admit, State, Transition};
use crate::tier::TransportError;

/// How long a probe may take at least: it may have to connect anew.
const PROBE_DEADLINE: Duration = Duration::from_secs(1);

/// How long a failed write's invalidation waits before it is tried (a short error spell passes).
const REPLAY_PAUSE: Duration = Duration::from_millis(100);

impl<V: Clone + Send + Sync + 'static> Tier<V> {
    /// Whether an operation may go to L2 now; counts a skip otherwise. Only the probe loop asks
    /// the breaker for a probe: an operation that took one and skipped it would leave the breaker
    /// half-open until the probe is presumed lost.
    pub(in crate::tier) fn admit(self: &Arc<Self>) -> bool {
        if self.breaker.state() == State::Closed && !self.is_closed() {
            return true;
        }
        self.counters.skipped.fetch_add(1, Relaxed);
        self.start_probing();
        false
    }

    /// `op` under the tier's deadline, its latency recorded and its outcome told to the breaker.
    pub(in crate::tier) async fn timed<T>(
        self: &Arc<Self>,
        op: BoxFuture<'static, Result<T, TransportError>>,
        deadline: Option<Duration>,
    ) -> Result<T, TransportError> {
        let started = self.clock.precise_nanos();
        let r = match deadline {
            Some(d) => match future::select(op, self.timer.sleep(d)).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => Err(TransportError::Timeout),
            },
            None => op.await,
        };
        self.counters.latency.record(self.clock.precise_nanos().saturating_sub(started));
        match &r {
            Ok(_) => {
                self.answered.store(true, Relaxed);
                self.breaker.on_success(self.now());
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Relaxed);
                let timeout = *e == TransportError::Timeout;
                if timeout {
                    self.counters.timeouts.fetch_add(1, Relaxed);
                }
                self.failed(timeout);
            }
        }
        r
    }

    pub(super) fn failed(self: &Arc<Self>, timeout: bool) {
        let t = if timeout { self.breaker.on_timeout(self.now()) } else { self.breaker.on_failure(self.now()) };
        if t == Transition::Opened {
            self.counters.breaker_opens.fetch_add(1, Relaxed);
        }
        if self.breaker.state() != State::Closed {
            self.start_probing();
        }
    }

    /// While the breaker is open, one background task probes at the times the breaker draws
    /// (full jitter) until a probe succeeds; then L1 entries written before now become suspect
    /// and the queued invalidations are replayed.
    fn start_probing(self: &Arc<Self>) {
        // a closed tier never connects again
        if self.is_closed() || self.probing.swap(true, Relaxed) {
            return;
        }
        // the loop holds the tier only between its waits: a cache dropped during an outage is
        // freed, and its probing ends with it
        let weak = Arc::downgrade(self);
        let timer = Arc::clone(&self.timer);
        self.transport.spawn(
            async move {
                loop {
                    let Some(tier) = weak.upgrade() else { return };
                    if tier.is_closed() {
                        tier.probing.store(false, Relaxed);
                        return;
                    }
                    let probe = match tier.breaker.allow(tier.now()) {
                        Admit::Yes => {
                            tier.probing.store(false, Relaxed);
                            return;
                        }
                        Admit::No => None,
                        Admit::Probe => Some(tier.probe()),
                    };
                    let step = Duration::from_millis(20).min(tier.cfg.timeout);
                    drop(tier);
                    let Some(probe) = probe else {
                        timer.sleep(step).await;
                        continue;
                    };
                    let ok = probe.await;
                    let Some(tier) = weak.upgrade() else { return };
                    if ok {
                        tier.answered.store(true, Relaxed);
                        tier.breaker.on_success(tier.now());
                        tier.recovered();
                        tier.probing.store(false, Relaxed);
                        return;
                    }
                    tier.breaker.on_failure(tier.now());
                }
            }
            .boxed(),
        );
    }

    /// Whether L2 has answered since the tier was made; when it has not, one probe asks it in
    /// the background (at most one at a time).
    pub(in crate::tier) fn answered(self: &Arc<Self>) -> bool {
        if self.answered.load(Relaxed) {
            return true;
        }
        self.first_probe();
        false
    }

    /// Asks L2 once whether it answers (a `PING` as the breaker's probe), unless already asking.
    pub(in crate::tier) fn first_probe(self: &Arc<Self>) {
        if self.first_probing.swap(true, Relaxed) {
            return;
        }
        let tier = Arc::clone(self);
        self.transport.spawn(
            async move {
                if tier.probe().await {
                    tier.answered.store(true, Relaxed);
                }
                tier.first_probing.store(false, Relaxed);
            }
            .boxed(),
        );
    }

    /// One probe of L2 (a `PING`) under its deadline; it holds nothing of the tier while it waits.
    fn probe(&self) -> BoxFuture<'static, bool> {
        let (probe, sleep) = (self.transport.probe(), self.timer.sleep(self.cfg.timeout.max(PROBE_DEADLINE)));
        future::select(probe, sleep).map(|r| matches!(r, Either::Left((Ok(()), _)))).boxed()
    }

    /// A write failed while the breaker may still be closed (an error answer, one lost
    /// connection): its key waits in the recovery queue, replayed after a pause. A replay that
    /// fails queues its key again, and failures enough open the breaker, whose probe replays
    /// the queue once L2 answers.
    pub(in crate::tier) fn replay_soon(self: &Arc<Self>) {
        if self.replaying.swap(true, Relaxed) {
            return;
        }
        let tier = Arc::clone(self);
        self.transport.spawn(
            async move {
                tier.timer.sleep(REPLAY_PAUSE).await;
                tier.replaying.store(false, Relaxed);
                if tier.breaker.state() == State::Closed {
                    tier.replay();
                }
            }
            .boxed(),
        );
    }

    /// Writes a tombstone for each key in the recovery queue.
    fn replay(self: &Arc<Self>) {
        for key in self.recovery.drain(self.now()) {
            if let Some(w) = self.tombstone(&key) {
                self.spawn(w);
            }
        }
    }

    /// L2 is back: every L1 entry written until now is suspect, and each key written while L2
    /// was away gets a tombstone (an invalidation, never a value: which of two values is newer
    /// cannot be decided across processes without a shared clock).
    fn recovered(self: &Arc<Self>) {
        self.distrust();
        self.replay();
    }
}
