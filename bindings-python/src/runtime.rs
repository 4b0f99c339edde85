//! The one place that polls futures, parks threads, spawns background work and releases the GIL.
//!
//! Asyncio calls. A core flight runs its loader lazily at its first poll, so `get_or_load`,
//! `fetch` and `verify_now` hand their core future to [`drive`]: it is polled first right there,
//! on the event loop's thread, then by the loop's [`LoopDriver`]. Wakers (called on any thread)
//! only queue the waiter and write a byte to a socket the loop watches, so no foreign thread ever
//! runs Python code to hand a result back. (A thread that does so while the interpreter shuts down
//! is killed by CPython with `pthread_exit`, which aborts the process when it unwinds through Rust
//! frames: seen with a runtime-thread completion scheme.)
//!
//! Background work. The core spawns refreshes (stale-while-revalidate, XFetch, refresh-ahead, the
//! tail of a soft-timed-out load) only from inside `fetch`; [`DriverSpawner`] hands them to the
//! driver of the loop whose call started them, so a refresh's Python loader runs on that loop,
//! awaited by nobody.
//!
//! Threads. [`detach`] releases the GIL around a blocking core call; [`block_on_attached`] runs a
//! future on the caller's thread, parked between polls with the GIL released; [`HealLoop`] is the
//! healer's background future, polled by a Python daemon thread. Load timeouts sleep on a
//! one-thread tokio runtime ([`TokioTimer`]) that never touches Python.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use healcache::{Healer, Spawner, Timer};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

use crate::convert::{Reply, Value};
use crate::error::{errors, to_pyerr};

/// A lock whose holder panicked is still usable: no state here is left half-changed by a panic.
pub(crate) fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

static BRIDGE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// `healcache._bridge`, the Python side of the asyncio hand-off.
pub(crate) fn bridge(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    BRIDGE.get_or_try_init(py, || Ok(py.import("healcache._bridge")?.unbind())).map(|m| m.bind(py))
}

/// The running loop and a copy of the caller's contextvars (`RuntimeError` outside a loop).
pub(crate) fn running_loop(py: Python<'_>) -> PyResult<(Bound<'_, PyAny>, Bound<'_, PyAny>)> {
    static GET_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static COPY_CONTEXT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get_loop =
        GET_LOOP.get_or_try_init(py, || Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind()))?;
    let copy = COPY_CONTEXT
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("contextvars")?.getattr("copy_context")?.unbind()))?;
    Ok((get_loop.bind(py).call0()?, copy.bind(py).call0()?))
}

/// Starts an asyncio call: `start` gets the cache, the running event loop and a copy of the
/// caller's contextvars, and returns the awaitable. Outside a running loop (as in
/// `asyncio.run(cache.get_or_load(...))` or `loop.run_until_complete(...)`), where there is no
/// loop to start on yet, the call is a coroutine that starts once awaited, as an `async def`
/// method's call is.
pub(crate) fn on_loop<'py, T, F>(slf: &Bound<'py, T>, start: F) -> PyResult<Bound<'py, PyAny>>
where
    T: pyo3::PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
    F: for<'a> Fn(&T, &Bound<'a, PyAny>, Bound<'a, PyAny>) -> PyResult<Bound<'a, PyAny>> + Send + Sync + 'static,
{
    let py = slf.py();
    if let Ok((event_loop, context)) = running_loop(py) {
        return start(slf.get(), &event_loop, context);
    }
    let this = slf.clone().unbind();
    let later = pyo3::types::PyCFunction::new_closure(py, None, None, move |args, _| -> PyResult<Py<PyAny>> {
        let (event_loop, context) = running_loop(args.py())?;
        start(this.get(), &event_loop, context).map(Bound::unbind)
    })?;
    bridge(py)?.getattr(pyo3::intern!(py, "deferred"))?.call1((later,))
}

/// Runs `f` with the GIL released (a blocking core call that may wait for other threads).
pub(crate) fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(f)
}

/// Runs a core future to its end on this thread with the GIL released (it waits for other
/// threads, which may need the GIL, such as a write-behind's drainer).
pub(crate) fn block_detached<F: Future + Send>(py: Python<'_>, fut: F) -> F::Output
where
    F::Output: Send,
{
    py.detach(|| futures::executor::block_on(fut))
}

/// The wait of one asyncio call: a core future, polled on the event loop's thread.
pub(crate) type WaitFuture = Pin<Box<dyn Future<Output = healcache::Result<Reply>> + Send>>;

/// Hands a call's future to asyncio: the asyncio future it settles, polled first right here (on
/// the loop's thread) and then by the loop's driver.
pub(crate) fn drive<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
    mut fut: WaitFuture,
) -> PyResult<Bound<'py, PyAny>> {
    let done = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
    // First poll here, on the loop's thread: a hit (or a sync loader) completes at once
    // without the driver, and a new flight's loader starts right here. Background work the
    // core spawns meanwhile (a refresh) goes to the loop's driver.
    let (poll, spawned) = collect_spawned(|| fut.as_mut().poll(&mut Context::from_waker(Waker::noop())));
    let driver = if poll.is_pending() || !spawned.is_empty() {
        Some(bridge(py)?.getattr(pyo3::intern!(py, "driver"))?.call1((event_loop,))?)
    } else {
        None
    };
    if let Some(d) = &driver {
        let d = d.cast::<LoopDriver>()?.get();
        for job in spawned {
            d.spawn(job);
        }
    }
    match poll {
        Poll::Ready(r) => complete(py, &done, r)?,
        Poll::Pending => {
            if let Some(d) = &driver {
                LoopDriver::adopt(d.cast::<LoopDriver>()?, fut, &done)?;
            }
        }
    }
    Ok(done)
}

/// Hands a waiter's outcome to its asyncio future (loop thread), unless it was cancelled.
fn complete(py: Python<'_>, done: &Bound<'_, PyAny>, r: healcache::Result<Reply>) -> PyResult<()> {
    if done.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    match r {
        Ok(reply) => {
            done.call_method1(pyo3::intern!(py, "set_result"), (reply.into_py(py)?,))?;
        }
        Err(e) => {
            let exc = to_pyerr(py, e).into_value(py);
            done.call_method1(pyo3::intern!(py, "set_exception"), (&exc,))?;
            // A load cut short by cancellation (its loader's task cancelled, as asyncio.run does
            // at its end) is not reported on a future nobody awaits, as asyncio reports no
            // cancelled task; marked as read, and an awaiting caller still gets `Cancelled`.
            if exc.bind(py).is_instance(&errors(py)?.getattr(pyo3::intern!(py, "Cancelled"))?)? {
                done.call_method0(pyo3::intern!(py, "exception"))?;
            }
        }
    }
    Ok(())
}

/// What a driver polls: a call with its asyncio future, or background work of the core.
enum Job {
    Call(WaitFuture, Py<PyAny>),
    Background(BoxFuture<'static, ()>),
}

thread_local! {
    /// Background work the core spawned while a call was polled on this thread (see
    /// [`collect_spawned`]); `None` outside such a poll.
    static SPAWNED: RefCell<Option<Vec<BoxFuture<'static, ()>>>> = const { RefCell::new(None) };
}

/// The core's [`Spawner`]: background refreshes run on the driver of the event loop whose call
/// started them.
///
/// The core spawns only from inside `fetch`, which is polled only on an event loop's thread, by
/// [`drive`] or a [`LoopDriver`], both inside [`collect_spawned`]; they hand what was spawned to
/// that loop's driver once the poll is over. So a refresh calls its Python loader on the loop
/// that made the call, runs to completion whether or not anyone awaits it, and never touches
/// Python from a foreign thread (nothing to kill at interpreter exit).
pub(crate) struct DriverSpawner;

impl Spawner for DriverSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        let rejected = SPAWNED.with(|s| match &mut *s.borrow_mut() {
            Some(jobs) => {
                jobs.push(fut);
                None
            }
            None => Some(fut),
        });
        // Not reached (see above); were it, dropping the refresh only ends its flight early.
        drop(rejected);
    }
}

/// Runs `poll` collecting what the core spawns meanwhile (nested calls collect their own).
fn collect_spawned<T>(poll: impl FnOnce() -> T) -> (T, Vec<BoxFuture<'static, ()>>) {
    struct Restore(Option<Option<Vec<BoxFuture<'static, ()>>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                let mine = SPAWNED.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
                drop(mine); // a panic unwinds through here: the jobs are dropped
            }
        }
    }
    let mut restore = Restore(Some(SPAWNED.with(|s| s.borrow_mut().replace(Vec::new()))));
    let r = poll();
    let outer = restore.0.take().unwrap_or_default();
    let mine = SPAWNED.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    (r, mine.unwrap_or_default())
}

/// Polls the waiting `get_or_load` / `fetch` calls and the background refreshes of one event
/// loop, on that loop's thread.
///
/// `healcache._bridge.driver(loop)` makes one per loop and registers `run` as the reader of
/// `fileno()`. A waker, on any thread, queues its call's id and writes one byte (only when none
/// is pending); `run` then polls the queued calls and settles their asyncio futures.
#[pyclass(frozen, name = "_LoopDriver", module = "healcache._healcache")]
pub(crate) struct LoopDriver {
    wake: Arc<Wakeup>,
    reader: UnixStream,
    next_id: AtomicU64,
    /// Calls still waiting; only the loop's thread touches them.
    waiting: Mutex<HashMap<u64, Job>>,
}

struct Wakeup {
    ready: Mutex<Vec<u64>>,
    armed: AtomicBool,
    writer: UnixStream,
}

struct CallWaker {
    id: u64,
    wake: Arc<Wakeup>,
}

impl Wake for CallWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        relock(&self.wake.ready).push(self.id);
        if !self.wake.armed.swap(true, Ordering::AcqRel) {
            // Non-blocking: a full socket already holds a pending wake-up.
            let _ = (&self.wake.writer).write(&[1]);
        }
    }
}

#[pymethods]
impl LoopDriver {
    #[new]
    fn new() -> PyResult<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(LoopDriver {
            wake: Arc::new(Wakeup { ready: Mutex::new(Vec::new()), armed: AtomicBool::new(false), writer }),
            reader,
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// The file descriptor the loop watches.
    fn fileno(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// Polls every woken call (the loop's reader callback).
    fn run(&self, py: Python<'_>) {
        let mut buf = [0u8; 256];
        while matches!((&self.reader).read(&mut buf), Ok(n) if n > 0) {}
        self.wake.armed.store(false, Ordering::Release);
        let ids = std::mem::take(&mut *relock(&self.wake.ready));
        for id in ids {
            self.poll(py, id);
        }
    }
}

impl LoopDriver {
    fn adopt(slf: &Bound<'_, LoopDriver>, fut: WaitFuture, done: &Bound<'_, PyAny>) -> PyResult<()> {
        let this = slf.get();
        let id = this.next_id.fetch_add(1, Ordering::Relaxed);
        done.call_method1("add_done_callback", (Forget { driver: slf.clone().unbind(), id },))?;
        relock(&this.waiting).insert(id, Job::Call(fut, done.clone().unbind()));
        this.poll(slf.py(), id);
        Ok(())
    }

    /// Takes background work of the core; it is first polled at the loop's next turn.
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        relock(&self.waiting).insert(id, Job::Background(fut));
        Arc::new(CallWaker { id, wake: Arc::clone(&self.wake) }).wake_by_ref();
    }

    fn poll(&self, py: Python<'_>, id: u64) {
        // Taken out while polled: polling may run Python code that calls back into this driver.
        let Some(job) = relock(&self.waiting).remove(&id) else { return };
        let waker = Waker::from(Arc::new(CallWaker { id, wake: Arc::clone(&self.wake) }));
        let mut cx = Context::from_waker(&waker);
        let (pending, spawned) = collect_spawned(|| match job {
            Job::Call(mut fut, done) => match fut.as_mut().poll(&mut cx) {
                Poll::Pending => Some(Job::Call(fut, done)),
                Poll::Ready(r) => {
                    if let Err(e) = complete(py, done.bind(py), r) {
                        e.write_unraisable(py, Some(done.bind(py)));
                    }
                    None
                }
            },
            Job::Background(mut fut) => fut.as_mut().poll(&mut cx).is_pending().then_some(Job::Background(fut)),
        });
        if let Some(job) = pending {
            relock(&self.waiting).insert(id, job);
        }
        for job in spawned {
            self.spawn(job);
        }
    }
}

/// Done-callback of a call's asyncio future: a cancelled call stops waiting (others go on).
#[pyclass(frozen)]
struct Forget {
    driver: Py<LoopDriver>,
    id: u64,
}

#[pymethods]
impl Forget {
    fn __call__(&self, py: Python<'_>, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0(pyo3::intern!(py, "cancelled"))?.is_truthy()? {
            let call = relock(&self.driver.get().waiting).remove(&self.id);
            drop(call); // leaves the flight, outside the lock
        }
        Ok(())
    }
}

/// Runs `fut` on this thread: polls with the GIL held (the interval's comparator and sources
/// need it), waits for a wake-up with the GIL released, and checks for signals (Ctrl-C) between
/// polls; a signal drops the future, which cancels what it was waiting for.
pub(crate) fn block_on_attached<F: Future>(py: Python<'_>, fut: F) -> PyResult<F::Output> {
    struct Unpark {
        thread: std::thread::Thread,
        woken: AtomicBool,
    }
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref()
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.woken.store(true, Ordering::Release);
            self.thread.unpark();
        }
    }
    let mut fut = std::pin::pin!(fut);
    let signal = Arc::new(Unpark { thread: std::thread::current(), woken: AtomicBool::new(false) });
    let waker = Waker::from(Arc::clone(&signal));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        let s = Arc::clone(&signal);
        detach(py, move || {
            if !s.woken.swap(false, Ordering::AcqRel) {
                std::thread::park_timeout(Duration::from_millis(50));
            }
        });
        py.check_signals()?;
    }
}

/// The background loop of one cache: the core's `Healer::run` future, polled by a Python daemon
/// thread (`healcache._healing._heal`) each time its waker writes a byte to `fileno()`.
#[pyclass(frozen, name = "_HealLoop", module = "healcache._healcache")]
pub(crate) struct HealLoop {
    run: Mutex<Option<BoxFuture<'static, ()>>>,
    /// Makes the loop's future anew in a forked child, where the inherited one waits on the
    /// parent's threads.
    remake: Remake,
    stopped: AtomicBool,
    /// The socket pair of wake-ups: made anew in a forked child, whose copy the parent shares.
    wake: Mutex<(UnixStream, Arc<SocketWaker>)>,
}

type Remake = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

fn wake_pair() -> std::io::Result<(UnixStream, Arc<SocketWaker>)> {
    let (reader, writer) = UnixStream::pair()?;
    writer.set_nonblocking(true)?;
    Ok((reader, Arc::new(SocketWaker(writer))))
}

struct SocketWaker(UnixStream);

impl Wake for SocketWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Non-blocking: a full socket already holds a pending wake-up.
        let _ = (&self.0).write(&[1]);
    }
}

impl HealLoop {
    pub fn new(healer: Healer<Value>) -> std::io::Result<Self> {
        let remake = move || {
            let healer = healer.clone();
            async move { healer.run().await }.boxed()
        };
        Self::background(remake(), Box::new(remake))
    }

    /// Any background future of the core (a write-behind's drainer), polled the same way;
    /// `remake` makes it anew in a forked child.
    pub fn background(run: BoxFuture<'static, ()>, remake: Remake) -> std::io::Result<Self> {
        Ok(HealLoop {
            run: Mutex::new(Some(run)),
            remake,
            stopped: AtomicBool::new(false),
            wake: Mutex::new(wake_pair()?),
        })
    }

    fn waker(&self) -> Arc<SocketWaker> {
        Arc::clone(&relock(&self.wake).1)
    }
}

#[pymethods]
impl HealLoop {
    /// The descriptor the thread reads wake-ups from (blocking).
    fn fileno(&self) -> i32 {
        relock(&self.wake).0.as_raw_fd()
    }

    /// In a forked child (called before its thread starts): new wake-up sockets and a new
    /// future, unless the loop was stopped; whether it should run here.
    fn after_fork(&self) -> PyResult<bool> {
        if self.stopped.load(Ordering::Acquire) {
            return Ok(false);
        }
        *relock(&self.wake) = wake_pair()?;
        let inherited = relock(&self.run).replace((self.remake)());
        // Not dropped: its timers and tasks belong to the parent's threads, which are not here.
        std::mem::forget(inherited);
        Ok(true)
    }

    /// Polls the loop once (GIL held); false when it is over (stopped), and the thread ends.
    fn step(&self) -> bool {
        let mut run = relock(&self.run);
        if self.stopped.load(Ordering::Acquire) {
            let fut = run.take();
            drop(run);
            drop(fut); // cancels the interval under way, if any
            return false;
        }
        let Some(fut) = run.as_mut() else { return false };
        let waker = Waker::from(self.waker());
        match fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(()) => {
                *run = None;
                false
            }
            Poll::Pending => true,
        }
    }

    /// Ends the loop at its next step (from any thread, without waiting).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.waker().wake_by_ref();
    }
}

/// Load timeouts on the process's I/O thread (`healcache_rt`, which a forked child makes anew:
/// the parent's thread does not run there). The returned future only awaits the spawned sleep,
/// so it works from any thread or executor (a thread blocked in `get_or_load_sync` may poll it),
/// and that thread never touches Python.
pub(crate) struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        // dropped early (the load ended first), the sleep is aborted
        let task = healcache_rt::spawn(async move { tokio::time::sleep(d).await });
        Box::pin(async move {
            let _ = task.await;
        })
    }
}

/// `healcache::after_fork`, for `healcache._healing`'s hook in a forked child: the loads the
/// parent had under way are not joined there (no thread of the child would end them).
#[pyfunction]
pub(crate) fn _after_fork() {
    healcache::after_fork();
}
