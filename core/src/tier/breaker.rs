//! The shared tier's circuit breaker: three states, full-jitter probes, driven by the caller's
//! clock.
//!
//! ```text
//! Closed  --(N consecutive failures | 2 timeouts within 1 s | a dropped connection)--> Open(k=0)
//! Open(k) --(after U(0, min(max_window, first_window * 2^k)))--> HalfOpen: one probe admitted
//! HalfOpen --probe ok--> Closed ("closed again": the caller distrusts L1 and drains recovery)
//! HalfOpen --probe failed--> Open(k+1)
//! ```
//!
//! Full jitter (`U(0, window)`, not `[d, 2d)`) spreads a fleet's reconnects: with 50 nodes and a
//! first window of 1 s, no 100 ms bucket gets much more than a tenth of them. The draw comes from a
//! seeded RNG, so tests replay it. Only I/O outcomes count: a codec error, a WRONGTYPE or a fenced
//! write is a data outcome and the caller reports it as a success (the server answered).
//!
//! The hot path, [`Breaker::allow`] while Closed, is one atomic load. Transitions take a small
//! mutex; no thread, no timer: time is the `now` the caller passes (its `Clock`, monotonic).

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::time::Duration;

use crate::SeededRng;
use rand::{Rng, SeedableRng};

use crate::sync::{lock, Mutex};

/// The breaker's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker. Defaults to: 3.
    pub failures: u32,
    /// Two timeouts within this window open the breaker. Defaults to: 1 s.
    pub timeout_window: Duration,
    /// The first open window (k = 0): the probe comes after `U(0, first_window)`. Defaults to: 1 s.
    pub first_window: Duration,
    /// The open window never grows past this. Defaults to: 8 s.
    pub max_window: Duration,
    /// A probe not reported within this long is presumed lost, and the next `allow` admits
    /// another, so a dropped probe cannot keep the breaker half-open for ever. Defaults to: 1 s.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 3,
            timeout_window: Duration::from_secs(1),
            first_window: Duration::from_secs(1),
            max_window: Duration::from_secs(8),
            probe_timeout: Duration::from_secs(1),
        }
    }
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls are skipped until the probe time.
    Open,
    /// One probe is out; other calls are skipped.
    HalfOpen,
}

/// What [`Breaker::allow`] says about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Admit {
    /// Go ahead (Closed).
    Yes,
    /// Go ahead as the probe: report its outcome, which decides the next state.
    Probe,
    /// Skip the call: the tier is unhealthy.
    No,
}

/// What a reported outcome changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// No state change.
    None,
    /// The breaker opened (from Closed, or again from HalfOpen).
    Opened,
    /// The breaker closed again after being open: distrust L1 written before, drain the recovery
    /// queue, resubscribe.
    Closed,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

struct Inner {
    /// When the last timeout was seen while Closed.
    last_timeout: Option<Duration>,
    /// Opens since the last close (the k of Open(k)).
    k: u32,
    /// While Open: when the probe may go.
    probe_at: Duration,
    /// While HalfOpen: when the probe went.
    probe_sent: Duration,
    rng: SeededRng,
    opened_total: u64,
}

/// A three-state circuit breaker; see the module doc.
pub struct Breaker {
    cfg: BreakerConfig,
    state: AtomicU8,
    /// Consecutive failures while Closed; outside the mutex so a success costs no lock.
    failures: AtomicU32,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker").field("state", &self.state()).finish()
    }
}

impl Breaker {
    /// A closed breaker; `seed` drives the jitter (the host's seed; tests pass a fixed one).
    pub fn new(cfg: BreakerConfig, seed: u64) -> Self {
        Breaker {
            cfg,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            inner: Mutex::new(Inner {
                last_timeout: None,
                k: 0,
                probe_at: Duration::ZERO,
                probe_sent: Duration::ZERO,
                rng: SeededRng::seed_from_u64(seed),
                opened_total: 0,
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// The state now.
    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            CLOSED => State::Closed,
            OPEN => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// How many times the breaker has opened (from Closed or from HalfOpen).
    pub fn opened_total(&self) -> u64 {
        lock(&self.inner).opened_total
    }

    /// Whether a call may go to the tier now. While Closed this is one atomic load.
    #[inline]
    pub fn allow(&self, now: Duration) -> Admit {
        if self.state.load(Ordering::Acquire) == CLOSED {
            return Admit::Yes;
        }
        self.allow_slow(now)
    }

    #[cold]
    fn allow_slow(&self, now: Duration) -> Admit {
        let mut inner = lock(&self.inner);
        match self.state.load(Ordering::Acquire) {
            CLOSED => Admit::Yes,
            OPEN if now >= inner.probe_at => {
                inner.probe_sent = now;
                self.state.store(HALF_OPEN, Ordering::Release);
                Admit::Probe
            }
            HALF_OPEN if now >= inner.probe_sent.saturating_add(self.cfg.probe_timeout) => {
                inner.probe_sent = now;
                Admit::Probe
            }
            _ => Admit::No,
        }
    }

    /// Reports a call that the server answered (a data error such as a codec error or a fenced
    /// write counts here too).
    pub fn on_success(&self, _now: Duration) -> Transition {
        if self.state.load(Ordering::Acquire) == CLOSED {
            if self.failures.load(Ordering::Relaxed) != 0 {
                self.failures.store(0, Ordering::Relaxed);
            }
            return Transition::None;
        }
        let mut inner = lock(&self.inner);
        match self.state.load(Ordering::Acquire) {
            HALF_OPEN => {
                self.failures.store(0, Ordering::Relaxed);
                inner.last_timeout = None;
                inner.k = 0;
                self.state.store(CLOSED, Ordering::Release);
                Transition::Closed
            }
            // a late answer to a call made before the breaker opened proves little: only the
            // probe closes it
            _ => Transition::None,
        }
    }

    /// A success that may not close the breaker (a bus heartbeat, which no probe admitted): it
    /// only ends a closed breaker's run of failures.
    pub fn on_success_while_closed(&self) {
        if self.state.load(Ordering::Acquire) == CLOSED && self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Reports an I/O error (refused connection, reset, protocol error).
    pub fn on_failure(&self, now: Duration) -> Transition {
        let mut inner = lock(&self.inner);
        match self.state.load(Ordering::Acquire) {
            CLOSED => {
                if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= self.cfg.failures {
                    return self.open(&mut inner, now, 0);
                }
                Transition::None
            }
            HALF_OPEN => {
                let k = inner.k.saturating_add(1);
                self.open(&mut inner, now, k)
            }
            _ => Transition::None,
        }
    }

    /// Reports a call that ran past its deadline: a failure, and two within `timeout_window`
    /// open the breaker at once.
    pub fn on_timeout(&self, now: Duration) -> Transition {
        if self.state.load(Ordering::Acquire) == CLOSED {
            let mut inner = lock(&self.inner);
            if self.state.load(Ordering::Acquire) == CLOSED {
                let recent = inner.last_timeout.is_some_and(|t| now.saturating_sub(t) <= self.cfg.timeout_window);
                inner.last_timeout = Some(now);
                if recent {
                    return self.open(&mut inner, now, 0);
                }
            }
        }
        self.on_failure(now)
    }

    /// Reports a dropped connection (a disconnection push, an EOF): opens at once from Closed.
    pub fn on_disconnect(&self, now: Duration) -> Transition {
        let mut inner = lock(&self.inner);
        match self.state.load(Ordering::Acquire) {
            CLOSED => self.open(&mut inner, now, 0),
            HALF_OPEN => {
                let k = inner.k.saturating_add(1);
                self.open(&mut inner, now, k)
            }
            _ => Transition::None,
        }
    }

    /// The open window of Open(k): `min(max_window, first_window * 2^k)`.
    pub fn window(&self, k: u32) -> Duration {
        let factor = 1u32.checked_shl(k.min(31)).unwrap_or(u32::MAX);
        self.cfg.first_window.saturating_mul(factor).min(self.cfg.max_window)
    }

    fn open(&self, inner: &mut Inner, now: Duration, k: u32) -> Transition {
        let window = self.window(k).as_nanos() as u64;
        let wait = if window == 0 { 0 } else { inner.rng.random_range(0..=window) };
        inner.k = k;
        self.failures.store(0, Ordering::Relaxed);
        inner.last_timeout = None;
        inner.probe_at = now.saturating_add(Duration::from_nanos(wait));
        inner.opened_total += 1;
        self.state.store(OPEN, Ordering::Release);
        Transition::Opened
    }

    /// While Open: when the probe may go (for tests and status).
    pub fn probe_at(&self) -> Option<Duration> {
        let inner = lock(&self.inner);
        (self.state.load(Ordering::Acquire) == OPEN).then_some(inner.probe_at)
    }
}
