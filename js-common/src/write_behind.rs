//! The bodies of `WriteBehind` from JS (core [`WriteBehind`] over the cache's handles): the
//! queue holds each put's [`Handle`], and the wrapper keeps the value under it until the queue
//! no longer holds it ([`JsWriteBehind::held`]). Queueing, coalescing, batching, retries and
//! close are the core's. With the `tier` feature only: the WebAssembly module has no drainer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use healcache::{
    duration_ms, BatchWriter, OnFull, Op, Result, WriteBehind, WriteBehindConfig, WriteOptions, BATCH_SIZE_BUCKETS,
};

use crate::config::{count, ttl_arg};
use crate::shared::Payload;
use crate::{Backend, Handle, Js};

/// The settings as the wrapper passes them: counts and durations (ms) by the core's field, each
/// `None` for the core's default; `block`: ms to wait for room (`None`: refuse at once).
pub struct WriteBehindArgs {
    pub max_queue: Option<f64>,
    pub batch: Option<f64>,
    pub flush_interval: Option<f64>,
    pub retry_min: Option<f64>,
    pub retry_max: Option<f64>,
    pub attempts: Option<f64>,
    pub block: Option<f64>,
}

fn delay(field: &'static str, v: Option<f64>, default: Duration) -> Result<Duration> {
    v.map_or(Ok(default), |ms| duration_ms(field, ms))
}

/// A wait in ms where zero is allowed (it waits not at all).
fn wait_ms(field: &'static str, ms: f64) -> Result<Duration> {
    if ms == 0.0 {
        Ok(Duration::ZERO)
    } else {
        duration_ms(field, ms)
    }
}

impl WriteBehindArgs {
    /// The core's settings (checked by the core when the queue is made).
    pub fn config(&self) -> Result<WriteBehindConfig> {
        let d = WriteBehindConfig::default();
        Ok(WriteBehindConfig {
            max_queue: count("max_queue", self.max_queue, d.max_queue)?,
            batch: self.batch.map(|b| count("batch", Some(b), 0)).transpose()?,
            flush_interval: delay("flush_interval", self.flush_interval, d.flush_interval)?,
            retry_min: delay("retry_min", self.retry_min, d.retry_min)?,
            retry_max: delay("retry_max", self.retry_max, d.retry_max)?,
            attempts: count("attempts", self.attempts, d.attempts as usize)?.try_into().unwrap_or(u32::MAX),
            on_full: match self.block {
                None => OnFull::Reject,
                Some(ms) => OnFull::Block(wait_ms("on_full", ms)?),
            },
        })
    }
}

/// One write-behind queue of a JS cache.
pub struct JsWriteBehind {
    wb: Arc<WriteBehind<Handle>>,
}

/// A batch as the wrapper's writer receives it: `{ op: "put", key, handle }` or
/// `{ op: "delete", key }` per item, in queue order.
pub fn batch_js(batch: Vec<Op<Handle>>) -> Js {
    Js::List(batch.into_iter().map(op_js).collect())
}

fn op_js(op: Op<Handle>) -> Js {
    match op {
        Op::Put { key, value } => Js::Obj(vec![
            ("op", Js::Str("put".into())),
            ("key", Js::Str(key.to_string())),
            ("handle", Js::Num(value.id)),
        ]),
        Op::Delete { key } => Js::Obj(vec![("op", Js::Str("delete".into())), ("key", Js::Str(key.to_string()))]),
    }
}

impl JsWriteBehind {
    /// A queue in front of `writer` for the cache of `backend` (core `WriteBehind::new`: the
    /// drainer runs on the cache's spawner).
    pub fn new(backend: &Backend, writer: impl BatchWriter<Handle>, args: &WriteBehindArgs) -> Result<Self> {
        let wb = backend.write_behind(writer, args.config()?)?;
        Ok(JsWriteBehind { wb: Arc::new(wb) })
    }

    /// Core `set_async` of `handle` (a value of `weight` bytes; `payload`: the value as it
    /// crosses to other processes, on a cache with a shared tier); `ttl` in ms as `set` takes it.
    /// Resolves to the entry's new version.
    pub fn set(
        &self,
        key: String,
        handle: f64,
        weight: f64,
        ttl: Option<f64>,
        payload: Option<Payload>,
    ) -> Result<impl Future<Output = Result<f64>> + Send + 'static> {
        let opts = WriteOptions { ttl: ttl_arg(ttl)?, if_version: None };
        let h = Handle { id: handle, weight: weight as u64, payload: payload.map(Arc::new) };
        let wb = Arc::clone(&self.wb);
        Ok(async move { wb.set_async(&key, h, opts).await.map(|v| v as f64) })
    }

    /// Core `delete_async`: resolves to whether the cache held a fresh value.
    pub fn delete(&self, key: String) -> impl Future<Output = Result<bool>> + Send + 'static {
        let wb = Arc::clone(&self.wb);
        async move { wb.delete_async(&key).await }
    }

    /// Core `close`: resolves to the items left unflushed. `timeout` in ms (0: flush nothing more).
    pub fn close(&self, timeout: f64) -> Result<impl Future<Output = f64> + Send + 'static> {
        let d = wait_ms("timeout", timeout)?;
        let wb = Arc::clone(&self.wb);
        Ok(async move { wb.close(d).await as f64 })
    }

    /// Whether `close` was called.
    pub fn closed(&self) -> bool {
        self.wb.is_closed()
    }

    /// The items given up, oldest first (`take`: removed from the queue's keeping):
    /// `{ op, key, handle (puts only), attempts, error }` each.
    pub fn failed(&self, take: bool) -> Js {
        let items = if take { self.wb.take_failed() } else { self.wb.errors() };
        Js::List(
            items
                .into_iter()
                .map(|f| {
                    let Js::Obj(mut fields) = op_js(f.op) else { unreachable!("an op is an object") };
                    fields.push(("attempts", Js::Num(f.attempts.into())));
                    fields.push(("error", Js::Str(f.error.to_string())));
                    Js::Obj(fields)
                })
                .collect(),
        )
    }

    /// The handles of the values the queue still holds (queued, being written, kept as failed).
    pub fn held(&self) -> Js {
        Js::Nums(self.wb.held_values().iter().map(|h| h.id).collect())
    }

    /// The core's counters and gauges by their JS names (`lag` in ms; `batchSizes` per bucket of
    /// `batchSizeBuckets`, a last one for the rest).
    pub fn stats(&self) -> Js {
        let s = self.wb.stats();
        let n = |v: u64| Js::Num(v as f64);
        Js::Obj(vec![
            ("queueDepth", n(s.queue_depth as u64)),
            ("queueCapacity", n(s.queue_capacity as u64)),
            ("lag", Js::Num(s.lag.as_secs_f64() * 1e3)),
            ("batches", n(s.batches)),
            ("flushedItems", n(s.flushed_items)),
            ("failures", n(s.failures)),
            ("failed", n(s.failed)),
            ("superseded", n(s.superseded)),
            ("failedDropped", n(s.failed_dropped)),
            ("batchSizes", Js::Nums(s.batch_sizes.iter().map(|&b| b as f64).collect())),
            ("batchSizeBuckets", Js::Nums(BATCH_SIZE_BUCKETS.iter().map(|&b| b as f64).collect())),
            ("closed", Js::Bool(s.closed)),
        ])
    }

    /// Core `prometheus`.
    pub fn prometheus(&self, name: &str) -> String {
        self.wb.prometheus(name)
    }
}
