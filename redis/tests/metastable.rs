//! A short run of the metastable lab (`redis/examples/metastable.rs`, included here so the test
//! drives its rows in-process): a real redis-server restarted empty as the trigger, a saturating
//! origin on loopback, four caches. Checked: states and counts, never how fast anything went —
//! the CSV has every column and a line per 250 ms for each row, every instance distrusted its L1
//! after the restart, the unprotected row neither rejected nor served stale, and with every
//! protection the gate rejected queries and fail-safe answered from stale values.

#[allow(dead_code)]
#[path = "../examples/metastable.rs"]
mod lab;

use lab::{Args, CSV_HEADER, ROWS};

#[test]
fn a_short_run_has_every_column_and_row_and_the_gate_and_fail_safe_act() {
    let args = Args {
        out: std::env::temp_dir(),
        seconds: 7.0,
        trigger_s: 3.0,
        rate: 1800.0,
        tail_share: 0.44,
        keys: 2000,
        rows: vec![1, 4],
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut csv = String::from(CSV_HEADER);
    let mut results = Vec::new();
    for &n in &args.rows {
        let r = rt.block_on(lab::run_row(ROWS[n - 1], &args));
        lab::csv_lines(&mut csv, ROWS[n - 1], &r);
        results.push(r);
    }

    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("row,t_s,goodput_rps,origin_queue_depth,origin_qps,miss_rate,breaker_open,lock_wait_ms")
    );
    let body: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(body.iter().all(|f| f.len() == 8), "8 fields on every line");
    assert!(body.iter().all(|f| f[1..].iter().all(|v| v.parse::<f64>().is_ok_and(f64::is_finite))), "numbers");
    for (&n, r) in args.rows.iter().zip(&results) {
        let name = ROWS[n - 1].name;
        let of_row: Vec<_> = body.iter().filter(|f| f[0] == name).collect();
        // one per 250 ms bucket: 28 in 7 s (the last may fall just after the end)
        assert!((27..=28).contains(&of_row.len()), "{name}: {} lines", of_row.len());
        assert_eq!(of_row.len(), r.samples.len());
        let ts: Vec<f64> = of_row.iter().map(|f| f[1].parse().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{name}: time goes forward");
        // by its bus subscribing again; not by its breaker, which a restart of a few milliseconds
        // opens only in the instances that sent 3 reads to Redis meanwhile (none to 3 of the 4 here)
        assert!(r.distrusted, "{name}: every instance distrusted its L1 after the restart");
        assert!(r.baseline > 0.0 && r.asked > 0, "{name}: requests were served before the trigger");
    }
    let (bare, full) = (&results[0], &results[1]);
    assert_eq!(bare.rejected, 0, "no gate, no 503");
    assert_eq!(bare.stale_served - bare.stale_refused, 0, "without fail-safe every stale answer was refused");
    assert_eq!(bare.denied, 0, "no retry budget");
    assert!(full.rejected > 0, "the gate rejected queries");
    assert!(full.stale_served > 0 && full.stale_refused == 0, "fail-safe answered from stale values");
}
