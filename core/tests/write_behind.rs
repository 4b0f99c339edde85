//! Write-behind: the queue bound (reject and block), coalescing, batch bound, retries, items
//! given up, and close. Real timers (tokio); no test asserts how fast anything is.

#![cfg(feature = "tier")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use healcache::{Cache, Error, OnFull, Op, Spawner, WriteBehind, WriteBehindConfig};
use tokio::sync::watch;

use common::TokioTimer;

struct TokioSpawner(tokio::runtime::Handle);

impl Spawner for TokioSpawner {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        self.0.spawn(fut);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

fn cache(rt: &tokio::runtime::Runtime) -> Cache<u64> {
    Cache::builder().timer(TokioTimer(rt.handle().clone())).spawner(TokioSpawner(rt.handle().clone())).build().unwrap()
}

type Batches = Arc<Mutex<Vec<Vec<Op<u64>>>>>;

/// A writer that records each batch it accepts, and waits while `gate` is closed (false).
fn gated(
    gate: watch::Receiver<bool>,
    seen: Batches,
) -> impl Fn(Vec<Op<u64>>) -> BoxFuture<'static, Result<(), String>> {
    move |batch| {
        let mut gate = gate.clone();
        let seen = Arc::clone(&seen);
        Box::pin(async move {
            let _ = gate.wait_for(|open| *open).await;
            seen.lock().unwrap().push(batch);
            Ok(())
        })
    }
}

fn recording(seen: Batches) -> impl Fn(Vec<Op<u64>>) -> BoxFuture<'static, Result<(), String>> {
    let (tx, rx) = watch::channel(true);
    std::mem::forget(tx); // open for good
    gated(rx, seen)
}

fn cfg(max_queue: usize, batch: usize) -> WriteBehindConfig {
    WriteBehindConfig {
        max_queue,
        batch: Some(batch),
        flush_interval: Duration::from_millis(5),
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        ..Default::default()
    }
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn put(key: &str, value: u64) -> Op<u64> {
    Op::Put { key: key.into(), value }
}

#[test]
fn the_queue_bound_holds_under_a_stalled_writer() {
    let rt = runtime();
    let c = cache(&rt);
    let (open, gate) = watch::channel(false);
    let seen = Batches::default();
    let wb = WriteBehind::new(c.clone(), gated(gate, Arc::clone(&seen)), cfg(10, 4)).unwrap();
    for i in 0..10 {
        wb.set(&format!("k{i}"), i).unwrap();
    }
    // exactly max_queue accepted, the batch under way counted
    wait_for("a batch under way", || wb.stats().queue_depth == 10 && c.get("k9") == Some(9));
    let e = wb.set("k10", 10).unwrap_err();
    assert!(matches!(e, Error::QueueFull { max: 10 }), "{e:?}");
    assert_eq!(e.code(), "QueueFull");
    assert_eq!(c.get("k10"), None, "a refused write changes nothing in the cache");
    assert_eq!(wb.delete("k11").unwrap_err().code(), "QueueFull");
    assert_eq!(wb.stats().queue_depth, 10);
    // a key still queued is updated in place, full or not
    wb.set("k9", 90).unwrap();
    assert_eq!(c.get("k9"), Some(90));
    assert_eq!(wb.stats().queue_depth, 10);

    open.send(true).unwrap();
    assert_eq!(block(wb.close(Duration::from_secs(20))), 0);
    let got: Vec<Op<u64>> = seen.lock().unwrap().concat();
    assert_eq!(got.len(), 10);
    assert_eq!(got.last(), Some(&put("k9", 90)));
    assert!(!got.contains(&put("k10", 10)));
    let s = wb.stats();
    assert_eq!((s.flushed_items, s.failed, s.queue_depth), (10, 0, 0));
}

#[test]
fn block_waits_for_room_then_succeeds() {
    let rt = runtime();
    let c = cache(&rt);
    let (open, gate) = watch::channel(false);
    let seen = Batches::default();
    let config = WriteBehindConfig { on_full: OnFull::Block(Duration::from_secs(60)), ..cfg(2, 2) };
    let wb = Arc::new(WriteBehind::new(c.clone(), gated(gate, Arc::clone(&seen)), config).unwrap());
    wb.set("a", 1).unwrap();
    wb.set("b", 2).unwrap();
    let waiter = {
        let wb = Arc::clone(&wb);
        std::thread::spawn(move || wb.set("c", 3))
    };
    // still waiting for room: neither in the cache nor queued
    std::thread::sleep(Duration::from_millis(50));
    assert!(!waiter.is_finished());
    assert_eq!(c.get("c"), None);
    open.send(true).unwrap();
    waiter.join().unwrap().unwrap();
    assert_eq!(c.get("c"), Some(3));
    assert_eq!(block(wb.close(Duration::from_secs(20))), 0);
    assert_eq!(seen.lock().unwrap().concat(), vec![put("a", 1), put("b", 2), put("c", 3)]);
}

#[test]
fn block_errors_after_its_timeout_and_changes_nothing() {
    let rt = runtime();
    let c = cache(&rt);
    let (_open, gate) = watch::channel(false);
    let config = WriteBehindConfig { on_full: OnFull::Block(Duration::from_millis(30)), ..cfg(1, 1) };
    let wb = WriteBehind::new(c.clone(), gated(gate, Batches::default()), config).unwrap();
    wb.set("a", 1).unwrap();
    let e = wb.set("b", 2).unwrap_err();
    assert!(matches!(e, Error::QueueFull { max: 1 }), "{e:?}");
    assert_eq!(c.get("b"), None);
    let e = block(wb.set_async("b", 2, Default::default())).unwrap_err();
    assert_eq!(e.code(), "QueueFull");
    assert_eq!(c.get("b"), None);
    assert_eq!(block(wb.close(Duration::from_millis(30))), 1);
}

#[test]
fn writes_of_one_key_coalesce_last_wins() {
    let rt = runtime();
    let c = cache(&rt);
    let seen = Batches::default();
    let config = WriteBehindConfig { flush_interval: Duration::from_secs(3600), ..cfg(10, 10) };
    let wb = WriteBehind::new(c.clone(), recording(Arc::clone(&seen)), config).unwrap();
    for i in 0..100 {
        wb.set("k", i).unwrap();
    }
    assert_eq!(wb.stats().queue_depth, 1);
    wb.delete("gone").unwrap();
    wb.set("gone", 5).unwrap();
    wb.delete("gone").unwrap(); // a deletion coalesces too
    assert_eq!(wb.stats().queue_depth, 2);
    assert_eq!(block(wb.close(Duration::from_secs(20))), 0);
    assert_eq!(*seen.lock().unwrap(), vec![vec![put("k", 99), Op::Delete { key: "gone".into() }]]);
}

#[test]
fn batches_hold_at_most_batch_items_in_queue_order() {
    let rt = runtime();
    let c = cache(&rt);
    for (max_queue, batch) in [(1000, 7), (50, 50), (50, 1)] {
        let seen = Batches::default();
        let config = WriteBehindConfig { flush_interval: Duration::from_secs(3600), ..cfg(max_queue, batch) };
        let wb = WriteBehind::new(c.clone(), recording(Arc::clone(&seen)), config).unwrap();
        for i in 0..50 {
            wb.set(&format!("k{i}"), i).unwrap();
        }
        assert_eq!(block(wb.close(Duration::from_secs(20))), 0);
        let batches = seen.lock().unwrap().clone();
        assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= batch), "{batch}");
        assert!(batches.iter().any(|b| b.len() == batch), "{batch}");
        let all: Vec<Op<u64>> = batches.concat();
        assert_eq!(all, (0..50).map(|i| put(&format!("k{i}"), i)).collect::<Vec<_>>());
        let s = wb.stats();
        assert_eq!((s.batches, s.flushed_items), (batches.len() as u64, 50));
        assert_eq!(s.batch_sizes.iter().sum::<u64>(), batches.len() as u64);
    }
}

#[test]
fn a_partial_batch_is_sent_after_the_flush_interval() {
    let rt = runtime();
    let seen = Batches::default();
    let wb = WriteBehind::new(cache(&rt), recording(Arc::clone(&seen)), cfg(100, 100)).unwrap();
    wb.set("a", 1).unwrap();
    wait_for("the flush", || wb.stats().flushed_items == 1);
    assert_eq!(*seen.lock().unwrap(), vec![vec![put("a", 1)]]);
    assert_eq!(wb.stats().lag, Duration::ZERO);
}

#[test]
fn a_writer_failing_twice_then_succeeding_delivers_everything() {
    let rt = runtime();
    let seen = Batches::default();
    let calls = Arc::new(Mutex::new(0));
    let writer = {
        let (seen, calls) = (Arc::clone(&seen), Arc::clone(&calls));
        move |batch: Vec<Op<u64>>| {
            let mut n = calls.lock().unwrap();
            *n += 1;
            let fail = *n <= 2;
            if !fail {
                seen.lock().unwrap().push(batch);
            }
            async move {
                if fail {
                    Err("database down")
                } else {
                    Ok(())
                }
            }
        }
    };
    let config = WriteBehindConfig { flush_interval: Duration::from_secs(3600), ..cfg(100, 100) };
    let wb = WriteBehind::new(cache(&rt), writer, config).unwrap();
    for i in 0..5 {
        wb.set(&format!("k{i}"), i).unwrap();
    }
    assert_eq!(block(wb.close(Duration::from_secs(20))), 0);
    assert_eq!(seen.lock().unwrap().concat().len(), 5);
    let s = wb.stats();
    assert_eq!((s.failures, s.failed, s.flushed_items, s.batches), (2, 0, 5, 1));
    assert!(wb.errors().is_empty());
}

#[test]
fn a_writer_failing_always_gives_items_up_counted_and_kept() {
    let rt = runtime();
    let writer = |_batch: Vec<Op<u64>>| async { Err::<(), _>("constraint violated") };
    let config = WriteBehindConfig { attempts: 3, ..cfg(100, 2) };
    let wb = WriteBehind::new(cache(&rt), writer, config).unwrap();
    for i in 0..3 {
        wb.set(&format!("k{i}"), i).unwrap();
    }
    assert_eq!(block(wb.close(Duration::from_secs(20))), 0, "given-up items are not left in the queue");
    let s = wb.stats();
    assert_eq!((s.failed, s.failures, s.flushed_items), (3, 6, 0));
    let errors = wb.errors();
    assert_eq!(errors.len(), 3);
    assert!(errors.iter().all(|f| &*f.error == "constraint violated" && f.attempts == 3));
    assert_eq!(errors.iter().map(|f| f.op.clone()).collect::<Vec<_>>(), vec![put("k0", 0), put("k1", 1), put("k2", 2)]);
    assert_eq!(wb.take_failed().len(), 3);
    assert!(wb.errors().is_empty());
    assert!(wb.prometheus("wb").contains("healcache_write_behind_failed_total{cache=\"wb\"} 3\n"));
}

#[test]
fn a_newer_write_supersedes_an_item_being_retried() {
    let rt = runtime();
    let seen = Batches::default();
    let (retrying_tx, retrying_rx) = std::sync::mpsc::channel::<()>();
    let calls = Arc::new(Mutex::new(0));
    let writer = {
        let (seen, calls) = (Arc::clone(&seen), Arc::clone(&calls));
        let retrying_tx = Mutex::new(retrying_tx);
        move |batch: Vec<Op<u64>>| {
            let mut n = calls.lock().unwrap();
            *n += 1;
            let fail = *n == 1;
            if fail {
                let _ = retrying_tx.lock().unwrap().send(());
            } else {
                seen.lock().unwrap().push(batch);
            }
            async move {
                if fail {
                    Err("busy")
                } else {
                    Ok(())
                }
            }
        }
    };
    let config = WriteBehindConfig {
        retry_min: Duration::from_millis(200),
        retry_max: Duration::from_millis(200),
        ..cfg(10, 10)
    };
    let wb = WriteBehind::new(cache(&rt), writer, config).unwrap();
    wb.set("k", 1).unwrap();
    retrying_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    wb.set("k", 2).unwrap();
    assert_eq!(block(wb.close(Duration::from_secs(20))), 0);
    let all = seen.lock().unwrap().concat();
    assert_eq!(all, vec![put("k", 2)], "the retry of the older value is dropped");
    let s = wb.stats();
    assert_eq!((s.failed, s.flushed_items), (0, 1));
}

#[test]
fn close_flushes_what_it_can_and_answers_the_rest() {
    let rt = runtime();
    let c = cache(&rt);
    let (_open, gate) = watch::channel(false);
    let wb = WriteBehind::new(c.clone(), gated(gate, Batches::default()), cfg(100, 2)).unwrap();
    for i in 0..5 {
        wb.set(&format!("k{i}"), i).unwrap();
    }
    assert_eq!(block(wb.close(Duration::from_millis(50))), 5);
    let errors = wb.errors();
    assert_eq!(errors.len(), 5);
    assert!(errors.iter().all(|f| &*f.error == "closed before flushed"));
    let s = wb.stats();
    assert_eq!((s.queue_depth, s.failed, s.flushed_items), (0, 5, 0));
    assert!(s.closed);
    // closed: later writes are refused and change nothing
    assert!(matches!(wb.set("late", 1), Err(Error::Closed { .. })));
    assert_eq!(wb.delete("k0").unwrap_err().code(), "Closed");
    assert_eq!((c.get("late"), c.get("k0")), (None, Some(0)));

    // with a writer that works, everything is flushed
    let seen = Batches::default();
    let config = WriteBehindConfig { flush_interval: Duration::from_secs(3600), ..cfg(100, 7) };
    let wb = WriteBehind::new(c, recording(Arc::clone(&seen)), config).unwrap();
    for i in 0..20 {
        wb.set(&format!("k{i}"), i).unwrap();
    }
    assert_eq!(block(wb.close(Duration::from_secs(20))), 0);
    assert_eq!(seen.lock().unwrap().concat().len(), 20);
}

#[test]
fn a_write_the_cache_refuses_queues_nothing() {
    let rt = runtime();
    let c: Cache<u64> = Cache::builder()
        .max_key_len(8)
        .timer(TokioTimer(rt.handle().clone()))
        .spawner(TokioSpawner(rt.handle().clone()))
        .build()
        .unwrap();
    let wb = WriteBehind::new(c, recording(Batches::default()), cfg(1, 1)).unwrap();
    assert_eq!(wb.set("a-key-too-long", 1).unwrap_err().code(), "KeyTooLong");
    assert_eq!(wb.stats().queue_depth, 0);
    // a delete of a key the cache could never hold is refused as its set is, not sent on
    assert_eq!(wb.delete("a-key-too-long").unwrap_err().code(), "KeyTooLong");
    assert_eq!(block(wb.delete_async("a-key-too-long")).unwrap_err().code(), "KeyTooLong");
    assert_eq!(wb.stats().queue_depth, 0);
    wb.set("ok", 1).unwrap(); // the slot was given back
}

#[test]
fn settings_out_of_bounds_and_a_cache_without_runtime_are_refused() {
    let rt = runtime();
    let e = WriteBehind::new(cache(&rt), recording(Batches::default()), cfg(5, 6)).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { field: "batch", .. }), "{e:?}");
    let bare = Cache::<u64>::builder().build().unwrap();
    let e = WriteBehind::new(bare, recording(Batches::default()), cfg(5, 5)).unwrap_err();
    assert_eq!(e.code(), "InvalidConfig");
}

#[test]
fn held_values_lists_the_puts_queued_being_written_and_failed() {
    let rt = runtime();
    let c = cache(&rt);
    let (open, gate) = watch::channel(false);
    let config = WriteBehindConfig { flush_interval: Duration::from_secs(3600), ..cfg(10, 1) };
    let wb = WriteBehind::new(c.clone(), gated(gate, Batches::default()), config).unwrap();
    wb.set("a", 1).unwrap();
    wb.set("a", 2).unwrap(); // coalesced over: 1 is no longer held
    wb.delete("d").unwrap();
    let mut held = wb.held_values();
    held.sort_unstable();
    assert_eq!(held, vec![2]);
    // left at close's deadline: kept as failed, so still held until taken
    assert_eq!(block(wb.close(Duration::from_millis(20))), 2);
    assert_eq!(wb.held_values(), vec![2]);
    wb.take_failed();
    assert!(wb.held_values().is_empty());
    drop(open);
}

/// The field a refused config names, or `None` when it is accepted.
fn refused(config: WriteBehindConfig) -> Option<&'static str> {
    match config.check() {
        Ok(()) => None,
        Err(Error::InvalidConfig { field, .. }) => Some(field),
        Err(e) => panic!("not InvalidConfig: {e:?}"),
    }
}

/// P5: every write-behind setting is accepted at its bound and refused one step past it, naming
/// the field: `max_queue` 10,000,000, `batch` = `max_queue`, `attempts` 1,000, and one day for
/// `flush_interval`, `retry_min`, `retry_max` and the block timeout (one nanosecond over is over).
/// A queue made at every bound at once works.
#[test]
fn settings_are_accepted_at_their_bounds_and_refused_one_step_past() {
    let day = Duration::from_secs(86_400);
    let over = day + Duration::from_nanos(1);
    let top = WriteBehindConfig {
        max_queue: 10_000_000,
        batch: Some(10_000_000),
        flush_interval: day,
        retry_min: day,
        retry_max: day,
        attempts: 1000,
        on_full: OnFull::Block(day),
    };
    assert_eq!(refused(top), None);
    assert_eq!(refused(WriteBehindConfig { max_queue: 10_000_001, ..top }), Some("max_queue"));
    assert_eq!(refused(WriteBehindConfig { max_queue: 0, batch: Some(1), ..top }), Some("max_queue"));
    assert_eq!(refused(WriteBehindConfig { batch: Some(10_000_001), ..top }), Some("batch"));
    assert_eq!(refused(WriteBehindConfig { batch: Some(0), ..top }), Some("batch"));
    assert_eq!(refused(WriteBehindConfig { flush_interval: over, ..top }), Some("flush_interval"));
    assert_eq!(refused(WriteBehindConfig { flush_interval: Duration::ZERO, ..top }), Some("flush_interval"));
    assert_eq!(refused(WriteBehindConfig { retry_min: over, retry_max: over, ..top }), Some("retry_min"));
    assert_eq!(refused(WriteBehindConfig { retry_max: over, ..top }), Some("retry_max"));
    assert_eq!(refused(WriteBehindConfig { attempts: 1001, ..top }), Some("attempts"));
    assert_eq!(refused(WriteBehindConfig { attempts: 0, ..top }), Some("attempts"));
    assert_eq!(refused(WriteBehindConfig { on_full: OnFull::Block(over), ..top }), Some("on_full"));
    assert_eq!(refused(WriteBehindConfig { on_full: OnFull::Block(Duration::ZERO), ..top }), None);

    let rt = runtime();
    let seen = Batches::default();
    let wb = WriteBehind::new(cache(&rt), recording(Arc::clone(&seen)), top).unwrap();
    wb.set("a", 1).unwrap();
    // a day's flush interval: the partial batch waits for it, or for close
    assert_eq!(wb.stats().queue_depth, 1);
    assert_eq!(block(wb.close(Duration::from_secs(5))), 0);
    assert_eq!(*seen.lock().unwrap(), vec![vec![put("a", 1)]]);
}

/// P9: in a forked child the parent's drainer does not run: `after_fork` forgets the items the
/// parent queued (the parent writes them), and the drainer it answers sends what is written here.
#[test]
fn after_fork_forgets_the_inherited_items_and_a_new_drainer_sends_new_ones() {
    let rt = runtime();
    let seen = Batches::default();
    let timer: Arc<dyn healcache::Timer> = Arc::new(TokioTimer(rt.handle().clone()));
    // the first drainer is never run: as in a child, where the parent's thread is gone
    let (wb, _parents) = WriteBehind::detached(cache(&rt), recording(Arc::clone(&seen)), cfg(10, 10), timer).unwrap();
    wb.set("parent-1", 1).unwrap();
    wb.delete("parent-2").unwrap();
    assert_eq!(wb.stats().queue_depth, 2);
    let drain = wb.after_fork();
    assert_eq!(wb.stats().queue_depth, 0);
    assert!(wb.held_values().is_empty());
    rt.spawn(drain);
    wb.set("child", 3).unwrap();
    assert_eq!(block(wb.close(Duration::from_secs(5))), 0);
    assert_eq!(*seen.lock().unwrap(), vec![vec![put("child", 3)]]);
}

/// The timer the docs show, `tokio::time::sleep` (which needs its runtime's thread).
struct RuntimeTimer;

impl healcache::Timer for RuntimeTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A blocking write that waits for room (`OnFull::Block`) on a plain thread keeps its deadline
/// without the host timer, whose sleeps may only run on the runtime's threads: it panicked
/// ("no reactor running").
#[test]
fn a_blocking_write_waits_for_room_on_a_plain_thread_without_the_runtime_timer() {
    let rt = runtime();
    let c: Cache<u64> =
        Cache::builder().timer(RuntimeTimer).spawner(TokioSpawner(rt.handle().clone())).build().unwrap();
    let (open, gate) = watch::channel(false);
    let config = WriteBehindConfig { on_full: OnFull::Block(Duration::from_secs(1)), ..cfg(1, 1) };
    let wb = {
        let _in = rt.enter(); // the drainer starts on the runtime
        Arc::new(WriteBehind::new(c.clone(), gated(gate, Batches::default()), config).unwrap())
    };
    wb.set("a", 1).unwrap();
    let w = Arc::clone(&wb);
    let full = std::thread::spawn(move || w.set("b", 2)).join().unwrap();
    assert!(matches!(full, Err(Error::QueueFull { max: 1 })), "{full:?}");
    assert_eq!(c.get("b"), None);
    // room made while it waits: the write goes in
    let w = Arc::clone(&wb);
    let waiting = std::thread::spawn(move || w.set("c", 3));
    std::thread::sleep(Duration::from_millis(10));
    open.send(true).unwrap();
    let done = waiting.join().unwrap();
    assert!(done.is_ok(), "{done:?}");
    assert_eq!(c.get("c"), Some(3));
    assert_eq!(rt.block_on(wb.close(Duration::from_secs(5))), 0); // async: on the runtime
}
