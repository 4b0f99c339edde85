//! The shared tier's breaker and recovery queue, driven by a manual clock.

use std::sync::Arc;
use std::time::Duration;

use healcache::tier::breaker::{Admit, Breaker, BreakerConfig, State, Transition};
use healcache::tier::recovery::{RecoveryQueue, DEFAULT_MAX};
use healcache::{Clock, ManualClock};

fn now(c: &ManualClock) -> Duration {
    Duration::from_nanos(c.now_nanos())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn breaker(seed: u64) -> Breaker {
    Breaker::new(BreakerConfig::default(), seed)
}

#[test]
fn opens_after_n_consecutive_failures_not_before() {
    let clock = ManualClock::new();
    let b = breaker(1);
    assert_eq!(b.on_failure(now(&clock)), Transition::None);
    assert_eq!(b.on_failure(now(&clock)), Transition::None);
    assert_eq!(b.allow(now(&clock)), Admit::Yes);
    assert_eq!(b.on_failure(now(&clock)), Transition::Opened);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.allow(now(&clock)), Admit::No);
    assert_eq!(b.opened_total(), 1);
}

#[test]
fn a_success_resets_the_count() {
    let clock = ManualClock::new();
    let b = breaker(1);
    for _ in 0..10 {
        b.on_failure(now(&clock));
        b.on_failure(now(&clock));
        assert_eq!(b.on_success(now(&clock)), Transition::None);
    }
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn two_timeouts_within_the_window_open_at_once() {
    let clock = ManualClock::new();
    let b = breaker(1);
    assert_eq!(b.on_timeout(now(&clock)), Transition::None);
    clock.advance(ms(1000));
    // exactly at the window's edge still counts
    assert_eq!(b.on_timeout(now(&clock)), Transition::Opened);

    let b = breaker(1);
    assert_eq!(b.on_timeout(now(&clock)), Transition::None);
    b.on_success(now(&clock));
    clock.advance(ms(1001));
    // past the window: only one recent timeout
    assert_eq!(b.on_timeout(now(&clock)), Transition::None);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_dropped_connection_opens_at_once() {
    let clock = ManualClock::new();
    let b = breaker(1);
    assert_eq!(b.on_disconnect(now(&clock)), Transition::Opened);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn half_open_admits_exactly_one_probe_and_closes_on_success() {
    let clock = ManualClock::new();
    let b = breaker(7);
    b.on_disconnect(now(&clock));
    let at = b.probe_at().unwrap();
    assert!(at <= now(&clock) + b.window(0));
    // before the drawn time: skipped
    if at > now(&clock) {
        assert_eq!(b.allow(at - Duration::from_nanos(1)), Admit::No);
    }
    assert_eq!(b.allow(at), Admit::Probe);
    assert_eq!(b.state(), State::HalfOpen);
    for _ in 0..100 {
        assert_eq!(b.allow(at), Admit::No);
    }
    assert_eq!(b.on_success(at), Transition::Closed);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.allow(at), Admit::Yes);
}

#[test]
fn concurrent_callers_get_one_probe() {
    let b = Arc::new(breaker(3));
    b.on_disconnect(Duration::ZERO);
    let t = Duration::from_secs(100);
    let probes: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                s.spawn(move || (0..1000).filter(|_| b.allow(t) == Admit::Probe).count())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(probes, 1);
}

#[test]
fn a_failed_probe_reopens_with_a_doubled_window_capped_at_the_max() {
    let clock = ManualClock::new();
    let b = breaker(11);
    assert_eq!(b.window(0), ms(1000));
    assert_eq!(b.window(1), ms(2000));
    assert_eq!(b.window(3), ms(8000));
    assert_eq!(b.window(4), ms(8000));
    assert_eq!(b.window(40), ms(8000));
    b.on_disconnect(now(&clock));
    for k in 1..=6u32 {
        let at = b.probe_at().unwrap();
        assert_eq!(b.allow(at), Admit::Probe);
        assert_eq!(b.on_failure(at), Transition::Opened);
        let next = b.probe_at().unwrap();
        assert!(next >= at && next <= at + b.window(k), "k={k}");
    }
    assert_eq!(b.opened_total(), 7);
}

#[test]
fn a_lost_probe_is_replaced_after_the_probe_timeout() {
    let b = breaker(5);
    b.on_disconnect(Duration::ZERO);
    let at = b.probe_at().unwrap();
    assert_eq!(b.allow(at), Admit::Probe);
    assert_eq!(b.allow(at + ms(999)), Admit::No);
    assert_eq!(b.allow(at + ms(1000)), Admit::Probe);
    assert_eq!(b.allow(at + ms(1000)), Admit::No);
}

#[test]
fn late_answers_do_not_close_an_open_breaker() {
    let b = breaker(5);
    b.on_disconnect(Duration::ZERO);
    assert_eq!(b.on_success(Duration::ZERO), Transition::None);
    assert_eq!(b.on_failure(Duration::ZERO), Transition::None);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn jitter_is_full_and_replays_from_the_seed() {
    // the probe time of Open(0) is U(0, 1 s): over many seeds it fills the window, and the same
    // seed gives the same time
    let draws: Vec<Duration> = (0..2000)
        .map(|seed| {
            let b = breaker(seed);
            b.on_disconnect(Duration::ZERO);
            b.probe_at().unwrap()
        })
        .collect();
    assert!(draws.iter().all(|d| *d <= ms(1000)));
    let mut buckets = [0usize; 10];
    for d in &draws {
        buckets[((d.as_millis() / 100) as usize).min(9)] += 1;
    }
    // 200 expected per 100 ms bucket; a herd in one bucket would put 2000 there
    assert!(buckets.iter().all(|&n| (120..=280).contains(&n)), "{buckets:?}");
    let again = breaker(42);
    again.on_disconnect(Duration::ZERO);
    assert_eq!(again.probe_at(), Some(draws[42]));
}

// ---------------------------------------------------------------------------------------------
// recovery queue

#[test]
fn recovery_keeps_the_newest_at_the_bound() {
    let q = RecoveryQueue::new(DEFAULT_MAX);
    let t = Duration::ZERO;
    for i in 0..DEFAULT_MAX {
        q.push(&format!("k{i}"), t, ms(60_000));
    }
    assert_eq!((q.len(), q.dropped()), (DEFAULT_MAX, 0));
    q.push("one-more", t, ms(60_000));
    assert_eq!((q.len(), q.dropped()), (DEFAULT_MAX, 1));
    for i in 0..DEFAULT_MAX - 1 {
        q.push(&format!("later{i}"), t, ms(60_000));
    }
    // 20,000 pushes: 10,000 kept, 10,000 dropped, the oldest first
    assert_eq!((q.len(), q.dropped()), (DEFAULT_MAX, DEFAULT_MAX as u64));
    let keys = q.drain(t);
    assert_eq!(keys.len(), DEFAULT_MAX);
    assert_eq!(keys[0], "one-more");
    assert_eq!(keys[DEFAULT_MAX - 1], format!("later{}", DEFAULT_MAX - 2));
    assert!(q.is_empty());
}

#[test]
fn recovery_deduplicates_last_wins() {
    let q = RecoveryQueue::new(3);
    q.push("a", ms(0), ms(100));
    q.push("b", ms(1), ms(100));
    q.push("a", ms(2), ms(100));
    assert_eq!(q.len(), 2);
    q.push("c", ms(3), ms(100));
    // the bound counts keys, not pushes: nothing dropped
    assert_eq!(q.dropped(), 0);
    assert_eq!(q.drain(ms(4)), ["b", "a", "c"]);
    // a re-push renews the deadline
    q.push("a", ms(0), ms(10));
    q.push("a", ms(50), ms(10));
    assert_eq!(q.drain(ms(55)), ["a"]);
}

#[test]
fn recovery_drops_items_past_their_ttl() {
    let q = RecoveryQueue::new(10);
    q.push("short", ms(0), ms(100));
    q.push("long", ms(0), ms(1000));
    assert_eq!(q.drain(ms(100)), ["long"]);
    assert_eq!(q.expired(), 1);
    assert_eq!(q.dropped(), 0);
}

#[test]
fn recovery_repeated_pushes_of_two_keys_keep_two_items_in_order() {
    let q = RecoveryQueue::new(4);
    for i in 0..100_000u64 {
        q.push(["a", "b"][(i % 2) as usize], ms(i), ms(1_000_000));
    }
    assert_eq!(q.len(), 2);
    assert_eq!(q.dropped(), 0);
    assert_eq!(q.drain(ms(0)), ["a", "b"]);
}
