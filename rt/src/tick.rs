//! A clock kept in memory by a thread, for a reader that cannot afford a clock call per read.
//!
//! The JS read mirror checks an entry's expiry on every hit. JS clocks (`performance.now()`,
//! `Date.now()`) reach the kernel's clock through an ordered TSC read, which waits for every
//! earlier load to finish: in a loop of reads that miss the CPU caches, a hit then no longer
//! overlaps its misses with the next one's (a mirror hit over 1,000,000 keys: about 450 ns with
//! the call, 210 ns without it; the call alone costs 40 ns). Here a thread stores the monotonic
//! time every millisecond in a word the mirror reads through an `ArrayBuffer` over it: a plain
//! load. The mirror keeps the exact check for entries close to their expiry and stops trusting
//! the word when it finds it behind (see `js/mirror.mjs`).
//!
//! The thread stores every millisecond while readers ask for it (they set [`Tick::wanted`] now
//! and then), and every [`IDLE_PACE`] once nobody has for [`IDLE_AFTER`] stores.
//!
//! Each [`tick`] call gets words of its own, kept for the life of the process: a JS engine wraps
//! them in an `ArrayBuffer`, and older V8s abort when two buffers are made over one address, or
//! when an address is reused while they still hold it registered. A reader makes one per loaded
//! module instance, so what is kept stays small.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Pace while readers ask for the time.
pub const PACE: Duration = Duration::from_millis(1);
/// Pace once nobody has asked for [`IDLE_AFTER`] stores.
pub const IDLE_PACE: Duration = Duration::from_millis(20);
/// Stores without a reader's request before the thread slows to [`IDLE_PACE`].
pub const IDLE_AFTER: u32 = 1000;

/// The words the thread keeps, alone on their cache line(s) (readers on other cores load them).
#[repr(C, align(128))]
pub struct Tick {
    /// Milliseconds since the ticker's origin, as the bits of an `f64` (so JS reads it through a
    /// `Float64Array`). Only differences mean anything.
    pub millis: AtomicU64,
    /// Set to non-zero by a reader to keep the thread at [`PACE`]; the thread clears it.
    pub wanted: AtomicU32,
}

impl Tick {
    /// The last stored time, in milliseconds.
    pub fn millis(&self) -> f64 {
        f64::from_bits(self.millis.load(Ordering::Relaxed))
    }
}

/// Every `Tick` handed out; the thread stores into each.
static TICKS: Mutex<Vec<&'static Tick>> = Mutex::new(Vec::new());
static ORIGIN: OnceLock<Instant> = OnceLock::new();

fn now() -> u64 {
    (ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3).to_bits()
}

/// Stores the time into every tick; whether a reader asked for it since the last store.
fn store_all() -> bool {
    let t = now();
    let mut asked = false;
    for tick in TICKS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        tick.millis.store(t, Ordering::Relaxed);
        asked |= tick.wanted.swap(0, Ordering::Relaxed) != 0;
    }
    asked
}

/// How long the thread sleeps after `unwanted` stores in a row with no reader's request.
fn pace(unwanted: u32) -> Duration {
    if unwanted >= IDLE_AFTER {
        IDLE_PACE
    } else {
        PACE
    }
}

/// Stores in a row with no reader's request, after one more store (`asked`: a reader asked).
fn unwanted_after(unwanted: u32, asked: bool) -> u32 {
    if asked {
        0
    } else {
        unwanted.saturating_add(1)
    }
}

/// New words of the process's ticking clock (holding the time already), its thread started on
/// first use. `None` when the thread cannot be started.
pub fn tick() -> Option<&'static Tick> {
    static STARTED: OnceLock<bool> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("healcache-tick".into())
            .spawn(|| {
                let mut unwanted = 0u32;
                loop {
                    std::thread::sleep(pace(unwanted));
                    unwanted = unwanted_after(unwanted, store_all());
                }
            })
            .is_ok()
    });
    if !started {
        return None;
    }
    let tick: &'static Tick = Box::leak(Box::new(Tick { millis: AtomicU64::new(now()), wanted: AtomicU32::new(1) }));
    TICKS.lock().unwrap_or_else(|p| p.into_inner()).push(tick);
    Some(tick)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P5: the thread stores every 1 ms for the first 1,000 stores no reader asked for, every
    /// 20 ms from the 1,000th on, and every 1 ms again after the first store a reader asked for.
    #[test]
    fn the_pace_slows_after_1000_unwanted_stores_and_a_request_restores_it() {
        assert_eq!((PACE, IDLE_PACE, IDLE_AFTER), (Duration::from_millis(1), Duration::from_millis(20), 1000));
        let mut unwanted = 0;
        let mut paces = vec![pace(unwanted)];
        for _ in 0..1001 {
            unwanted = unwanted_after(unwanted, false);
            paces.push(pace(unwanted));
        }
        // paces[n]: the sleep after n unwanted stores
        assert!(paces[..1000].iter().all(|p| *p == PACE), "1 ms up to the 999th");
        assert!(paces[1000..].iter().all(|p| *p == IDLE_PACE), "20 ms from the 1,000th");
        assert_eq!(pace(unwanted_after(unwanted, true)), PACE);
        assert_eq!(unwanted_after(u32::MAX, false), u32::MAX, "an idle thread never wraps round to busy");
    }

    /// The stored time follows the monotonic clock within a few paces, and the thread clears the
    /// readers' request as it goes.
    #[test]
    fn the_tick_keeps_up_with_the_clock() {
        let t = tick().expect("a thread");
        let other = tick().unwrap();
        assert!(!std::ptr::eq(t, other), "each call has words of its own");
        let origin = *ORIGIN.get().unwrap();
        for _ in 0..50 {
            t.wanted.store(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
            let now = origin.elapsed().as_secs_f64() * 1e3;
            let lag = now - t.millis();
            // a loaded machine may hold the thread back now and then; the mirror copes with that
            assert!((0.0..200.0).contains(&lag), "the tick is {lag} ms behind");
        }
        let before = t.millis();
        std::thread::sleep(Duration::from_millis(30));
        assert!(t.millis() >= before + 10.0, "the tick moved from {before} to {}", t.millis());
        assert_eq!(t.wanted.load(Ordering::Relaxed), 0, "the thread takes the request");
        assert!(other.millis() >= before + 10.0, "every tick moves");
        assert_eq!(std::mem::align_of::<Tick>(), 128);
    }
}
