//! Write-behind over a shared tier, against a real redis-server: a write is in L2 at once (other
//! instances read it) while the writer behind it is still stalled.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use healcache::{FetchOptions, Loaded, Op, Status, WriteBehind, WriteBehindConfig};
use serde_json::{json, Value};

use common::{block, cache_with_grace, server, wait_for};

#[test]
fn a_write_is_in_l2_at_once_while_the_writer_is_stalled() {
    let r = server();
    let (a, b) = (cache_with_grace(&r.url(), Duration::ZERO), cache_with_grace(&r.url(), Duration::ZERO));
    let (open, gate) = tokio::sync::watch::channel(false);
    let calls = Arc::new(AtomicUsize::new(0));
    let writer = {
        let calls = Arc::clone(&calls);
        move |batch: Vec<Op<Value>>| -> BoxFuture<'static, Result<(), String>> {
            calls.fetch_add(1, Ordering::SeqCst);
            let mut gate = gate.clone();
            Box::pin(async move {
                let _ = gate.wait_for(|open| *open).await;
                assert_eq!(batch.len(), 1);
                Ok(())
            })
        }
    };
    let cfg = WriteBehindConfig { flush_interval: Duration::from_millis(1), ..Default::default() };
    let wb = WriteBehind::new(a.clone(), writer, cfg).unwrap();
    wb.set("user:1", json!({"name": "Ada"})).unwrap();
    // the writer was called and is stalled: the value is queued, and already in L2
    wait_for("the writer's call", Duration::from_secs(20), || calls.load(Ordering::SeqCst) == 1);
    wait_for("the L2 write", Duration::from_secs(20), || a.stats().l2_writes == 1);
    let unloadable = || async { Err::<Loaded<Value>, _>(std::io::Error::other("origin must not be asked")) };
    let f = block(b.fetch("user:1", FetchOptions::default(), unloadable)).unwrap();
    assert_eq!((f.value, f.status), (Some(json!({"name": "Ada"})), Status::L2Hit));
    let s = wb.stats();
    assert_eq!((s.queue_depth, s.flushed_items), (1, 0));

    open.send(true).unwrap();
    assert_eq!(block(wb.close(Duration::from_secs(20))), 0);
    assert_eq!(wb.stats().flushed_items, 1);
}
