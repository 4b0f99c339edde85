//! `make fleet-lab`: the stampede lab of `make lab` (core/examples/lab.rs) across a fleet of
//! instance processes on one real redis-server. One table, a row per protection layer added one
//! at a time, every row under the same load:
//!
//! - an origin HTTP server on 127.0.0.1 (`healcache_testkit::Origin`): 10 ms per query and 16
//!   workers, queries beyond that queue FIFO (as on a saturated database); it logs every query
//!   when asked;
//! - N instance processes (4 by default; `lab_instance`, and in the mixed row also
//!   `tests/fleet_lab/py_instance.py` and `js_instance.mjs`), each with 32 closed-loop clients
//!   (1 ms think time): half the requests for one hot key, half for a Zipf(1.0) tail of 120
//!   keys, of which the last 15 are absent at the origin (404): fewer than `make lab`'s 400, so that
//!   the warm-up of four instances (4 x 121 queries) fits in one TTL at the origin's 1,600 q/s;
//! - an aligned warm-up (every instance loads the tail at once, then the hot key at once, so
//!   expiries line up, as after a deploy), then 10 TTL windows of 500 ms.
//!
//! Columns as `make lab`, plus the origin's rebuilds of the hot key per TTL boundary fleet-wide
//! (mean and range over the run's boundaries) and the origin queries for absent keys. Then the
//! fencing scenario: a lease shorter than a slow rebuild. Every row restarts its instances on a
//! flushed redis-server.
//!
//! Writes `<out>/stampede.csv` (`row,t_s,origin_qps,hot_origin_qps`: per row, per 100 ms bucket
//! from the row's start, origin query starts in the bucket x 10) and `<out>/summary.json` (the
//! counts `redis/tests/fleet_lab.rs` asserts). `<out>` defaults to `target/fleet-lab`.
//!
//! `fleet_lab [--windows N] [--ttl-ms N] [--instances N] [--clients N] [--rounds N] [--out DIR]
//!  [--no-mixed] [--rows ID,ID...]`

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use healcache_testkit::{Origin, OriginOptions, RedisServer};
use serde_json::{json, Value};

const TAIL: usize = 120;
const MISSING_FROM: usize = 105;
const ORIGIN_LATENCY: Duration = Duration::from_millis(10);
const ORIGIN_WORKERS: usize = 16;
const BUCKET_MS: u64 = 100;

struct Opts {
    windows: u64,
    ttl_ms: u64,
    instances: usize,
    clients: usize,
    rounds: usize,
    out: PathBuf,
    mixed: bool,
    /// only these rows (by CSV id, `fencing` included), to look at one layer; default all
    only: Option<Vec<String>>,
}

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        let num =
            |name: &str, d: u64| opt(name).map_or(d, |v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")));
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository").to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or(repo.join("target"), PathBuf::from);
        let o = Opts {
            windows: num("--windows", 10),
            ttl_ms: num("--ttl-ms", 500),
            instances: num("--instances", 4) as usize,
            clients: num("--clients", 32) as usize,
            rounds: num("--rounds", 5) as usize,
            out: opt("--out").map_or(target.join("fleet-lab"), PathBuf::from),
            mixed: !args.iter().any(|a| a == "--no-mixed"),
            only: opt("--rows").map(|r| r.split(',').map(String::from).collect()),
        };
        assert!(o.windows >= 1 && o.ttl_ms >= 100, "--windows at least 1, --ttl-ms at least 100");
        assert!(o.instances >= 1 && o.clients >= 1, "--instances and --clients at least 1");
        assert!(!o.mixed || o.instances >= 3, "the mixed row needs at least 3 instances (or --no-mixed)");
        o
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lang {
    Rust,
    Python,
    Node,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository").to_path_buf()
}

/// One instance process: a JSON command per line on stdin, a JSON answer per line on stdout
/// (the first is "ready"). Killed by its own pid and reaped when dropped.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    lang: Lang,
}

impl Proc {
    fn spawn(lang: Lang, args: &[String]) -> Proc {
        let mut cmd = match lang {
            Lang::Rust => {
                let me = std::env::current_exe().expect("this program's path");
                let bin = me.with_file_name("lab_instance");
                assert!(
                    bin.exists(),
                    "{} is built by `cargo build -p healcache-redis --release --example lab_instance`",
                    bin.display()
                );
                Command::new(bin)
            }
            Lang::Python => {
                let py = std::env::var_os("HEALCACHE_PYTHON").map_or(repo().join(".venv/bin/python"), PathBuf::from);
                let mut c = Command::new(py);
                c.arg(repo().join("tests/fleet_lab/py_instance.py"));
                c
            }
            Lang::Node => {
                let mut c = Command::new(std::env::var_os("NODE").unwrap_or_else(|| "node".into()));
                c.arg(repo().join("tests/fleet_lab/js_instance.mjs"));
                c
            }
        };
        let mut child = cmd
            .args(args)
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a {lang:?} instance: {e}"));
        let (stdin, out) = (child.stdin.take().unwrap(), BufReader::new(child.stdout.take().unwrap()));
        Proc { child, stdin, out, lang }
    }

    fn send(&mut self, cmd: &Value) {
        writeln!(self.stdin, "{cmd}").and_then(|_| self.stdin.flush()).expect("an instance's stdin");
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("an instance's stdout");
        assert!(!line.is_empty(), "a {:?} instance exited", self.lang);
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v.get("error").is_none(), "a {:?} instance: {v}", self.lang);
        v
    }

    fn cmd(&mut self, cmd: Value) -> Value {
        self.send(&cmd);
        self.read()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts every instance at once, then waits for each to be ready.
fn start_all(specs: &[(Lang, Vec<String>)]) -> Vec<Proc> {
    let mut procs: Vec<Proc> = specs.iter().map(|(l, a)| Proc::spawn(*l, a)).collect();
    for p in procs.iter_mut() {
        assert_eq!(p.read(), json!("ready"), "a {:?} instance did not start", p.lang);
    }
    procs
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A row of the table: its CSV id, its label, its instances' languages and the layers' arguments.
struct Spec {
    id: &'static str,
    name: String,
    langs: Vec<Lang>,
    args: Vec<String>,
}

fn specs(o: &Opts, redis: &str) -> Vec<Spec> {
    let ttl = o.ttl_ms;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let l2 = s(&["--redis", redis, "--fleet-lock", "off"]);
    let lock = s(&["--redis", redis, "--fleet-lock", "all"]);
    let mut swr = s(&["--redis", redis, "--fleet-lock", "refresh", "--swr", "--grace-ms"]);
    swr.push((ttl * 100).to_string());
    let mut xfetch = swr.clone();
    xfetch.push("--xfetch".into());
    let mut jitter = xfetch.clone();
    jitter.extend(s(&["--jitter", "0.2"]));
    let mut negative = jitter.clone();
    negative.extend(["--negative-ttl-ms".to_string(), ttl.to_string()]);
    let rust = vec![Lang::Rust; o.instances];
    let mut rows = vec![
        Spec { id: "l1-single-flight", name: "L1 + single flight".into(), langs: rust.clone(), args: vec![] },
        Spec { id: "l2", name: "+ L2".into(), langs: rust.clone(), args: l2 },
        Spec { id: "fleet-lock", name: "+ fleet lock".into(), langs: rust.clone(), args: lock },
        Spec { id: "swr-try-lock", name: "+ SWR with try-lock".into(), langs: rust.clone(), args: swr },
        Spec { id: "xfetch", name: "+ XFetch".into(), langs: rust.clone(), args: xfetch },
        Spec { id: "jitter", name: "+ TTL jitter".into(), langs: rust.clone(), args: jitter },
        Spec { id: "negative", name: "+ negative caching".into(), langs: rust, args: negative.clone() },
    ];
    if o.mixed {
        let mut langs = vec![Lang::Rust; o.instances - 2];
        langs.extend([Lang::Python, Lang::Node]);
        let name = format!("  same, {} Rust + Python + Node", o.instances - 2);
        rows.push(Spec { id: "negative-mixed", name, langs, args: negative });
    }
    rows
}

/// What one row measured.
struct Row {
    hot_per_window: f64,
    hot_per_boundary: usize,
    boundaries: Vec<usize>,
    /// hot-key query times, ms from the end of the warm-up
    hot_at: Vec<u64>,
    warm_ms: u64,
    origin: usize,
    absent: usize,
    burst: usize,
    p50: Duration,
    p99: Duration,
    waited: f64,
    stale: u64,
    requests: usize,
    errors: u64,
    /// the first error of each instance that had one
    first_errors: Vec<String>,
    statuses: BTreeMap<String, u64>,
}

/// Hot-key query times grouped by TTL boundary: a new group when two are more than `gap` apart.
fn per_boundary(times: &[u64], gap: u64) -> Vec<usize> {
    let mut groups: Vec<usize> = Vec::new();
    let mut last: Option<u64> = None;
    for &t in times {
        match last {
            Some(l) if t - l <= gap => *groups.last_mut().unwrap() += 1,
            _ => groups.push(1),
        }
        last = Some(t);
    }
    groups
}

/// Appends the row's 100 ms buckets to the CSV, from `start` (ms since the origin started) to `end`.
fn csv_rows(csv: &mut String, id: &str, log: &[(u64, String)], start: u64, end: u64) {
    let n = (end.saturating_sub(start)).div_ceil(BUCKET_MS) as usize;
    let (mut all, mut hot) = (vec![0u64; n], vec![0u64; n]);
    for (t, k) in log {
        if *t >= start && *t < end {
            let b = ((t - start) / BUCKET_MS) as usize;
            all[b] += 1;
            hot[b] += u64::from(k == "hot");
        }
    }
    let per_s = 1000 / BUCKET_MS;
    for b in 0..n {
        let t = (b as u64 * BUCKET_MS) as f64 / 1000.0;
        csv.push_str(&format!("{id},{t:.1},{},{}\n", all[b] * per_s, hot[b] * per_s));
    }
}

struct Lab {
    o: Opts,
    redis: RedisServer,
    origin: Origin,
    csv: String,
}

impl Lab {
    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn log(&self) -> Vec<(u64, String)> {
        let mut log: Vec<(u64, String)> =
            self.origin.take_log().into_iter().map(|q| (q.at.as_millis() as u64, q.key)).collect();
        log.sort_unstable();
        log
    }

    fn flush_redis(&self) {
        let mut c = redis::Client::open(self.redis.url()).unwrap().get_connection().expect("redis");
        redis::cmd("FLUSHALL").exec(&mut c).expect("FLUSHALL");
    }

    fn row(&mut self, spec: &Spec) -> Row {
        self.flush_redis();
        let ttl = self.o.ttl_ms;
        let mut specs: Vec<(Lang, Vec<String>)> = Vec::new();
        for l in &spec.langs {
            let mut a = vec!["--origin".to_string(), self.origin.url(), "--ttl-ms".into(), ttl.to_string()];
            a.extend(spec.args.iter().cloned());
            specs.push((*l, a));
        }
        let mut procs = start_all(&specs);
        let _ = self.origin.take_log();
        let row_start = self.now();
        // aligned warm-up: every instance loads the whole tail at once, then the hot key at once,
        // so the hot key's TTL boundaries line up across the fleet and fall within the run even
        // when an instance (Python's threads) takes longer over the tail
        let tail: Vec<String> =
            (0..TAIL).map(|i| if i >= MISSING_FROM { format!("absent:{i}") } else { format!("tail:{i}") }).collect();
        for keys in [tail, vec!["hot".to_string()]] {
            for p in procs.iter_mut() {
                p.send(&json!({"op": "warm", "keys": keys}));
            }
            for p in procs.iter_mut() {
                p.read();
            }
        }
        let t0 = self.now();
        let until = epoch_ms() + ttl * self.o.windows;
        for (i, p) in procs.iter_mut().enumerate() {
            p.send(&json!({"op": "run", "until_ms": until, "clients": self.o.clients, "seed": i + 1,
                "tail": TAIL, "missing_from": MISSING_FROM}));
        }
        let mut lat = Vec::new();
        let (mut errors, mut statuses, mut first_errors) = (0, BTreeMap::<String, u64>::new(), Vec::new());
        for p in procs.iter_mut() {
            let r = p.read();
            lat.extend(r["lat_ns"].as_array().expect("lat_ns").iter().filter_map(Value::as_u64));
            errors += r["errors"].as_u64().unwrap_or(0);
            if let Some(e) = r["first_error"].as_str() {
                first_errors.push(format!("{:?}: {e}", p.lang));
            }
            for (k, v) in r["statuses"].as_object().expect("statuses") {
                *statuses.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
            }
        }
        let t1 = self.now();
        drop(procs);
        let log = self.log();
        csv_rows(&mut self.csv, spec.id, &log, row_start, t1);
        let during: Vec<&(u64, String)> = log.iter().filter(|(t, _)| *t >= t0 && *t < t1).collect();
        let hot: Vec<u64> = during.iter().filter(|(_, k)| k == "hot").map(|(t, _)| *t).collect();
        let half = ttl / 2;
        let hot_per_boundary =
            (0..hot.len()).map(|i| hot[i..].iter().take_while(|&&t| t < hot[i] + half).count()).max().unwrap_or(0);
        let mut buckets = BTreeMap::<u64, usize>::new();
        for (t, _) in &during {
            *buckets.entry(t / 10).or_default() += 1;
        }
        lat.sort_unstable();
        let pct = |p: usize| {
            Duration::from_nanos(lat.get((lat.len() * p / 100).min(lat.len().saturating_sub(1))).copied().unwrap_or(0))
        };
        let count = |names: &[&str]| names.iter().map(|n| statuses.get(*n).copied().unwrap_or(0)).sum::<u64>();
        let waited = count(&["loaded", "coalesced", "negative-loaded", "fleet-coalesced", "fenced-out"]) + errors;
        Row {
            hot_per_window: hot.len() as f64 / self.o.windows as f64,
            hot_per_boundary,
            boundaries: per_boundary(&hot, half),
            hot_at: hot.iter().map(|t| t - t0).collect(),
            warm_ms: t0 - row_start,
            origin: during.len(),
            absent: during.iter().filter(|(_, k)| k.starts_with("absent:")).count(),
            burst: buckets.values().copied().max().unwrap_or(0),
            p50: pct(50),
            p99: pct(99),
            waited: waited as f64 / lat.len().max(1) as f64,
            stale: count(&["stale", "stale-fail-safe", "stale-soft-timeout"]),
            requests: lat.len(),
            errors,
            first_errors,
            statuses: statuses.clone(),
        }
    }

    /// A lease shorter than a slow rebuild, `rounds` times: A (loader 400 ms) takes the lock and
    /// loads the old value; its lease (100 ms, renewed for 100 ms at most) lapses; the origin's
    /// value changes; B (loader 10 ms) takes the lock, loads the new value and writes it; A's
    /// late write is fenced out. Checks what L2 and both L1s hold after each round.
    fn fencing(&mut self) -> Value {
        self.flush_redis();
        let url = self.redis.url();
        let common = |extra: u64| {
            let mut a: Vec<String> = ["--origin", &self.origin.url(), "--ttl-ms", "60000", "--redis", &url]
                .iter()
                .map(|s| s.to_string())
                .collect();
            a.extend(
                ["--fleet-lock", "all", "--lease-ms", "100", "--max-hold-ms", "100"].iter().map(|s| s.to_string()),
            );
            a.extend(["--extra-load-ms".to_string(), extra.to_string()]);
            a
        };
        // the origin takes 10 ms: A's loader 10 + 390 ms, B's 10 ms
        let (a_args, b_args) = (common(390), common(0));
        let mut c_args = common(0);
        let all = c_args.iter().position(|a| a == "all").unwrap();
        c_args[all] = "off".into();
        let mut ps = start_all(&[(Lang::Rust, a_args), (Lang::Rust, b_args), (Lang::Rust, c_args)]);
        let _ = self.origin.take_log();
        let start = self.now();
        let (mut a_st, mut b_st) = (BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new());
        let (mut l2_fresh, mut l1_fresh) = (0, 0);
        for i in 0..self.o.rounds {
            let key = format!("fence:{i}");
            self.origin.set_value(&key, "\"old\"");
            let served = self.origin.stats().served;
            ps[0].send(&json!({"op": "fetch", "key": key}));
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.origin.stats().served <= served {
                assert!(Instant::now() < deadline, "A's query was not served within 10 s");
                std::thread::sleep(Duration::from_millis(1));
            }
            // A has read the old value and is still rebuilding: the data changes
            self.origin.set_value(&key, "\"new\"");
            let b = ps[1].cmd(json!({"op": "fetch", "key": key}));
            *b_st.entry(format!("{}={}", b["status"].as_str().unwrap_or("?"), b["value"])).or_default() += 1;
            let a = ps[0].read();
            *a_st.entry(format!("{}={}", a["status"].as_str().unwrap_or("?"), a["value"])).or_default() += 1;
            let c = ps[2].cmd(json!({"op": "fetch", "key": key}));
            l2_fresh += usize::from(c["status"] == "l2-hit" && c["value"] == "new");
            let peek_a = ps[0].cmd(json!({"op": "peek", "key": key}));
            let peek_b = ps[1].cmd(json!({"op": "peek", "key": key}));
            l1_fresh += usize::from(peek_a["value"] == "new" && peek_b["value"] == "new");
        }
        let fenced: u64 =
            ps.iter_mut().map(|p| p.cmd(json!({"op": "stats"}))["l2_fenced_out"].as_u64().unwrap_or(0)).sum();
        let end = self.now();
        drop(ps);
        let log = self.log();
        csv_rows(&mut self.csv, "fencing", &log, start, end);
        json!({"rounds": self.o.rounds, "fenced_writes": fenced, "a": a_st, "b": b_st,
               "l2_fresh": l2_fresh, "l1_fresh": l1_fresh})
    }
}

fn statuses_text(m: &Value) -> String {
    m.as_object().into_iter().flatten().map(|(k, v)| format!("{v} x {k}")).collect::<Vec<_>>().join(", ")
}

fn main() {
    let o = Opts::parse();
    let redis = RedisServer::start().expect("redis-server must be installed (.ci/setup-server.sh)");
    let origin = Origin::start(OriginOptions { latency: ORIGIN_LATENCY, workers: ORIGIN_WORKERS, gate: None })
        .expect("the origin");
    origin.set_missing("absent:");
    std::fs::create_dir_all(&o.out).expect("the output folder");
    let mut lab = Lab { o, redis, origin, csv: String::from("row,t_s,origin_qps,hot_origin_qps\n") };
    let o = &lab.o;
    println!(
        "Fleet stampede lab: {} instance processes on one redis-server; origin {} ms/query, {} workers (FIFO queue);",
        o.instances,
        ORIGIN_LATENCY.as_millis(),
        ORIGIN_WORKERS
    );
    println!(
        "{} clients per instance (1 ms think time); TTL {} ms, {} windows after an aligned warm-up;",
        o.clients, o.ttl_ms, o.windows
    );
    println!(
        "50% of requests on one hot key, 50% on a Zipf(1.0) tail of {TAIL} keys ({} absent at the origin).\n",
        TAIL - MISSING_FROM
    );
    println!(
        "| {:<34} | {:>14} | {:>16} | {:>19} | {:>9} | {:>8} | {:>14} | {:>9} | {:>9} | {:>8} | {:>7} | {:>8} |",
        "layers",
        "hot q / window",
        "hot q / boundary",
        "rebuilds / boundary",
        "origin q",
        "absent q",
        "max q / 10 ms",
        "p50",
        "p99",
        "waited",
        "stale",
        "requests"
    );
    let widths = [36, 16, 18, 21, 11, 10, 16, 11, 11, 10, 9, 10];
    println!("|{}|", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("|"));
    let only = lab.o.only.clone();
    let wanted = |id: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == id));
    let rows: Vec<Spec> = specs(&lab.o, &lab.redis.url()).into_iter().filter(|s| wanted(s.id)).collect();
    let mut summary = Vec::new();
    for spec in &rows {
        let r = lab.row(spec);
        let (lo, hi) =
            (r.boundaries.iter().min().copied().unwrap_or(0), r.boundaries.iter().max().copied().unwrap_or(0));
        let mean = r.boundaries.iter().sum::<usize>() as f64 / r.boundaries.len().max(1) as f64;
        println!(
            "| {:<34} | {:>14.2} | {:>16} | {:>19} | {:>9} | {:>8} | {:>14} | {:>9.2?} | {:>9.2?} | {:>7.2}% | {:>7} | {:>8} |",
            spec.name,
            r.hot_per_window,
            r.hot_per_boundary,
            format!("{mean:.2} ({lo}-{hi})"),
            r.origin,
            r.absent,
            r.burst,
            r.p50,
            r.p99,
            r.waited * 100.0,
            r.stale,
            r.requests
        );
        summary.push(json!({
            "id": spec.id, "name": spec.name.trim(), "langs": spec.langs.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>(),
            "boundaries": r.boundaries, "hot_at_ms": r.hot_at, "warm_ms": r.warm_ms, "hot_queries": (r.hot_per_window * lab.o.windows as f64).round() as u64,
            "origin_queries": r.origin, "absent_queries": r.absent, "requests": r.requests,
            "errors": r.errors, "first_errors": r.first_errors, "statuses": r.statuses,
        }));
    }
    println!("\nrebuilds of the hot key per TTL boundary, fleet-wide:");
    for (spec, s) in rows.iter().zip(&summary) {
        println!("  {:<22} {}", spec.id, s["boundaries"]);
    }
    let errors: u64 = summary.iter().map(|s| s["errors"].as_u64().unwrap_or(0)).sum();
    if errors > 0 {
        println!("  ({errors} requests ended in an error; the first of each instance that had one:)");
        for s in &summary {
            for e in s["first_errors"].as_array().into_iter().flatten() {
                println!("    {}: {}", s["id"].as_str().unwrap_or(""), e.as_str().unwrap_or(""));
            }
        }
    }

    let f = if wanted("fencing") { lab.fencing() } else { json!({"rounds": 0}) };
    if wanted("fencing") {
        println!(
            "\nFencing: lease 100 ms (renewed for 100 ms at most); A's loader 400 ms, B's 10 ms; the origin's value changes"
        );
        println!("while A rebuilds; {} rounds, one key each.\n", f["rounds"]);
        println!(
            "| {:<34} | {:>6} | {:>13} | {:<24} | {:<24} | {:>15} | {:>21} |",
            "scenario",
            "rounds",
            "fenced writes",
            "A's answers",
            "B's answers",
            "L2 holds B's",
            "L1 of A and B hold B's"
        );
        println!("|{}|", [36, 8, 15, 26, 26, 17, 23].iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("|"));
        println!(
            "| {:<34} | {:>6} | {:>13} | {:<24} | {:<24} | {:>15} | {:>21} |",
            "lease 100 ms, A 400 ms, B 10 ms",
            f["rounds"].as_u64().unwrap_or(0),
            f["fenced_writes"].as_u64().unwrap_or(0),
            statuses_text(&f["a"]),
            statuses_text(&f["b"]),
            format!("{}/{}", f["l2_fresh"], f["rounds"]),
            format!("{}/{}", f["l1_fresh"], f["rounds"])
        );
    }

    let out = &lab.o.out;
    std::fs::write(out.join("stampede.csv"), &lab.csv).expect("stampede.csv");
    let summary = json!({"windows": lab.o.windows, "ttl_ms": lab.o.ttl_ms, "instances": lab.o.instances,
        "absent_keys": TAIL - MISSING_FROM, "rows": summary, "fencing": f});
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary).unwrap()).expect("summary.json");
    println!("\nwrote {} and {}", out.join("stampede.csv").display(), out.join("summary.json").display());
}
