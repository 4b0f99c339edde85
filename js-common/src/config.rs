//! Options → [`healcache::Config`] and per-call options → [`healcache::FetchOptions`]. The
//! wrapper checks names and types and passes the core's names with their values;
//! [`Config::set`] maps them (the one list of fields) and the core validates values when the
//! cache is built.

use healcache::{duration_ms, Config, Error, FetchOptions, Result, Ttl};

/// A `Config` from `names` (comma-separated core field names) and one value per name
/// (booleans as 0/1), plus the seed.
pub fn config(names: &str, values: &[f64], seed: Option<u64>) -> Result<Config> {
    let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
    if names.len() != values.len() {
        return Err(Error::InvalidConfig { field: "options", reason: "one value per setting name".into() });
    }
    let mut c = Config::default();
    for (name, &v) in names.iter().zip(values) {
        c.set(name, v)?;
    }
    c.seed = seed;
    Ok(c)
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
