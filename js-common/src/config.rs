//! Options → [`healcache::Config`] and per-call options → [`healcache::FetchOptions`]. The
//! wrapper passes the options by their JS names with their values (in ms); [`Config::set`] finds
//! them in the core's table of settings ([`settings`], which the wrapper reads for the names it
//! checks) and the core validates values when the cache is built.

use healcache::settings::{Scope, Unit, SETTINGS};
use healcache::{duration_ms, Clock, Config, ConfigProblem, Error, FetchOptions, ManualClock, Result, Ttl};

use crate::Js;

/// A `Config` from `names` (comma-separated setting names) and one value per name
/// (booleans as 0/1), plus the seed.
pub fn config(names: &str, values: &[f64], seed: Option<u64>) -> Result<Config> {
    let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
    if names.len() != values.len() {
        return Err(one_value_each("options"));
    }
    let mut c = Config::default();
    for (name, &v) in names.iter().zip(values) {
        c.set(name, v)?;
    }
    c.seed = seed;
    Ok(c)
}

/// A count option given by JS (`None`: the core's default). The core checks its range; this
/// only refuses what no count can be.
pub(crate) fn count(field: &'static str, v: Option<f64>, default: usize) -> Result<usize> {
    match v {
        None => Ok(default),
        Some(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
        Some(n) => Err(Error::invalid_config(field, ConfigProblem::NotWhole, Some(n))),
    }
}

/// The options of `warm` (`None`: the core's default for that one).
pub fn warm_options(
    concurrency: Option<f64>,
    batch: Option<f64>,
    min_share: Option<f64>,
    max_keys: Option<f64>,
) -> Result<healcache::Warm> {
    let d = healcache::Warm::default();
    Ok(healcache::Warm {
        concurrency: count("concurrency", concurrency, d.concurrency)?,
        batch: batch.map(|b| count("batch", Some(b), 0)).transpose()?,
        min_share: min_share.unwrap_or(d.min_share),
        max_keys: count("max_keys", max_keys, d.max_keys)?,
    })
}

/// The test clock of `new Cache({ clock })`: the core's [`ManualClock`], so the core and the
/// wrapper's read mirror read one time, on any thread, without calling into JS.
pub fn manual_clock() -> ManualClock {
    ManualClock::new()
}

/// Moves `clock` forward by `ms` milliseconds (finite, not negative).
pub fn clock_advance(clock: &ManualClock, ms: f64) -> Result<()> {
    clock.advance_ms("ms", ms)
}

/// The time of `clock` in milliseconds, the unit of `performance.now()`.
pub fn clock_now(clock: &ManualClock) -> f64 {
    clock.now_nanos() as f64 / 1e6
}

/// A TTL in ms: `undefined` is the cache's, `Infinity` never expires.
pub(crate) fn ttl_arg(ttl: Option<f64>) -> Result<Ttl> {
    Ok(match ttl {
        None => Ttl::Default,
        Some(t) if t == f64::INFINITY => Ttl::Never,
        Some(t) => Ttl::For(duration_ms("ttl", t)?),
    })
}

/// `fetch`'s per-call options, validated by the core (`duration_ms`); `None` takes the cache's.
pub fn fetch_options(
    ttl: Option<f64>,
    negative_ttl: Option<f64>,
    stale_while_revalidate: Option<bool>,
    xfetch: Option<bool>,
    soft_timeout: Option<f64>,
) -> Result<FetchOptions> {
    Ok(FetchOptions {
        ttl: ttl_arg(ttl)?,
        negative_ttl: negative_ttl.map(|v| duration_ms("negative_ttl", v)).transpose()?,
        stale_while_revalidate,
        xfetch,
        soft_timeout: soft_timeout.map(|v| duration_ms("soft_timeout", v)).transpose()?,
    })
}

/// The error of a call that passed names and values of different lengths.
pub(crate) fn one_value_each(field: &'static str) -> Error {
    Error::invalid_config(field, ConfigProblem::Rule("needs one value per setting name"), None)
}

/// The core's table of settings as the wrapper reads it: `{ name, jsName, scope ("cache" or
/// "healing"), flag, aliases }` for each (`aliases`: every other name the core takes).
pub fn settings() -> Js {
    Js::List(
        SETTINGS
            .iter()
            .map(|s| {
                Js::Obj(vec![
                    ("name", Js::Str(s.name.to_string())),
                    ("jsName", Js::Str(s.js_name.to_string())),
                    ("scope", Js::Str(if s.scope == Scope::Healing { "healing" } else { "cache" }.to_string())),
                    ("flag", Js::Bool(s.unit == Unit::Flag)),
                    ("aliases", Js::List(s.other_names().into_iter().map(Js::Str).collect())),
                ])
            })
            .collect(),
    )
}
