//! Lock shim: shuttle's locks under `--features shuttle` so the model checker controls every lock
//! the engine takes; otherwise std's `Mutex`, and for the store's shard locks a striped
//! reader-writer lock over parking_lot's raw lock on native targets (one std `RwLock` on wasm32,
//! where nothing contends and the module stays smaller). Poison is recovered, never spread (a
//! panic must not break later callers): no user code runs while an engine lock is held, so the
//! data behind a poisoned lock is still consistent (parking_lot's locks do not poison at all).
//!
//! Why parking_lot for the shard locks: a uniform get hit on 1,000,000 keys took 2-3.5% less time
//! with it than with std's `RwLock` (paired in-process runs of both builds and alternating runs of
//! `cargo bench -p healcache --bench interleaved`, 2026-11-30); in-cache hits did not change.
//!
//! Why striped: a read lock is a write to the lock word. With one lock word per shard, reads of
//! random keys from two cores move each shard's word from core to core about every other read,
//! and two threads read less than twice what one reads (0.85-1.48x one thread's reads at 10,000
//! keys in `cargo bench -p healcache --bench read_scale`). A [`Striped`] lock has several lock
//! words, each alone on its cache lines: a reader locks the stripe of its thread, a writer locks
//! them all. Readers on different stripes write no common line; a writer pays one uncontended
//! lock per stripe (as many stripes as the host has CPUs, rounded up to a power of two, at most
//! [`MAX_STRIPES`]). Each stripe also carries a payload `S` (the shard's read counters), so a
//! reader counts on a line of its own stripe too. This is the design of Linux's per-CPU
//! reader-writer semaphore and of crossbeam's `ShardedLock`; written here because `ShardedLock`
//! always takes eight `RwLock`s per write and has no per-stripe payload.

#[cfg(feature = "shuttle")]
pub(crate) use shuttle::sync::{Mutex, MutexGuard};
#[cfg(not(feature = "shuttle"))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(any(feature = "shuttle", target_arch = "wasm32"))]
pub(crate) use single::{ReadGuard, Striped, WriteGuard};
#[cfg(all(not(feature = "shuttle"), not(target_arch = "wasm32")))]
pub(crate) use striped::{ReadGuard, Striped, WriteGuard};

use std::sync::PoisonError;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `m` (the stripe of this thread).
#[inline(always)]
pub(crate) fn read<T, S>(m: &Striped<T, S>) -> ReadGuard<'_, T, S> {
    m.read()
}

/// Write-locks `m` (every stripe).
#[inline(always)]
pub(crate) fn write<T, S>(m: &Striped<T, S>) -> WriteGuard<'_, T, S> {
    m.write()
}

#[cfg(all(not(feature = "shuttle"), not(target_arch = "wasm32")))]
/// Stripes of a native lock at most: enough to keep the threads of most hosts' cores apart, for a
/// lock of `MAX_STRIPES` times 128 bytes.
pub(crate) const MAX_STRIPES: usize = 8;

#[cfg(all(not(feature = "shuttle"), not(target_arch = "wasm32")))]
mod striped {
    use std::cell::UnsafeCell;
    use std::marker::PhantomData;
    use std::ops::{Deref, DerefMut};
    use std::sync::OnceLock;

    use parking_lot::lock_api::RawRwLock as _;
    use parking_lot::RawRwLock;

    use super::MAX_STRIPES;

    /// Guards stay on the thread that locked: parking_lot's raw lock is released where it was
    /// taken (its guards are not `Send` either).
    type NotSend = PhantomData<*const ()>;

    /// One stripe: its lock word and its payload, alone on a pair of cache lines (the adjacent-line
    /// prefetcher moves lines in pairs).
    #[repr(align(128))]
    struct Stripe<S> {
        lock: RawRwLock,
        local: S,
    }

    /// A reader-writer lock with a lock word per stripe (see the module comment).
    pub(crate) struct Striped<T, S> {
        /// Stripes in use less one (a power of two less one).
        mask: usize,
        data: UnsafeCell<T>,
        /// Inline, not boxed: a read then follows no pointer to its lock word. Only the first
        /// `mask + 1` are used.
        stripes: [Stripe<S>; MAX_STRIPES],
    }

    // SAFETY: as `RwLock<T>`: the data moves with the lock, readers share `&T` across threads
    // (so `T: Sync`), a writer has it alone. Payloads are shared by every thread.
    unsafe impl<T: Send, S: Send> Send for Striped<T, S> {}
    // SAFETY: see above.
    unsafe impl<T: Send + Sync, S: Sync> Sync for Striped<T, S> {}

    /// The stripes of a lock made in this process: the host's CPUs, a power of two, at most
    /// `MAX_STRIPES` (asked once: the count reads cgroup files).
    fn stripes() -> usize {
        static N: OnceLock<usize> = OnceLock::new();
        *N.get_or_init(|| stripes_for(std::thread::available_parallelism().map_or(1, |n| n.get())))
    }

    /// The stripes of a lock on a host of `cpus` CPUs.
    pub(super) fn stripes_for(cpus: usize) -> usize {
        cpus.max(1).next_power_of_two().min(MAX_STRIPES)
    }

    /// This thread's number, handed out in turn when it first takes a striped lock: threads
    /// numbered apart by less than the stripes never share one. (Striping by the CPU a thread
    /// runs on, read with `sched_getcpu`, measured the same here, but costs a system call where
    /// glibc is older than 2.35.)
    #[inline(always)]
    fn thread_id() -> usize {
        use std::cell::Cell;
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local!(static ID: Cell<usize> = const { Cell::new(usize::MAX) });
        ID.with(|id| {
            let v = id.get();
            if v != usize::MAX {
                return v;
            }
            let v = NEXT.fetch_add(1, Relaxed);
            id.set(v);
            v
        })
    }

    impl<T, S> Striped<T, S> {
        pub fn new(data: T, local: impl Fn() -> S) -> Self {
            Striped {
                mask: stripes() - 1,
                data: UnsafeCell::new(data),
                stripes: std::array::from_fn(|_| Stripe { lock: RawRwLock::INIT, local: local() }),
            }
        }

        /// The stripe of this thread.
        #[inline(always)]
        fn here(&self) -> usize {
            if self.mask == 0 {
                // one stripe (a host of one CPU, such as a container limited to one): no need to
                // read the thread's number
                return 0;
            }
            // `MAX_STRIPES - 1` too, so the compiler sees the index in bounds
            thread_id() & self.mask & (MAX_STRIPES - 1)
        }

        #[inline]
        pub fn read(&self) -> ReadGuard<'_, T, S> {
            let stripe = &self.stripes[self.here()];
            stripe.lock.lock_shared();
            ReadGuard { lock: self, stripe, _not_send: PhantomData }
        }

        #[inline]
        pub fn write(&self) -> WriteGuard<'_, T, S> {
            // always in the same order, so two writers never wait on each other's stripes
            for s in self.used() {
                s.lock.lock_exclusive();
            }
            WriteGuard { lock: self, _not_send: PhantomData }
        }

        /// The payload of this thread's stripe, without locking.
        #[inline]
        pub fn local_here(&self) -> &S {
            &self.stripes[self.here()].local
        }

        /// Every stripe's payload, without locking.
        pub fn locals(&self) -> impl Iterator<Item = &S> {
            self.used().iter().map(|s| &s.local)
        }

        #[inline(always)]
        fn used(&self) -> &[Stripe<S>] {
            &self.stripes[..=self.mask]
        }
    }

    /// Shared access to the data, holding one stripe's read lock.
    pub(crate) struct ReadGuard<'a, T, S> {
        lock: &'a Striped<T, S>,
        stripe: &'a Stripe<S>,
        _not_send: NotSend,
    }

    impl<T, S> ReadGuard<'_, T, S> {
        /// The payload of the stripe this guard holds.
        #[inline(always)]
        pub fn local(&self) -> &S {
            &self.stripe.local
        }
    }

    impl<T, S> Deref for ReadGuard<'_, T, S> {
        type Target = T;
        #[inline(always)]
        fn deref(&self) -> &T {
            // SAFETY: a read lock is held, so no writer has the data (a writer holds every stripe).
            unsafe { &*self.lock.data.get() }
        }
    }

    impl<T, S> Drop for ReadGuard<'_, T, S> {
        #[inline(always)]
        fn drop(&mut self) {
            // SAFETY: this guard took this stripe's read lock and releases it once.
            unsafe { self.stripe.lock.unlock_shared() }
        }
    }

    /// Exclusive access to the data, holding every stripe's write lock.
    pub(crate) struct WriteGuard<'a, T, S> {
        lock: &'a Striped<T, S>,
        _not_send: NotSend,
    }

    impl<T, S> Deref for WriteGuard<'_, T, S> {
        type Target = T;
        #[inline(always)]
        fn deref(&self) -> &T {
            // SAFETY: every stripe is write-locked by this guard: no other access exists.
            unsafe { &*self.lock.data.get() }
        }
    }

    impl<T, S> DerefMut for WriteGuard<'_, T, S> {
        #[inline(always)]
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as `deref`, and `&mut self` makes this the only reference through the guard.
            unsafe { &mut *self.lock.data.get() }
        }
    }

    impl<T, S> Drop for WriteGuard<'_, T, S> {
        #[inline]
        fn drop(&mut self) {
            for s in self.lock.used().iter().rev() {
                // SAFETY: this guard took every stripe's write lock and releases each once.
                unsafe { s.lock.unlock_exclusive() }
            }
        }
    }
}

/// The same interface over one `RwLock` and one payload: under shuttle (whose scheduler must see
/// every lock) and on wasm32 (one thread).
#[cfg(any(feature = "shuttle", target_arch = "wasm32"))]
mod single {
    use std::marker::PhantomData;
    use std::ops::{Deref, DerefMut};
    use std::sync::PoisonError;

    #[cfg(feature = "shuttle")]
    use shuttle::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
    #[cfg(not(feature = "shuttle"))]
    use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

    pub(crate) struct Striped<T, S> {
        lock: RwLock<T>,
        local: S,
    }

    impl<T, S> Striped<T, S> {
        pub fn new(data: T, local: impl Fn() -> S) -> Self {
            Striped { lock: RwLock::new(data), local: local() }
        }

        pub fn read(&self) -> ReadGuard<'_, T, S> {
            ReadGuard { g: self.lock.read().unwrap_or_else(PoisonError::into_inner), local: &self.local }
        }

        pub fn write(&self) -> WriteGuard<'_, T, S> {
            WriteGuard { g: self.lock.write().unwrap_or_else(PoisonError::into_inner), _s: PhantomData }
        }

        pub fn local_here(&self) -> &S {
            &self.local
        }

        pub fn locals(&self) -> impl Iterator<Item = &S> {
            std::iter::once(&self.local)
        }
    }

    pub(crate) struct ReadGuard<'a, T, S> {
        g: RwLockReadGuard<'a, T>,
        local: &'a S,
    }

    impl<T, S> ReadGuard<'_, T, S> {
        pub fn local(&self) -> &S {
            self.local
        }
    }

    impl<T, S> Deref for ReadGuard<'_, T, S> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.g
        }
    }

    pub(crate) struct WriteGuard<'a, T, S> {
        g: RwLockWriteGuard<'a, T>,
        _s: PhantomData<&'a S>,
    }

    impl<T, S> Deref for WriteGuard<'_, T, S> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.g
        }
    }

    impl<T, S> DerefMut for WriteGuard<'_, T, S> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.g
        }
    }
}

#[cfg(all(test, not(feature = "shuttle"), not(target_arch = "wasm32")))]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::{read, write, Striped};

    /// A writer takes every stripe, so it waits for a reader on whichever stripe it holds, and
    /// readers see either none or all of its write. Readers on threads made one after another
    /// hold the stripes in turn.
    #[test]
    fn a_writer_waits_for_the_reader_of_every_stripe() {
        let lock = Arc::new(Striped::new((0u64, 0u64), || AtomicU64::new(0)));
        for round in 1..=4u64 {
            let held = Arc::new(Barrier::new(2));
            let release = Arc::new(Barrier::new(2));
            let reader = {
                let (lock, held, release) = (lock.clone(), held.clone(), release.clone());
                std::thread::spawn(move || {
                    let g = read(&lock);
                    held.wait();
                    release.wait();
                    *g
                })
            };
            held.wait();
            let written = Arc::new(AtomicBool::new(false));
            let writer = {
                let (lock, written) = (lock.clone(), written.clone());
                std::thread::spawn(move || {
                    let mut g = write(&lock);
                    *g = (round, round);
                    written.store(true, SeqCst);
                })
            };
            std::thread::sleep(Duration::from_millis(30));
            assert!(!written.load(SeqCst), "round {round}: the writer got in while a reader held the lock");
            release.wait();
            assert_eq!(reader.join().unwrap(), (round - 1, round - 1));
            writer.join().unwrap();
            assert!(written.load(SeqCst));
            assert_eq!(*read(&lock), (round, round));
        }
    }

    /// As many stripes as CPUs, rounded up to a power of two (the stripe is a mask of the thread's
    /// number), at most `MAX_STRIPES`.
    #[test]
    fn stripes_follow_the_cpus_up_to_the_bound() {
        let got: Vec<usize> = [0, 1, 2, 3, 4, 5, 7, 8, 9, 64].iter().map(|&c| super::striped::stripes_for(c)).collect();
        assert_eq!(got, [1, 1, 2, 4, 4, 8, 8, 8, 8, 8]);
        assert_eq!(super::MAX_STRIPES, 8);
    }

    /// Readers on many threads count on their stripes' payloads; the sum over the stripes loses
    /// nothing, whichever stripes the threads share.
    #[test]
    fn counts_on_the_stripes_sum_to_every_read() {
        let lock = Arc::new(Striped::new((), || AtomicU64::new(0)));
        let (threads, reads) = (6, 20_000);
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..reads {
                        read(&lock).local().fetch_add(1, SeqCst);
                    }
                    lock.local_here().fetch_add(1, SeqCst);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(lock.locals().map(|c| c.load(SeqCst)).sum::<u64>(), threads * (reads + 1));
    }
}
