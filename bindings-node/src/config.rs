//! Options → [`healcache::Config`]. The JS wrapper checks names and types (camelCase lives there,
//! in one table shared with WASM) and passes the core fields in order; the core validates values.

use healcache::Config;
use napi::bindgen_prelude::BigInt;

/// The stampede settings of [`Config`] (`undefined`: the core default).
pub struct Stampede {
    pub grace_ms: Option<f64>,
    pub stale_while_revalidate: Option<bool>,
    pub load_soft_timeout_ms: Option<f64>,
    pub xfetch: Option<bool>,
    pub xfetch_beta: Option<f64>,
    pub refresh_after_ms: Option<f64>,
    pub ttl_jitter: Option<f64>,
    pub negative_ttl_ms: Option<f64>,
    pub max_negative_share: Option<f64>,
}

/// Core settings in the order the JS wrapper passes them (`undefined`: the core default).
#[allow(clippy::too_many_arguments)]
pub fn config(
    max_entries: Option<f64>,
    max_bytes: Option<f64>,
    ttl_ms: Option<f64>,
    max_key_len: Option<f64>,
    max_entry_bytes: Option<f64>,
    max_in_flight: Option<f64>,
    load_timeout_ms: Option<f64>,
    shards: Option<f64>,
    seed: Option<BigInt>,
    st: Stampede,
) -> Config {
    let d = Config::default();
    Config {
        max_entries: max_entries.unwrap_or(d.max_entries),
        max_bytes,
        ttl_ms,
        max_key_len: max_key_len.unwrap_or(d.max_key_len),
        max_entry_bytes,
        max_in_flight: max_in_flight.unwrap_or(d.max_in_flight),
        load_timeout_ms,
        shards,
        seed: seed.map(|s| s.get_u64().1),
        grace_ms: st.grace_ms,
        stale_while_revalidate: st.stale_while_revalidate.unwrap_or(d.stale_while_revalidate),
        load_soft_timeout_ms: st.load_soft_timeout_ms,
        xfetch: st.xfetch.unwrap_or(d.xfetch),
        xfetch_beta: st.xfetch_beta.unwrap_or(d.xfetch_beta),
        refresh_after_ms: st.refresh_after_ms,
        ttl_jitter: st.ttl_jitter.unwrap_or(d.ttl_jitter),
        negative_ttl_ms: st.negative_ttl_ms,
        max_negative_share: st.max_negative_share.unwrap_or(d.max_negative_share),
    }
}
