//! # healcache-redis
//!
//! The shared tier of healcache on Redis: [`RedisTransport`] implements the core's
//! [`Transport`] (the protocol, its scripts, the breaker and the codec live in the core; this
//! crate only moves bytes).
//!
//! - One multiplexed RESP3 connection per process carries every operation; concurrent callers
//!   are pipelined on it. Writes go through one ordered queue, so two writes of a key land in
//!   the order they were made.
//! - healcache owns reconnecting: an operation on a lost connection fails at once (the core's
//!   breaker then skips L2 without waiting), and the breaker's probes reconnect. The redis
//!   crate's `ConnectionManager` is not used: its callers block for seconds during an outage.
//! - Everything runs on the process's I/O runtime (`healcache-rt`), rebuilt after `fork()`; a
//!   connection made by a parent process is never used by its child.
//! - URLs carry credentials (`redis://user:password@host`): `Debug` shows them redacted.
//!
//! ```no_run
//! use healcache::tier::MsgPack;
//! use healcache::Cache;
//! # fn run(timer: impl healcache::Timer, spawner: impl healcache::Spawner) -> healcache::Result<()> {
//! let l2 = healcache_redis::RedisTransport::connect("redis://127.0.0.1:6379")?;
//! let cache = Cache::<serde_json::Value>::builder()
//!     .timer(timer)
//!     .spawner(spawner)
//!     .shared_tier(l2, MsgPack::new())
//!     .build()?;
//! # Ok(()) }
//! ```

mod cluster;
mod common;
mod queue;
mod transport;

pub use cluster::RedisClusterTransport;
pub use transport::{redact, RedisTransport};
