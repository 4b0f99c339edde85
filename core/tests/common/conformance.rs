//! What the Rust conformance driver needs besides its table of ops: a local executor whose
//! background jobs and timers run on the manual clock, the one matcher of `expect`, and the walk
//! over `tests/conformance/*.json` that writes `target/conformance/rust.json`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::oneshot;
use futures::executor::LocalPool;
use futures::future::{self, AbortHandle, BoxFuture, FutureExt};
use futures::task::LocalSpawnExt;
use healcache::{Clock, Error, ManualClock, Spawner, Timer};
use serde_json::{json, Value};

/// A scenario's value: any JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct J(pub Value);
impl Hash for J {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.to_string().hash(h)
    }
}

/// Where a started call's outcome lands.
pub type Slot = Rc<RefCell<Option<Value>>>;

/// Background work the cache hands over, run by [`Exec::settle`].
#[derive(Clone, Default)]
pub struct Jobs(Arc<Mutex<Vec<BoxFuture<'static, ()>>>>);
impl Spawner for Jobs {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        self.0.lock().unwrap().push(fut);
    }
}

/// Sleeps in the manual clock's time: fired by [`Exec::settle`] once the clock passed the deadline.
#[derive(Clone)]
pub struct ClockTimer(ManualClock, Arc<Mutex<Vec<Due>>>);
/// A sleep's deadline on the manual clock, in nanoseconds, and what wakes it.
type Due = (u64, oneshot::Sender<()>);
impl Timer for ClockTimer {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let (tx, rx) = oneshot::channel();
        self.1.lock().unwrap().push((self.0.now_nanos() + d.as_nanos() as u64, tx));
        rx.map(drop).boxed()
    }
}

/// A scenario's clock, timer, spawner, the local executor that runs its calls, and the calls
/// started with an `id`.
pub struct Exec {
    pub clock: ManualClock,
    pub timer: ClockTimer,
    pub jobs: Jobs,
    pool: LocalPool,
    calls: HashMap<String, (Slot, AbortHandle)>,
}

impl Exec {
    pub fn new() -> Self {
        let clock = ManualClock::new();
        let timer = ClockTimer(clock.clone(), Arc::default());
        Exec { clock, timer, jobs: Jobs::default(), pool: LocalPool::new(), calls: HashMap::new() }
    }

    /// Starts the call of a `fetch` or `get_or_load` step: kept under its `id` if it has one (it
    /// has joined its flight when the step ends, as a Python or JS call has before its first
    /// await), else awaited.
    pub fn call(&mut self, st: &Value, call: impl Future<Output = Value> + 'static) -> Value {
        // a cancelled caller stops waiting: its future is dropped
        let (call, abort) = future::abortable(call);
        let slot = self.spawn(call.map(|r| r.unwrap_or_else(|_| json!({"error": "Cancelled"}))));
        match st["id"].as_str() {
            Some(id) => json!(self.calls.insert(id.to_owned(), (slot, abort)).is_none()),
            None => self.wait(&slot),
        }
    }

    /// The steps about time and calls (`advance`, `await`, `cancel`, `settle`); `None` for others.
    pub fn step(&mut self, st: &Value) -> Option<Value> {
        let id = || st["id"].as_str().unwrap();
        Some(match st["op"].as_str()? {
            "advance" => json!(self.clock.advance(ms(&st["ms"]))),
            "await" => {
                let (slot, _) = self.calls.remove(id()).expect("no call of that id");
                self.wait(&slot)
            }
            "cancel" => {
                self.calls[id()].1.abort();
                json!(self.pool.run_until_stalled())
            }
            "settle" => json!(self.settle(None)),
            _ => return None,
        })
    }

    /// Runs `call` on the executor until it stalls; its outcome lands in the slot returned.
    pub fn spawn(&mut self, call: impl Future<Output = Value> + 'static) -> Slot {
        let slot: Slot = Rc::default();
        let out = slot.clone();
        self.pool.spawner().spawn_local(async move { *out.borrow_mut() = Some(call.await) }).unwrap();
        self.pool.run_until_stalled();
        slot
    }

    /// Runs calls, background work and due timers until nothing moves or `slot` is filled.
    pub fn settle(&mut self, slot: Option<&Slot>) {
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

    /// The outcome in `slot` once it is there, or "did not end" when nothing is left to run.
    pub fn wait(&mut self, slot: &Slot) -> Value {
        self.settle(Some(slot));
        slot.borrow_mut().take().unwrap_or_else(|| json!({"error": "did not end"}))
    }
}

/// An error as the scenarios write it: its stable code, and the field of an `InvalidConfig`.
pub fn err(e: &Error) -> Value {
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

/// A duration in the scenarios' milliseconds.
pub fn ms(v: &Value) -> Duration {
    Duration::from_secs_f64(v.as_f64().unwrap() / 1000.0)
}

/// Whether `actual` shows `expect`: objects by the keys expected, lists item by item, numbers
/// within 1e-6.
pub fn matches(expect: &Value, actual: &Value) -> bool {
    match (expect, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().all(|(k, v)| matches(v, a.get(k).unwrap_or(&Value::Null))),
        (Value::Array(e), Value::Array(a)) => e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, a)),
        (Value::Number(e), Value::Number(a)) => (e.as_f64().unwrap() - a.as_f64().unwrap()).abs() < 1e-6,
        _ => expect == actual,
    }
}

/// Runs one scenario: `built` is its cache (or the build's error), `step` gives each step's value.
pub fn run<R>(s: &Value, built: Result<R, Error>, mut step: impl FnMut(&mut R, &Value) -> Value) -> Result<(), String> {
    let mut r = match (built, s.get("build_error")) {
        (Ok(_), Some(e)) => return Err(format!("built, expected {e}")),
        (Err(a), Some(e)) => {
            return if matches(e, &err(&a)) { Ok(()) } else { Err(format!("expected {e}, got {a:?}")) }
        }
        (Err(e), None) => return Err(format!("build: {e}")),
        (Ok(r), None) => r,
    };
    for (i, st) in s["steps"].as_array().unwrap().iter().enumerate() {
        let got = step(&mut r, st);
        match st.get("expect") {
            Some(e) if !matches(e, &got) => return Err(format!("step {i} ({}): expected {e}, got {got}", st["op"])),
            // a step that states nothing must still succeed: an error there would pass unseen
            None if got.get("error").is_some() => return Err(format!("step {i} ({}): no expect, got {got}", st["op"])),
            _ => {}
        }
    }
    Ok(())
}

/// Runs every scenario of `tests/conformance/*.json` not skipped for Rust, writes each result to
/// `target/conformance/rust.json`, then fails naming every scenario that failed.
pub fn run_all(root: &Path, mut scenario: impl FnMut(&Value) -> Result<(), String>) {
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
                None => match scenario(s) {
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

/// The matcher is what makes every scenario able to fail: it must refuse what differs.
#[test]
fn the_matcher_refuses_what_differs() {
    let m = |e: Value, a: Value| matches(&e, &a);
    assert!(m(json!({"a": 1}), json!({"a": 1, "b": 2})), "keys not expected are ignored");
    assert!(m(json!({"a": null}), json!({})), "a missing key reads as null");
    assert!(m(json!(1), json!(1.000_000_1)), "numbers within 1e-6");
    assert!(!m(json!(1), json!(1.000_01)));
    assert!(!m(json!([1, 2]), json!([1, 2, 3])), "lists of another length");
    assert!(!m(json!({"a": {"b": 1}}), json!({"a": {"b": 2}})), "nested objects");
    assert!(!m(json!(true), json!(1)));
    assert!(!m(json!(1), json!("1")));
    assert!(!m(json!("x"), json!("y")));
    assert!(!m(json!({"a": 1}), json!([1])));
}
