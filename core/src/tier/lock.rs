//! The fleet rebuild lock: one rebuild of a key per fleet rather than one per process.
//!
//! Single flight ends at the process boundary, so N instances missing a hot key at its TTL
//! boundary run the loader N times. The instance that misses in L2 takes a lease (`SET NX PX`
//! through the ACQUIRE script), renews it while its loader runs, and its write both checks the
//! lease's fencing token and releases the lock. The lock is for efficiency only: a holder that
//! stalls past its lease loses it, and its late write is refused by the token (`(epoch,
//! counter)` from the slot's fence record, see [`super::scripts`]), never by the lock.
//!
//! - Modes: [`FleetLock::Refresh`] (the default with a shared tier) locks only background
//!   refreshes, as try-lock-or-skip: another instance's refresh under way means "serve what you
//!   have". [`FleetLock::All`] also locks foreground misses, which wait for the holder's value
//!   by polling L2 (jittered) and load themselves once `lease + load_timeout` has passed.
//! - Renewal stops after `fleet_lock_max_hold`, so a loader stuck far beyond its lease cannot
//!   keep the fleet waiting; it is fenced out if another instance takes over meanwhile.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures::future::FutureExt;

use super::{Transport, TransportError};
use crate::codec::Token;
use crate::Timer;

/// Which loads take the fleet rebuild lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FleetLock {
    /// None: each process rebuilds for itself (single flight per process only).
    Off,
    /// Background refreshes (stale-while-revalidate, XFetch, refresh-ahead) try the lock and
    /// skip when another instance holds it; foreground misses never wait. The default.
    #[default]
    Refresh,
    /// Foreground misses too: one instance rebuilds, the others wait for its value.
    All,
}

impl FleetLock {
    /// The mode named `s` (`"off"`, `"refresh"`, `"all"`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(FleetLock::Off),
            "refresh" => Some(FleetLock::Refresh),
            "all" => Some(FleetLock::All),
            _ => None,
        }
    }

    /// The mode's name, as [`FleetLock::parse`] reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            FleetLock::Off => "off",
            FleetLock::Refresh => "refresh",
            FleetLock::All => "all",
        }
    }

    /// Whether a load (a background refresh or not) takes the lock in this mode.
    pub(crate) fn applies(self, background: bool) -> bool {
        match self {
            FleetLock::Off => false,
            FleetLock::Refresh => background,
            FleetLock::All => true,
        }
    }
}

/// What a try-lock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockReply {
    /// The lock is ours: `token` fences the write of the rebuild, `lockval` proves ownership to
    /// renew and release.
    Won {
        /// The fencing token allocated with the lock.
        token: Token,
        /// The lock's value (owner and token), compared before a renew or a release.
        lockval: String,
    },
    /// Another instance holds it for `pttl_ms` more.
    Held {
        /// The lock's remaining life in milliseconds.
        pttl_ms: i64,
    },
}

/// A lock this process holds: renewed in the background until dropped (or until the hold
/// bound), then released by compare-and-delete unless the fenced write already released it.
pub(crate) struct Lease {
    pub token: Token,
    pub lockval: String,
    lock_key: String,
    done: Arc<AtomicBool>,
    /// Set when the fenced write landed: the script deleted the lock with it.
    pub released: bool,
    transport: Arc<dyn Transport>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.done.store(true, Relaxed);
        if !self.released {
            let release = self.transport.release(&self.lock_key, &self.lockval);
            self.transport.spawn(release.map(drop).boxed());
        }
    }
}

/// The lock's counters (see [`super::L2Stats`]).
#[derive(Default)]
pub(crate) struct LockCounters {
    pub acquired: AtomicU64,
    pub contended: AtomicU64,
    pub skipped: AtomicU64,
    pub timeouts: AtomicU64,
    pub lease_lost: AtomicU64,
}

/// The lock's settings.
#[derive(Debug, Clone)]
pub(crate) struct LockConfig {
    pub mode: FleetLock,
    /// How long a lock lives without renewal. Defaults to: 5 s.
    pub lease: Duration,
    /// How long a holder keeps renewing at most. Defaults to: 30 s.
    pub max_hold: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig { mode: FleetLock::Refresh, lease: Duration::from_secs(5), max_hold: Duration::from_secs(30) }
    }
}

impl LockConfig {
    /// Time between a waiter's polls of L2: `min(lease / 10, 50 ms)`, before jitter.
    pub(crate) fn poll(&self) -> Duration {
        (self.lease / 10).min(Duration::from_millis(50)).max(Duration::from_millis(1))
    }
}

/// Jitter in `[0.9, 1.1]` of `d`, from a counter mixed by splitmix64: lock timing needs no
/// quality beyond spreading a fleet's polls and renewals, and must not take a lock itself.
pub(crate) fn jittered(d: Duration, state: &AtomicU64) -> Duration {
    let unit = crate::xfetch::unit(crate::xfetch::splitmix64(state.fetch_add(1, Relaxed)));
    d.mul_f64(0.9 + 0.2 * unit)
}

/// Takes the lease of a won lock and renews it every `lease / 3` (jittered) until it is dropped
/// or `max_hold` has passed; a renewal refused (the lock expired and another instance took it)
/// counts `lease_lost` and stops: the load goes on, and its write will be fenced out.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lease(
    transport: &Arc<dyn Transport>,
    timer: &Arc<dyn Timer>,
    cfg: &LockConfig,
    counters: Arc<LockCounters>,
    jitter: Arc<AtomicU64>,
    lock_key: String,
    token: Token,
    lockval: String,
) -> Lease {
    let done = Arc::new(AtomicBool::new(false));
    let (t, tm, flag) = (Arc::clone(transport), Arc::clone(timer), Arc::clone(&done));
    let (key, val, every, ttl, hold) = (lock_key.clone(), lockval.clone(), cfg.lease / 3, cfg.lease, cfg.max_hold);
    transport.spawn(
        async move {
            let mut held = Duration::ZERO;
            loop {
                let wait = jittered(every, &jitter);
                tm.sleep(wait).await;
                held += wait;
                if flag.load(Relaxed) || held >= hold {
                    return;
                }
                match t.renew(&key, &val, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        if !flag.load(Relaxed) {
                            counters.lease_lost.fetch_add(1, Relaxed);
                        }
                        return;
                    }
                    // a failed renewal may be transient: the next one tries again
                    Err(TransportError::Timeout | TransportError::Io(_) | TransportError::Reply(_)) => {}
                }
            }
        }
        .boxed(),
    );
    Lease { token, lockval, lock_key, done, released: false, transport: Arc::clone(transport) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_by_name() {
        for m in [FleetLock::Off, FleetLock::Refresh, FleetLock::All] {
            assert_eq!(FleetLock::parse(m.as_str()), Some(m));
        }
        assert_eq!(FleetLock::parse("ALL"), None);
        assert!(!FleetLock::Off.applies(true));
        assert!(FleetLock::Refresh.applies(true) && !FleetLock::Refresh.applies(false));
        assert!(FleetLock::All.applies(false));
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        let s = AtomicU64::new(7);
        let d = Duration::from_millis(1000);
        let v: Vec<Duration> = (0..1000).map(|_| jittered(d, &s)).collect();
        assert!(v.iter().all(|x| *x >= Duration::from_millis(900) && *x <= Duration::from_millis(1100)));
        let low = v.iter().filter(|x| **x < d).count();
        assert!((400..600).contains(&low), "{low} of 1000 below the mean");
    }

    #[test]
    fn waiters_poll_at_a_tenth_of_the_lease_at_most_50_ms() {
        let c = |ms| LockConfig { lease: Duration::from_millis(ms), ..LockConfig::default() };
        assert_eq!(c(5000).poll(), Duration::from_millis(50));
        assert_eq!(c(100).poll(), Duration::from_millis(10));
    }

    /// P5: the poll is a tenth of the lease up to exactly 50 ms (a lease of 500 ms) and never
    /// more; jittered, it stays within 10% of that.
    #[test]
    fn the_poll_reaches_50_ms_at_a_500_ms_lease_and_never_passes_it() {
        let c = |ms| LockConfig { lease: Duration::from_millis(ms), ..LockConfig::default() };
        assert_eq!(c(499).poll(), Duration::from_micros(49_900));
        assert_eq!(c(500).poll(), Duration::from_millis(50));
        assert_eq!(c(501).poll(), Duration::from_millis(50));
        assert_eq!(c(u64::MAX).poll(), Duration::from_millis(50));
        let s = AtomicU64::new(3);
        for _ in 0..1000 {
            let d = jittered(c(500).poll(), &s);
            assert!(d >= Duration::from_millis(45) && d <= Duration::from_millis(55), "{d:?}");
        }
    }

    /// P5: the poll is 1 ms at least, so a lease under 10 ms never polls in a busy loop.
    #[test]
    fn the_poll_is_1_ms_at_least() {
        let c = |lease| LockConfig { lease, ..LockConfig::default() };
        assert_eq!(c(Duration::from_millis(10)).poll(), Duration::from_millis(1));
        assert_eq!(c(Duration::from_millis(9)).poll(), Duration::from_millis(1));
        assert_eq!(c(Duration::from_nanos(1)).poll(), Duration::from_millis(1));
    }
}
