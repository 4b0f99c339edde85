//! Real parts for healcache's shared-tier tests, never mocks:
//! - [`RedisServer`]: a `redis-server` child process on a free loopback port, optionally running as a
//!   restricted ACL user, that tests can SIGKILL, SIGSTOP/SIGCONT and restart on the same port, always by
//!   its own pid.
//! - [`RedisCluster`]: three cluster-enabled `redis-server` children on loopback, slots assigned by
//!   hand, stopped by their pids.
//! - [`FaultProxy`]: a TCP proxy on loopback whose faults (latency, bandwidth, 1-byte slicing, blackhole,
//!   resets, refusal, data limit) change while it runs; the `healcache-faultproxy` binary exposes it to
//!   Python and Node tests through JSON lines on stdin.
//! - [`Origin`]: an HTTP origin on loopback that saturates like a database (a fixed number of workers
//!   behind an unbounded queue, a fixed time per query, an optional 503 gate), counting every query.
//! - [`resp`]: a minimal RESP2 client, independent of the client under test, to probe and plant data.
//!
//! Everything binds and connects to 127.0.0.1 only.
//!
//! ```
//! use std::time::Duration;
//! use healcache_testkit::resp::{Reply, RespConn};
//! use healcache_testkit::{Direction, FaultProxy, Faults, RedisServer};
//!
//! let mut redis = RedisServer::start_restricted()?;
//! let proxy = FaultProxy::start(redis.addr())?;
//! let url = redis.url_via(proxy.addr()); // the credentials and the proxy: give it to the client under test
//! assert!(url.starts_with("redis://hc:"));
//!
//! proxy.set(Faults { latency: Duration::from_millis(20), jitter: Duration::from_millis(5), ..Default::default() });
//! proxy.set_dir(Direction::Downstream, Faults { slice_1byte: true, ..Default::default() });
//! let mut c = RespConn::connect(proxy.addr(), Duration::from_secs(5))?;
//! let (user, pw) = redis.credentials().unwrap();
//! assert_eq!(c.cmd(&["AUTH", user, pw])?, Reply::Simple("OK".into()));
//! assert!(matches!(c.cmd(&["KEYS", "*"])?, Reply::Error(e) if e.starts_with("NOPERM")));
//!
//! // Pick out one connection and fault it alone.
//! let id = proxy.open_connections()[0].id;
//! proxy.set_conn(id, Direction::Both, Faults { blackhole: true, ..Default::default() });
//! proxy.reset_conn(id);
//!
//! redis.stop(); // SIGSTOP: open sockets, no answers
//! redis.cont();
//! let port = redis.port();
//! redis.restart()?; // SIGKILL, then a new process on the same port
//! assert_eq!(redis.port(), port);
//! # Ok::<(), std::io::Error>(())
//! ```

mod cluster;
mod origin;
mod proxy;
mod redis;
pub mod resp;

pub use cluster::{RedisCluster, CLUSTER_PRIMARIES, CLUSTER_SLOTS};
pub use origin::{Gate, Origin, OriginOptions, OriginStats, Query};
pub use proxy::{ConnInfo, Direction, FaultProxy, Faults, ACCEPT_LOG_LEN, FIRST_BYTES_KEPT, MAX_DELAY};
pub use redis::{redis_available, RedisOptions, RedisServer, RESTRICTED_ACL_RULES};
