//! The recovery queue: invalidations that could not reach the shared tier while it was down,
//! replayed when it is back.
//!
//! It holds keys, never values: replaying a value would need a cross-node "which is newer"
//! decision, which only wall clocks could make, and the source of truth reloads the key on its
//! next miss anyway. Each key is queued once (a second push moves it to the back and renews its
//! deadline: last wins). An item older than its entry's TTL leaves as expired, since every copy
//! it would invalidate has expired by then; each push removes those first, so at the bound the
//! oldest *live* item is dropped and counted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use hashbrown::HashMap;

use crate::sync::{lock, Mutex};

/// The default bound of the queue.
pub const DEFAULT_MAX: usize = 10_000;

struct Item {
    seq: u64,
    deadline: Duration,
}

#[derive(Default)]
struct Inner {
    /// Key -> its live item.
    items: HashMap<String, Item>,
    /// Push order; an entry whose seq no longer matches its key's item is stale and skipped.
    order: VecDeque<(u64, String)>,
    /// The same entries by deadline, earliest first (stale ones skipped the same way): a push
    /// finds the expired items without a scan.
    deadlines: BinaryHeap<Reverse<(Duration, u64, String)>>,
    seq: u64,
    dropped: u64,
    expired: u64,
}

/// A bounded, per-key deduplicated queue of pending invalidations.
pub struct RecoveryQueue {
    max: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for RecoveryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryQueue").field("len", &self.len()).field("max", &self.max).finish()
    }
}

impl RecoveryQueue {
    /// A queue holding at most `max` keys (at least 1).
    pub fn new(max: usize) -> Self {
        RecoveryQueue { max: max.max(1), inner: Mutex::new(Inner::default()) }
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Queues an invalidation of `key`, to be dropped once `ttl` has passed after `now`.
    pub fn push(&self, key: &str, now: Duration, ttl: Duration) {
        let mut q = lock(&self.inner);
        // the items already past their deadline leave first
        while let Some(Reverse((d, seq, _))) = q.deadlines.peek() {
            if *d > now {
                break;
            }
            let seq = *seq;
            let Some(Reverse((_, _, key))) = q.deadlines.pop() else { break };
            if q.items.get(&key).is_some_and(|i| i.seq == seq) {
                q.items.remove(&key);
                q.expired += 1;
            }
        }
        q.seq += 1;
        let seq = q.seq;
        let deadline = now.saturating_add(ttl);
        match q.items.get_mut(key) {
            Some(item) => *item = Item { seq, deadline },
            None => {
                q.items.insert(key.to_owned(), Item { seq, deadline });
            }
        }
        q.order.push_back((seq, key.to_owned()));
        q.deadlines.push(Reverse((deadline, seq, key.to_owned())));
        while q.items.len() > self.max {
            if let Some((seq, key)) = q.order.pop_front() {
                if q.items.get(&key).is_some_and(|i| i.seq == seq) {
                    q.items.remove(&key);
                    q.dropped += 1;
                }
            }
        }
        // re-pushed keys leave stale entries behind: compact before they outnumber the live ones
        let live = |items: &HashMap<String, Item>, seq: u64, key: &str| items.get(key).is_some_and(|i| i.seq == seq);
        if q.order.len() > 2 * q.items.len() + 16 {
            let Inner { items, order, .. } = &mut *q;
            order.retain(|(seq, key)| live(items, *seq, key));
        }
        if q.deadlines.len() > 2 * q.items.len() + 16 {
            let Inner { items, deadlines, .. } = &mut *q;
            deadlines.retain(|Reverse((_, seq, key))| live(items, *seq, key));
        }
    }

    /// Takes every queued key whose deadline has not passed, oldest first; the others are dropped
    /// (and counted in [`RecoveryQueue::expired`]).
    pub fn drain(&self, now: Duration) -> Vec<String> {
        let mut q = lock(&self.inner);
        let order = std::mem::take(&mut q.order);
        q.deadlines.clear();
        let mut items = std::mem::take(&mut q.items);
        let mut out = Vec::with_capacity(items.len());
        for (seq, key) in order {
            match items.get(&key) {
                Some(i) if i.seq == seq => {
                    let live = i.deadline > now;
                    items.remove(&key);
                    if live {
                        out.push(key);
                    } else {
                        q.expired += 1;
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Keys queued now.
    pub fn len(&self) -> usize {
        lock(&self.inner).items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys dropped at the bound since the queue was made.
    pub fn dropped(&self) -> u64 {
        lock(&self.inner).dropped
    }

    /// Keys that left because their TTL had passed (found by a push or by [`RecoveryQueue::drain`]).
    pub fn expired(&self) -> u64 {
        lock(&self.inner).expired
    }
}
