//! The alert rules (ops/prometheus/healcache.rules.yml) against what healcache really exports,
//! so they cannot drift from the code: every `healcache_*` family an expression names must be
//! in the Prometheus text of a real cache on a real shared tier (a redis-server on loopback),
//! with the type the expression needs (`rate`/`increase` of a counter or a histogram's buckets).
//! Also: the recovery queue's bound written in the rules is the setting's default, every
//! `runbook_url` is under the external label `runbook_base` and points at a section of
//! docs/runbook.md, and the Grafana dashboard (ops/grafana/healcache.json) names only exported
//! families. Run by `make test-alerts`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::{block, cache_with_grace, server, wait_for};
use healcache::{Config, FetchOptions, Loaded};
use serde_json::json;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The value of every `key:` in a rules file, a plain scalar or a `|`/`>` block, joined into one
/// string each. Enough YAML for the rules file, which is checked by promtool besides.
fn values_of(yaml: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start().trim_start_matches("- ");
        i += 1;
        let Some(rest) = trimmed.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else { continue };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - line.trim_start().len();
            let mut block = Vec::new();
            while i < lines.len() && (lines[i].trim().is_empty() || indent_of(lines[i]) > indent) {
                block.push(lines[i].trim());
                i += 1;
            }
            out.push(block.join(" ").trim().to_string());
        } else {
            out.push(rest.trim_matches('"').trim_matches('\'').to_string());
        }
    }
    out
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Metric names in a PromQL expression: `healcache_` words, whole (not inside a longer name;
/// recording rules are named `healcache:...`, which this leaves out), each with whether it is
/// the argument of `rate(` or `increase(`.
fn metric_names(expr: &str) -> Vec<(String, bool)> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    for (at, _) in expr.match_indices("healcache_") {
        if expr[..at].chars().next_back().is_some_and(word) {
            continue;
        }
        let name: String =
            expr[at..].chars().take_while(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_').collect();
        let before = expr[..at].trim_end();
        let of_rate = before.ends_with("rate(") || before.ends_with("increase(");
        out.push((name, of_rate));
    }
    out
}

/// `# TYPE name type` lines of a Prometheus text exposition.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').expect("# TYPE name kind");
            (name.to_string(), kind.trim().to_string())
        })
        .collect()
}

/// The family a sample name belongs to, and its type: itself, or a histogram's
/// `_bucket`/`_sum`/`_count` series.
fn family_of<'a>(name: &str, fams: &'a BTreeMap<String, String>) -> Option<(String, &'a str, &'static str)> {
    if let Some(kind) = fams.get(name) {
        return Some((name.to_string(), kind, ""));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(kind) = fams.get(base).filter(|k| *k == "histogram") {
                return Some((base.to_string(), kind, suffix));
            }
        }
    }
    None
}

/// The anchor GitHub gives a Markdown heading: lower case, spaces to dashes, other punctuation
/// dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The families `exprs` name, and what is wrong with them: a name the export lacks, or
/// `rate`/`increase` of something that is not a counter or a histogram's series.
fn check_names(exprs: &[String], fams: &BTreeMap<String, String>) -> (BTreeSet<String>, Vec<String>) {
    let mut named = BTreeSet::new();
    let mut problems = Vec::new();
    for expr in exprs {
        for (name, of_rate) in metric_names(expr) {
            match family_of(&name, fams) {
                None => problems.push(format!("{name}: no such family in the export (in `{expr}`)")),
                Some((fam, kind, suffix)) => {
                    let counts = kind == "counter" || (kind == "histogram" && !suffix.is_empty());
                    if of_rate && !counts {
                        problems.push(format!("{name}: rate/increase of a {kind} (in `{expr}`)"));
                    }
                    named.insert(fam);
                }
            }
        }
    }
    (named, problems)
}

/// The Prometheus text of a cache on a real shared tier, after one load, so each family is
/// there with a value the way a scrape sees it.
fn real_prometheus_text() -> String {
    let r = server();
    let cache = cache_with_grace(&r.url(), Duration::ZERO);
    let f =
        block(cache.fetch("alerts:k", FetchOptions::default(), || async {
            Ok::<_, std::io::Error>(Loaded::Value(json!("v")))
        }))
        .unwrap();
    assert_eq!(f.value, Some(json!("v")));
    // The loaded value's write may still be on its way when fetch returns: wait for it, so the
    // text is one of a cache that really used the tier.
    wait_for("the load's write to the shared tier", Duration::from_secs(10), || cache.stats().l2_writes == 1);
    let mut text = cache.prometheus("alerts");
    assert!(text.contains("healcache_l2_writes_total{cache=\"alerts\"} 1"), "{text}");
    // and a write-behind queue in front of it, which exports its own families
    let writer = |_batch: Vec<healcache::Op<serde_json::Value>>| async { Ok::<(), String>(()) };
    let wb = healcache::WriteBehind::new(cache.clone(), writer, healcache::WriteBehindConfig::default()).unwrap();
    wb.set("alerts:wb", json!(1)).unwrap();
    text += &wb.prometheus("alerts");
    assert!(text.contains("healcache_write_behind_queue_capacity{cache=\"alerts\"}"), "{text}");
    // and a healer, which exports the healing families
    let healer = healcache::Healer::new(cache.clone(), healcache::HealingConfig::default()).unwrap();
    text += &healer.prometheus("alerts");
    text
}

#[test]
fn every_family_the_alert_rules_name_is_exported_by_a_cache_on_a_shared_tier() {
    let rules = read("ops/prometheus/healcache.rules.yml");
    let exprs = values_of(&rules, "expr");
    let rule_count = rules.lines().filter(|l| {
        let t = l.trim_start();
        t.starts_with("- alert:") || t.starts_with("- record:")
    });
    assert_eq!(exprs.len(), rule_count.count(), "one expression read per rule: {exprs:#?}");

    let text = real_prometheus_text();
    let (named, problems) = check_names(&exprs, &families(&text));
    assert!(
        problems.is_empty(),
        "alert rules out of step with the export:\n{}\n\nexported:\n{text}",
        problems.join("\n")
    );
    // The rules read the shared tier's families too, and these only exist in builds with a tier:
    // an export without them would have passed nothing but the core's.
    assert!(
        named.contains("healcache_l2_breaker_state") && named.contains("healcache_l2_lock_wait_seconds"),
        "{named:?}"
    );
    eprintln!("families named by the alert rules ({}): {named:?}", named.len());
}

/// The Grafana dashboard (ops/grafana/healcache.json) reads what healcache exports: every
/// `healcache_*` family a panel or a variable names is in the export of a real cache on a real
/// shared tier, with a write-behind queue and a healer, as the alert rules are.
#[test]
fn every_family_the_dashboard_names_is_exported() {
    let dash: serde_json::Value = serde_json::from_str(&read("ops/grafana/healcache.json")).expect("valid JSON");
    let mut exprs = Vec::new();
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        assert!(ids.insert(p["id"].as_u64().expect("a panel id")), "panel ids are unique: {}", p["id"]);
        let g = &p["gridPos"];
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24, "{}: within the grid", p["title"]);
        if p["type"] == "row" {
            continue;
        }
        assert!(p["description"].as_str().is_some_and(|d| !d.is_empty()), "{}: says what it shows", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}: a query", p["title"]);
        exprs.extend(targets.iter().map(|t| t["expr"].as_str().expect("expr").to_string()));
    }
    for v in dash["templating"]["list"].as_array().expect("variables") {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    let text = real_prometheus_text();
    let (named, problems) = check_names(&exprs, &families(&text));
    assert!(problems.is_empty(), "the dashboard is out of step with the export:\n{}", problems.join("\n"));
    for fam in [
        "healcache_hits_total",
        "healcache_l2_breaker_state",
        "healcache_write_behind_queue_depth",
        "healcache_healing_score",
        // openings shorter than a scrape, which the state never shows (HealcacheBreakerFlapping)
        "healcache_l2_breaker_opens_total",
        // the runbook's first check for a filling write-behind queue
        "healcache_write_behind_lag_seconds",
    ] {
        assert!(named.contains(fam), "the dashboard shows {fam}: {named:?}");
    }
    assert!(exprs.len() >= 20, "{exprs:?}");
}

#[test]
fn the_recovery_queue_bound_in_the_rules_is_the_default_of_l2_recovery_max() {
    let rules = read("ops/prometheus/healcache.rules.yml");
    let exprs = values_of(&rules, "expr");
    let fill: Vec<&String> = exprs.iter().filter(|e| e.starts_with("healcache_l2_recovery_depth /")).collect();
    assert_eq!(fill.len(), 1, "one recording rule divides the recovery depth by its bound: {exprs:#?}");
    let bound: f64 = fill[0].rsplit('/').next().unwrap().trim().parse().expect("a number");
    assert_eq!(bound, Config::default().l2_recovery_max, "the bound is not exported: the rules restate its default");
}

/// The start of every alert's `runbook_url`: Prometheus renders the external label `runbook_base`
/// (where the repository's files are served) in front of the runbook's path, so a notification
/// carries a link that opens from anywhere, with no host written in the rules.
const RUNBOOK_URL: &str = "{{ $externalLabels.runbook_base }}/docs/runbook.md#";

#[test]
fn every_alert_has_a_runbook_section() {
    let rules = read("ops/prometheus/healcache.rules.yml");
    let runbook = read("docs/runbook.md");
    assert!(
        runbook.contains("external_labels:") && runbook.contains("runbook_base:"),
        "docs/runbook.md says how to set the external label runbook_base"
    );
    let anchors: BTreeSet<String> =
        runbook.lines().filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### "))).map(slug).collect();
    let alerts = values_of(&rules, "alert");
    let urls = values_of(&rules, "runbook_url");
    assert_eq!(alerts.len(), urls.len(), "one runbook_url per alert");
    assert!(alerts.len() >= 10, "{alerts:?}");
    for (alert, url) in alerts.iter().zip(&urls) {
        let anchor =
            url.strip_prefix(RUNBOOK_URL).unwrap_or_else(|| panic!("{alert}: {url} is not {RUNBOOK_URL}<section>"));
        assert_eq!(anchor, alert.to_lowercase(), "{alert}: the anchor is the alert's name");
        assert!(anchors.contains(anchor), "{alert}: docs/runbook.md has no section #{anchor}");
    }
}

#[test]
fn the_rule_reader_sees_whole_expressions_and_names() {
    let yaml = "      - record: a\n        expr: |\n          sum(rate(healcache_x_total[5m]))\n          / 2\n      - alert: B\n        expr: healcache:a > healcache_y\n        for: 1m\n";
    assert_eq!(values_of(yaml, "expr"), ["sum(rate(healcache_x_total[5m])) / 2", "healcache:a > healcache_y"]);
    assert_eq!(values_of(yaml, "alert"), ["B"]);
    assert_eq!(
        metric_names(
            "sum(rate(healcache_x_total[5m])) / healcache:y_total + increase( healcache_z[1m]) + my_healcache_w"
        ),
        [("healcache_x_total".to_string(), true), ("healcache_z".to_string(), true)]
    );
    assert_eq!(slug("HealcacheBreakerOpen"), "healcachebreakeropen");
    assert_eq!(slug("Pre-warm before cutover"), "pre-warm-before-cutover");
}
