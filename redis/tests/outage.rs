//! Degradation against a real redis-server killed and restarted by its pid, and through a
//! fault proxy: the breaker opens fast, L1 and the loader keep serving, nothing waits past its
//! deadline, the tier comes back by itself, and no reply ever reaches the wrong caller.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use healcache::codec::PayloadCodec;
use healcache::tier::{MsgPack, ValueCodec};
use healcache::{Cache, FetchOptions, Loaded, Status};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::{FaultProxy, Faults, RedisOptions, RedisServer};
use serde_json::{json, Value};

const L2_TIMEOUT: Duration = Duration::from_millis(100);
/// What an operation may take beyond its deadline on this shared 2-core machine (scheduling).
const SLACK: Duration = Duration::from_millis(400);

fn cache(url: &str) -> Cache<Value> {
    Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .max_entries(100_000)
        .ttl(Duration::from_secs(60))
        .l2_timeout(L2_TIMEOUT)
        .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

/// Every value names its key, so a reply delivered to the wrong request is seen.
async fn get(c: &Cache<Value>, key: String) -> (healcache::Result<healcache::Fetched<Value>>, Duration) {
    let t = Instant::now();
    let k = key.clone();
    let r = c
        .fetch(&key, FetchOptions::default(), move || async move {
            Ok::<_, std::io::Error>(Loaded::Value(json!({ "key": k })))
        })
        .await;
    (r, t.elapsed())
}

#[test]
fn redis_killed_under_64_workers_then_restarted() {
    let mut r = RedisServer::start_with(RedisOptions::restricted()).unwrap();
    let url = r.url();
    let c = cache(&url);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // hot keys in L1 (and L2) before the outage
    rt.block_on(async {
        for i in 0..200 {
            get(&c, format!("hot:{i}")).await.0.unwrap();
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (errors, slow, ops) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let worst = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..64u64 {
        let (c, stop, errors, slow, ops, worst) =
            (c.clone(), stop.clone(), errors.clone(), slow.clone(), ops.clone(), worst.clone());
        workers.push(rt.spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                // a request handler awaits its I/O: without this, an iteration that never waits
                // (L1 hit, or L2 skipped and the loader ready at once) keeps its worker thread,
                // and the other tasks' clocks run on while they are not scheduled
                tokio::task::yield_now().await;
                // mostly hot keys (in L1), some cold ones (L2, then the loader)
                let key =
                    if i.is_multiple_of(4) { format!("cold:{w}:{i}") } else { format!("hot:{}", (i * 7 + w) % 200) };
                let (res, took) = get(&c, key.clone()).await;
                ops.fetch_add(1, Ordering::Relaxed);
                worst.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
                if took > L2_TIMEOUT * 2 + SLACK {
                    slow.fetch_add(1, Ordering::Relaxed);
                }
                match res {
                    Ok(f) if f.value == Some(json!({ "key": key })) => {}
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    r.kill();
    let opened = wait_until(Duration::from_secs(3), || c.stats().l2_breaker_state != 0);
    let open_after = killed.elapsed();
    let hits_before = c.stats().hits;
    std::thread::sleep(Duration::from_millis(1500));
    // the workers' pace depends on the machine's load: waited for, the outage still going on
    assert!(
        wait_until(Duration::from_secs(10), || c.stats().hits > hits_before + 1000),
        "L1 keeps serving hot keys during the outage: {:?}",
        c.stats()
    );
    let skipped = c.stats().l2_skipped;
    r.restart().unwrap();
    let restarted = Instant::now();
    let back = wait_until(Duration::from_secs(10), || c.stats().l2_breaker_state == 0);
    let back_after = restarted.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for w in workers {
            w.await.unwrap();
        }
    });
    let s = c.stats();
    eprintln!(
        "ops {} errors {} slow {} worst {:?}; breaker open after {:?}, closed {:?} after restart; l2 {:?}",
        ops.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        slow.load(Ordering::Relaxed),
        Duration::from_micros(worst.load(Ordering::Relaxed)),
        open_after,
        back_after,
        s
    );
    assert!(opened && open_after < Duration::from_secs(1), "breaker open within 1 s (took {open_after:?})");
    assert!(skipped > 0, "L2 calls were skipped while open");
    assert!(back && back_after < Duration::from_secs(5), "reconnected within 5 s of the restart ({back_after:?})");
    assert_eq!(errors.load(Ordering::Relaxed), 0, "no error for a key in L1 or loadable");
    assert_eq!(slow.load(Ordering::Relaxed), 0, "no operation waited past its deadline");
    // the tier is used again after the restart
    let writes = s.l2_writes;
    rt.block_on(get(&c, "after:1".into())).0.unwrap();
    assert!(wait_until(Duration::from_secs(2), || c.stats().l2_writes > writes));
}

#[test]
fn a_stopped_redis_opens_the_breaker_by_deadlines_and_cont_closes_it() {
    let r = RedisServer::start_with(RedisOptions::restricted()).unwrap();
    let c = cache(&r.url());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(get(&c, "k:0".into())).0.unwrap();
    r.stop();
    for i in 1..20 {
        let (res, took) = rt.block_on(get(&c, format!("k:{i}")));
        assert_eq!(res.unwrap().value, Some(json!({ "key": format!("k:{i}") })));
        assert!(took < L2_TIMEOUT * 2 + SLACK, "op {i} took {took:?}");
    }
    let s = c.stats();
    assert_eq!(s.l2_breaker_state, 1, "{s:?}");
    assert!(s.l2_timeouts >= 2, "{s:?}");
    r.cont();
    assert!(wait_until(Duration::from_secs(10), || c.stats().l2_breaker_state == 0), "{:?}", c.stats());
}

#[test]
fn through_a_faulty_link_no_reply_reaches_the_wrong_caller() {
    let r = RedisServer::start_with(RedisOptions::restricted()).unwrap();
    let proxy = FaultProxy::start(r.addr()).unwrap();
    let url = r.url().replace(&r.port().to_string(), &proxy.addr().port().to_string());
    let writer = cache(&r.url());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // 300 keys in L2, each value naming its key
    rt.block_on(async {
        for i in 0..300 {
            get(&writer, format!("k:{i}")).await.0.unwrap();
        }
    });
    let reader = cache(&url);
    proxy.set(Faults { slice_1byte: true, latency: Duration::from_millis(1), ..Default::default() });
    let (wrong, late, l2_hits) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..32u64 {
        let (c, wrong, late, l2_hits, stop) =
            (reader.clone(), wrong.clone(), late.clone(), l2_hits.clone(), stop.clone());
        tasks.push(rt.spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                i += 13;
                let key = format!("k:{}", i % 300);
                // a request handler awaits its I/O: without this, an iteration that never waits
                // (L1 hit, or L2 skipped and the loader ready at once) keeps its worker thread,
                // and the other tasks' clocks run on while they are not scheduled
                tokio::task::yield_now().await;
                c.remove(&key); // L1 only matters here: each read goes to L2
                let t = Instant::now();
                let fut = get(&c, key.clone());
                // a fifth of the callers give up early
                let res = if i.is_multiple_of(5) {
                    match tokio::time::timeout(Duration::from_micros(300), fut).await {
                        Ok(r) => Some(r.0),
                        Err(_) => None,
                    }
                } else {
                    Some(fut.await.0)
                };
                if t.elapsed() > L2_TIMEOUT * 2 + SLACK {
                    late.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(res) = res {
                    match res {
                        Ok(f) => {
                            if f.value != Some(json!({ "key": key })) {
                                wrong.fetch_add(1, Ordering::Relaxed);
                            }
                            if f.status == Status::L2Hit {
                                l2_hits.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(300));
        proxy.reset_all();
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    eprintln!(
        "l2 hits {} wrong {} late {}; {:?}",
        l2_hits.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed),
        late.load(Ordering::Relaxed),
        reader.stats()
    );
    assert_eq!(wrong.load(Ordering::Relaxed), 0, "a reply reached the wrong request");
    assert_eq!(late.load(Ordering::Relaxed), 0, "an operation outlived its deadline");
    assert!(l2_hits.load(Ordering::Relaxed) > 0, "reads went through the proxy");
}

/// A bus message queued before a write on a link that stopped answering: the write still ends at
/// its own deadline (a message never lends the write a longer one, nor holds the queue past it).
/// Best of three tries, as the bound is a wall-clock one on a shared machine.
#[test]
fn a_bus_message_on_a_stalled_link_holds_no_write_past_its_deadline() {
    use healcache::keys::L2Keys;
    use healcache::tier::{Expect, Transport, WriteRequest};
    const DEADLINE: Duration = Duration::from_millis(20);
    let r = RedisServer::start_with(RedisOptions::restricted()).unwrap();
    let proxy = FaultProxy::start(r.addr()).unwrap();
    let url = r.url().replace(&r.port().to_string(), &proxy.addr().port().to_string());
    let t = RedisTransport::connect(&url).unwrap();
    let mut took = Vec::new();
    for round in 0..3 {
        proxy.set(Faults::default());
        futures::executor::block_on(t.probe()).unwrap();
        proxy.set(Faults { blackhole: true, ..Default::default() });
        // kept, not polled: a message whose sender stopped waiting would not be sent
        let message = t.publish("hc:{bus}:test", vec![1; 64], DEADLINE);
        let keys =
            L2Keys { value: format!("hc:{{0}}:v:k{round}"), lock: "hc:{0}:l:k".into(), fence: "hc:{0}:f".into() };
        let write = t.write(WriteRequest {
            keys,
            envelope: vec![0; 32],
            px_ms: 1000,
            expect: Expect::Any,
            deadline: DEADLINE,
            release: None,
        });
        let started = Instant::now();
        let res = futures::executor::block_on(write);
        took.push(started.elapsed());
        assert_eq!(res, Err(healcache::tier::TransportError::Timeout), "nothing answers on a blackholed link");
        drop(message);
    }
    // its own deadline, plus at most the message's ahead of it in the queue
    let best = took.iter().min().unwrap();
    assert!(*best < DEADLINE * 2 + Duration::from_millis(200), "the write took {took:?}");
}

fn wait_until(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// A fetch of `key` counting its loader calls in `loads`.
fn fetch_counting(c: &Cache<Value>, key: &str, loads: &Arc<AtomicU64>) -> healcache::Fetched<Value> {
    let (k, loads) = (key.to_string(), loads.clone());
    futures::executor::block_on(c.fetch(key, FetchOptions::default(), move || async move {
        loads.fetch_add(1, Ordering::Relaxed);
        Ok::<_, std::io::Error>(Loaded::Value(json!({ "key": k })))
    }))
    .unwrap()
}

/// When Redis goes away, the silence on the bus makes L1 suspect, but a suspect copy that L2
/// cannot revalidate is served as it is: an L2 outage sends no instance's working set to the
/// origin (no miss storm), as FusionCache and bentocache keep serving L1.
#[test]
fn redis_going_away_sends_no_fresh_l1_entry_to_the_origin() {
    let mut r = RedisServer::start().unwrap();
    let c = cache(&r.url());
    let loads = Arc::new(AtomicU64::new(0));
    for i in 0..50 {
        assert_eq!(fetch_counting(&c, &format!("k:{i}"), &loads).status, Status::Loaded);
    }
    assert!(wait_until(Duration::from_secs(5), || c.stats().l2_writes >= 50));
    r.kill();
    // the bus misses its heartbeats: every L1 entry is suspect now
    assert!(wait_until(Duration::from_secs(5), || c.stats().l2_bus_gaps > 0));
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..50 {
        let f = fetch_counting(&c, &format!("k:{i}"), &loads);
        assert_eq!(f.value, Some(json!({ "key": format!("k:{i}") })));
        assert_eq!(f.status, Status::Hit, "k:{i}");
    }
    assert_eq!(loads.load(Ordering::Relaxed), 50, "no reload during the outage: {:?}", c.stats());
}

/// After Redis restarts, the next operation reconnects (the bus saw the connection drop), rather
/// than three operations failing first to open the breaker whose probe reconnects.
#[test]
fn after_a_restart_the_next_operation_uses_l2_again() {
    restart_then_load(false);
}

/// A restart slow enough that the bus heartbeats open the breaker first (on a loaded machine a
/// plain restart can take that long): once the probe closes the breaker, the next operations use
/// L2 again, with no error.
#[test]
fn after_a_slow_restart_the_operations_after_the_probe_use_l2_again() {
    restart_then_load(true);
}

fn restart_then_load(breaker_opens_first: bool) {
    let mut r = RedisServer::start().unwrap();
    let c = cache(&r.url());
    let loads = Arc::new(AtomicU64::new(0));
    fetch_counting(&c, "before", &loads);
    assert!(wait_until(Duration::from_secs(5), || c.stats().l2_writes >= 1));
    r.kill();
    if breaker_opens_first {
        assert!(wait_until(Duration::from_secs(5), || !c.ready()), "{:?}", c.stats());
    }
    r.restart().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // An open breaker probes within U(0, 1 s · 2^k), k the failed probes: bounded well inside 10 s
    assert!(wait_until(Duration::from_secs(10), || c.ready()), "{:?}", c.stats());
    let errors = c.stats().l2_errors;
    for i in 0..3 {
        let f = fetch_counting(&c, &format!("after:{i}"), &loads);
        assert_eq!(f.status, Status::Loaded, "after:{i}: {:?}", c.stats());
    }
    assert!(wait_until(Duration::from_secs(5), || c.stats().l2_writes >= 4), "{:?}", c.stats());
    assert_eq!(c.stats().l2_errors, errors, "{:?}", c.stats());
    assert!(c.ready());
}

/// An idle cache notices an outage by its bus heartbeats, which go to Redis every 250 ms: its
/// breaker opens and `ready()` turns false with no call made; once Redis is back, the probe
/// closes the breaker and `ready()` is true again.
#[test]
fn an_idle_cache_is_not_ready_while_redis_is_down() {
    let mut r = RedisServer::start().unwrap();
    let c = cache(&r.url());
    assert!(wait_until(Duration::from_secs(5), || c.ready()), "{:?}", c.stats());
    r.kill();
    assert!(wait_until(Duration::from_secs(3), || !c.ready()), "{:?}", c.stats());
    assert_ne!(c.stats().l2_breaker_state, 0);
    r.restart().unwrap();
    assert!(wait_until(Duration::from_secs(10), || c.ready()), "{:?}", c.stats());
    assert_eq!(c.stats().l2_breaker_state, 0);
}

/// A codec that lets a test see when the tier holding it is freed.
struct Watched(MsgPack<Value>, #[allow(dead_code)] Arc<()>);

impl ValueCodec<Value> for Watched {
    fn encode(&self, value: &Value) -> Result<(PayloadCodec, Vec<u8>), String> {
        self.0.encode(value)
    }
    fn decode(&self, codec: PayloadCodec, payload: &[u8]) -> Result<Value, String> {
        self.0.decode(codec, payload)
    }
}

/// Promise: a dropped cache frees what it holds. The breaker's probe loop runs until Redis
/// answers again; it must not keep a dropped cache's tier alive (and probing) meanwhile.
#[test]
fn a_cache_dropped_while_redis_is_down_is_freed() {
    let mut r = RedisServer::start().unwrap();
    let alive = Arc::new(());
    let c = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .l2_timeout(L2_TIMEOUT)
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), Watched(MsgPack::new(), Arc::clone(&alive)))
        .build()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || c.ready()), "{:?}", c.stats());
    r.kill();
    // the breaker opens and its probe loop starts
    assert!(wait_until(Duration::from_secs(3), || !c.ready()), "{:?}", c.stats());
    assert_ne!(c.stats().l2_breaker_state, 0);
    drop(c);
    assert!(
        wait_until(Duration::from_secs(3), || Arc::strong_count(&alive) == 1),
        "the tier is still held {} times after its cache was dropped",
        Arc::strong_count(&alive) - 1
    );
}
