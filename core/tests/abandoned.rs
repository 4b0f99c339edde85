//! Background loads the host may stop (`Spawner::keeps_alive` false, as on an edge runtime
//! without `waitUntil`): a key is never left waiting on one. A caller that needs a value starts a
//! new load; stale readers keep getting the stale value without starting one each.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Boom;
use futures::executor::block_on;
use futures::future::BoxFuture;
use futures::FutureExt;
use healcache::{Cache, FetchOptions, Loaded, ManualClock, Spawner, Status};

/// A host that never runs background work it was handed (a request that answered and was
/// stopped), and says whether it keeps work alive.
#[derive(Clone)]
struct Host {
    keeps: bool,
    held: Arc<Mutex<Vec<BoxFuture<'static, ()>>>>,
}

impl Spawner for Host {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        self.held.lock().unwrap().push(fut);
    }
    fn keeps_alive(&self) -> bool {
        self.keeps
    }
}

const MS: Duration = Duration::from_millis(1);

fn cache(keeps: bool) -> (Cache<u64>, ManualClock, Host) {
    let clock = ManualClock::new();
    let host = Host { keeps, held: Arc::default() };
    let c = Cache::builder()
        .clock(clock.clone())
        .spawner(host.clone())
        .ttl(1000 * MS)
        .grace(500 * MS)
        .stale_while_revalidate(true)
        .seed(3)
        .build()
        .unwrap();
    (c, clock, host)
}

fn counting(calls: &Arc<AtomicUsize>) -> impl FnOnce() -> BoxFuture<'static, Result<Loaded<u64>, Boom>> + Send {
    let calls = calls.clone();
    move || async move { Ok(Loaded::Value(calls.fetch_add(1, SeqCst) as u64 + 1)) }.boxed()
}

/// The refresh a stale read left to a host that stopped it: stale reads within grace get the
/// stale value and start no second refresh; past grace a caller loads again instead of waiting
/// forever on the stopped one.
#[test]
fn a_refresh_the_host_stopped_never_strands_its_key() {
    let (c, clock, host) = cache(false);
    let calls = Arc::new(AtomicUsize::new(0));
    let f = block_on(c.fetch("k", FetchOptions::default(), counting(&calls))).unwrap();
    assert_eq!((f.value, f.status), (Some(1), Status::Loaded));
    clock.advance(1100 * MS);
    for _ in 0..10 {
        let f = block_on(c.fetch("k", FetchOptions::default(), counting(&calls))).unwrap();
        assert_eq!((f.value, f.status), (Some(1), Status::Stale));
    }
    assert_eq!(host.held.lock().unwrap().len(), 1, "one refresh handed to the host for 10 stale reads");
    assert_eq!(calls.load(SeqCst), 1, "the host never ran it");
    clock.advance(500 * MS); // past grace: no stale value to serve
    let f = c.fetch("k", FetchOptions::default(), counting(&calls)).now_or_never().expect("does not wait").unwrap();
    assert_eq!((f.value, f.status), (Some(2), Status::Loaded), "a new load, not a wait on the stopped one");
    let v = block_on(c.get_or_load("k", || async { Ok::<_, Boom>(99) })).unwrap();
    assert_eq!(v, 2);
}

/// The same refresh on a host that keeps background work alive: a caller past grace joins it
/// (one load), as it always did.
#[test]
fn a_refresh_the_host_keeps_is_joined() {
    let (c, clock, host) = cache(true);
    let calls = Arc::new(AtomicUsize::new(0));
    block_on(c.fetch("k", FetchOptions::default(), counting(&calls))).unwrap();
    clock.advance(1100 * MS);
    let f = block_on(c.fetch("k", FetchOptions::default(), counting(&calls))).unwrap();
    assert_eq!(f.status, Status::Stale);
    clock.advance(500 * MS);
    // any waiter drives a flight it joined: this one runs the kept refresh's loader
    let f = block_on(c.fetch("k", FetchOptions::default(), counting(&calls))).unwrap();
    assert_eq!((f.value, f.status), (Some(2), Status::Coalesced), "joined the kept refresh");
    let jobs: Vec<_> = std::mem::take(&mut *host.held.lock().unwrap());
    for j in jobs {
        block_on(j);
    }
    assert_eq!(calls.load(SeqCst), 2, "one load for the refresh and the caller");
}
