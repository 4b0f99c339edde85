//! Newer writes win, removals included: a load's store loses to every write and every explicit
//! removal of its key (a delete, a compare-and-delete, a clear, an invalidation) made since the
//! load began, also when the key is absent again by the time the load ends. Its callers still get
//! the value; the cache does not keep it, and `fenced_writes` counts it. Expiry and eviction are
//! no writes: a load whose key expires or is evicted meanwhile is stored.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use common::Boom;
use futures::channel::oneshot;
use futures::executor::block_on;
use futures::future::BoxFuture;
use healcache::{Cache, FetchOptions, Loaded, ManualClock, Spawner, Status};

const MS: Duration = Duration::from_millis(1);

/// A loader that returns `value` once the test sends on the gate it hands back.
fn held<T: Send + 'static>(value: T) -> (oneshot::Sender<()>, impl FnOnce() -> BoxFuture<'static, Result<T, Boom>>) {
    let (tx, rx) = oneshot::channel::<()>();
    let loader = move || -> BoxFuture<'static, Result<T, Boom>> {
        Box::pin(async move {
            let _ = rx.await;
            Ok(value)
        })
    };
    (tx, loader)
}

/// Polls `f` once: its load has begun (its fence is taken) and waits on its gate.
fn begin<F: Future + ?Sized>(f: Pin<&mut F>) {
    let pending = f.poll(&mut Context::from_waker(Waker::noop())).is_pending();
    assert!(pending, "the load is under way");
}

fn cache() -> Cache<String> {
    Cache::builder().max_entries(1000).build().unwrap()
}

/// Runs a held load of "user:1" (value "v1") with `during` done while it is under way; returns
/// what the caller got.
fn load_with(c: &Cache<String>, during: impl FnOnce(&Cache<String>)) -> String {
    let (gate, loader) = held("v1".to_string());
    let mut load = std::pin::pin!(c.get_or_load("user:1", loader));
    begin(load.as_mut());
    during(c);
    gate.send(()).unwrap();
    block_on(load).unwrap()
}

/// Newer writes win: a delete during a load keeps the loaded value out of the cache; the caller
/// still gets it, and the next read loads again.
#[test]
fn newer_writes_win_a_delete_during_a_load_keeps_its_value_out() {
    let c = cache();
    let got = load_with(&c, |c| {
        c.set("user:1", "v0".into()).unwrap();
        assert_eq!(c.remove("user:1").as_deref(), Some("v0"));
    });
    assert_eq!(got, "v1", "the caller gets what it loaded");
    assert_eq!(c.get("user:1"), None, "the delete won");
    assert_eq!(c.stats().fenced_writes, 1);
    let again = block_on(c.get_or_load("user:1", || async { Ok::<_, Boom>("v2".to_string()) })).unwrap();
    assert_eq!(again, "v2", "the next read loads again");
}

/// Newer writes win: the audit's repro. A set then a delete during the load leave the key absent
/// as it was when the load began; the load's value (older than the set) stays out all the same.
#[test]
fn newer_writes_win_a_set_then_delete_during_a_load_keeps_its_value_out() {
    let c = cache();
    let got = load_with(&c, |c| {
        c.set("user:1", "v2".into()).unwrap();
        c.remove("user:1");
    });
    assert_eq!(got, "v1");
    assert_eq!(c.get("user:1"), None, "not the stale v1");
    assert_eq!(c.stats().fenced_writes, 1);
}

/// Newer writes win: a delete of a key still absent during its load (an invalidation of what
/// the load may have read) keeps the load's value out.
#[test]
fn newer_writes_win_a_delete_of_an_absent_key_during_its_load_keeps_its_value_out() {
    let c = cache();
    let got = load_with(&c, |c| assert_eq!(c.remove("user:1"), None));
    assert_eq!(got, "v1");
    assert_eq!(c.get("user:1"), None);
    assert_eq!(c.stats().fenced_writes, 1);
}

/// Newer writes win: a clear during a load, with or without a set of the key before it, keeps
/// the load's value out.
#[test]
fn newer_writes_win_a_clear_during_a_load_keeps_its_value_out() {
    let c = cache();
    let got = load_with(&c, |c| {
        c.set("user:1", "v2".into()).unwrap();
        c.clear();
    });
    assert_eq!(got, "v1");
    assert_eq!(c.get("user:1"), None);
    let got = load_with(&c, |c| c.clear());
    assert_eq!(got, "v1");
    assert_eq!(c.get("user:1"), None);
    assert_eq!(c.stats().fenced_writes, 2);
}

/// Newer writes win: a compare-and-delete that removes the key during its load keeps the load's
/// value out; one that removes nothing (version 0 of an absent key) changes nothing, and the
/// load is stored.
#[test]
fn newer_writes_win_a_compare_and_delete_during_a_load_fences_it_only_when_it_removes() {
    let c = cache();
    let got = load_with(&c, |c| {
        let v = c.set("user:1", "v2".into()).unwrap();
        assert!(c.remove_if_version("user:1", v).unwrap());
    });
    assert_eq!(got, "v1");
    assert_eq!(c.get("user:1"), None);
    assert_eq!(c.stats().fenced_writes, 1);

    let got = load_with(&c, |c| assert!(!c.remove_if_version("user:1", 0).unwrap()));
    assert_eq!(got, "v1");
    assert_eq!(c.get("user:1").as_deref(), Some("v1"), "nothing was removed: the load is stored");
    assert_eq!(c.stats().fenced_writes, 1);
}

/// Newer writes win, also for a load that began with a stale entry: a delete of that entry
/// during the load keeps the load's value out.
#[test]
fn newer_writes_win_a_delete_of_a_stale_entry_during_its_refresh_keeps_the_value_out() {
    let clock = ManualClock::new();
    let c: Cache<String> =
        Cache::builder().clock(clock.clone()).ttl(100 * MS).grace(Duration::from_secs(10)).build().unwrap();
    c.set("user:1", "v0".into()).unwrap();
    clock.advance(150 * MS);
    let got = load_with(&c, |c| {
        c.remove("user:1");
    });
    assert_eq!(got, "v1");
    assert_eq!(c.get("user:1"), None);
    assert_eq!(c.stats().fenced_writes, 1);
}

/// Newer writes win, and only they: a load whose stale entry expires past its grace window and is
/// swept meanwhile is stored (expiry is no write).
#[test]
fn newer_writes_win_expiry_during_a_load_does_not_fence_it() {
    let clock = ManualClock::new();
    let c: Cache<String> = Cache::builder().clock(clock.clone()).ttl(100 * MS).grace(100 * MS).build().unwrap();
    c.set("user:1", "v0".into()).unwrap();
    clock.advance(150 * MS);
    let got = load_with(&c, |c| {
        clock.advance(Duration::from_secs(1));
        assert_eq!(c.purge_expired(), 1, "the stale entry is swept");
    });
    assert_eq!(got, "v1");
    assert_eq!(c.get("user:1").as_deref(), Some("v1"), "the load is stored");
    assert_eq!(c.stats().fenced_writes, 0);
}

/// Keeps background work; the test polls it when it chooses.
#[derive(Clone, Default)]
struct Jobs(Arc<Mutex<Vec<BoxFuture<'static, ()>>>>);

impl Spawner for Jobs {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        self.0.lock().unwrap().push(fut);
    }
}

/// Newer writes win, and only they: a refresh whose entry is evicted meanwhile is stored
/// (eviction is no write).
#[test]
fn newer_writes_win_eviction_during_a_load_does_not_fence_it() {
    let clock = ManualClock::new();
    let jobs = Jobs::default();
    let c: Cache<u64> = Cache::builder()
        .clock(clock.clone())
        .spawner(jobs.clone())
        .max_entries(1)
        .shards(1)
        .ttl(Duration::from_secs(10))
        .refresh_after(20 * MS)
        .build()
        .unwrap();
    c.set("k", 1).unwrap();
    clock.advance(30 * MS);
    let (gate, loader) = held(Loaded::Value(2u64));
    let f = block_on(c.fetch("k", FetchOptions::default(), loader)).unwrap();
    assert_eq!((f.value, f.status), (Some(1), Status::RefreshAhead));
    let mut refresh = jobs.0.lock().unwrap().pop().expect("a background refresh");
    begin(refresh.as_mut());
    c.set("other", 9).unwrap();
    assert_eq!(c.peek("k"), None, "k was evicted");
    assert!(c.stats().evictions >= 1);
    gate.send(()).unwrap();
    block_on(refresh);
    assert_eq!(c.peek("k"), Some(2), "the refresh is stored");
    assert_eq!(c.stats().fenced_writes, 0);
}

/// Newer writes win whatever happens to them after: a set during a load whose entry is evicted
/// before the load ends still keeps the older loaded value out.
#[test]
fn newer_writes_win_a_set_during_a_load_then_evicted_keeps_its_value_out() {
    let c: Cache<String> = Cache::builder().max_entries(1).shards(1).build().unwrap();
    let got = load_with(&c, |c| {
        c.set("user:1", "v2".into()).unwrap();
        c.set("other", "o".into()).unwrap();
        assert_eq!(c.peek("user:1"), None, "the newer value was evicted");
    });
    assert_eq!(got, "v1");
    assert_eq!(c.peek("user:1"), None, "not the older v1");
    assert_eq!(c.stats().fenced_writes, 1);
}

/// Newer writes win over a refresh too: a delete during a background refresh keeps its value out.
#[test]
fn newer_writes_win_a_delete_during_a_background_refresh_keeps_its_value_out() {
    let clock = ManualClock::new();
    let jobs = Jobs::default();
    let c: Cache<u64> = Cache::builder()
        .clock(clock.clone())
        .spawner(jobs.clone())
        .ttl(Duration::from_secs(10))
        .refresh_after(20 * MS)
        .build()
        .unwrap();
    c.set("k", 1).unwrap();
    clock.advance(30 * MS);
    let (gate, loader) = held(Loaded::Value(2u64));
    let f = block_on(c.fetch("k", FetchOptions::default(), loader)).unwrap();
    assert_eq!(f.status, Status::RefreshAhead);
    let mut refresh = jobs.0.lock().unwrap().pop().expect("a background refresh");
    begin(refresh.as_mut());
    c.set("k", 3).unwrap();
    c.remove("k");
    gate.send(()).unwrap();
    block_on(refresh);
    assert_eq!(c.peek("k"), None, "the delete won");
    assert_eq!(c.stats().fenced_writes, 1);
}

/// Newer writes win for the blocking twin, which shares the flights: a delete from another
/// thread during its load keeps the value out.
#[test]
fn newer_writes_win_a_delete_during_a_blocking_load_keeps_its_value_out() {
    let c = cache();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let c2 = c.clone();
    let t = std::thread::spawn(move || {
        c2.get_or_load_blocking("user:1", move || {
            started_tx.send(()).unwrap();
            gate_rx.recv().unwrap();
            Ok::<_, Boom>("v1".to_string())
        })
    });
    started_rx.recv().unwrap();
    c.set("user:1", "v2".into()).unwrap();
    c.remove("user:1");
    gate_tx.send(()).unwrap();
    assert_eq!(t.join().unwrap().unwrap(), "v1");
    assert_eq!(c.get("user:1"), None);
    assert_eq!(c.stats().fenced_writes, 1);
}

/// Every call ends and nothing leaks: a load future dropped before it was ever polled leaves no
/// trace that fences the next load of its key.
#[test]
fn p1_a_load_dropped_before_its_first_poll_leaves_nothing_behind() {
    let c = cache();
    for _ in 0..3 {
        drop(c.get_or_load("user:1", || async { Ok::<_, Boom>("never".to_string()) }));
    }
    let v = block_on(c.get_or_load("user:1", || async { Ok::<_, Boom>("v1".to_string()) })).unwrap();
    assert_eq!(v, "v1");
    assert_eq!(c.get("user:1").as_deref(), Some("v1"));
    assert_eq!(c.stats().fenced_writes, 0);
    assert_eq!(c.in_flight(), 0);
}

/// Newer writes win under contention: loads and deletes of a few keys from many threads. Once a
/// delete has returned, its key holds nothing or the value of a load that began after the delete
/// began, never one from before it.
#[test]
fn newer_writes_win_under_contention_no_load_outlives_a_later_delete() {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    const KEYS: usize = 2;
    let c: Cache<u64> = Cache::builder().max_entries(1000).build().unwrap();
    // per key: deletes begun (a load's value is the count its loader saw) and deletes returned
    let begun: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let (c, begun, done) = (c.clone(), begun.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..3000u64 {
                    let k = ((i + t) % KEYS as u64) as usize;
                    let key = format!("k{k}");
                    if (i + t) % 4 == 0 {
                        let n = begun[k].fetch_add(1, SeqCst) + 1;
                        c.remove(&key);
                        done[k].fetch_max(n, SeqCst);
                    } else {
                        let b = begun.clone();
                        let r = c.get_or_load_blocking(&key, move || {
                            let seen = b[k].load(SeqCst);
                            for _ in 0..20 {
                                std::thread::yield_now();
                            }
                            Ok::<_, Boom>(seen)
                        });
                        r.unwrap();
                    }
                    let returned = done[k].load(SeqCst);
                    if let Some(seen) = c.peek(&key) {
                        assert!(seen >= returned, "{key} holds a load from before delete {returned}: {seen}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = c.stats();
    assert!(s.loads > 100, "loads raced the deletes: {} loads", s.loads);
}

/// Newer writes win in a miss storm: of a thousand loads under way, a delete of one key keeps
/// only that key's value out; every other load is stored, and none is left behind.
#[test]
fn newer_writes_win_a_delete_among_a_thousand_loads_fences_only_its_own() {
    const LOADS: usize = 1000;
    let c: Cache<String> = Cache::builder().max_entries(2 * LOADS as u64).build().unwrap();
    let mut gates = Vec::with_capacity(LOADS);
    let mut loads = Vec::with_capacity(LOADS);
    for i in 0..LOADS {
        let (gate, loader) = held(format!("v{i}"));
        let mut load = Box::pin(c.get_or_load(&format!("user:{i}"), loader));
        begin(load.as_mut());
        gates.push(gate);
        loads.push(load);
    }
    assert_eq!(c.in_flight(), LOADS);
    assert_eq!(c.remove("user:417"), None);
    for gate in gates {
        gate.send(()).unwrap();
    }
    for (i, load) in loads.into_iter().enumerate() {
        assert_eq!(block_on(load).unwrap(), format!("v{i}"), "every caller gets what it loaded");
    }
    assert_eq!(c.stats().fenced_writes, 1);
    assert_eq!(c.get("user:417"), None, "the delete won");
    for i in (0..LOADS).filter(|&i| i != 417) {
        assert_eq!(c.get(&format!("user:{i}")), Some(format!("v{i}")), "user:{i} is stored");
    }
    assert_eq!(c.in_flight(), 0);
}

/// A value read from the shared tier is fenced as a loaded one is.
#[cfg(feature = "tier")]
mod shared {
    use super::*;
    use common::fake_l2::{FakeL2, Never};
    use futures::future::FutureExt;
    use healcache::codec::{self, Kind, Limits, Token};
    use healcache::tier::{MsgPack, ReadReply, ValueCodec};

    /// An L2 that holds `value` under every key, fresh for a minute, and answers the first read
    /// only once the test opens the gate; every write lands, every background job is dropped.
    fn held_l2(value: &str, gate: oneshot::Receiver<()>) -> FakeL2 {
        let (value, gate) = (value.to_string(), Arc::new(Mutex::new(Some(gate))));
        FakeL2::reading(Arc::new(move |value_key: &str| {
            let (pc, payload) = MsgPack::<String>::new().encode(&value).unwrap();
            let env = codec::encode(
                value_key.as_bytes(),
                Kind::Value,
                pc,
                Token::default(),
                60_000,
                0,
                0,
                &payload,
                &Limits::default(),
            )
            .unwrap();
            let gate = gate.lock().unwrap().take();
            async move {
                if let Some(g) = gate {
                    let _ = g.await;
                }
                Ok(ReadReply { value: Some(env), too_long: 0, pttl_ms: 60_000 })
            }
            .boxed()
        }))
    }

    fn tiered() -> (Cache<String>, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        let l2 = held_l2("v1", rx);
        let c = Cache::builder().timer(Never).shared_tier(l2, MsgPack::<String>::new()).build().unwrap();
        (c, tx)
    }

    /// P7 and newer writes win: a set then a delete of the key while its L2 read is under way
    /// keep the value read out of L1; the caller still gets it.
    #[test]
    fn p7_a_delete_during_an_l2_read_keeps_the_value_read_out() {
        let (c, gate) = tiered();
        let mut load = std::pin::pin!(c.fetch("user:1", FetchOptions::default(), || async {
            Ok::<_, Boom>(Loaded::Value("from the loader".to_string()))
        }));
        begin(load.as_mut());
        c.set("user:1", "v2".into()).unwrap();
        c.remove("user:1");
        gate.send(()).unwrap();
        let f = block_on(load).unwrap();
        assert_eq!((f.value.as_deref(), f.status), (Some("v1"), Status::L2Hit));
        assert_eq!(c.peek("user:1"), None, "the delete won");
        assert_eq!(c.stats().fenced_writes, 1);
    }

    /// P7 and newer writes win: a clear while an L2 read is under way keeps the value read out.
    #[test]
    fn p7_a_clear_during_an_l2_read_keeps_the_value_read_out() {
        let (c, gate) = tiered();
        let mut load = std::pin::pin!(c.fetch("user:1", FetchOptions::default(), || async {
            Ok::<_, Boom>(Loaded::Value("from the loader".to_string()))
        }));
        begin(load.as_mut());
        c.clear();
        gate.send(()).unwrap();
        let f = block_on(load).unwrap();
        assert_eq!(f.value.as_deref(), Some("v1"));
        assert_eq!(c.peek("user:1"), None);
    }

    /// An L2 read no removal overlaps fills L1.
    #[test]
    fn p7_an_l2_read_alone_fills_l1() {
        let (c, gate) = tiered();
        gate.send(()).unwrap();
        let f = block_on(c.fetch("user:1", FetchOptions::default(), || async {
            Ok::<_, Boom>(Loaded::Value("from the loader".to_string()))
        }))
        .unwrap();
        assert_eq!((f.value.as_deref(), f.status), (Some("v1"), Status::L2Hit));
        assert_eq!(c.peek("user:1").as_deref(), Some("v1"));
        assert_eq!(c.stats().fenced_writes, 0);
    }
}
