//! INFO, CONFIG and CONSISTENCY: the server's report and the self-healing controls.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use healcache::settings::{Scope, Setting, SETTINGS};
use healcache::{DriftEvent, PrefixScore};
use healcache_http::{AllowPrivate, HttpOptions, HttpSource};

use crate::commands::{arity, core_error, printable, Failed};
use crate::resp::{parse_int, Reply};
use crate::server::Shared;

/// The prefix of the healing settings in CONFIG GET and CONFIG SET (`healing.sample_rate`).
const HEALING: &str = "healing.";

/// The healing settings of the core's table, in its order.
fn healing_settings() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().filter(|s| s.scope == Scope::Healing)
}

/// The healing setting a CONFIG name stands for: `healing.` and a name of the table (or one
/// of its former names, such as `healing.verify_interval_ms`), in any case, as Redis reads
/// CONFIG names.
fn healing_setting(name: &[u8]) -> Option<&'static Setting> {
    let name = std::str::from_utf8(name).ok()?;
    let bare = name.get(..HEALING.len()).filter(|p| p.eq_ignore_ascii_case(HEALING)).map(|_| &name[HEALING.len()..])?;
    let same = |n: &str| n.eq_ignore_ascii_case(bare) || n.eq_ignore_ascii_case(name);
    healing_settings().find(|s| [s.name, s.js_name].iter().chain(s.aliases).any(|n| same(n)))
}

/// A core error about a healing setting, naming it as CONFIG does (`healing.sample_rate`).
fn config_error(e: &healcache::Error) -> Reply {
    let reply = core_error(e);
    match (e, reply) {
        (healcache::Error::InvalidConfig { field, .. }, Reply::Error(text))
            if healing_settings().any(|s| s.name == *field) =>
        {
            Reply::Error(text.replacen(&format!("`{field}`"), &format!("`{HEALING}{field}`"), 1))
        }
        (_, reply) => reply,
    }
}

/// Settings answered so redis-benchmark and other tools find what they ask for at start (the
/// server keeps nothing on disk).
const BENIGN: [(&str, &str); 2] = [("save", ""), ("appendonly", "no")];

/// Drift events CONSISTENCY DRIFT returns without a count.
const DEFAULT_DRIFT: usize = 10;

fn text(s: &str) -> Reply {
    Reply::text(s)
}

fn section(out: &mut String, title: &str, fields: &[(&str, String)]) {
    if !out.is_empty() {
        out.push_str("\r\n");
    }
    let _ = write!(out, "# {title}\r\n");
    for (k, v) in fields {
        let _ = write!(out, "{k}:{v}\r\n");
    }
}

/// `INFO [section ...]`: server, clients, stats, healing, keyspace (all when none is named).
pub fn info(shared: &Shared, wanted: &[Bytes]) -> Reply {
    let all = wanted.is_empty()
        || wanted.iter().any(|w| ["all", "default", "everything"].iter().any(|a| w.eq_ignore_ascii_case(a.as_bytes())));
    let want = |name: &str| all || wanted.iter().any(|w| w.eq_ignore_ascii_case(name.as_bytes()));
    let c = &shared.counters;
    let cfg = &shared.settings.server;
    let mut out = String::new();
    if want("server") {
        section(
            &mut out,
            "Server",
            &[
                ("redis_version", "7.0.0".into()),
                ("healcache_version", env!("CARGO_PKG_VERSION").into()),
                ("redis_mode", "standalone".into()),
                ("process_id", std::process::id().to_string()),
                ("tcp_port", shared.port.to_string()),
                ("uptime_in_seconds", shared.started.elapsed().as_secs().to_string()),
            ],
        );
    }
    if want("clients") {
        section(
            &mut out,
            "Clients",
            &[
                ("connected_clients", shared.clients.load(Relaxed).to_string()),
                ("maxclients", cfg.max_clients.to_string()),
            ],
        );
    }
    if want("stats") {
        let s = shared.cache.stats();
        section(
            &mut out,
            "Stats",
            &[
                ("total_connections_received", c.connections.load(Relaxed).to_string()),
                ("total_commands_processed", c.commands.load(Relaxed).to_string()),
                ("rejected_connections", c.rejected.load(Relaxed).to_string()),
                ("protocol_error_disconnects", c.protocol_errors.load(Relaxed).to_string()),
                ("timeout_disconnects", c.timeouts.load(Relaxed).to_string()),
                ("output_limit_disconnects", c.output_disconnects.load(Relaxed).to_string()),
                ("cross_protocol_disconnects", c.cross_protocol.load(Relaxed).to_string()),
                ("auth_failures", c.auth_failures.load(Relaxed).to_string()),
                ("keyspace_hits", s.hits.to_string()),
                ("keyspace_misses", s.misses.to_string()),
                ("evicted_keys", s.evictions.to_string()),
                ("expired_keys", s.expirations.to_string()),
                ("oversize_rejections", s.oversize_rejections.to_string()),
                ("used_memory_values", s.weight.to_string()),
            ],
        );
    }
    if want("healing") {
        let h = shared.healer.stats();
        section(
            &mut out,
            "Healing",
            &[
                ("healing_enabled", shared.healer.config().enabled.to_string()),
                ("healing_prefixes", shared.healer.scores().len().to_string()),
                ("total_sampled", h.total_sampled.to_string()),
                ("total_repaired", h.total_repaired.to_string()),
                ("total_drift", h.total_drift.to_string()),
                ("avg_score", h.avg_score.to_string()),
                ("source_failures", h.source_failures.to_string()),
                ("last_interval_ms", h.last_interval_ms.to_string()),
            ],
        );
    }
    if want("keyspace") {
        // Only what the engine counts: it keeps no count of keys with an expiry nor their
        // average TTL, and printing zeros there would be made up. An empty database is not
        // listed, as in Redis.
        let keys = shared.cache.len();
        let db0 = (keys > 0).then(|| ("db0", format!("keys={keys}")));
        section(&mut out, "Keyspace", db0.as_slice());
    }
    Reply::text(out)
}

/// Longest CONFIG GET pattern, in bytes: matching costs up to the pattern's length times each
/// name's, and no name is half as long.
const MAX_PATTERN: usize = 128;

/// Whether `name` matches `pattern`, read as Redis's `stringmatchlen` reads a glob without case
/// (as CONFIG GET reads it): `*` any bytes, `?` one, `[abc]`, `[a-z]` (either way round) and
/// `[^...]` one of a class or none of it, `\x` the byte x itself (in a class too); a class
/// without its `]` runs to the pattern's end, and `[]` matches nothing.
///
/// Hand-written: it must be Redis's stringmatch (`[^...]`, unclosed classes, reversed ranges,
/// escapes in classes), and that is a few lines. A mismatch goes back to the last `*` only,
/// which is enough as every other item takes one byte, so a name costs at most its length
/// times the pattern's (retrying every split at every star took exponential time).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // After the last `*` seen: where the rest of the pattern starts, and the name byte the star
    // has reached.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if pattern.get(p) == Some(&b'*') {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            star = Some((p, n));
            continue;
        }
        if let Some((matched, next)) = one(pattern, p, name[n]) {
            if matched {
                (p, n) = (next, n + 1);
                continue;
            }
        }
        match star {
            Some((after, taken)) => {
                (p, n) = (after, taken + 1);
                star = Some((after, taken + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Whether the pattern item at `p` (not a `*`) matches byte `c`, and where the next item
/// starts; `None` at the pattern's end.
fn one(pattern: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let lower = |b: u8| b.to_ascii_lowercase();
    match *pattern.get(p)? {
        b'?' => Some((true, p + 1)),
        b'\\' if p + 1 < pattern.len() => Some((lower(pattern[p + 1]) == lower(c), p + 2)),
        b'[' => {
            let mut i = p + 1;
            let not = pattern.get(i) == Some(&b'^');
            i += usize::from(not);
            let mut matched = false;
            loop {
                match pattern.get(i) {
                    None => break,
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < pattern.len() => {
                        matched |= lower(pattern[i + 1]) == lower(c);
                        i += 2;
                    }
                    Some(&start) if i + 2 < pattern.len() && pattern[i + 1] == b'-' => {
                        // Redis orders the ends, then lowers them and the byte
                        let end = pattern[i + 2];
                        let (start, end) = if start > end { (end, start) } else { (start, end) };
                        matched |= (lower(start)..=lower(end)).contains(&lower(c));
                        i += 3;
                    }
                    Some(&b) => {
                        matched |= lower(b) == lower(c);
                        i += 1;
                    }
                }
            }
            Some((matched != not, i))
        }
        b => Some((lower(b) == lower(c), p + 1)),
    }
}

/// `CONFIG HELP`: the subcommands served, in Redis's words and then what differs here.
const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "    The parameters are the healing.<name> settings, save and appendonly.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "    Only the healing.<name> settings can be set.",
    "RESETSTAT",
    "    Accepted for tools that send it; resets nothing.",
    "HELP",
    "    Prints this help.",
];

/// `CONFIG GET pattern ...` and `CONFIG SET healing.name value ...`.
/// `commands::lookup` checked the subcommand and its argument count.
pub(crate) fn config(shared: &Shared, args: &[Bytes]) -> Result<Reply, Failed> {
    let sub = &args[1];
    if sub.eq_ignore_ascii_case(b"get") {
        let config = shared.healer.config();
        let healing = healing_settings().map(|s| {
            let value = config.get_by_name(s.name).unwrap_or_default();
            (format!("{HEALING}{}", s.name), value)
        });
        let benign = BENIGN.iter().map(|(n, v)| (n.to_string(), v.to_string()));
        if args[2..].iter().any(|p| p.len() > MAX_PATTERN) {
            return Err(Reply::Error(format!("ERR CONFIG GET pattern longer than {MAX_PATTERN} bytes")));
        }
        let pairs = healing
            .chain(benign)
            .filter(|(name, _)| args[2..].iter().any(|p| glob(p, name.as_bytes())))
            .map(|(name, value)| (Reply::text(name), Reply::text(value)))
            .collect();
        return Ok(Reply::Map(pairs));
    }
    if sub.eq_ignore_ascii_case(b"set") {
        if !args.len().is_multiple_of(2) {
            return Err(Reply::err("ERR syntax error"));
        }
        // All checked before any is applied, so a refused pair changes nothing.
        let mut next = shared.healer.config();
        for pair in args[2..].chunks(2) {
            let Some(s) = healing_setting(&pair[0]) else {
                return Err(Reply::Error(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                    printable(&pair[0], 128)
                )));
            };
            let value = std::str::from_utf8(&pair[1]).unwrap_or("\u{fffd}");
            next.set_by_name(s.name, value).map_err(|e| config_error(&e))?;
        }
        shared.healer.set_config(next).map_err(|e| config_error(&e))?;
        return Ok(Reply::Status("OK"));
    }
    if sub.eq_ignore_ascii_case(b"resetstat") {
        return Ok(Reply::Status("OK"));
    }
    if sub.eq_ignore_ascii_case(b"help") {
        return Ok(crate::commands::help(CONFIG_HELP));
    }
    Err(Reply::Error(format!("ERR unknown subcommand '{}'. Try CONFIG HELP.", printable(sub, 128))))
}

fn score_reply(s: PrefixScore) -> Reply {
    Reply::Map(vec![
        (text("prefix"), Reply::text(s.prefix)),
        (text("score"), Reply::Double(s.score)),
        (text("sampled"), Reply::Int(s.sampled as i64)),
        (text("repaired"), Reply::Int(s.repaired as i64)),
    ])
}

fn drift_reply(e: DriftEvent) -> Reply {
    Reply::Map(vec![
        (text("key"), Reply::text(e.key)),
        (text("prefix"), Reply::text(e.prefix)),
        (text("at_ms"), Reply::Int(e.at_ms as i64)),
        (text("old_digest"), Reply::text(e.old_digest)),
        (text("new_digest"), Reply::text(e.new_digest)),
        (text("repaired"), Reply::Int(i64::from(e.repaired))),
    ])
}

fn utf8<'a>(b: &'a Bytes, what: &str) -> Result<&'a str, Failed> {
    std::str::from_utf8(b).map_err(|_| Reply::Error(format!("ERR the {what} must be UTF-8 text")))
}

/// `CONSISTENCY SOURCE|SCORE|SCORES|STATS|DRIFT ...`; `commands::lookup` checked the
/// subcommand and its argument count.
pub(crate) fn consistency(shared: &Shared, args: &[Bytes]) -> Result<Reply, Failed> {
    let sub = &args[1];
    let is = |s: &[u8]| sub.eq_ignore_ascii_case(s);
    let healer = &shared.healer;
    if is(b"source") {
        let prefix = utf8(&args[2], "prefix")?;
        let template = utf8(&args[3], "URL template")?;
        register_source(shared, prefix, template)?;
        Ok(Reply::Status("OK"))
    } else if is(b"score") {
        Ok(healer.score(utf8(&args[2], "prefix")?).map_or(Reply::Null, score_reply))
    } else if is(b"scores") {
        Ok(Reply::Array(healer.scores().into_iter().map(score_reply).collect()))
    } else if is(b"stats") {
        let s = healer.stats();
        Ok(Reply::Map(vec![
            (text("total_sampled"), Reply::Int(s.total_sampled as i64)),
            (text("total_repaired"), Reply::Int(s.total_repaired as i64)),
            (text("avg_score"), Reply::Double(s.avg_score)),
            (text("source_failures"), Reply::Int(s.source_failures as i64)),
            (text("last_interval_ms"), Reply::Double(s.last_interval_ms)),
        ]))
    } else if is(b"drift") {
        if args.len() > 3 {
            return Err(arity("consistency|drift"));
        }
        let n = match args.get(2) {
            Some(n) => match parse_int(n) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err(Reply::err("ERR value is not an integer or out of range")),
            },
            None => DEFAULT_DRIFT,
        };
        let events = healer.drift_events();
        let skip = events.len().saturating_sub(n);
        Ok(Reply::Array(events.into_iter().skip(skip).map(drift_reply).collect()))
    } else {
        Err(Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try CONSISTENCY SOURCE|SCORE|SCORES|STATS|DRIFT.",
            printable(sub, 128)
        )))
    }
}

/// Registers an HTTP source: its host must be in the startup-time allowlist (the server makes
/// requests to it: a way into the network behind the server that no command may widen).
fn register_source(shared: &Shared, prefix: &str, template: &str) -> Result<(), Failed> {
    let probe = url::Url::parse(&template.replace("{key}", "k"))
        .map_err(|_| Reply::err("INVALIDCONFIG invalid config: `source` is not a URL template"))?;
    let host = probe.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if !shared.settings.server.source_allowed(host, probe.port_or_known_default()) {
        return Err(Reply::err(
            "NOPERM the source's host is not allowed: the server must be started with --source-allow naming it",
        ));
    }
    // the server's cache has a timer: a CONFIG SET of `healing.source_timeout` applies to
    // sources already registered
    let options = HttpOptions {
        max_body_bytes: shared.settings.server.max_bulk,
        // --source-allow names this host at startup: that is the explicit allowance a
        // loopback or private destination needs
        allow_private: AllowPrivate::hosts([host]),
        ..HttpOptions::bounded_by_healer()
    };
    let source = HttpSource::new(template, options).map_err(|e| core_error(&e))?;
    shared
        .healer
        .register_source(prefix, source.map(|body: Vec<u8>| Ok::<_, healcache::SourceError>(Bytes::from(body))))
        .map_err(|e| core_error(&e))
}
