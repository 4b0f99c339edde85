//! Options → [`healcache::Config`]. The JS wrapper checks names and types (camelCase lives there,
//! in one table shared with WASM) and passes the core fields in order; the core validates values.

use healcache::Config;
use napi::bindgen_prelude::BigInt;

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
        ..d
    }
}
