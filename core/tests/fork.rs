//! A forked child: the loads the parent had under way are not joined, since no thread of the
//! child would end them (P9: a forked child works). Alone in its binary: `after_fork` is
//! process-wide.

use futures::executor::block_on;
use futures::FutureExt;
use healcache::Cache;

#[test]
fn after_a_fork_a_load_the_parent_had_under_way_is_not_joined() {
    let c: Cache<u64> = Cache::builder().build().unwrap();
    // the parent's load of "k": started, never to end (its thread is not in the child)
    let mut parent = Box::pin(c.get_or_load("k", futures::future::pending::<Result<u64, std::io::Error>>));
    assert!((&mut parent).now_or_never().is_none());
    assert_eq!(c.stats().in_flight, 1);
    healcache::after_fork();
    assert_eq!(c.stats().in_flight, 0, "the parent's load is not in flight here");
    let got = block_on(c.get_or_load("k", || async { Ok::<u64, std::io::Error>(2) })).unwrap();
    assert_eq!(got, 2);
    assert_eq!(c.stats().coalesced, 0, "a new load, not a wait on the parent's");
    // loads started here coalesce as before
    let mut first = Box::pin(c.get_or_load("j", futures::future::pending::<Result<u64, std::io::Error>>));
    assert!((&mut first).now_or_never().is_none());
    let mut second = Box::pin(c.get_or_load("j", || async { Ok::<u64, std::io::Error>(3) }));
    assert!((&mut second).now_or_never().is_none());
    assert_eq!((c.stats().in_flight, c.stats().coalesced), (1, 1));
    drop(parent);
}
