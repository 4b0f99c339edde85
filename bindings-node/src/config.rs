//! Options → [`healcache::Config`]. The JS wrapper checks names and types (camelCase lives there,
//! in one table shared with WASM) and passes the core field names with their values;
//! [`Config::set`] maps them (the one list of fields) and the core validates values when the cache is built.

use healcache::{Config, Error, Result};
use napi::bindgen_prelude::BigInt;

/// A `Config` from `names` (comma-separated core field names) and one value per name
/// (booleans as 0/1), plus the seed.
pub fn config(names: &str, values: &[f64], seed: Option<BigInt>) -> Result<Config> {
    let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
    if names.len() != values.len() {
        return Err(Error::InvalidConfig { field: "options", reason: "one value per setting name".into() });
    }
    let mut c = Config::default();
    for (name, &v) in names.iter().zip(values) {
        c.set(name, v)?;
    }
    c.seed = seed.map(|s| s.get_u64().1);
    Ok(c)
}
