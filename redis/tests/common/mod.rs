//! What the tests of the invalidation bus and of tags share: a redis-server, caches on it with
//! a long TTL, and waiting for what another instance does.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use healcache::tier::MsgPack;
use healcache::Cache;
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::RedisServer;
use serde_json::Value;

pub fn server() -> RedisServer {
    RedisServer::start().expect("redis-server must be installed (.ci/setup-server.sh) to run these tests")
}

/// A cache on `url` whose entries live 600 s, kept `grace` longer as a fallback.
pub fn cache_with_grace(url: &str, grace: Duration) -> Cache<Value> {
    let b = Cache::builder().timer(IoTimer).spawner(IoSpawner).ttl(Duration::from_secs(600));
    let b = if grace.is_zero() { b } else { b.grace(grace) };
    b.shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new()).build().unwrap()
}

pub fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
