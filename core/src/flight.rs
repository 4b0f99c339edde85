//! Single-flight: one load per key at a time, shared by every caller. Every call ends; one load
//! per key per flight; a caller's cancellation never cancels work others share; no lock is held
//! across an await or a loader.
//!
//! A flight is a boxed load future wrapped in [`futures::future::Shared`]. The flight table holds
//! only a weak handle; each waiter holds a strong one. So:
//! - the load is owned by the flight, not by the first caller: whichever waiter is polled drives
//!   it, and `Shared` wakes *every* waiter when the load makes progress, so a leader that is
//!   parked unpolled or dropped never stalls the others (a bug moka once had);
//! - when the last waiter is gone the load future is dropped (work nobody waits for stops), and
//!   its guard removes the table entry so the next caller starts afresh;
//! - the loader runs lazily at the first poll, outside the table lock, under `catch_unwind`:
//!   a panic becomes [`Error::LoaderPanicked`] for every waiter and leaves no lock poisoned;
//! - a loader that asks for its own key is detected while it is being polled (a thread-local stack
//!   of flights being polled) and gets [`Error::RecursiveLoad`] instead of waiting on itself;
//! - a blocking thread that joins a load an async caller started does not poll it: that loader may
//!   need the host's runtime (its timers, sockets, `spawn`), which the thread is not in. With a
//!   spawner that takes work from any thread, the runtime drives the load and the thread waits
//!   for its outcome.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use hashbrown::HashMap;

use crate::error::{Error, LoaderError, Result};
use crate::sync::{lock, Mutex};

/// A source of delays for load timeouts, supplied by the host runtime (tokio, JS `setTimeout`).
///
/// The core has no runtime of its own; a cache with `load_timeout` needs one.
///
/// ```
/// use healcache::Timer;
/// use futures::future::BoxFuture;
/// use std::time::Duration;
///
/// struct TokioTimer;
/// impl Timer for TokioTimer {
///     fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
///         Box::pin(tokio::time::sleep(d))
///     }
/// }
/// ```
pub trait Timer: Send + Sync + 'static {
    /// A future that completes after `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

/// Runs a future to completion in the background, on the host's runtime (tokio, the JS event
/// loop). Background refreshes need one; the core has no runtime of its own.
pub trait Spawner: Send + Sync + 'static {
    /// Starts `fut`; it must be polled to completion unless the runtime shuts down.
    fn spawn(&self, fut: BoxFuture<'static, ()>);

    /// Whether work spawned now is kept running until it ends. Edge runtimes stop a request's
    /// work once it has answered, unless it was handed to their `waitUntil`: a background load
    /// spawned while this is false may never finish, so the cache does not make later callers
    /// wait on it (the next caller of its key starts a new load). Defaults to: true.
    fn keeps_alive(&self) -> bool {
        true
    }

    /// Whether [`Spawner::spawn`] may be called from a thread outside the runtime (tokio's
    /// `Handle::spawn` may; `tokio::spawn` panics there). When true, a thread blocked in
    /// [`crate::Cache::get_or_load_blocking`] that joins a load an async caller started hands that
    /// load to the runtime instead of polling the async loader itself, off the runtime it may
    /// need (its timers, sockets, `spawn`). Defaults to: false (the thread polls it).
    fn spawns_from_any_thread(&self) -> bool {
        false
    }
}

pub(crate) type LoadFuture<V> = BoxFuture<'static, Result<V>>;
pub(crate) type SharedLoad<V> = Shared<LoadFuture<V>>;

static NEXT_FLIGHT: AtomicU64 = AtomicU64::new(1);

/// Flights with a lower id were started before this process forked (0: it did not): no thread
/// here runs them, so they are not joined, and count for nothing. (No fork on wasm32.)
#[cfg(not(target_arch = "wasm32"))]
static FORK_FLOOR: AtomicU64 = AtomicU64::new(0);

/// Tells every cache of this process that it is the child of a `fork()`: the loads the parent had
/// under way have no thread here to end them, so a caller of one of their keys starts a new load
/// instead of waiting for good, and they no longer count as loads in flight. Call it in the child
/// only, before it uses a cache (Python's package does, from `os.register_at_fork`).
#[cfg(not(target_arch = "wasm32"))]
pub fn after_fork() {
    FORK_FLOOR.store(NEXT_FLIGHT.load(Relaxed), Relaxed);
}

/// Whether this process is the child of a fork that happened after a flight started.
#[inline]
fn forked() -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    return FORK_FLOOR.load(Relaxed) != 0;
    #[cfg(target_arch = "wasm32")]
    false
}

/// Whether flight `id` was started in this process.
#[inline]
fn ours(id: u64) -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    return id >= FORK_FLOOR.load(Relaxed);
    #[cfg(target_arch = "wasm32")]
    {
        let _ = id;
        true
    }
}

thread_local! {
    /// Flights whose loader is being polled on this thread right now, innermost last.
    static POLLING: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn is_polling(id: u64) -> bool {
    POLLING.with(|p| p.borrow().contains(&id))
}

/// Counters of the flight table.
#[derive(Default)]
pub(crate) struct FlightCounters {
    pub loads: AtomicU64,
    pub coalesced: AtomicU64,
    pub load_errors: AtomicU64,
    pub load_panics: AtomicU64,
    pub load_timeouts: AtomicU64,
}

/// A flight's id, a weak handle on its shared load, whether later callers may wait on it
/// (false once it was left to a background task the host may stop: see [`Spawner::keeps_alive`]),
/// and whether its loader is a blocking one.
type FlightEntry<V> = (u64, WeakShared<LoadFuture<V>>, bool, bool);

pub(crate) struct Flights<V> {
    /// Keyed with the cache's seed (as the store is), not a process-global random state.
    map: Mutex<HashMap<Arc<str>, FlightEntry<V>, foldhash::fast::FixedState>>,
    max: usize,
    pub counters: FlightCounters,
}

/// What a caller joined: a new or existing flight.
pub(crate) struct Joined<V> {
    pub id: u64,
    pub load: SharedLoad<V>,
    /// This caller started the flight (its loader runs); otherwise it joined one under way.
    pub started: bool,
    /// The flight's loader is a blocking one (run by the thread that started it); wasm32 has none.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub blocking: bool,
}

impl<V: Clone + Send + Sync + 'static> Flights<V> {
    pub fn new(max: usize, seed: u64) -> Self {
        let hasher = foldhash::fast::FixedState::with_seed(seed ^ 0xf11e_5eed);
        Flights { map: Mutex::new(HashMap::with_hasher(hasher)), max, counters: FlightCounters::default() }
    }

    pub fn in_flight(&self) -> usize {
        let map = lock(&self.map);
        if !forked() {
            return map.len();
        }
        map.values().filter(|(id, ..)| ours(*id)).count()
    }

    /// Joins the flight of `key`, or starts one with `make(id)` when there is none (`blocking`:
    /// with a blocking loader). `recheck` runs under the table lock before starting: a flight that just finished has
    /// already stored its value, so a late caller takes that value instead of loading again.
    pub fn join_or_start(
        &self,
        key: &str,
        blocking: bool,
        recheck: impl FnOnce() -> Option<V>,
        make: impl FnOnce(u64) -> LoadFuture<V>,
    ) -> Result<std::result::Result<Joined<V>, V>> {
        // Strong handles taken under the lock are dropped after it: dropping the last one runs
        // the flight guard, which takes this lock again.
        let mut dead: Vec<SharedLoad<V>> = Vec::new();
        let res = {
            let mut map = lock(&self.map);
            if let Some((id, weak, true, by_thread)) = map.get(key).filter(|(id, ..)| ours(*id)) {
                let (id, blocking) = (*id, *by_thread);
                if let Some(load) = weak.upgrade() {
                    if is_polling(id) {
                        dead.push(load);
                        return Err(Error::RecursiveLoad);
                    }
                    self.counters.coalesced.fetch_add(1, Relaxed);
                    return Ok(Ok(Joined { id, load, started: false, blocking }));
                }
            }
            if let Some(v) = recheck() {
                return Ok(Err(v));
            }
            if map.len() >= self.max {
                // a flight from before a fork is dropped unasked: no thread here would end it
                map.retain(|_, (id, w, _, _)| match ours(*id).then(|| w.upgrade()).flatten() {
                    Some(s) => {
                        dead.push(s);
                        true
                    }
                    None => false,
                });
                if map.len() >= self.max {
                    drop(map);
                    drop(dead);
                    return Err(Error::TooManyLoads { max: self.max });
                }
            }
            let id = NEXT_FLIGHT.fetch_add(1, Relaxed);
            let load = make(id).shared();
            let weak = load.downgrade().expect("a fresh Shared has not completed");
            // replaces a flight nobody may wait on: its guard removes only its own entry
            if let Some(old) = map
                .insert(Arc::from(key), (id, weak, true, blocking))
                .and_then(|(id, w, _, _)| ours(id).then(|| w.upgrade()).flatten())
            {
                dead.push(old);
            }
            Ok(Ok(Joined { id, load, started: true, blocking }))
        };
        drop(dead);
        res
    }

    /// Whether a load of `key` is under way (one later callers may wait on or not).
    pub fn loading(&self, key: &str) -> bool {
        // the strong handle is dropped after the lock: dropping the last one takes the lock
        let load = lock(&self.map).get(key).filter(|(id, ..)| ours(*id)).and_then(|(_, w, _, _)| w.upgrade());
        load.is_some()
    }

    /// Marks flight `id` of `key` as one later callers must not wait on: it was left to a
    /// background task the host may stop before it ends.
    pub fn abandon(&self, key: &str, id: u64) {
        if let Some((cur, _, joinable, _)) = lock(&self.map).get_mut(key) {
            if *cur == id {
                *joinable = false;
            }
        }
    }

    /// Removes the entry of flight `id` (if still the current one for `key`).
    pub fn finish(&self, key: &str, id: u64) {
        let removed = {
            let mut map = lock(&self.map);
            match map.get(key) {
                Some((cur, _, _, _)) if *cur == id => map.remove(key),
                _ => None,
            }
        };
        drop(removed);
    }
}

/// Polls a loader with its flight marked as "being polled" and panics caught.
pub(crate) struct Tracked<F> {
    pub id: u64,
    pub fut: F,
}

impl<V, F> Future for Tracked<F>
where
    F: Future<Output = std::result::Result<V, LoaderError>> + Unpin,
{
    type Output = Result<V>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        POLLING.with(|p| p.borrow_mut().push(id));
        let r = catch_unwind(AssertUnwindSafe(|| self.fut.poll_unpin(cx)));
        POLLING.with(|p| {
            let mut p = p.borrow_mut();
            if let Some(pos) = p.iter().rposition(|&x| x == id) {
                p.remove(pos);
            }
        });
        match r {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(v))) => Poll::Ready(Ok(v)),
            Ok(Poll::Ready(Err(e))) => Poll::Ready(Err(Error::Loader(e))),
            Err(p) => Poll::Ready(Err(Error::panicked(&*p))),
        }
    }
}

/// Waits for a joined flight; refuses to wait on a flight that is polling this very waiter.
pub(crate) async fn wait<V: Clone + Send + Sync + 'static>(joined: Joined<V>) -> Result<V> {
    if is_polling(joined.id) {
        return Err(Error::RecursiveLoad);
    }
    joined.load.await
}

/// Blocks the current thread on a flight, up to `timeout` (native only). A flight another caller
/// started with an async loader is handed to `spawner` (the host's runtime) to drive when this
/// thread may spawn on it and the work is kept running; otherwise the thread drives it, as any
/// waiter may.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn wait_blocking<V: Clone + Send + Sync + 'static>(
    joined: Joined<V>,
    timeout: Option<Duration>,
    interrupt: Option<&mut Interrupt<'_>>,
    spawner: Option<&dyn Spawner>,
) -> Waited<V> {
    use std::thread;

    if is_polling(joined.id) {
        return Waited::Done(Err(Error::RecursiveLoad));
    }
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let waker = unparker();
    let mut cx = Context::from_waker(&waker);
    let joined_one = !joined.started;
    let mut awaited = match spawner {
        Some(spawner)
            if joined_one && !joined.blocking && spawner.spawns_from_any_thread() && spawner.keeps_alive() =>
        {
            let slot = Arc::new(Mutex::new(None));
            let (to, me, load) = (slot.clone(), thread::current(), joined.load);
            spawner.spawn(
                async move {
                    let r = load.await;
                    *lock(&to) = Some(r);
                    me.unpark();
                }
                .boxed(),
            );
            Awaited::Landing(slot)
        }
        _ => Awaited::Polled(joined.load),
    };
    let mut interrupt = interrupt;
    loop {
        let done = match &mut awaited {
            Awaited::Polled(load) => match load.poll_unpin(&mut cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            },
            Awaited::Landing(slot) => lock(slot).take(),
        };
        if let Some(v) = done {
            return Waited::Done(v);
        }
        // a wait the host may end: asked before each park, and parks are short
        let mut most = None;
        if let Some(ask) = interrupt.as_mut() {
            if let Err(e) = ask(joined_one) {
                return Waited::Interrupted(e);
            }
            most = Some(INTERRUPT_EVERY);
        }
        let now = std::time::Instant::now();
        let until_deadline = match deadline {
            Some(d) if now >= d => {
                return Waited::Done(Err(Error::LoadTimeout { after_ms: timeout.map_or(0, |t| t.as_millis() as u64) }));
            }
            Some(d) => Some(d - now),
            None => None,
        };
        match (until_deadline, most) {
            (None, None) => thread::park(),
            (Some(t), None) | (None, Some(t)) => thread::park_timeout(t),
            (Some(a), Some(b)) => thread::park_timeout(a.min(b)),
        }
    }
}

/// A waker that unparks this thread (native only).
#[cfg(not(target_arch = "wasm32"))]
fn unparker() -> std::task::Waker {
    struct Unparker(std::thread::Thread);
    impl std::task::Wake for Unparker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    std::task::Waker::from(std::sync::Arc::new(Unparker(std::thread::current())))
}

/// Polls `fut` on this thread, parked between polls, until it completes or `deadline` passes
/// (`None`) (native only). A blocking wait with a deadline needs no host timer, whose sleeps may
/// only run on the host runtime's threads (tokio's), not on the caller's.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn block_until<F: Future>(fut: F, deadline: std::time::Instant) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let waker = unparker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// What a blocked thread waits on: the load it polls itself, or the slot where the runtime's task
/// that drives it leaves its outcome.
#[cfg(not(target_arch = "wasm32"))]
enum Awaited<V> {
    Polled(SharedLoad<V>),
    Landing(Arc<Mutex<Option<Result<V>>>>),
}

/// How long a thread waiting on a load with an [`Interrupt`] parks at most between two asks.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const INTERRUPT_EVERY: Duration = Duration::from_millis(50);

/// A host's say on a blocked wait, asked before each park: `Err` ends the wait with that error
/// (the load goes on for the others). Its argument: whether the load waited on is another
/// caller's (joined) rather than one this call started.
pub type Interrupt<'a> = dyn FnMut(bool) -> Result<()> + 'a;

/// How a blocking wait ended.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) enum Waited<V> {
    /// The flight's outcome (or the load timeout).
    Done(Result<V>),
    /// The host's [`Interrupt`] ended it.
    Interrupted(Error),
}
