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

#[derive(Debug)]
pub struct Boom(pub &'static str);
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for Boom {}
