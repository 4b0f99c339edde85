//! At exit: every write-behind queue of the process still running is closed at once, its
//! items sent (also a queue whose handle was dropped). Alone in its binary: `close_all` closes
//! every queue of the process.

#![cfg(feature = "tier")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use healcache::{Cache, Op, Spawner, WriteBehind, WriteBehindConfig};

use common::TokioTimer;

struct TokioSpawner(tokio::runtime::Handle);

impl Spawner for TokioSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        self.0.spawn(fut);
    }
}

#[test]
fn close_all_sends_what_every_queue_holds() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let cache: Cache<u64> = Cache::builder()
        .timer(TokioTimer(rt.handle().clone()))
        .spawner(TokioSpawner(rt.handle().clone()))
        .build()
        .unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let writer = {
        let seen = Arc::clone(&seen);
        move |batch: Vec<Op<u64>>| {
            let seen = Arc::clone(&seen);
            Box::pin(async move {
                seen.lock().unwrap().extend(batch.iter().map(|op| op.key().to_string()));
                Ok::<(), String>(())
            }) as BoxFuture<'static, Result<(), String>>
        }
    };
    // a flush far off: only a close sends the items before then
    let cfg = WriteBehindConfig { flush_interval: Duration::from_secs(3600), ..Default::default() };
    let kept = WriteBehind::new(cache.clone(), writer.clone(), cfg).unwrap();
    let dropped = WriteBehind::new(cache.clone(), writer, cfg).unwrap();
    kept.set("a", 1).unwrap();
    kept.set("b", 2).unwrap();
    dropped.set("c", 3).unwrap();
    drop(dropped);
    let left = rt.block_on(healcache::close_all_write_behind(Duration::from_secs(10)));
    assert_eq!(left, 0);
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, ["a", "b", "c"]);
    assert!(kept.is_closed());
    // nothing left to close: at once
    assert_eq!(rt.block_on(healcache::close_all_write_behind(Duration::from_secs(10))), 0);
}

/// The exit hooks' report (one text for every language): nothing when nothing was left, else one
/// line with the count.
#[test]
fn the_exit_report_names_the_items_left_and_is_silent_when_none_was() {
    assert_eq!(healcache::write_behind_exit_report(0), None);
    let r = healcache::write_behind_exit_report(2).unwrap();
    assert!(r.starts_with("healcache: 2 write-behind item(s) were not written before exit"), "{r}");
    assert_eq!((r.matches('\n').count(), r.ends_with('\n')), (1, true));
}
