//! Real parts for healcache's shared-tier tests, never mocks:
//! - [`RedisServer`]: a `redis-server` child process on a free loopback port, optionally running as a
//!   restricted ACL user, that tests can SIGKILL, SIGSTOP/SIGCONT and restart on the same port, always by
//!   its own pid.
//! - [`FaultProxy`]: a TCP proxy on loopback whose faults (latency, bandwidth, 1-byte slicing, blackhole,
//!   resets, refusal, data limit) change while it runs; the `healcache-faultproxy` binary exposes it to
//!   Python and Node tests through JSON lines on stdin.
//! - [`resp`]: a minimal RESP2 client, independent of the client under test, to probe and plant data.
//!
//! Everything binds and connects to 127.0.0.1 only.

mod proxy;
mod redis;
pub mod resp;

pub use proxy::{ConnInfo, Direction, FaultProxy, Faults, ACCEPT_LOG_LEN, FIRST_BYTES_KEPT};
pub use redis::{redis_available, RedisOptions, RedisServer, RESTRICTED_ACL_RULES};
