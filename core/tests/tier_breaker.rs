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

/// At the bound, an item past its deadline leaves as expired, not as a dropped live one: an
/// outage longer than the entries' TTL drops nothing that still matters.
#[test]
fn recovery_expires_items_past_their_deadline_before_dropping_live_ones() {
    let q = RecoveryQueue::new(3);
    q.push("old-live", ms(0), ms(10_000));
    q.push("short-1", ms(0), ms(100));
    q.push("short-2", ms(0), ms(100));
    assert_eq!(q.len(), 3);
    q.push("new", ms(500), ms(10_000));
    assert_eq!((q.dropped(), q.expired()), (0, 2));
    assert_eq!(q.len(), 2);
    assert_eq!(q.drain(ms(600)), ["old-live", "new"]);
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

/// What the recovery queue must do, written the slow and obvious way.
#[derive(Default)]
struct Model {
    items: Vec<(String, Duration)>,
    dropped: u64,
    expired: u64,
}

impl Model {
    fn push(&mut self, max: usize, key: &str, now: Duration, deadline: Duration) {
        // items past their deadline go first, as expired: only live ones are dropped at the bound
        let before = self.items.len();
        self.items.retain(|(_, d)| *d > now);
        self.expired += (before - self.items.len()) as u64;
        self.items.retain(|(k, _)| k != key);
        self.items.push((key.to_owned(), deadline));
        while self.items.len() > max {
            self.items.remove(0);
            self.dropped += 1;
        }
    }
    fn drain(&mut self, now: Duration) -> Vec<String> {
        let (live, dead): (Vec<_>, Vec<_>) = self.items.drain(..).partition(|(_, d)| *d > now);
        self.expired += dead.len() as u64;
        live.into_iter().map(|(k, _)| k).collect()
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    #[test]
    fn recovery_queue_behaves_like_the_model(
        max in 1usize..12,
        ops in proptest::collection::vec((0u8..20, 0u64..40, 0u64..60), 1..400),
    ) {
        let q = RecoveryQueue::new(max);
        let mut m = Model::default();
        let mut t = 0u64;
        for (key, ttl, step) in ops {
            t += step % 7;
            if key == 0 {
                // a drain now and then; most operations are pushes of few keys, so re-pushes
                // (and the queue's compaction of stale entries) are frequent
                proptest::prop_assert_eq!(q.drain(ms(t)), m.drain(ms(t)));
            } else {
                let k = format!("k{}", key % 8);
                q.push(&k, ms(t), ms(ttl));
                m.push(max, &k, ms(t), ms(t + ttl));
            }
            proptest::prop_assert_eq!(q.len(), m.items.len());
            proptest::prop_assert_eq!(q.dropped(), m.dropped);
            proptest::prop_assert_eq!(q.expired(), m.expired);
        }
        proptest::prop_assert_eq!(q.drain(ms(t)), m.drain(ms(t)));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Any sequence of outcomes, at any pace: Closed admits everything, Open nothing before its
    /// probe time, HalfOpen one probe per probe timeout; "closed again" comes only after a probe.
    #[test]
    fn breaker_invariants_hold_for_any_sequence(
        seed in proptest::prelude::any::<u64>(),
        events in proptest::collection::vec((0u8..5, 0u64..1500), 1..300),
    ) {
        let b = breaker(seed);
        let mut t = Duration::ZERO;
        let mut probe_out: Option<Duration> = None;
        for (ev, step) in events {
            t += ms(step);
            let before = b.state();
            match ev {
                0 | 1 => {
                    let probe_at = b.probe_at();
                    let a = b.allow(t);
                    match before {
                        State::Closed => proptest::prop_assert_eq!(a, Admit::Yes),
                        State::Open => proptest::prop_assert_eq!(a == Admit::Probe, t >= probe_at.unwrap()),
                        State::HalfOpen => {
                            let sent = probe_out.unwrap();
                            proptest::prop_assert_eq!(a == Admit::Probe, t >= sent + ms(1000));
                        }
                    }
                    if a == Admit::Probe {
                        probe_out = Some(t);
                        proptest::prop_assert_eq!(b.state(), State::HalfOpen);
                    }
                }
                2 => {
                    let tr = b.on_success(t);
                    proptest::prop_assert_eq!(tr == Transition::Closed, before == State::HalfOpen);
                    if before == State::HalfOpen {
                        proptest::prop_assert_eq!(b.state(), State::Closed);
                    }
                }
                3 | 4 => {
                    let tr = if ev == 3 { b.on_failure(t) } else { b.on_timeout(t) };
                    proptest::prop_assert_ne!(tr, Transition::Closed);
                    if before == State::HalfOpen {
                        proptest::prop_assert_eq!(tr, Transition::Opened);
                    }
                    if before == State::Open {
                        proptest::prop_assert_eq!(tr, Transition::None);
                    }
                    if tr == Transition::Opened {
                        let at = b.probe_at().unwrap();
                        proptest::prop_assert!(at >= t && at <= t + ms(8000));
                    }
                }
                _ => unreachable!(),
            }
        }
    }
}
