//! Write-behind: a write lands in the cache at once (L1, and L2 with the bus when the cache has a
//! shared tier) and is queued for a writer (the source of truth), which receives it later in
//! batches.
//!
//! - The queue coalesces per key, last wins: a key already queued is updated in place and keeps
//!   its place and its age. It holds at most `max_queue` items, the batch being written included;
//!   when full, [`OnFull`] decides: refuse at once, or wait for room up to a timeout. A refused
//!   write changes nothing, in the cache or the queue.
//! - One drainer sends batches of at most `batch` items, in queue order, one batch at a time:
//!   when a batch is full, or `flush_interval` after the oldest item was queued. A failed batch
//!   is retried with jittered exponential backoff (`retry_min` to `retry_max`) up to `attempts`
//!   calls; its items that a newer write of their key superseded meanwhile are dropped from it
//!   (the newer one is queued). Items that exhaust their attempts are counted (`failed`) and kept
//!   with the writer's last error text ([`WriteBehind::take_failed`]), the newest `max_queue` of
//!   them; never dropped silently.
//! - [`WriteBehind::close`] stops accepting (later writes fail with [`Error::Closed`]), flushes
//!   what it can before its deadline and answers how many items it could not; those are kept with
//!   the failed ones. A batch under way at the deadline is abandoned (its writer call dropped), so
//!   the writer may have applied some of it: delivery is at least once, never exactly once.
//!
//! Limits, by design: the queue lives in this process's memory, so a crash loses what it holds;
//! each instance drains its own queue, so there is no ordering across instances (two instances
//! writing one key may reach the writer in either order).
//!
//! Available with the `tier` feature (the drainer needs the host's timer and spawner, and the
//! WebAssembly module leaves it out).

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use futures::future::{self, BoxFuture, Either, FutureExt};
use hashbrown::HashMap;

use crate::cache::{Cache, Ttl, WriteOptions};
use crate::decimal::Decimal;
use crate::error::{ConfigProblem, Error, Result};
use crate::flight::Timer;
use crate::settings::Unit;
use crate::sync::{lock, Mutex};

mod drain;

use drain::{changed, drain};

/// Upper bounds of the batch-size histogram (items per batch sent); a last bucket holds the rest.
pub const BATCH_SIZE_BUCKETS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/// The largest `max_queue` accepted.
pub const MAX_QUEUE_LIMIT: usize = 10_000_000;
/// Items per writer call unless given (or `max_queue` when lower).
const DEFAULT_BATCH: usize = 100;
/// The largest `attempts` accepted.
pub const MAX_ATTEMPTS: u32 = 1000;
/// The longest `flush_interval`, `retry_min`, `retry_max` or block timeout accepted: one day.
pub const MAX_DELAY: Duration = Duration::from_secs(86_400);

/// What the writer is asked to do for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Op<V> {
    /// Store `value` at `key`.
    Put {
        /// The cache key.
        key: Arc<str>,
        /// Its newest value.
        value: V,
    },
    /// Delete `key`.
    Delete {
        /// The cache key.
        key: Arc<str>,
    },
}

impl<V> Op<V> {
    /// The key of the operation.
    pub fn key(&self) -> &Arc<str> {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// What a full queue does with a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Refuse at once with [`Error::QueueFull`].
    Reject,
    /// Wait up to this long for room, then refuse with [`Error::QueueFull`].
    Block(Duration),
}

/// Settings of a [`WriteBehind`]. Every field is checked by [`WriteBehind::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteBehindConfig {
    /// Items the queue holds at most, the batch being written included (1 to 10,000,000).
    /// Defaults to: 10,000.
    pub max_queue: usize,
    /// Items per writer call at most (1 to `max_queue`). Defaults to: 100, or `max_queue` when
    /// that is lower (`None`).
    pub batch: Option<usize>,
    /// A partial batch is sent once its oldest item waited this long (up to a day).
    /// Defaults to: 100 ms.
    pub flush_interval: Duration,
    /// First retry delay of a failed batch (up to `retry_max`). Defaults to: 100 ms.
    pub retry_min: Duration,
    /// Longest retry delay (up to a day). Defaults to: 5 s.
    pub retry_max: Duration,
    /// Writer calls per batch at most, the first included (1 to 1,000). Defaults to: 10.
    pub attempts: u32,
    /// What a write does when the queue is full. Defaults to: [`OnFull::Reject`].
    pub on_full: OnFull,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        WriteBehindConfig {
            max_queue: 10_000,
            batch: None,
            flush_interval: Duration::from_millis(100),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            attempts: 10,
            on_full: OnFull::Reject,
        }
    }
}

impl WriteBehindConfig {
    /// Items per writer call at most: `batch`, or its default.
    pub fn batch(&self) -> usize {
        self.batch.unwrap_or(DEFAULT_BATCH.min(self.max_queue))
    }

    /// Checks every field; the error names the first one refused.
    pub fn check(&self) -> Result<()> {
        let count = |field: &'static str, v: usize, max: usize| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                let problem = ConfigProblem::OutOfRange { min: 1.0, max: max as f64 };
                Err(Error::InvalidConfig { field, problem, value: Some(v as f64), unit: Unit::Count })
            }
        };
        let delay = |field: &'static str, d: Duration| {
            let ms = d.as_secs_f64() * 1000.0;
            let problem = if d.is_zero() {
                ConfigProblem::NotPositive
            } else if d > MAX_DELAY {
                ConfigProblem::TooLong { max: MAX_DELAY.as_millis() as f64 }
            } else {
                return Ok(());
            };
            Err(Error::InvalidConfig { field, problem, value: Some(ms), unit: Unit::Duration })
        };
        count("max_queue", self.max_queue, MAX_QUEUE_LIMIT)?;
        count("batch", self.batch(), self.max_queue).map_err(|e| match e {
            Error::InvalidConfig { value, unit, .. } if self.batch() > self.max_queue => {
                Error::InvalidConfig { field: "batch", problem: ConfigProblem::MustNotExceed("max_queue"), value, unit }
            }
            e => e,
        })?;
        delay("flush_interval", self.flush_interval)?;
        delay("retry_min", self.retry_min)?;
        delay("retry_max", self.retry_max)?;
        if self.retry_min > self.retry_max {
            let ms = self.retry_min.as_secs_f64() * 1000.0;
            let problem = ConfigProblem::MustNotExceed("retry_max");
            return Err(Error::InvalidConfig { field: "retry_min", problem, value: Some(ms), unit: Unit::Duration });
        }
        count("attempts", self.attempts as usize, MAX_ATTEMPTS as usize)?;
        if let OnFull::Block(t) = self.on_full {
            // zero is allowed: it behaves as reject
            if t > MAX_DELAY {
                delay("on_full", t)?;
            }
        }
        Ok(())
    }
}

/// The writer: called with one batch at a time, never concurrently with itself; an `Err` carries
/// the text kept with items that exhaust their attempts. A panic counts as a failure.
pub trait BatchWriter<V>: Send + Sync + 'static {
    /// Writes `batch` to the source of truth.
    fn write(&self, batch: Vec<Op<V>>) -> BoxFuture<'static, std::result::Result<(), String>>;
}

impl<V, F, Fut, E> BatchWriter<V> for F
where
    F: Fn(Vec<Op<V>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: fmt::Display,
{
    fn write(&self, batch: Vec<Op<V>>) -> BoxFuture<'static, std::result::Result<(), String>> {
        let fut = self(batch);
        Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
    }
}

/// An item given up: its operation, the writer calls it took part in, and the last error.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedItem<V> {
    /// The operation that was not delivered.
    pub op: Op<V>,
    /// Writer calls that included it (0: never sent before `close`'s deadline).
    pub attempts: u32,
    /// The writer's last error text, or why it was not sent.
    pub error: Arc<str>,
}

/// Counters and gauges of a [`WriteBehind`].
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBehindStats {
    /// Items queued now, the batch being written included.
    pub queue_depth: usize,
    /// `max_queue`.
    pub queue_capacity: usize,
    /// How long the oldest item has waited (zero when the queue is empty).
    pub lag: Duration,
    /// Batches the writer accepted.
    pub batches: u64,
    /// Items the writer accepted.
    pub flushed_items: u64,
    /// Writer calls that failed (each retry counts).
    pub failures: u64,
    /// Items given up: attempts exhausted, or left at `close`'s deadline.
    pub failed: u64,
    /// Items dropped from a failed batch because a newer write of their key was queued.
    pub superseded: u64,
    /// Given-up items no longer kept (beyond the newest `max_queue`); still counted in `failed`.
    pub failed_dropped: u64,
    /// Sizes of the batches accepted, per [`BATCH_SIZE_BUCKETS`] and a last bucket for the rest.
    pub batch_sizes: [u64; BATCH_SIZE_BUCKETS.len() + 1],
    /// Whether `close` was called.
    pub closed: bool,
}

struct Item<V> {
    op: Op<V>,
    /// Queued at, in the cache clock's nanoseconds.
    since: u64,
    /// Writer calls it took part in.
    attempts: u32,
    /// Writes of its key under way (between their capacity check and their enqueue): the drainer
    /// leaves it queued meanwhile, so the write updates it in place and the bound holds exactly.
    pinned: u32,
}

#[derive(Default)]
struct Counters {
    batches: u64,
    flushed: u64,
    failures: u64,
    failed: u64,
    superseded: u64,
    failed_dropped: u64,
    sizes: [u64; BATCH_SIZE_BUCKETS.len() + 1],
}

struct State<V> {
    order: VecDeque<Arc<str>>,
    items: HashMap<Arc<str>, Item<V>>,
    /// The batch the drainer is writing.
    inflight: Vec<Item<V>>,
    /// Slots taken by writes of new keys under way.
    reserved: usize,
    failed: VecDeque<FailedItem<V>>,
    closed: bool,
    counters: Counters,
    /// Bumped at every change a waiter may look for (room, an empty queue, a closing).
    generation: u64,
    waiters: Vec<Waker>,
}

impl<V> State<V> {
    fn depth(&self) -> usize {
        self.order.len() + self.inflight.len() + self.reserved
    }

    fn notify(&mut self) {
        self.generation += 1;
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    fn give_up(&mut self, item: Item<V>, error: Arc<str>, max: usize) {
        self.counters.failed += 1;
        if self.failed.len() >= max {
            self.failed.pop_front();
            self.counters.failed_dropped += 1;
        }
        self.failed.push_back(FailedItem { op: item.op, attempts: item.attempts, error });
    }
}

struct Shared<V> {
    cache: Cache<V>,
    writer: Box<dyn BatchWriter<V>>,
    cfg: WriteBehindConfig,
    timer: Arc<dyn Timer>,
    state: Mutex<State<V>>,
    /// Set by `close` at its deadline: the drainer stops, abandoning the batch under way.
    stop: AtomicBool,
}

/// A write-behind queue in front of a writer (see the module documentation).
///
/// ```
/// use healcache::{Cache, Op, WriteBehind, WriteBehindConfig};
/// # use healcache::{Spawner, Timer};
/// # use futures::future::BoxFuture;
/// # struct T; impl Timer for T { fn sleep(&self, d: std::time::Duration) -> BoxFuture<'static, ()> {
/// #     Box::pin(async move { std::thread::sleep(d) }) } }
/// # struct S; impl Spawner for S { fn spawn(&self, f: BoxFuture<'static, ()>) {
/// #     std::thread::spawn(move || futures::executor::block_on(f)); } }
/// let cache = Cache::<u64>::builder().timer(T).spawner(S).build().unwrap();
/// let writer = |batch: Vec<Op<u64>>| async move {
///     // write `batch` to the database here
///     Ok::<(), String>(())
/// };
/// let wb = WriteBehind::new(cache.clone(), writer, WriteBehindConfig::default()).unwrap();
/// wb.set("user:1", 42).unwrap();
/// assert_eq!(cache.get("user:1"), Some(42)); // in the cache at once
/// let left = futures::executor::block_on(wb.close(std::time::Duration::from_secs(5)));
/// assert_eq!(left, 0);
/// assert_eq!(wb.stats().flushed_items, 1);
/// ```
pub struct WriteBehind<V: Clone + Send + Sync + 'static> {
    shared: Arc<Shared<V>>,
}

impl<V: Clone + Send + Sync + 'static> fmt::Debug for WriteBehind<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehind").field("config", &self.shared.cfg).finish_non_exhaustive()
    }
}

impl<V: Clone + Send + Sync + 'static> WriteBehind<V> {
    /// A write-behind queue in front of `writer`, for `cache`, its drainer spawned on the cache's
    /// spawner and sleeping on its timer. Fails with [`Error::InvalidConfig`] for a setting out
    /// of bounds, or when the cache has no timer or no spawner.
    pub fn new(cache: Cache<V>, writer: impl BatchWriter<V>, cfg: WriteBehindConfig) -> Result<Self> {
        let (Some(timer), Some(spawner)) = (cache.inner.timer.clone(), cache.inner.spawner.clone()) else {
            let problem = ConfigProblem::Needs("a timer and a spawner (CacheBuilder::timer, CacheBuilder::spawner)");
            return Err(Error::invalid_config("write_behind", problem, None));
        };
        let (wb, drain) = Self::detached(cache, writer, cfg, timer)?;
        spawner.spawn(drain);
        Ok(wb)
    }

    /// [`WriteBehind::new`] whose drainer the caller runs: the returned future sends the batches
    /// (sleeping on `timer`) and ends once the queue is closed and empty, or stopped by `close`'s
    /// deadline. For hosts that poll background work on a thread of their own.
    pub fn detached(
        cache: Cache<V>,
        writer: impl BatchWriter<V>,
        cfg: WriteBehindConfig,
        timer: Arc<dyn Timer>,
    ) -> Result<(Self, BoxFuture<'static, ()>)> {
        cfg.check()?;
        let state = State {
            order: VecDeque::new(),
            items: HashMap::new(),
            inflight: Vec::new(),
            reserved: 0,
            failed: VecDeque::new(),
            closed: false,
            counters: Counters::default(),
            generation: 0,
            waiters: Vec::new(),
        };
        let shared = Arc::new(Shared {
            cache,
            writer: Box::new(writer),
            cfg,
            timer,
            state: Mutex::new(state),
            stop: AtomicBool::new(false),
        });
        let drain = drain(Arc::clone(&shared)).boxed();
        let open: Arc<dyn Closable> = shared.clone();
        let mut queues = QUEUES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        queues.retain(|q| q.strong_count() > 0);
        queues.push(Arc::downgrade(&open));
        drop(queues);
        Ok((WriteBehind { shared }, drain))
    }

    /// The settings.
    pub fn config(&self) -> &WriteBehindConfig {
        &self.shared.cfg
    }

    /// Writes `value` to the cache (with its default TTL) and queues it for the writer. With
    /// [`OnFull::Block`] it blocks the thread while the queue is full (from async code use
    /// [`WriteBehind::set_async`]). Fails with [`Error::QueueFull`] or [`Error::Closed`], or with
    /// the cache's own refusal, and then changes nothing.
    pub fn set(&self, key: &str, value: V) -> Result<u64> {
        self.write(key, value, WriteOptions::default())
    }

    /// [`WriteBehind::set`] with a TTL of its own (`None`: never expires).
    pub fn set_with_ttl(&self, key: &str, value: V, ttl: Option<Duration>) -> Result<u64> {
        let ttl = ttl.map_or(Ttl::Never, Ttl::For);
        self.write(key, value, WriteOptions { ttl, if_version: None })
    }

    /// [`WriteBehind::set`] with the cache's [`WriteOptions`]; answers the entry's new version.
    pub fn write(&self, key: &str, value: V, opts: WriteOptions) -> Result<u64> {
        let slot = self.admit_blocking(key)?;
        self.finish_put(key, value, opts, slot)
    }

    /// [`WriteBehind::write`] that waits for room without blocking the thread.
    pub async fn set_async(&self, key: &str, value: V, opts: WriteOptions) -> Result<u64> {
        let slot = self.admit_async(key).await?;
        self.finish_put(key, value, opts, slot)
    }

    /// Removes `key` from the cache and queues its deletion for the writer (blocking as
    /// [`WriteBehind::set`] does when full). Answers whether the cache held a fresh value. A key
    /// the cache refuses (longer than its `max_key_len`) is refused as its `set` is
    /// ([`Error::KeyTooLong`]), and nothing is queued.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let slot = self.admit_blocking(key)?;
        Ok(self.finish_delete(key, slot))
    }

    /// [`WriteBehind::delete`] that waits for room without blocking the thread.
    pub async fn delete_async(&self, key: &str) -> Result<bool> {
        let slot = self.admit_async(key).await?;
        Ok(self.finish_delete(key, slot))
    }

    fn finish_put(&self, key: &str, value: V, opts: WriteOptions, slot: Slot) -> Result<u64> {
        let mut guard = SlotGuard { shared: &self.shared, key, slot: Some(slot) };
        let version = self.shared.cache.write(key, value.clone(), opts)?;
        guard.enqueue(Op::Put { key: key.into(), value });
        Ok(version)
    }

    fn finish_delete(&self, key: &str, slot: Slot) -> bool {
        let mut guard = SlotGuard { shared: &self.shared, key, slot: Some(slot) };
        let had = self.shared.cache.remove(key).is_some();
        guard.enqueue(Op::Delete { key: key.into() });
        had
    }

    /// Takes a place for `key` (its queued item, or a free slot); `Err(generation)` when full. A
    /// key the cache refuses takes none.
    fn try_admit(&self, key: &str) -> Result<std::result::Result<Slot, u64>> {
        self.shared.cache.inner.store.check_key(key)?;
        let mut st = lock(&self.shared.state);
        if st.closed {
            return Err(Error::Closed { reason: "write-behind queue closed" });
        }
        if let Some(item) = st.items.get_mut(key) {
            item.pinned += 1;
            return Ok(Ok(Slot::Pinned));
        }
        if st.depth() < self.shared.cfg.max_queue {
            st.reserved += 1;
            return Ok(Ok(Slot::Reserved));
        }
        Ok(Err(st.generation))
    }

    fn admit_blocking(&self, key: &str) -> Result<Slot> {
        match self.try_admit(key)? {
            Ok(slot) => Ok(slot),
            Err(_) if matches!(self.shared.cfg.on_full, OnFull::Reject) => self.full(),
            // one thread: the host timer's sleep is the only way to wait
            #[cfg(target_arch = "wasm32")]
            Err(_) => futures::executor::block_on(self.admit_async(key)),
            #[cfg(not(target_arch = "wasm32"))]
            Err(seen) => {
                // parked until the deadline, not on the host timer: its sleeps may only run on
                // the host runtime's threads, and this is the caller's
                let OnFull::Block(timeout) = self.shared.cfg.on_full else { return self.full() };
                let deadline = std::time::Instant::now() + timeout;
                let mut seen = seen;
                loop {
                    if crate::flight::block_until(changed(&self.shared, seen), deadline).is_none() {
                        return self.try_admit(key)?.or_else(|_| self.full());
                    }
                    seen = match self.try_admit(key)? {
                        Ok(slot) => return Ok(slot),
                        Err(seen) => seen,
                    };
                }
            }
        }
    }

    async fn admit_async(&self, key: &str) -> Result<Slot> {
        let OnFull::Block(timeout) = self.shared.cfg.on_full else {
            return self.try_admit(key)?.or_else(|_| self.full());
        };
        let mut expired = self.shared.timer.sleep(timeout);
        loop {
            let seen = match self.try_admit(key)? {
                Ok(slot) => return Ok(slot),
                Err(seen) => seen,
            };
            match future::select(changed(&self.shared, seen), expired).await {
                Either::Left(((), e)) => expired = e,
                Either::Right(_) => return self.try_admit(key)?.or_else(|_| self.full()),
            }
        }
    }

    fn full<T>(&self) -> Result<T> {
        Err(Error::QueueFull { max: self.shared.cfg.max_queue })
    }

    /// Stops accepting writes, waits until every queued item was delivered or given up, or until
    /// `deadline` passes, and answers how many items were left (they are kept with the failed
    /// ones, error `closed before flushed`). A second call waits again for what is left.
    pub async fn close(&self, deadline: Duration) -> usize {
        let sh = &self.shared;
        let mut expired = sh.timer.sleep(deadline);
        let seen = {
            let mut st = lock(&sh.state);
            st.closed = true;
            st.notify();
            st.generation
        };
        let mut seen = seen;
        loop {
            {
                let st = lock(&sh.state);
                if st.depth() == 0 {
                    return 0;
                }
                if st.generation != seen {
                    seen = st.generation;
                    continue;
                }
            }
            match future::select(changed(sh, seen), expired).await {
                Either::Left(((), e)) => expired = e,
                Either::Right(_) => break,
            }
        }
        // The deadline: the drainer stops and what it held is accounted for here.
        sh.stop.store(true, Ordering::Release);
        let mut st = lock(&sh.state);
        let reason: Arc<str> = "closed before flushed".into();
        let mut left: Vec<Item<V>> = st.inflight.drain(..).collect();
        while let Some(k) = st.order.pop_front() {
            if let Some(item) = st.items.remove(&k) {
                left.push(item);
            }
        }
        let n = left.len();
        for item in left {
            st.give_up(item, Arc::clone(&reason), sh.cfg.max_queue);
        }
        st.notify();
        n
    }

    /// For a process that got this queue as a copy of its parent's memory (a forked child), where
    /// the parent's drainer does not run: forgets the items queued, in flight and given up (they
    /// are the parent's, which writes them; sending them here too would write each twice) and
    /// answers a new drainer for this process to run, as [`WriteBehind::detached`] does.
    /// Counters and settings are kept; a closed queue stays closed.
    pub fn after_fork(&self) -> BoxFuture<'static, ()> {
        let sh = &self.shared;
        {
            let mut st = lock(&sh.state);
            st.order.clear();
            st.items.clear();
            st.inflight.clear();
            st.reserved = 0;
            st.failed.clear();
            // wakers of tasks and threads that are not in this process
            st.waiters.clear();
            st.notify();
        }
        drain(Arc::clone(sh)).boxed()
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed
    }

    /// The items given up so far (attempts exhausted, or left at `close`'s deadline), oldest
    /// first, at most the newest `max_queue`; they stay here.
    pub fn errors(&self) -> Vec<FailedItem<V>> {
        lock(&self.shared.state).failed.iter().cloned().collect()
    }

    /// [`WriteBehind::errors`], removing them (a host may write them elsewhere and retry).
    pub fn take_failed(&self) -> Vec<FailedItem<V>> {
        lock(&self.shared.state).failed.drain(..).collect()
    }

    /// The value of every put the queue still holds: queued, being written, or kept as failed.
    /// For hosts that keep the values themselves and hand the queue a handle (the JS bindings):
    /// a write coalesced over, delivered or given up drops its handle without a call, so such a
    /// host frees the values this no longer lists.
    pub fn held_values(&self) -> Vec<V> {
        let st = lock(&self.shared.state);
        let put = |op: &Op<V>| match op {
            Op::Put { value, .. } => Some(value.clone()),
            Op::Delete { .. } => None,
        };
        let queued = st.items.values().map(|i| &i.op);
        let inflight = st.inflight.iter().map(|i| &i.op);
        queued.chain(inflight).chain(st.failed.iter().map(|f| &f.op)).filter_map(put).collect()
    }

    /// The counters and gauges now.
    pub fn stats(&self) -> WriteBehindStats {
        let now = self.shared.cache.precise_nanos();
        let st = lock(&self.shared.state);
        let oldest = st
            .inflight
            .iter()
            .map(|i| i.since)
            .chain(st.order.front().and_then(|k| st.items.get(k)).map(|i| i.since))
            .min();
        let c = &st.counters;
        WriteBehindStats {
            queue_depth: st.depth(),
            queue_capacity: self.shared.cfg.max_queue,
            lag: oldest.map_or(Duration::ZERO, |t| Duration::from_nanos(now.saturating_sub(t))),
            batches: c.batches,
            flushed_items: c.flushed,
            failures: c.failures,
            failed: c.failed,
            superseded: c.superseded,
            failed_dropped: c.failed_dropped,
            batch_sizes: c.sizes,
            closed: st.closed,
        }
    }

    /// The metrics in the Prometheus text format, labelled `cache="<name>"`: the gauges
    /// `healcache_write_behind_queue_depth`, `_queue_capacity`, `_lag_seconds`, the histogram
    /// `_batch_size` and the counters `_flushes_total` (batches), `_failures_total` (writer calls)
    /// and `_failed_total` (items given up).
    pub fn prometheus(&self, name: &str) -> String {
        prometheus_text(&self.stats(), name)
    }
}

/// Every write-behind queue of this process that may still hold items (its drainer or a handle
/// keeps it), for [`close_all`].
static QUEUES: std::sync::Mutex<Vec<std::sync::Weak<dyn Closable>>> = std::sync::Mutex::new(Vec::new());

/// A queue of any value type, as the process's list holds it.
trait Closable: Send + Sync {
    fn close_for(self: Arc<Self>, timeout: Duration) -> BoxFuture<'static, usize>;
    /// Stopped by a close's deadline already: what it held is accounted for.
    fn stopped(&self) -> bool;
}

impl<V: Clone + Send + Sync + 'static> Closable for Shared<V> {
    fn close_for(self: Arc<Self>, timeout: Duration) -> BoxFuture<'static, usize> {
        async move { WriteBehind { shared: self }.close(timeout).await }.boxed()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Closes every write-behind queue of this process still running, all at once, each as
/// [`WriteBehind::close`] does within `timeout` (also queues whose handles were dropped, while
/// their drainer still sends what they hold); answers how many items were left at the deadline,
/// in all (each kept with the failed ones). For a host's exit hook, before the shared tier's
/// ([`crate::tier::close_all`]): Python's `atexit`, Node's `beforeExit`.
pub fn close_all(timeout: Duration) -> impl Future<Output = usize> + Send + 'static {
    let open: Vec<Arc<dyn Closable>> = {
        let mut queues = QUEUES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        queues.retain(|q| q.strong_count() > 0);
        queues.iter().filter_map(std::sync::Weak::upgrade).filter(|q| !q.stopped()).collect()
    };
    future::join_all(open.into_iter().map(|q| q.close_for(timeout))).map(|left| left.into_iter().sum())
}

/// The line a host's exit hook writes on stderr when [`close_all`] left `left` items unsent
/// (nothing when it left none): one text for every language.
pub fn exit_report(left: usize) -> Option<String> {
    (left > 0).then(|| {
        format!(
            "healcache: {left} write-behind item(s) were not written before exit \
             (close() each WriteBehind before exit, and read its failed())\n"
        )
    })
}

impl<V: Clone + Send + Sync + 'static> Drop for WriteBehind<V> {
    /// The last handle gone, nothing can be queued any more: the drainer sends what is left
    /// and ends.
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        st.closed = true;
        st.notify();
    }
}

/// Renders write-behind stats in the Prometheus text exposition format (see
/// [`WriteBehind::prometheus`]).
pub fn prometheus_text(s: &WriteBehindStats, cache_name: &str) -> String {
    let name = crate::prometheus::escape_label(cache_name);
    let mut out = String::with_capacity(2048);
    let mut one = |kind: &str, metric: &str, help: &str, v: String| {
        let m = format!("healcache_write_behind_{metric}");
        let _ = writeln!(out, "# HELP {m} {help}\n# TYPE {m} {kind}\n{m}{{cache=\"{name}\"}} {v}");
    };
    one("gauge", "queue_depth", "Items queued, the batch being written included.", s.queue_depth.to_string());
    one("gauge", "queue_capacity", "Items the queue holds at most.", s.queue_capacity.to_string());
    one("gauge", "lag_seconds", "Age of the oldest queued item.", Decimal(s.lag.as_secs_f64()).to_string());
    one("counter", "flushes_total", "Batches the writer accepted.", s.batches.to_string());
    one("counter", "failures_total", "Writer calls that failed.", s.failures.to_string());
    one("counter", "failed_total", "Items given up after their attempts, or at close.", s.failed.to_string());
    let m = "healcache_write_behind_batch_size";
    let _ = writeln!(out, "# HELP {m} Items per batch the writer accepted.\n# TYPE {m} histogram");
    let mut cum = 0;
    for (i, b) in BATCH_SIZE_BUCKETS.iter().enumerate() {
        cum += s.batch_sizes[i];
        let _ = writeln!(out, "{m}_bucket{{cache=\"{name}\",le=\"{b}\"}} {cum}");
    }
    cum += s.batch_sizes[BATCH_SIZE_BUCKETS.len()];
    let _ = writeln!(out, "{m}_bucket{{cache=\"{name}\",le=\"+Inf\"}} {cum}");
    let _ = writeln!(out, "{m}_sum{{cache=\"{name}\"}} {}", s.flushed_items);
    let _ = writeln!(out, "{m}_count{{cache=\"{name}\"}} {cum}");
    out
}

/// The place a write holds while it writes the cache.
enum Slot {
    /// Its key was queued: that item is pinned.
    Pinned,
    /// A free slot was reserved.
    Reserved,
}

/// Gives the place back if the cache write fails (or panics), so a refused write changes nothing.
struct SlotGuard<'a, V> {
    shared: &'a Shared<V>,
    key: &'a str,
    slot: Option<Slot>,
}

impl<V: Clone + Send + Sync + 'static> SlotGuard<'_, V> {
    fn enqueue(&mut self, op: Op<V>) {
        let Some(slot) = self.slot.take() else { return };
        let since = self.shared.cache.precise_nanos();
        let mut st = lock(&self.shared.state);
        if matches!(slot, Slot::Reserved) {
            st.reserved -= 1;
        }
        match st.items.get_mut(self.key) {
            // last wins, in place: the item keeps its place and its age
            Some(item) => {
                item.op = op;
                item.attempts = 0;
                if matches!(slot, Slot::Pinned) {
                    item.pinned -= 1;
                }
            }
            None => {
                let key = Arc::clone(op.key());
                st.order.push_back(Arc::clone(&key));
                st.items.insert(key, Item { op, since, attempts: 0, pinned: 0 });
            }
        }
        st.notify();
    }
}

impl<V> Drop for SlotGuard<'_, V> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        let mut st = lock(&self.shared.state);
        match slot {
            Slot::Reserved => st.reserved -= 1,
            Slot::Pinned => {
                if let Some(item) = st.items.get_mut(self.key) {
                    item.pinned -= 1;
                }
            }
        }
        st.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::drain::backoff;
    use super::*;

    #[test]
    fn backoff_stays_between_the_bounds() {
        let cfg = WriteBehindConfig::default();
        for attempt in 1..40 {
            for r in [0, u64::MAX / 2, u64::MAX] {
                let d = backoff(&cfg, attempt, r);
                assert!(d >= cfg.retry_min && d <= cfg.retry_max, "{attempt} {r} {d:?}");
            }
        }
        assert_eq!(backoff(&cfg, 30, u64::MAX / 2 + 1), Duration::from_millis(3750));
    }

    #[test]
    fn settings_are_checked_at_their_bounds() {
        let ok = WriteBehindConfig { max_queue: MAX_QUEUE_LIMIT, batch: Some(MAX_QUEUE_LIMIT), ..Default::default() };
        ok.check().unwrap();
        let field = |c: WriteBehindConfig| match c.check() {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let d = WriteBehindConfig::default();
        assert_eq!(field(WriteBehindConfig { max_queue: 0, ..d }), "max_queue");
        assert_eq!(field(WriteBehindConfig { max_queue: MAX_QUEUE_LIMIT + 1, ..d }), "max_queue");
        assert_eq!(field(WriteBehindConfig { batch: Some(0), ..d }), "batch");
        assert_eq!(field(WriteBehindConfig { batch: Some(10_001), ..d }), "batch");
        // not given: 100, or `max_queue` when that is lower
        assert_eq!((d.batch(), WriteBehindConfig { max_queue: 3, ..d }.batch()), (100, 3));
        WriteBehindConfig { max_queue: 1, ..d }.check().unwrap();
        assert_eq!(field(WriteBehindConfig { flush_interval: Duration::ZERO, ..d }), "flush_interval");
        assert_eq!(field(WriteBehindConfig { retry_max: Duration::from_secs(86_401), ..d }), "retry_max");
        assert_eq!(field(WriteBehindConfig { retry_min: Duration::from_secs(6), ..d }), "retry_min");
        assert_eq!(field(WriteBehindConfig { attempts: 0, ..d }), "attempts");
        assert_eq!(field(WriteBehindConfig { attempts: MAX_ATTEMPTS + 1, ..d }), "attempts");
        WriteBehindConfig { attempts: MAX_ATTEMPTS, ..d }.check().unwrap();
    }

    #[test]
    fn prometheus_names_are_stable() {
        let s = WriteBehindStats {
            queue_depth: 3,
            queue_capacity: 10,
            lag: Duration::from_millis(1500),
            batches: 2,
            flushed_items: 7,
            failures: 1,
            failed: 1,
            superseded: 0,
            failed_dropped: 0,
            batch_sizes: [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            closed: false,
        };
        let t = prometheus_text(&s, "a\"b");
        for line in [
            "healcache_write_behind_queue_depth{cache=\"a\\\"b\"} 3",
            "healcache_write_behind_queue_capacity{cache=\"a\\\"b\"} 10",
            "healcache_write_behind_lag_seconds{cache=\"a\\\"b\"} 1.5",
            "healcache_write_behind_flushes_total{cache=\"a\\\"b\"} 2",
            "healcache_write_behind_failures_total{cache=\"a\\\"b\"} 1",
            "healcache_write_behind_failed_total{cache=\"a\\\"b\"} 1",
            "healcache_write_behind_batch_size_bucket{cache=\"a\\\"b\",le=\"5\"} 1",
            "healcache_write_behind_batch_size_bucket{cache=\"a\\\"b\",le=\"+Inf\"} 2",
            "healcache_write_behind_batch_size_count{cache=\"a\\\"b\"} 2",
            "# TYPE healcache_write_behind_batch_size histogram",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} missing in\n{t}");
        }
    }
}
