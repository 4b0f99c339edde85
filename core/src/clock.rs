//! Monotonic time, injected (PROMISES P6).
//!
//! The store, TTLs and load timings read time only through [`Clock`], so tests drive time by hand
//! with [`ManualClock`] and hosts may supply their own (the WASM binding passes `performance.now`).
//! [`SystemClock`] uses `web_time::Instant`: `std::time::Instant` on native targets and
//! `performance.now()` on wasm32, where `std::time::Instant::now()` traps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A monotonic clock: nanoseconds since an arbitrary origin, never going backwards.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since this clock's origin.
    fn now_nanos(&self) -> u64;
}

/// The host's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: web_time::Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemClock { origin: web_time::Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        // Offset by 1 so that 0 never means "now"; saturating for a 584-year uptime.
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }
}

/// A clock moved only by hand, for deterministic tests of TTLs and timings.
///
/// Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time 1 ns.
    pub fn new() -> Self {
        ManualClock { now: Arc::new(AtomicU64::new(1)) }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.now.fetch_add(n, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}
