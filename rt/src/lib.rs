//! The I/O runtime shared by healcache's native crates (`healcache-http`, `healcache-redis`):
//! one tokio worker thread per process, started at first use.
//!
//! tokio does not survive `fork()`: a child process inherits the parent's runtime handle but not
//! its worker thread, so anything it spawns there never runs (a pre-forking server such as
//! gunicorn with `preload_app`, or `multiprocessing` with the fork start method, hangs on its
//! first request). The runtime is therefore keyed by process id: a process that finds one made by
//! another pid leaks that one (its threads do not exist here, so it cannot be shut down) and
//! builds its own. Connections kept by callers follow the same rule with [`ForkGuard`].
//!
//! [`tick`] keeps a clock in memory for readers that cannot afford a clock call per read (the
//! Node read mirror).
//!
//! Futures returned by [`spawn`] work under any executor (the Python loop driver, napi's tokio,
//! `futures::executor::block_on`), and dropping one aborts its task.

pub mod tick;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Mutex, Once};
use std::task::{Context, Poll};

use futures::FutureExt;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::{JoinError, JoinHandle};

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// This process's id, 0 until first asked.
static PID: AtomicU32 = AtomicU32::new(0);

/// This process's id, without a system call each time: glibc no longer caches `getpid`, and
/// every operation on a connection checks who made it ([`ForkGuard`]). A fork handler sets it
/// again in the child. (No crate keeps a fork-aware pid; hence these few lines.)
pub fn pid() -> u32 {
    match PID.load(Relaxed) {
        0 => {
            static HANDLER: Once = Once::new();
            // registered before the first store, so a fork after the store always refreshes it
            HANDLER.call_once(|| {
                #[cfg(unix)]
                // SAFETY: the handler only calls getpid, which is async-signal-safe
                unsafe {
                    libc::pthread_atfork(None, None, Some(forked));
                }
            });
            let pid = std::process::id();
            PID.store(pid, Relaxed);
            pid
        }
        pid => pid,
    }
}

#[cfg(unix)]
extern "C" fn forked() {
    PID.store(std::process::id(), Relaxed);
}

thread_local! {
    static ON_IO_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the caller runs on this process's I/O thread (in a task of [`spawn`]): a future
/// polled there may use the runtime's timer and connections directly, without a task of its own.
pub fn on_io_thread() -> bool {
    ON_IO_THREAD.with(Cell::get)
}

/// The runtime of this process (built now if none was built in this process).
pub fn handle() -> Handle {
    let pid = pid();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return rt.handle().clone();
        }
    }
    // The parent's runtime, if any, is leaked: its worker thread is not in this process.
    let rt: &'static Runtime = Box::leak(Box::new(
        Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("healcache-io")
            .on_thread_start(|| ON_IO_THREAD.with(|c| c.set(true)))
            .enable_all()
            .build()
            .expect("healcache: cannot start the I/O thread"),
    ));
    *slot = Some((pid, rt));
    rt.handle().clone()
}

/// Runs `fut` on this process's runtime; the returned future aborts it when dropped.
pub fn spawn<F>(fut: F) -> AbortOnDrop<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    AbortOnDrop(handle().spawn(fut))
}

/// A spawned task that is aborted when its waiter goes away.
pub struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_unpin(cx)
    }
}

/// The core's [`healcache::Timer`] on this process's runtime: a sleep is registered with the
/// runtime's timer when made, so it can be polled under any executor without a task of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct IoTimer;

impl healcache::Timer for IoTimer {
    fn sleep(&self, d: std::time::Duration) -> futures::future::BoxFuture<'static, ()> {
        let _in_runtime = handle().enter();
        tokio::time::sleep(d).boxed()
    }
}

/// The core's [`healcache::Spawner`] on this process's runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct IoSpawner;

impl healcache::Spawner for IoSpawner {
    fn spawn(&self, fut: futures::future::BoxFuture<'static, ()>) {
        handle().spawn(fut);
    }

    // `Handle::spawn` takes work from any thread
    fn spawns_from_any_thread(&self) -> bool {
        true
    }
}

/// A value that belongs to the process that made it: [`ForkGuard::get`] answers `None` in any
/// other process (a forked child), so a connection made by the parent is never used by a child.
#[derive(Debug)]
pub struct ForkGuard<T> {
    pid: u32,
    value: T,
}

impl<T> ForkGuard<T> {
    /// `value`, owned by the current process.
    pub fn new(value: T) -> Self {
        ForkGuard { pid: pid(), value }
    }

    /// The value, if this is the process that made it.
    pub fn get(&self) -> Option<&T> {
        (self.pid == pid()).then_some(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_work_runs_and_drop_aborts() {
        let v = futures::executor::block_on(spawn(async { 7 })).unwrap();
        assert_eq!(v, 7);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let task = spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            let _ = tx.send(());
        });
        drop(task);
        // the aborted task drops its sender without sending
        assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_err());
    }

    #[test]
    fn fork_guard_belongs_to_its_process() {
        let g = ForkGuard::new(5);
        assert_eq!(g.get(), Some(&5));
        let forged = ForkGuard { pid: std::process::id().wrapping_add(1), value: 5 };
        assert_eq!(forged.get(), None);
    }

    /// A fork-safe pid: a child of `fork()` learns its own id at once (a connection guard that
    /// compared the parent's id would hand a child the parent's connection).
    #[cfg(unix)]
    #[test]
    fn the_kept_pid_is_the_childs_after_a_fork() {
        let parent = pid();
        assert_eq!(parent, std::process::id());
        let g = ForkGuard::new(());
        // SAFETY: the child only reads atomics, calls getpid and _exit
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            let ok = pid() == std::process::id() && pid() != parent && g.get().is_none();
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just made
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child saw a stale pid: {status}");
        assert_eq!(pid(), parent);
        assert!(g.get().is_some());
    }

    #[test]
    fn only_the_io_thread_is_the_io_thread() {
        assert!(!on_io_thread());
        assert!(futures::executor::block_on(spawn(async { on_io_thread() })).unwrap());
    }
}
