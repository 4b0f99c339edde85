//! The fleet rebuild lock around a miss in L2: who rebuilds, who waits for whose value.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::{L2Read, Tier};
use crate::codec::Token;
use crate::tier::lock::{self, Lease};
use crate::tier::{Expect, LockReply};

/// What a miss in L2 became under the fleet lock.
pub(crate) enum Rebuild<V> {
    /// This process rebuilds under the lease (`None`: without the lock: it is off for this load,
    /// or L2 failed), and its write must expect this.
    Load(Option<Lease>, Expect),
    /// Another instance rebuilt it meanwhile: its value.
    Fleet(L2Read<V>),
    /// A background refresh found another instance refreshing: nothing to do.
    Skip,
}

impl<V: Clone + Send + Sync + 'static> Tier<V> {
    /// Whether a load (background or not) takes the fleet lock.
    pub(crate) fn locks(&self, background: bool) -> bool {
        self.cfg.lock.mode.applies(background)
    }

    /// After a miss in L2 (`expect` from that read): takes the fleet lock when the mode says so.
    /// Won: the value is read once more (an instance may have finished just before), then this
    /// process rebuilds under the lease. Held: a background refresh skips; a foreground miss
    /// waits for the holder's value, polling L2 every `min(lease / 10, 50 ms)` (jittered) and
    /// trying the lock again, for `lease + load_timeout` at most, then loads itself.
    pub(crate) async fn rebuild(
        self: &Arc<Self>,
        key: &str,
        expect: Expect,
        background: bool,
        load_timeout: Option<Duration>,
        ours: Option<Token>,
    ) -> Rebuild<V> {
        if !self.locks(background) {
            return Rebuild::Load(None, expect);
        }
        let lc = &self.cfg.lock;
        let started = self.clock.precise_nanos();
        let limit = lc.lease + load_timeout.unwrap_or(lc.lease);
        let mut first = true;
        loop {
            match self.try_lock(key).await {
                Ok(lease) => {
                    self.record_wait(started, first);
                    return match self.read(key).await {
                        L2Read::Miss(e) => Rebuild::Load(Some(lease), e),
                        // still the copy a refresh set out to replace: nothing newer yet
                        L2Read::Hit { token, .. } if Some(token) == ours => {
                            Rebuild::Load(Some(lease), Expect::Token(token))
                        }
                        // a hit: another instance finished meanwhile (the lease is released)
                        other => Rebuild::Fleet(other).or_load(lease),
                    };
                }
                Err(true) if background => {
                    self.locks.skipped.fetch_add(1, Relaxed);
                    return Rebuild::Skip;
                }
                Err(true) => {}
                // the lock could not be asked (L2 failed): load without it
                Err(false) => return Rebuild::Load(None, expect),
            }
            if first {
                self.locks.contended.fetch_add(1, Relaxed);
                first = false;
            }
            let waited = Duration::from_nanos(self.clock.precise_nanos().saturating_sub(started));
            if waited >= limit {
                self.locks.timeouts.fetch_add(1, Relaxed);
                self.record_wait(started, false);
                return Rebuild::Load(None, expect);
            }
            self.timer.sleep(lock::jittered(lc.poll(), &self.jitter).min(limit - waited)).await;
            match self.read(key).await {
                L2Read::Miss(_) => {}
                other => {
                    self.record_wait(started, false);
                    return Rebuild::Fleet(other);
                }
            }
        }
    }

    fn record_wait(&self, started: u64, first: bool) {
        if !first {
            self.counters.lock_wait.record(self.clock.precise_nanos().saturating_sub(started));
        }
    }

    /// One try-lock: the lease when won; `Err(true)` held by another instance, `Err(false)` not
    /// asked (breaker open or L2 failed).
    async fn try_lock(self: &Arc<Self>, key: &str) -> Result<Lease, bool> {
        if !self.admit() {
            return Err(false);
        }
        let keys = self.keys(key);
        let op = self.transport.acquire(&keys, &self.owner, self.cfg.lock.lease);
        match self.timed(op, Some(self.cfg.timeout)).await {
            Ok(LockReply::Won { token, lockval }) => {
                self.locks.acquired.fetch_add(1, Relaxed);
                self.epochs.learn(super::super::epochs::EpochHints::slot_of(key), token.epoch);
                let (c, j) = (Arc::clone(&self.locks), Arc::clone(&self.jitter));
                Ok(lock::lease(&self.transport, &self.timer, &self.cfg.lock, c, j, keys.lock, token, lockval))
            }
            Ok(LockReply::Held { .. }) => Err(true),
            Err(_) => Err(false),
        }
    }
}

impl<V> Rebuild<V> {
    /// A won lock whose second read found the value: the rebuild is not needed; the lease is
    /// dropped (released) unless the read failed, in which case this process loads under it.
    fn or_load(self, lease: Lease) -> Rebuild<V> {
        match self {
            Rebuild::Fleet(L2Read::Skipped) => Rebuild::Load(Some(lease), Expect::Any),
            other => other,
        }
    }
}
