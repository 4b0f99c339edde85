//! The conformance scenarios (`tests/conformance/*.json`, described in its README) on the Rust
//! surface: the same files the Python, Node and WASM drivers run. Time is a `ManualClock`; load
//! timeouts sleep on a timer of that clock; background work and calls run on a local executor.
//! Writes `target/conformance/rust.json` for the README's feature matrix.

#[path = "common/conformance.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use futures::future::{self, BoxFuture, FutureExt, Shared};
use harness::{err, ms, Exec, J};
use healcache::*;
use serde_json::{json, Value};

type Gate = (Option<oneshot::Sender<()>>, Shared<oneshot::Receiver<()>>);
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
    exec: Exec,
    gates: Arc<Mutex<HashMap<String, Gate>>>,
}

/// A setting's number as the settings table takes it (`true` is 1).
fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| f64::from(u8::from(v == &json!(true))))
}

fn build(s: &Value) -> Result<Run> {
    let exec = Exec::new();
    let mut config = Config { seed: Some(s["config"]["seed"].as_u64().unwrap_or(1)), ..Config::default() };
    let mut weigh = false;
    for (name, v) in s["config"].as_object().into_iter().flatten() {
        match name.as_str() {
            "seed" => {}
            "weigher" => weigh = true,
            _ => config.set(name, number(v))?,
        }
    }
    let mut b = CacheBuilder::from_config(config)
        .clock(exec.clock.clone())
        .timer(exec.timer.clone())
        .spawner(exec.jobs.clone());
    if weigh {
        b = b.weigher(|v: &J| v.0.as_str().map_or(0, |s| s.len() as u64));
    }
    let cache = b.build()?;
    let mut hc = HealingConfig::default();
    for (name, v) in s["healing"].as_object().into_iter().flatten() {
        hc.set(name, number(v))?;
    }
    let healer = Healer::new(cache.clone(), hc)?;
    Ok(Run { cache, healer, exec, gates: Arc::default() })
}

impl Run {
    /// Starts a `fetch` or `get_or_load` call (see [`Exec::call`]).
    fn start(&mut self, step: &Value) -> Value {
        let ctx = Ctx(self.exec.clock.clone(), self.gates.clone(), self.cache.clone());
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
        if step["op"] == "get_or_load" && o.is_null() {
            // the method itself (its fast path included), its loader's "not found" as the
            // nested loads give it
            let load = move || {
                load().map(|r| r.and_then(|l| if let Loaded::Value(v) = l { Ok(v) } else { Err(Error::NotFound) }))
            };
            let call = async move { cache.get_or_load(&key, load).await.map_or_else(|e| err(&e), |v| v.0) };
            return self.exec.call(step, call);
        }
        let fetch = step["op"] == "fetch";
        let call = async move {
            match async { cache.fetch(&key, opts?, load).await }.await {
                Ok(f) if fetch => json!({"value": f.value.map(|v| v.0), "status": f.status.as_str()}),
                Ok(f) => f.value.map_or_else(|| err(&Error::NotFound), |v| v.0),
                Err(e) => err(&e),
            }
        };
        self.exec.call(step, call)
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
                Some(v) => or_err(c.remove_if_version(key, v).map(|removed| json!(removed))),
                None => json!(c.remove(key).is_some()),
            },
            "len" => json!(c.len()),
            "clear" => json!(c.clear()),
            "purge_expired" => json!(c.purge_expired()),
            "fetch" | "get_or_load" => self.start(st),
            "release" => {
                let mut gates = self.gates.lock().unwrap();
                json!(gates.get_mut(st["gate"].as_str().unwrap()).map(|g| g.0.take()?.send(()).ok()))
            }
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
                let slot = self.exec.spawn(async move { json!(h.run_interval().await) });
                self.exec.wait(&slot)
            }
            "score" => json!(self.healer.score(st["prefix"].as_str().unwrap())),
            "drift_events" => json!(self.healer.drift_events()),
            "healing_stats" => json!(self.healer.stats()),
            op => self.exec.step(st).unwrap_or_else(|| panic!("unknown op {op}")),
        }
    }
}

#[test]
fn conformance() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    harness::run_all(&root, |s| harness::run(s, build(s), Run::step));
}
