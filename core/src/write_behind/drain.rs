//! The drainer: one task per write-behind queue that sends its batches to the writer, one at a
//! time, retries failed ones with jittered backoff, and stops at `close`'s deadline.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::future::{self, Either, FutureExt};

use super::{Op, Shared, State, WriteBehindConfig, BATCH_SIZE_BUCKETS};
use crate::error::Error;
use crate::sync::lock;

/// Completes once `close`'s deadline stopped the drainer.
fn stopped<V>(sh: &Shared<V>) -> impl Future<Output = ()> + '_ {
    future::poll_fn(move |cx| {
        let mut st = lock(&sh.state);
        if sh.stop.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    })
}

/// Completes once the state's generation is no longer `seen`.
pub(super) fn changed<V>(sh: &Shared<V>, seen: u64) -> impl Future<Output = ()> + '_ {
    future::poll_fn(move |cx| {
        let mut st = lock(&sh.state);
        if st.generation != seen {
            return Poll::Ready(());
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    })
}

/// What the drainer does next.
enum Next {
    Send,
    Wait(u64, Option<Duration>),
    End,
}

/// The drainer: one batch at a time, in queue order.
pub(super) async fn drain<V: Clone + Send + Sync + 'static>(sh: Arc<Shared<V>>) {
    loop {
        let next = {
            let now = sh.cache.precise_nanos();
            let mut st = lock(&sh.state);
            next_step(&sh, &mut st, now)
        };
        match next {
            Next::End => return,
            Next::Wait(seen, sleep) => {
                let woken = changed(&sh, seen);
                match sleep {
                    Some(d) => drop(future::select(Box::pin(woken), sh.timer.sleep(d)).await),
                    None => woken.await,
                }
            }
            Next::Send => {
                if !send(&sh).await {
                    return;
                }
            }
        }
    }
}

/// Under the lock: takes a batch into `inflight` when one is due, else says how long to wait.
fn next_step<V: Clone + Send + Sync + 'static>(sh: &Shared<V>, st: &mut State<V>, now: u64) -> Next {
    if sh.stop.load(Ordering::Acquire) {
        return Next::End;
    }
    let ready = st.order.len();
    if ready == 0 {
        return if st.closed && st.reserved == 0 { Next::End } else { Next::Wait(st.generation, None) };
    }
    let oldest = st.order.front().and_then(|k| st.items.get(k)).map_or(now, |i| i.since);
    let age = Duration::from_nanos(now.saturating_sub(oldest));
    if ready < sh.cfg.batch() && !st.closed && age < sh.cfg.flush_interval {
        return Next::Wait(st.generation, Some(sh.cfg.flush_interval - age));
    }
    let mut i = 0;
    while st.inflight.len() < sh.cfg.batch() && i < st.order.len() {
        let pinned = st.items.get(&st.order[i]).is_some_and(|it| it.pinned > 0);
        if pinned {
            i += 1;
            continue;
        }
        let Some(k) = st.order.remove(i) else { break };
        if let Some(item) = st.items.remove(&k) {
            st.inflight.push(item);
        }
    }
    if st.inflight.is_empty() {
        // every item is being rewritten: their writes notify when done
        return Next::Wait(st.generation, None);
    }
    Next::Send
}

/// Writes the batch in `inflight`, retrying; false when stopped by `close`'s deadline.
async fn send<V: Clone + Send + Sync + 'static>(sh: &Shared<V>) -> bool {
    let mut attempt: u32 = 0;
    loop {
        let ops: Vec<Op<V>> = {
            let mut st = lock(&sh.state);
            if sh.stop.load(Ordering::Acquire) {
                return false;
            }
            if attempt > 0 {
                // a newer write queued during the backoff supersedes its retry (last wins)
                let before = st.inflight.len();
                let mut inflight = std::mem::take(&mut st.inflight);
                inflight.retain(|i| !st.items.contains_key(i.op.key()));
                st.counters.superseded += (before - inflight.len()) as u64;
                st.inflight = inflight;
                if st.inflight.is_empty() {
                    st.notify();
                    return true;
                }
            }
            for item in st.inflight.iter_mut() {
                item.attempts += 1;
            }
            st.inflight.iter().map(|i| i.op.clone()).collect()
        };
        attempt += 1;
        let call = AssertUnwindSafe(sh.writer.write(ops)).catch_unwind();
        // at `close`'s deadline the call is dropped: `close` accounted for its batch
        let Either::Left((called, _)) = future::select(call, Box::pin(stopped(sh))).await else {
            return false;
        };
        let outcome = match called {
            Ok(r) => r,
            Err(payload) => match Error::panicked(&*payload) {
                Error::LoaderPanicked { message } => Err(format!("writer panicked: {message}")),
                e => Err(e.to_string()),
            },
        };
        if let Some(go_on) = settle(sh, outcome, attempt) {
            return go_on;
        }
        let delay = backoff(&sh.cfg, attempt, sh.cache.random_u64());
        if let Either::Right(_) = future::select(sh.timer.sleep(delay), Box::pin(stopped(sh))).await {
            return false;
        }
    }
}

/// Under the lock: the outcome of a writer call; `None` when the batch is to be retried.
fn settle<V: Clone + Send + Sync + 'static>(
    sh: &Shared<V>,
    outcome: std::result::Result<(), String>,
    attempt: u32,
) -> Option<bool> {
    let mut st = lock(&sh.state);
    if sh.stop.load(Ordering::Acquire) {
        // `close` accounted for the batch at its deadline
        return Some(false);
    }
    match outcome {
        Ok(()) => {
            let n = st.inflight.len();
            st.inflight.clear();
            let c = &mut st.counters;
            c.batches += 1;
            c.flushed += n as u64;
            let b = BATCH_SIZE_BUCKETS.iter().position(|&b| n as u64 <= b).unwrap_or(BATCH_SIZE_BUCKETS.len());
            c.sizes[b] += 1;
            st.notify();
            return Some(true);
        }
        Err(text) => {
            st.counters.failures += 1;
            // a newer write of a key supersedes its retry (last wins)
            let before = st.inflight.len();
            let mut inflight = std::mem::take(&mut st.inflight);
            inflight.retain(|i| !st.items.contains_key(i.op.key()));
            st.counters.superseded += (before - inflight.len()) as u64;
            if attempt >= sh.cfg.attempts || inflight.is_empty() {
                let error: Arc<str> = text.into();
                for item in inflight {
                    st.give_up(item, Arc::clone(&error), sh.cfg.max_queue);
                }
                st.notify();
                return Some(true);
            }
            st.inflight = inflight;
            st.notify();
        }
    }
    None
}

/// The delay before retry number `attempt` (1 for the first): `retry_min * 2^(attempt-1)` capped
/// at `retry_max`, with its upper half drawn at random (so instances retrying together spread
/// out), never below `retry_min`.
pub(super) fn backoff(cfg: &WriteBehindConfig, attempt: u32, random: u64) -> Duration {
    let exp = cfg.retry_min.saturating_mul(1u32 << attempt.saturating_sub(1).min(30)).min(cfg.retry_max);
    let half = exp / 2;
    let jitter = half.mul_f64((random >> 11) as f64 / (1u64 << 53) as f64);
    (half + jitter).max(cfg.retry_min)
}
