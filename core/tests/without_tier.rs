//! Without the `tier` feature (the WebAssembly package's build of the core) a cache never has a
//! shared tier: `build` refuses one with a typed error, and the cache works as one without.
//! Run by `make test-wasm` (`cargo test -p healcache --no-default-features --test without_tier`).
#![cfg(not(feature = "tier"))]

use futures::future::{self, BoxFuture, FutureExt};
use healcache::codec::Token;
use healcache::keys::L2Keys;
use healcache::tier::{
    BusSink, LeaseReply, LockReply, Neutral, ReadReply, Record, Transport, TransportError, WriteReply, WriteRequest,
};
use healcache::{Cache, ManualClock};

/// A transport no test reaches: the builder refuses the tier before using it.
struct Unreachable;

impl Transport for Unreachable {
    fn read(&self, _: &str) -> BoxFuture<'static, Result<ReadReply, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn revalidate(&self, _: &str) -> BoxFuture<'static, Result<(Option<Token>, i64), TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn tag_versions(&self, _: Vec<String>) -> BoxFuture<'static, Result<Vec<u64>, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn tag_bump(&self, _: &str) -> BoxFuture<'static, Result<u64, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn write(&self, _: WriteRequest) -> BoxFuture<'static, Result<WriteReply, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn unlink_matching(&self, _: String) -> BoxFuture<'static, Result<u64, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn probe(&self) -> BoxFuture<'static, Result<(), TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn spawn(&self, _: BoxFuture<'static, ()>) {}
    fn close(&self, _: std::time::Duration) -> BoxFuture<'static, ()> {
        future::ready(()).boxed()
    }
    fn acquire(
        &self,
        _: &L2Keys,
        _: &str,
        _: std::time::Duration,
    ) -> BoxFuture<'static, Result<LockReply, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn renew(&self, _: &str, _: &str, _: std::time::Duration) -> BoxFuture<'static, Result<bool, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn release(&self, _: &str, _: &str) -> BoxFuture<'static, Result<bool, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn publish(&self, _: &str, _: Vec<u8>, _: std::time::Duration) -> BoxFuture<'static, Result<(), TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn subscribe(&self, _: &str, _: std::sync::Arc<dyn BusSink>) {}
    fn scan(&self, _: &str, _: u64, _: usize) -> BoxFuture<'static, Result<(u64, Vec<String>), TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn try_lease(
        &self,
        _: &str,
        _: &str,
        _: std::time::Duration,
    ) -> BoxFuture<'static, Result<LeaseReply, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn put_record(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Record,
        _: std::time::Duration,
    ) -> BoxFuture<'static, Result<bool, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn get_record(&self, _: &str) -> BoxFuture<'static, Result<Record, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
}

#[test]
fn a_shared_tier_is_refused_at_build() {
    let err = Cache::<rmpv::Value>::builder().shared_tier(Unreachable, Neutral).build().unwrap_err();
    assert_eq!(err.code(), "InvalidConfig");
    assert_eq!(err.to_string(), "invalid config: `shared_tier` needs healcache's `tier` feature (on by default)");
}

#[test]
fn a_cache_without_one_works_and_counts_no_l2() {
    let cache = Cache::<u64>::builder().clock(ManualClock::new()).build().unwrap();
    cache.set("a", 1).unwrap();
    assert_eq!(cache.get("a"), Some(1));
    let s = cache.stats();
    assert_eq!((s.l2_hits, s.l2_misses, s.l2_writes), (0, 0, 0));
    assert_eq!(futures::executor::block_on(cache.unlink_shared("*")).unwrap(), 0);
}
