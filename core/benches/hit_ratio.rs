//! Hit ratios of healcache (S3-FIFO), moka (TinyLFU), quick_cache (S3-FIFO/CLOCK-Pro style) and an
//! exact LRU, with Bélády's OPT (which may decline to admit a key) as the ceiling, on synthetic
//! traces at several capacities, in one run: `cargo bench -p healcache --bench hit_ratio`. A miss
//! inserts the key, as a read-through cache does; the first quarter of each trace warms the
//! caches and is not counted.
//!
//! Traces given after `--` are replayed too, each at 1% and 10% of its distinct keys (or at the
//! capacities in `HIT_RATIO_CAPS`, comma-separated): `cargo bench -p healcache --bench hit_ratio
//! -- core/benches/traces/tiny.lis core/benches/traces/tiny.lirs`. Formats, by extension: `.lis`
//! is ARC's ("start count ..." per line: keys start..start+count-1); anything else holds one key
//! per line (LIRS traces: one block number per line); lines starting with `#` or `*` are skipped.

use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use healcache::Cache;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// Keys of the Zipf traces.
const N: usize = 1_000_000;
/// Requests of the longer synthetic traces.
const LEN: usize = 2_000_000;

/// A trace: key ids (dense, from 0) and the number of distinct ids.
struct Trace {
    name: String,
    ids: Vec<u32>,
    keys: usize,
}

impl Trace {
    fn new(name: impl Into<String>, ids: Vec<u32>) -> Self {
        let keys = ids.iter().max().map_or(0, |&m| m as usize + 1);
        Trace { name: name.into(), ids, keys }
    }
}

/// Zipf(`s`) over `n` keys, ranks scattered over the key space so hot keys are not neighbours.
fn zipf(n: usize, s: f64, len: usize, rng: &mut SmallRng) -> Vec<u32> {
    let z = Zipf::new(n as f64, s).unwrap();
    let mult = 2_654_435_761usize; // odd and not a multiple of 5: a bijection of 0..10^k
    (0..len).map(|_| (((z.sample(rng) as usize - 1).wrapping_mul(mult)) % n) as u32).collect()
}

/// Every `every`-th request of `ids` replaced by a key never seen before or after.
fn with_scan(mut ids: Vec<u32>, base: usize, every: usize) -> Vec<u32> {
    for (next, id) in (base as u32..).zip(ids.iter_mut().step_by(every)) {
        *id = next;
    }
    ids
}

fn synthetic() -> Vec<(Trace, Vec<usize>)> {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut out = Vec::new();
    for s in [0.6, 0.8, 0.99, 1.2] {
        out.push((Trace::new(format!("zipf {s}"), zipf(N, s, LEN, &mut rng)), vec![N / 100, N / 10]));
    }
    let z = zipf(N, 0.99, LEN, &mut rng);
    out.push((Trace::new("zipf 0.99 + 25% one-hit scan", with_scan(z, N, 4)), vec![N / 100, N / 10]));
    // a loop over 10% more keys than the cache holds
    for cap in [1_000, 10_000] {
        let l = cap + cap / 10;
        out.push((Trace::new(format!("loop of {l}"), (0..LEN / 2).map(|i| (i % l) as u32).collect()), vec![cap]));
    }
    // 8,000 keys read uniformly, replaced by 8,000 others every 100,000 requests
    let shifting = (0..LEN).map(|i| ((i / 100_000) * 8_000 + rng.random_range(0..8_000)) as u32).collect();
    out.push((Trace::new("working set 8k, shifts every 100k", shifting), vec![5_000, 10_000]));
    // Zipf 0.99 for half the trace, then recency: each request a new key (1 in 4) or one of the
    // 2,000 newest ones
    let mut ids = zipf(N, 0.99, LEN / 2, &mut rng);
    let mut newest = N;
    for _ in 0..LEN / 2 {
        if rng.random_range(0..4) == 0 {
            newest += 1;
            ids.push(newest as u32);
        } else {
            ids.push((newest - rng.random_range(0..2_000).min(newest - N)) as u32);
        }
    }
    out.push((Trace::new("zipf 0.99, then recency", ids), vec![N / 100, N / 10]));
    // half the requests to 10,000 hot keys (uniform), half a loop over 100,000 others
    let mut at = 0;
    let scan = (0..LEN)
        .map(|_| {
            if rng.random_bool(0.5) {
                rng.random_range(0..10_000)
            } else {
                at = (at + 1) % 100_000;
                10_000 + at
            }
        })
        .collect();
    out.push((Trace::new("hot 10k + loop over 100k", scan), vec![10_000]));
    out
}

/// A trace file: ARC's `.lis` ranges, else one key per line.
fn load(path: &str) -> Trace {
    // cargo runs a bench in its package's folder (core/); a path that is not found there is also
    // tried from the workspace root, where `cargo bench` is usually typed
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    let text = std::fs::read_to_string(path)
        .or_else(|e| std::fs::read_to_string(&root).map_err(|_| e))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut dense: HashMap<String, u32> = HashMap::new();
    let mut ids = Vec::new();
    let mut id = |k: String, ids: &mut Vec<u32>| {
        let n = dense.len() as u32;
        ids.push(*dense.entry(k).or_insert(n));
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with(['#', '*'])) {
        if path.ends_with(".lis") {
            let mut f = line.split_whitespace().map(|x| x.parse::<u64>().unwrap());
            let (start, count) = (f.next().unwrap(), f.next().unwrap_or(1));
            for b in start..start + count {
                id(b.to_string(), &mut ids);
            }
        } else {
            id(line.to_string(), &mut ids);
        }
    }
    let name = std::path::Path::new(path).file_name().unwrap().to_string_lossy().into_owned();
    Trace::new(name, ids)
}

/// Hits after the warm-up quarter, over the requests counted.
fn ratio(tr: &Trace, mut hit: impl FnMut(usize) -> bool) -> f64 {
    let warm = tr.ids.len() / 4;
    let mut hits = 0usize;
    for (n, &id) in tr.ids.iter().enumerate() {
        if hit(id as usize) && n >= warm {
            hits += 1;
        }
    }
    hits as f64 / (tr.ids.len() - warm) as f64
}

/// Exact LRU over dense ids: a doubly linked list through two arrays.
fn lru(tr: &Trace, cap: usize) -> f64 {
    let n = tr.keys + 1;
    let head = tr.keys; // sentinel: next is the most recent, prev the least
    let (mut prev, mut next, mut held) = (vec![head as u32; n], vec![head as u32; n], vec![false; n]);
    let mut len = 0;
    let unlink = |i: usize, prev: &mut [u32], next: &mut [u32]| {
        let (p, x) = (prev[i] as usize, next[i] as usize);
        next[p] = x as u32;
        prev[x] = p as u32;
    };
    let front = |i: usize, prev: &mut [u32], next: &mut [u32]| {
        let x = next[head] as usize;
        next[i] = x as u32;
        prev[i] = head as u32;
        prev[x] = i as u32;
        next[head] = i as u32;
    };
    ratio(tr, |i| {
        if held[i] {
            unlink(i, &mut prev, &mut next);
            front(i, &mut prev, &mut next);
            return true;
        }
        if len == cap {
            let last = prev[head] as usize;
            unlink(last, &mut prev, &mut next);
            held[last] = false;
            len -= 1;
        }
        front(i, &mut prev, &mut next);
        held[i] = true;
        len += 1;
        false
    })
}

/// Bélády's OPT: on a miss with the cache full, evicts the held key read again last, or admits
/// nothing if the missed key itself is read again after all of them.
fn opt(tr: &Trace, cap: usize) -> f64 {
    let never = usize::MAX;
    let mut next_use = vec![never; tr.ids.len()];
    let mut seen = vec![never; tr.keys];
    for (t, &id) in tr.ids.iter().enumerate().rev() {
        next_use[t] = seen[id as usize];
        seen[id as usize] = t;
    }
    // held keys by their next use (stale heap entries are skipped: `due` has the current one)
    let mut due = vec![never; tr.keys];
    let mut held = vec![false; tr.keys];
    let mut heap: BinaryHeap<(usize, u32)> = BinaryHeap::new();
    let mut len = 0;
    let mut t = 0;
    ratio(tr, |i| {
        let nu = next_use[t];
        t += 1;
        if held[i] {
            due[i] = nu;
            heap.push((nu, i as u32));
            return true;
        }
        if len == cap {
            let (far, j) = loop {
                let (d, j) = *heap.peek().unwrap();
                if held[j as usize] && due[j as usize] == d {
                    break (d, j as usize);
                }
                heap.pop();
            };
            if far <= nu {
                return false;
            }
            heap.pop();
            held[j] = false;
            len -= 1;
        }
        held[i] = true;
        due[i] = nu;
        heap.push((nu, i as u32));
        len += 1;
        false
    })
}

fn run(tr: &Trace, cap: usize, keys: &[String]) {
    let hc: Cache<u32> = Cache::builder().max_entries(cap as u64).seed(1).build().unwrap();
    let h = ratio(tr, |i| {
        let k = &keys[i];
        hc.get(k).is_some() || {
            hc.set(k, 0).unwrap();
            false
        }
    });
    drop(hc);
    let moka: moka::sync::Cache<String, u32> = moka::sync::Cache::new(cap as u64);
    let m = ratio(tr, |i| {
        let k = &keys[i];
        moka.get(k).is_some() || {
            moka.insert(k.clone(), 0);
            false
        }
    });
    drop(moka);
    let qc: quick_cache::sync::Cache<String, u32> = quick_cache::sync::Cache::new(cap);
    let q = ratio(tr, |i| {
        let k = &keys[i];
        qc.get(k).is_some() || {
            qc.insert(k.clone(), 0);
            false
        }
    });
    drop(qc);
    let (l, o) = (lru(tr, cap), opt(tr, cap));
    println!("| {:<34} | {:>8} | {:>9.4} | {:>6.4} | {:>11.4} | {:>6.4} | {:>6.4} |", tr.name, cap, h, m, q, l, o);
}

fn main() {
    // `cargo test --benches` runs this file too: keep it quick there
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let t = Instant::now();
    let files: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let caps: Option<Vec<usize>> =
        std::env::var("HIT_RATIO_CAPS").ok().map(|v| v.split(',').map(|c| c.trim().parse().unwrap()).collect());
    let mut traces: Vec<(Trace, Vec<usize>)> = files
        .iter()
        .map(|f| {
            let tr = load(f);
            let c = caps.clone().unwrap_or_else(|| vec![(tr.keys / 100).max(1), (tr.keys / 10).max(1)]);
            (tr, c)
        })
        .collect();
    if files.is_empty() || std::env::var_os("HIT_RATIO_SYNTHETIC").is_some() {
        traces.extend(synthetic());
    }
    // HIT_RATIO_ONLY=loop,shift: only the traces whose name contains one of these
    if let Ok(only) = std::env::var("HIT_RATIO_ONLY") {
        traces.retain(|(t, _)| only.split(',').any(|w| t.name.contains(w.trim())));
    }
    let most = traces.iter().map(|(t, _)| t.keys).max().unwrap_or(0);
    let keys: Vec<String> = (0..most).map(|i| format!("user:{i:08}")).collect();
    println!("Hit ratio after a warm-up of the first quarter of each trace (synthetic: {LEN} requests, Zipf over {N} keys)\n");
    println!(
        "| {:<34} | {:>8} | {:>9} | {:>6} | {:>11} | {:>6} | {:>6} |",
        "trace", "capacity", "healcache", "moka", "quick_cache", "LRU", "OPT"
    );
    println!("|{:-<36}|{:->10}|{:->11}|{:->8}|{:->13}|{:->8}|{:->8}|", "", ":", ":", ":", ":", ":", ":");
    for (tr, caps) in &traces {
        for &cap in caps {
            run(tr, cap, &keys);
        }
    }
    eprintln!("({:.0} s)", t.elapsed().as_secs_f64());
}
