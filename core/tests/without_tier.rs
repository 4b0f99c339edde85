//! Without the `tier` feature (the WebAssembly package's build of the core) a cache never has a
//! shared tier: `build` refuses one with a typed error, and the cache works as one without.
//! Run by `make test-wasm` (`cargo test -p healcache --no-default-features --test without_tier`).
#![cfg(not(feature = "tier"))]

mod common;

use common::fake_l2::FakeL2;
use healcache::tier::Neutral;
use healcache::{Cache, ManualClock};

#[test]
fn a_shared_tier_is_refused_at_build() {
    let err = Cache::<rmpv::Value>::builder().shared_tier(FakeL2::default(), Neutral).build().unwrap_err();
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
