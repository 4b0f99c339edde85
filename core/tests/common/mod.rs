#![allow(dead_code)]
use std::time::Duration;

use futures::future::BoxFuture;
use healcache::Timer;

/// A runtime-agnostic timer for tests: a tokio sleep spawned on the current runtime, awaited
/// through a oneshot so it can be polled from any thread.
pub struct TokioTimer(pub tokio::runtime::Handle);

impl Timer for TokioTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        self.0.spawn(async move {
            tokio::time::sleep(d).await;
            let _ = tx.send(());
        });
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Collects background work; the test runs it when it chooses, so timing is deterministic.
#[derive(Clone, Default)]
pub struct QueueSpawner(pub std::sync::Arc<std::sync::Mutex<Vec<BoxFuture<'static, ()>>>>);

impl healcache::Spawner for QueueSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        self.0.lock().unwrap().push(fut);
    }
}

impl QueueSpawner {
    /// Runs what was spawned so far; returns how many jobs ran.
    pub fn drain(&self) -> usize {
        let jobs: Vec<_> = std::mem::take(&mut *self.0.lock().unwrap());
        let n = jobs.len();
        jobs.into_iter().for_each(futures::executor::block_on);
        n
    }
}

#[derive(Debug)]
pub struct Boom(pub &'static str);
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for Boom {}

/// A source answering `k<n>` with `n`, or `Unavailable` while `down` holds; counts its calls.
pub fn flaky_source(
    down: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    calls: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> healcache::FnSource<
    impl Fn(&str) -> futures::future::Ready<Result<healcache::SourceAnswer<u64>, healcache::SourceError>> + Send + Sync,
> {
    use std::sync::atomic::Ordering::SeqCst;
    let (d, c) = (down.clone(), calls.clone());
    healcache::FnSource(move |k: &str| {
        c.fetch_add(1, SeqCst);
        let v: u64 = k[1..].parse().unwrap();
        futures::future::ready(if d.load(SeqCst) {
            Err(healcache::SourceError::Unavailable)
        } else {
            Ok(healcache::SourceAnswer::Value(v))
        })
    })
}
pub mod fake_l2;
