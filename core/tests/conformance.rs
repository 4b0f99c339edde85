//! The conformance scenarios (`tests/conformance/*.json`, described in its README) on the Rust
//! surface: the same files the Python, Node and WASM drivers run. Time is a `ManualClock`; load
//! timeouts sleep on a timer of that clock; background work and calls run on a local executor.
//! Writes `target/conformance/rust.json` for the README's feature matrix.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::oneshot;
use futures::executor::LocalPool;
use futures::future::{self, BoxFuture, FutureExt, Shared};
use futures::task::LocalSpawnExt;
use healcache::*;
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
struct J(Value);
impl Hash for J {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.to_string().hash(h)
    }
}

type Gate = (Option<oneshot::Sender<()>>, Shared<oneshot::Receiver<()>>);
type Slot = Rc<RefCell<Option<Value>>>;

#[derive(Clone, Default)]
struct Jobs(Arc<Mutex<Vec<BoxFuture<'static, ()>>>>);
impl Spawner for Jobs {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        self.0.lock().unwrap().push(fut);
    }
}

/// Sleeps in the manual clock's time: fired by the driver once the clock has passed the deadline.
#[derive(Clone)]
struct ClockTimer(ManualClock, Arc<Mutex<Vec<Due>>>);
/// A sleep's deadline on the manual clock, in nanoseconds, and what wakes it.
type Due = (u64, oneshot::Sender<()>);
impl Timer for ClockTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let (tx, rx) = oneshot::channel();
        self.1.lock().unwrap().push((self.0.now_nanos() + d.as_nanos() as u64, tx));
        rx.map(drop).boxed()
    }
}

type Load = Box<dyn FnOnce() -> BoxFuture<'static, std::result::Result<Loaded<J>, Error>> + Send>;

/// What a scripted loader needs: the clock it advances, the gates it waits on, the cache it asks.
#[derive(Clone)]
struct Ctx(ManualClock, Arc<Mutex<HashMap<String, Gate>>>, Cache<J>);

/// The loader a scenario describes (see tests/conformance/README.md).
fn loader(ctx: &Ctx, spec: &Value) -> Load {
    let (spec, ctx) = (spec.clone(), ctx.clone());
    let gate = spec["gate"].as_str().map(|g| {
        let (tx, rx) = oneshot::channel();
        ctx.1.lock().unwrap().entry(g.to_owned()).or_insert_with(|| (Some(tx), rx.shared())).1.clone()
    });
    Box::new(move || {
        async move {
            if let Some(g) = gate {
                let _ = g.await;
            }
            if let Some(d) = spec.get("advance") {
                ctx.0.advance(ms(d));
            }
            if spec.get("hang").is_some() {
                future::pending::<()>().await;
            }
            if let Some(m) = spec["panic"].as_str() {
                panic!("{m}");
            }
            if let Some(m) = spec["error"].as_str() {
                return Err(Error::Loader(LoaderError::new(m.to_owned(), m)));
            }
            if let Some(k) = spec["load"].as_str() {
                let inner = loader(&ctx, &spec["loader"]);
                let value = move || {
                    inner().map(|r| r.and_then(|l| if let Loaded::Value(v) = l { Ok(v) } else { Err(Error::NotFound) }))
                };
                return ctx.2.get_or_load(k, value).await.map(Loaded::Value);
            }
            Ok(if spec.get("not_found").is_some() { Loaded::NotFound } else { Loaded::Value(J(spec["value"].clone())) })
        }
        .boxed()
    })
}

struct Run {
    cache: Cache<J>,
    healer: Healer<J>,
    clock: ManualClock,
    timer: ClockTimer,
    jobs: Jobs,
    pool: LocalPool,
    gates: Arc<Mutex<HashMap<String, Gate>>>,
    calls: HashMap<String, Slot>,
    aborts: HashMap<String, future::AbortHandle>,
}

fn ms(v: &Value) -> Duration {
    Duration::from_secs_f64(v.as_f64().unwrap() / 1000.0)
}

fn err(e: &Error) -> Value {
    if let Error::Loader(l) = e {
        // a loader's own error, unchanged: here a core error it passed on, or its message
        return match l.downcast_ref::<Error>() {
            Some(inner) => err(inner),
            None => json!({"error": "LoaderError", "message": l.message()}),
        };
    }
    match e {
        Error::InvalidConfig { field, .. } => json!({"error": e.code(), "field": field}),
        _ => json!({"error": e.code()}),
    }
}

fn build(s: &Value) -> Result<Run> {
    let clock = ManualClock::new();
    let timer = ClockTimer(clock.clone(), Arc::default());
    let jobs = Jobs::default();
    let mut config = Config { seed: Some(s["config"]["seed"].as_u64().unwrap_or(1)), ..Config::default() };
    let mut weigh = false;
    for (name, v) in s["config"].as_object().into_iter().flatten() {
        match name.as_str() {
            "seed" => {}
            "weigher" => weigh = true,
            _ => config.set(name, v.as_f64().unwrap_or_else(|| f64::from(u8::from(v == &json!(true)))))?,
        }
    }
    let mut b = CacheBuilder::from_config(config).clock(clock.clone()).timer(timer.clone()).spawner(jobs.clone());
    if weigh {
        b = b.weigher(|v: &J| v.0.as_str().map_or(0, |s| s.len() as u64));
    }
    let cache = b.build()?;
    let mut hc = HealingConfig::default();
    for (name, v) in s["healing"].as_object().into_iter().flatten() {
        hc.set(name, v.as_f64().unwrap_or_else(|| f64::from(u8::from(v == &json!(true)))))?;
    }
    let healer = Healer::new(cache.clone(), hc)?;
    let gates = Arc::default();
    Ok(Run {
        cache,
        healer,
        clock,
        timer,
        jobs,
        pool: LocalPool::new(),
        gates,
        calls: HashMap::new(),
        aborts: HashMap::new(),
    })
}

impl Run {
    /// Runs calls, background work and due timers until nothing moves or `slot` is filled.
    fn settle(&mut self, slot: Option<&Slot>) {
        loop {
            self.pool.run_until_stalled();
            if slot.is_some_and(|s| s.borrow().is_some()) {
                return;
            }
            let jobs: Vec<_> = std::mem::take(&mut *self.jobs.0.lock().unwrap());
            let moved = !jobs.is_empty();
            jobs.into_iter().for_each(|j| self.pool.spawner().spawn_local(j).unwrap());
            let now = self.clock.now_nanos();
            let due: Vec<_> = {
                let mut t = self.timer.1.lock().unwrap();
                let (due, keep) = std::mem::take(&mut *t).into_iter().partition(|(at, _)| *at <= now);
                *t = keep;
                due
            };
            let fired = !due.is_empty();
            due.into_iter().for_each(|(_, tx)| {
                let _ = tx.send(());
            });
            if !moved && !fired {
                return;
            }
        }
    }

    /// Starts a `fetch` or `get_or_load` call; its outcome lands in the slot.
    fn start(&mut self, step: &Value) -> Slot {
        let ctx = Ctx(self.clock.clone(), self.gates.clone(), self.cache.clone());
        let (cache, key, load) =
            (self.cache.clone(), step["key"].as_str().unwrap().to_owned(), loader(&ctx, &step["loader"]));
        let o = &step["opts"];
        // per-call durations in milliseconds, checked as the core checks a host's number
        let d = |f: &'static str| o.get(f).map(|v| duration_ms(f, v.as_f64().unwrap())).transpose();
        let opts = (|| {
            Ok(FetchOptions {
                ttl: d("ttl")?.map_or(Ttl::Default, Ttl::For),
                negative_ttl: d("negative_ttl")?,
                stale_while_revalidate: o["stale_while_revalidate"].as_bool(),
                xfetch: o["xfetch"].as_bool(),
                soft_timeout: d("soft_timeout")?,
            })
        })();
        let fetch = step["op"] == "fetch";
        let slot: Slot = Rc::default();
        let out = slot.clone();
        let call = async move {
            match async { cache.fetch(&key, opts?, load).await }.await {
                Ok(f) if fetch => json!({"value": f.value.map(|v| v.0), "status": f.status.as_str()}),
                Ok(f) => f.value.map_or_else(|| err(&Error::NotFound), |v| v.0),
                Err(e) => err(&e),
            }
        };
        // a cancelled caller stops waiting: its future is dropped
        let (call, abort) = future::abortable(call);
        let cancelled = json!({"error": "Cancelled"});
        self.pool
            .spawner()
            .spawn_local(async move { *out.borrow_mut() = Some(call.await.unwrap_or(cancelled)) })
            .unwrap();
        if let Some(id) = step["id"].as_str() {
            self.aborts.insert(id.to_owned(), abort);
        }
        // the call joins its flight now, as a Python or JS call does before its first await
        self.pool.run_until_stalled();
        slot
    }

    fn wait(&mut self, slot: &Slot) -> Value {
        self.settle(Some(slot));
        slot.borrow_mut().take().unwrap_or_else(|| json!({"error": "did not end"}))
    }

    fn step(&mut self, st: &Value) -> Value {
        let key = st["key"].as_str().unwrap_or("");
        let c = self.cache.clone();
        let or_err = |r: Result<Value>| r.unwrap_or_else(|e| err(&e));
        match st["op"].as_str().unwrap() {
            "set" => {
                let ttl = match st.get("ttl") {
                    None => Ok(Ttl::Default),
                    Some(t) if t == "never" => Ok(Ttl::Never),
                    Some(t) => duration_ms("ttl", t.as_f64().unwrap()).map(Ttl::For),
                };
                let write = |ttl| {
                    c.write(key, J(st["value"].clone()), WriteOptions { ttl, if_version: st["if_version"].as_u64() })
                };
                or_err(ttl.and_then(write).map(|v| json!(v)))
            }
            "get" => c.get(key).map_or(Value::Null, |v| v.0),
            "get_entry" => c.get_entry(key).map_or(Value::Null, |e| {
                let left = e.expires_in.map(|d| d.as_secs_f64() * 1000.0);
                json!({"value": e.value.0, "version": e.version, "expires_in": left})
            }),
            "contains" => json!(c.contains(key)),
            "version" => json!(c.version(key)),
            "delete" => match st["if_version"].as_u64() {
                Some(v) => or_err(c.remove_if_version(key, v).map(|()| json!(true))),
                None => json!(c.remove(key).is_some()),
            },
            "len" => json!(c.len()),
            "clear" => json!(c.clear()),
            "purge_expired" => json!(c.purge_expired()),
            "advance" => json!(self.clock.advance(ms(&st["ms"]))),
            "fetch" | "get_or_load" => {
                let slot = self.start(st);
                match st["id"].as_str() {
                    Some(id) => json!(self.calls.insert(id.to_owned(), slot).is_none()),
                    None => self.wait(&slot),
                }
            }
            "await" => {
                let slot = self.calls.remove(st["id"].as_str().unwrap()).expect("no call of that id");
                self.wait(&slot)
            }
            "cancel" => {
                self.aborts[st["id"].as_str().unwrap()].abort();
                json!(self.pool.run_until_stalled())
            }
            "release" => json!(self.gates.lock().unwrap().get_mut(st["gate"].as_str().unwrap()).map(|g| g
                .0
                .take()?
                .send(())
                .ok())),
            "settle" => json!(self.settle(None)),
            "stats" => serde_json::to_value(c.stats()).unwrap(),
            "register_source" => {
                let answers = st["answers"].clone();
                let source = FnSource(move |k: &str| {
                    future::ready(match &answers[k] {
                        Value::Null => Err(SourceError::Unavailable),
                        a if a.get("not_found").is_some() => Ok(SourceAnswer::NotFound),
                        a if a.get("error").is_some() => Err(SourceError::Unavailable),
                        a => Ok(SourceAnswer::Value(J(a["value"].clone()))),
                    })
                });
                or_err(self.healer.register_source(st["prefix"].as_str().unwrap(), source).map(|()| json!(true)))
            }
            "verify_now" => {
                let h = self.healer.clone();
                let slot: Slot = Rc::default();
                let out = slot.clone();
                self.pool
                    .spawner()
                    .spawn_local(async move { *out.borrow_mut() = Some(json!(h.run_interval().await)) })
                    .unwrap();
                self.wait(&slot)
            }
            "score" => json!(self.healer.score(st["prefix"].as_str().unwrap())),
            "drift_events" => json!(self.healer.drift_events()),
            "healing_stats" => json!(self.healer.stats()),
            op => panic!("unknown op {op}"),
        }
    }
}

/// Whether `actual` shows `expect`: objects by the keys expected, lists item by item, numbers
/// within 1e-6.
fn matches(expect: &Value, actual: &Value) -> bool {
    match (expect, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().all(|(k, v)| matches(v, a.get(k).unwrap_or(&Value::Null))),
        (Value::Array(e), Value::Array(a)) => e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, a)),
        (Value::Number(e), Value::Number(a)) => (e.as_f64().unwrap() - a.as_f64().unwrap()).abs() < 1e-6,
        _ => expect == actual,
    }
}

fn run(s: &Value) -> std::result::Result<(), String> {
    let mut r = match (build(s), s.get("build_error")) {
        (Ok(_), Some(e)) => return Err(format!("built, expected {e}")),
        (Err(a), Some(e)) => {
            return if matches(e, &err(&a)) { Ok(()) } else { Err(format!("expected {e}, got {a:?}")) }
        }
        (Err(e), None) => return Err(format!("build: {e}")),
        (Ok(r), None) => r,
    };
    for (i, st) in s["steps"].as_array().unwrap().iter().enumerate() {
        let got = r.step(st);
        if let Some(e) = st.get("expect") {
            if !matches(e, &got) {
                return Err(format!("step {i} ({}): expected {e}, got {got}", st["op"]));
            }
        }
    }
    Ok(())
}

#[test]
fn conformance() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<_> =
        std::fs::read_dir(root.join("tests/conformance")).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    let (mut results, mut failed) = (BTreeMap::new(), Vec::new());
    for f in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for s in doc["scenarios"].as_array().unwrap() {
            let name = s["name"].as_str().unwrap();
            let (result, reason) = match s["skip"]["rust"].as_str() {
                Some(why) => ("skip", why.to_owned()),
                None => match run(s) {
                    Ok(()) => ("pass", String::new()),
                    Err(e) => ("fail", e),
                },
            };
            println!("{result} {name} {reason}");
            if result == "fail" {
                failed.push(format!("{name}: {reason}"));
            }
            results.insert(name.to_owned(), json!({"feature": s["feature"], "result": result, "reason": reason}));
        }
    }
    let dir = root.join("target/conformance");
    std::fs::create_dir_all(&dir).unwrap();
    let out = json!({"surface": "rust", "scenarios": results});
    std::fs::write(dir.join("rust.json"), serde_json::to_string_pretty(&out).unwrap()).unwrap();
    assert!(failed.is_empty(), "{} scenarios failed:\n{}", failed.len(), failed.join("\n"));
}
