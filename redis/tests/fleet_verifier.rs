//! The fleet verifier in one process against a real redis-server (as a restricted ACL user that
//! may not run KEYS, FLUSHALL or DEBUG): the lease and score-record operations are fenced by the
//! lease's value, and the verifier's SCAN walk, resumed across intervals, gives every L2 entry
//! the same chance to be checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::executor::block_on;
use healcache::keys::{l2_keys, value_glob, verifier_keys};
use healcache::tier::{FleetVerify, LeaseReply, MsgPack, Transport};
use healcache::{Cache, FnSource, Healer, HealingConfig, SourceAnswer, SourceError};
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::{RedisOptions, RedisServer};

fn server() -> RedisServer {
    RedisServer::start_with(RedisOptions { acl_user: Some(("hc".into(), "pw".into())), ..Default::default() })
        .expect("redis-server must be installed (.ci/setup-server.sh) to run these tests")
}

/// Registers for `k:` a source that answers `k:<i>` with `i` and tells `seen` each key it is
/// asked, then runs a first interval, which starts the lease keeper, and waits for the lease it
/// takes in the background.
fn verify_k(cache: &Cache<u64>, healer: &Healer<u64>, seen: impl Fn(&str) + Send + Sync + 'static) {
    healer
        .register_source(
            "k:",
            FnSource(move |key: &str| {
                seen(key);
                let v = key[2..].parse::<u64>().map(SourceAnswer::Value).map_err(|_| SourceError::Unavailable);
                async move { v }
            }),
        )
        .unwrap();
    block_on(healer.run_interval());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while cache.stats().l2_verifier_held == 0 {
        assert!(std::time::Instant::now() < deadline, "no lease taken");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A lease is taken once, held with its remaining time for the others, renewed and released only
/// with its value; a score record is written only while the writer's value holds the lease.
#[test]
fn the_lease_and_the_score_record_are_fenced_by_the_lease_value() {
    let r = server();
    let t = RedisTransport::connect(&r.url()).unwrap();
    let (lease, record) = verifier_keys("hc1", "user:");
    let ms = Duration::from_millis(2000);
    assert_eq!(block_on(t.try_lease(&lease, "a:1", ms)).unwrap(), LeaseReply::Won);
    match block_on(t.try_lease(&lease, "b:1", ms)).unwrap() {
        LeaseReply::Held { pttl_ms } => assert!((1..=2000).contains(&pttl_ms), "{pttl_ms}"),
        other => panic!("{other:?}"),
    }
    let fields = vec![("score".to_string(), b"0.5".to_vec()), ("sampled".to_string(), b"2".to_vec())];
    assert!(!block_on(t.put_record(&lease, "b:1", &record, fields.clone(), ms)).unwrap(), "not the holder");
    assert!(block_on(t.get_record(&record)).unwrap().is_empty());
    assert!(block_on(t.put_record(&lease, "a:1", &record, fields.clone(), ms)).unwrap());
    let mut got = block_on(t.get_record(&record)).unwrap();
    got.sort();
    let mut want = fields;
    want.sort();
    assert_eq!(got, want);
    assert!(!block_on(t.renew(&lease, "b:1", ms)).unwrap());
    assert!(!block_on(t.release(&lease, "b:1")).unwrap());
    assert!(block_on(t.renew(&lease, "a:1", ms)).unwrap());
    assert!(block_on(t.release(&lease, "a:1")).unwrap());
    assert_eq!(block_on(t.try_lease(&lease, "b:1", ms)).unwrap(), LeaseReply::Won);
    // a holder whose lease was taken over cannot overwrite its successor's scores
    let stale = vec![("score".to_string(), b"0".to_vec())];
    assert!(!block_on(t.put_record(&lease, "a:1", &record, stale, ms)).unwrap());
    assert_eq!(block_on(t.get_record(&record)).unwrap().iter().find(|(f, _)| f == "score").unwrap().1, b"0.5");
}

/// The glob finds value keys of its prefix only, whole walk long, with a metacharacter in the
/// prefix taken literally.
#[test]
fn the_walk_finds_the_prefix_entries_only() {
    let r = server();
    let t = RedisTransport::connect(&r.url()).unwrap();
    let mut raw = redis::Client::open(r.url()).unwrap().get_connection().unwrap();
    for k in ["a*:1", "a*:2", "ab:3", "a*"] {
        let _: () = redis::cmd("SET").arg(l2_keys("hc1", k).value).arg("x").query(&mut raw).unwrap();
    }
    let _: () = redis::cmd("SET").arg(l2_keys("hc1", "a*:9").lock).arg("x").query(&mut raw).unwrap();
    let glob = value_glob("hc1", "a*:");
    let (mut cursor, mut found) = (0u64, Vec::new());
    loop {
        let (next, keys) = block_on(t.scan(&glob, cursor, 2)).unwrap();
        found.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    found.sort();
    let mut want = [l2_keys("hc1", "a*:1").value, l2_keys("hc1", "a*:2").value];
    want.sort();
    assert_eq!(found, want);
}

/// 1,000 entries (and their slots' fence records: about 2,000 keys), a walk of 250 keys per
/// interval, each entry found drawn with a chance of 10%: over 300 intervals (about 37 walks) each
/// entry is asked of the source about 4 times. Counts per entry pass a chi-square test of
/// uniformity, and the source is asked exactly what the verifier sampled.
#[test]
fn a_walk_across_intervals_checks_every_entry_alike() {
    let r = server();
    let cache = Cache::<u64>::builder()
        .max_entries(10_000)
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
        .build()
        .unwrap();
    const N: u64 = 1000;
    for i in 0..N {
        cache.set(&format!("k:{i}"), i).unwrap();
    }
    let asked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let log = asked.clone();
    let healer = Healer::new(cache.clone(), HealingConfig { sample_rate: 0.1, ..HealingConfig::default() }).unwrap();
    healer.set_fleet_verify(FleetVerify { lease: Duration::from_secs(5), scan_budget: 250, enabled: true }).unwrap();
    verify_k(&cache, &healer, move |key| *log.lock().unwrap().entry(key.to_string()).or_default() += 1);
    asked.lock().unwrap().clear();
    let sampled_before = cache.stats().l2_verifier_sampled;
    let mut drift = 0;
    for _ in 0..300 {
        drift += block_on(healer.run_interval()).drift;
    }
    assert_eq!(drift, 0);
    let asked = asked.lock().unwrap();
    let total: u64 = asked.values().sum();
    assert_eq!(total, cache.stats().l2_verifier_sampled - sampled_before, "every source call is a verifier sample");
    let expected = total as f64 / N as f64;
    assert!((2.5..=6.0).contains(&expected), "about 4 checks per entry: {expected}");
    let chi2: f64 = (0..N)
        .map(|i| asked.get(&format!("k:{i}")).copied().unwrap_or(0) as f64)
        .map(|c| (c - expected).powi(2) / expected)
        .sum();
    println!("{total} checks over {N} entries ({expected:.2} each): chi2 {chi2:.0} (999 degrees of freedom)");
    // 999 degrees of freedom: the 99.9% critical value is about 1143
    assert!(chi2 < 1143.0, "chi2 = {chi2} over {total} checks");
    let score = healer.score("k:").unwrap();
    assert_eq!(score.score, 1.0);
    assert!(score.sampled >= total, "{} scored, {total} checked", score.sampled);
}

/// An instance without the lease asks the source only about what L2 does not hold (here a key
/// unlinked from L2 behind its back), repairs it in L1 and in L2 (only where L2 still holds
/// nothing), and reports the verifier's scores as its own.
#[test]
fn without_the_lease_only_entries_l2_lacks_are_checked_here() {
    let r = server();
    let build = || {
        Cache::<u64>::builder()
            .timer(IoTimer)
            .spawner(IoSpawner)
            .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    let healer = |c: &Cache<u64>, log: Arc<Mutex<Vec<String>>>| {
        let h = Healer::new(c.clone(), HealingConfig { sample_rate: 1.0, ..HealingConfig::default() }).unwrap();
        let source = FnSource(move |key: &str| {
            log.lock().unwrap().push(key.to_string());
            // the source moved on for k:3 only
            let i = key[2..].parse::<u64>().unwrap();
            let v = if i == 3 { 103 } else { i };
            async move { Ok::<_, SourceError>(SourceAnswer::Value(v)) }
        });
        h.register_source("k:", source).unwrap();
        h
    };
    let log_a: Arc<Mutex<Vec<String>>> = Arc::default();
    let log_b: Arc<Mutex<Vec<String>>> = Arc::default();
    let (ha, hb) = (healer(&a, log_a.clone()), healer(&b, log_b.clone()));
    block_on(ha.run_interval());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while a.stats().l2_verifier_held == 0 {
        assert!(std::time::Instant::now() < deadline, "no lease taken");
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..10u64 {
        b.set(&format!("k:{i}"), i).unwrap();
    }
    // wait for B's L2 writes, then take k:3 out of L2 behind B's back
    let mut raw = redis::Client::open(r.url()).unwrap().get_connection().unwrap();
    let k3 = l2_keys("hc1", "k:3").value;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.stats().l2_writes < 10 {
        assert!(std::time::Instant::now() < deadline, "writes not landed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _: () = redis::cmd("DEL").arg(&k3).query(&mut raw).unwrap();
    let report = block_on(hb.run_interval());
    assert_eq!(b.stats().l2_verifier_held, 0, "B is no verifier");
    assert_eq!(*log_b.lock().unwrap(), ["k:3"], "B asks only about what L2 lacks");
    assert_eq!((report.drift, report.repaired), (1, 1));
    assert_eq!(b.peek("k:3"), Some(103));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k3).query(&mut raw).unwrap();
        if v.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the repair reached L2");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        block_on(a.fetch("k:3", healcache::FetchOptions::default(), || async {
            Ok::<_, std::io::Error>(healcache::Loaded::Value(0))
        }))
        .unwrap()
        .value,
        Some(103),
        "the repair is in L2 for every instance"
    );
    // A verifies the fleet's entries; B then reports A's scores
    block_on(ha.run_interval());
    assert!(log_a.lock().unwrap().len() >= 9, "A checked the L2 entries: {:?}", log_a.lock().unwrap());
    block_on(hb.run_interval());
    assert_eq!(hb.score("k:").unwrap().sampled, ha.score("k:").unwrap().sampled);
}

/// The fleet verifier's settings are healing settings like the others: given in the
/// `HealingConfig` or by name, they reach the shared tier; `fleet_verify` off takes no lease;
/// out-of-range values are refused by name and change nothing.
#[test]
fn the_fleet_verifier_settings_are_healing_settings() {
    use healcache::{ConfigProblem, Error};
    let r = server();
    let cache = Cache::<u64>::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(RedisTransport::connect(&r.url()).unwrap(), MsgPack::new())
        .build()
        .unwrap();
    cache.set("k:1", 1).unwrap();
    let config = HealingConfig {
        fleet_verify: false,
        fleet_verify_lease_ms: 2000.0,
        fleet_verify_scan_budget: 250.0,
        ..HealingConfig::default()
    };
    let healer = Healer::new(cache.clone(), config).unwrap();
    let off = FleetVerify { enabled: false, lease: Duration::from_secs(2), scan_budget: 250 };
    assert_eq!(healer.fleet_verify(), Some(off));
    healer.register_source("k:", FnSource(|_: &str| async { Ok(SourceAnswer::Value(1)) })).unwrap();
    for _ in 0..3 {
        block_on(healer.run_interval());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cache.stats().l2_verifier_acquired, 0, "fleet_verify off: no lease taken");
    // by name, in the table's units (milliseconds here), at the bounds
    healer.config_set("fleet_verify", "true").unwrap();
    healer.config_set("fleetVerifyLease", "1").unwrap();
    healer.config_set("fleet_verify_scan_budget", "10000000").unwrap();
    let on = FleetVerify { enabled: true, lease: Duration::from_millis(1), scan_budget: 10_000_000 };
    assert_eq!(healer.fleet_verify(), Some(on));
    assert_eq!(healer.config_get("fleet_verify_scan_budget").unwrap(), "10000000");
    for (name, value, field) in [
        ("fleet_verify_lease", "0.5", "fleet_verify_lease"),
        ("fleet_verify_lease", "0", "fleet_verify_lease"),
        ("fleet_verify_scan_budget", "0", "fleet_verify_scan_budget"),
        ("fleet_verify_scan_budget", "10000001", "fleet_verify_scan_budget"),
        ("fleet_verify", "maybe", "fleet_verify"),
    ] {
        match healer.config_set(name, value) {
            Err(Error::InvalidConfig { field: f, problem, .. }) => {
                assert_eq!(f, field, "{name}={value}");
                if value == "0.5" {
                    assert_eq!(problem, ConfigProblem::TooShort { min: 1.0 });
                }
            }
            other => panic!("{name}={value}: {other:?}"),
        }
        assert_eq!(healer.fleet_verify(), Some(on), "{name}={value} changed nothing");
    }
    // the Rust call and the settings are one: each shows what the other set
    let two = FleetVerify { enabled: true, lease: Duration::from_secs(3), scan_budget: 500 };
    healer.set_fleet_verify(two).unwrap();
    let c = healer.config();
    assert_eq!((c.fleet_verify, c.fleet_verify_lease_ms, c.fleet_verify_scan_budget), (true, 3000.0, 500.0));
    assert!(healer.set_fleet_verify(FleetVerify { scan_budget: 0, ..two }).is_err());
    assert_eq!(healer.fleet_verify(), Some(two));
}

/// The keys a verifier asked of its source, in the order asked.
type Asked = Arc<Mutex<Vec<String>>>;

/// Writes `k:0` .. `k:<n-1>` (value i) to L2 through a cache of their own (so the verifier's L1
/// stays empty), 200 at a time, each batch landed before the next: the tests of this file share
/// one I/O thread, and a burst of thousands would hold up the others' L2 calls past their deadline.
fn populate(url: &str, n: u64) {
    let writer = tolerant(url);
    for start in (0..n).step_by(200) {
        let end = (start + 200).min(n);
        for i in start..end {
            writer.set(&format!("k:{i}"), i).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while writer.stats().l2_writes < end {
            assert!(std::time::Instant::now() < deadline, "{} of {end} writes landed", writer.stats().l2_writes);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A cache on `url` whose L2 calls may take 5 s: the tests here run side by side on a small
/// machine, and one timed out would leave a hole in a walk compared SCAN by SCAN.
fn tolerant(url: &str) -> Cache<u64> {
    Cache::<u64>::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .l2_timeout(Duration::from_secs(5))
        .shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new())
        .build()
        .unwrap()
}

/// A cache on `url` with a healer that verifies `k:` for the fleet with `fleet`, every entry the
/// walk finds drawn (rate 1, so the source is asked about exactly what the walk found), against
/// a source that answers what `populate` wrote. Returns once it holds the prefix's lease.
fn verifier(url: &str, fleet: Option<FleetVerify>) -> (Cache<u64>, Healer<u64>, Asked) {
    let cache = tolerant(url);
    let healer = Healer::new(cache.clone(), HealingConfig { sample_rate: 1.0, ..HealingConfig::default() }).unwrap();
    if let Some(fleet) = fleet {
        healer.set_fleet_verify(fleet).unwrap();
    }
    let asked: Asked = Arc::default();
    let log = asked.clone();
    verify_k(&cache, &healer, move |key| log.lock().unwrap().push(key.to_string()));
    (cache, healer, asked)
}

/// Where the verifier's walk of `k:` goes on, as its score record holds it (`None`: no record).
fn walk_cursor(raw: &mut redis::Connection) -> Option<u64> {
    let (_, record) = verifier_keys("hc1", "k:");
    let cursor: Option<String> = redis::cmd("HGET").arg(record).arg("cursor").query(raw).unwrap();
    cursor.map(|c| c.parse().unwrap())
}

/// One `SCAN <cursor> COUNT <count>` without MATCH: the next cursor, how many keys Redis
/// examined, and the cache keys under `k:` among them (what the verifier's MATCH keeps: SCAN
/// counts keys before MATCH filters them, so both walks move alike).
fn scan_step(raw: &mut redis::Connection, cursor: u64, count: usize) -> (u64, usize, Vec<String>) {
    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(count).query(raw).unwrap();
    let entries = keys.iter().filter_map(|k| healcache::keys::cache_key_of("hc1", k)).filter(|k| k.starts_with("k:"));
    (next, keys.len(), entries.map(str::to_string).collect())
}

/// Waits until Redis has finished growing (rehashing) the tables of database 0, which it does in
/// the background (`DEBUG HTSTATS`, as the admin user: a table being grown shows its
/// "rehashing target").
fn settled(r: &RedisServer) {
    let mut admin = r.connect_admin().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = admin.cmd(&["DEBUG", "HTSTATS", "0"]).unwrap();
        let text = stats.as_str().unwrap_or_else(|| panic!("DEBUG HTSTATS answered {stats:?}"));
        if !text.contains("rehashing target") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "Redis still rehashing after 10 s: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

/// P5: the default scan budget (10,000) bounds one interval's walk, tested at the bound. What it
/// counts is the keys SCAN examines (the sum of the COUNTs: ten SCANs of COUNT 1000), every key
/// of the database alike (entries, their slots' fence records, the lease, the score record, keys
/// of no cache at all), before MATCH keeps the entries; not the entries matching the glob. Redis
/// answers a SCAN in whole buckets, so ten of COUNT 1000 examine 10,000 keys and the tails of
/// their last buckets (a few more). The database here holds a bit more than 10,000 keys (10,300,
/// 1,000 of them entries): the first interval examines what ten SCANs of COUNT 1000 from cursor 0
/// examine (asking the source about each entry among them, no other) and stops short of the end;
/// the second goes on from its cursor, finishes the walk and asks about every other entry. With
/// the smallest budget, 1, each interval is one SCAN of COUNT 1 (one bucket: a key or a few), and
/// the walk still finishes.
#[test]
fn the_default_scan_budget_bounds_one_interval_walk_at_10_000_keys() {
    let r = server();
    // 1,000 entries under `k:` (with their fence records), and plain keys outside the glob to
    // make up 10,300 keys: SCAN counts them toward the budget all the same, and the source is
    // asked about 1,000 entries only (a light load: the tests here share one I/O thread)
    const N: u64 = 1000;
    const KEYS: usize = 10_300;
    // the lease first: an interval that wins it midway walks the keyspace empty still
    let (cache, healer, asked) = verifier(&r.url(), None);
    populate(&r.url(), N);
    assert_eq!(healer.fleet_verify().unwrap().scan_budget, 10_000, "the default budget");
    assert_eq!(FleetVerify::default().scan_budget, 10_000);
    let mut raw = redis::Client::open(r.url()).unwrap().get_connection().unwrap();
    let written: usize = redis::cmd("DBSIZE").query(&mut raw).unwrap();
    let mut fill = redis::pipe();
    for i in 0..KEYS - written {
        fill.cmd("SET").arg(format!("filler:{i}")).arg(1).ignore();
    }
    let _: () = fill.query(&mut raw).unwrap();
    // Redis finishes growing its keyspace table in the background (every 100 ms): the walk
    // below and the verifier's must see one table
    settled(&r);
    let keys: usize = redis::cmd("DBSIZE").query(&mut raw).unwrap();
    assert_eq!(keys, KEYS, "{written} written through the cache");
    // whether the verifier walked the (then empty) keyspace already or not, its walk starts at 0
    assert_eq!(walk_cursor(&mut raw).unwrap_or(0), 0);
    asked.lock().unwrap().clear();
    let (mut cursor, mut examined, mut first) = (0u64, 0usize, Vec::new());
    for _ in 0..10 {
        let (next, n, entries) = scan_step(&mut raw, cursor, 1000);
        (cursor, examined) = (next, examined + n);
        first.extend(entries);
        assert_ne!(cursor, 0, "ten SCANs of COUNT 1000 do not reach the end of {keys} keys");
    }
    println!("{keys} keys ({written} entries, fences, lease); ten SCANs of COUNT 1000 examine {examined}");
    println!("and find {} of the {N} entries", first.len());
    // Redis returns whole buckets, so a SCAN may examine a key or two beyond its COUNT
    assert!((10_000..10_100).contains(&examined), "{examined} keys examined");

    let one = block_on(healer.run_interval());
    let asked1 = std::mem::take(&mut *asked.lock().unwrap());
    assert_eq!(walk_cursor(&mut raw), Some(cursor), "the first interval stops where ten SCANs of COUNT 1000 do");
    assert_eq!(sorted(asked1.clone()), sorted(first), "and asks about the entries they examined");
    assert!(asked1.len() < N as usize, "the first interval does not finish the walk");
    assert_eq!((one.drawn, one.verified, one.drift), (asked1.len() as u64, asked1.len() as u64, 0));

    let two = block_on(healer.run_interval());
    let asked2 = std::mem::take(&mut *asked.lock().unwrap());
    assert_eq!(walk_cursor(&mut raw), Some(0), "the second interval finishes the walk");
    assert_eq!(two.drift, 0);
    println!("interval 1 asked about {} entries, interval 2 about {}", asked1.len(), asked2.len());
    // one walk: every entry found once, in one interval or the other
    let mut all = asked1;
    all.extend(asked2);
    let want: Vec<String> = (0..N).map(|i| format!("k:{i}")).collect();
    assert_eq!(sorted(all), sorted(want), "the two intervals ask about every entry once");
    assert_eq!(cache.stats().l2_verifier_sampled, N);
    drop((healer, cache));

    // the smallest budget: 10 entries and their fence records (22 keys with the lease and the
    // score record)
    let r = server();
    const M: u64 = 10;
    let budget_1 = FleetVerify { scan_budget: 1, ..FleetVerify::default() };
    let (_cache, healer, asked) = verifier(&r.url(), Some(budget_1));
    let mut raw = redis::Client::open(r.url()).unwrap().get_connection().unwrap();
    // a walk begun over the empty keyspace ends first (entries written during a walk may be
    // passed over); it writes the score record, so the keyspace stays as it is once they are in
    let mut intervals = 0;
    while walk_cursor(&mut raw) != Some(0) {
        block_on(healer.run_interval());
        intervals += 1;
        assert!(intervals < 50, "a walk of budget 1 over the lease alone finishes");
    }
    populate(&r.url(), M);
    settled(&r);
    let keys: usize = redis::cmd("DBSIZE").query(&mut raw).unwrap();
    asked.lock().unwrap().clear();
    // the walk, interval by interval, against SCANs of COUNT 1 (one bucket each: a key or a few)
    let (mut cursor, mut steps, mut most, mut all) = (0u64, 0, 0, Vec::new());
    loop {
        let (next, n, entries) = scan_step(&mut raw, cursor, 1);
        block_on(healer.run_interval());
        let got = sorted(std::mem::take(&mut *asked.lock().unwrap()));
        assert_eq!(got, sorted(entries), "interval {steps}: one SCAN of COUNT 1");
        assert_eq!(walk_cursor(&mut raw), Some(next), "interval {steps} goes on where the SCAN does");
        all.extend(got);
        (cursor, steps, most) = (next, steps + 1, most.max(n));
        assert!(steps <= 2 * keys, "a walk of budget 1 finishes");
        if cursor == 0 {
            break;
        }
    }
    println!("budget 1: {keys} keys walked in {steps} intervals, at most {most} keys in one");
    assert!(steps > 1, "{keys} keys in one interval of budget 1");
    let want: Vec<String> = (0..M).map(|i| format!("k:{i}")).collect();
    assert_eq!(sorted(all), sorted(want), "the walk of budget 1 asks about every entry once");
}
