//! Options → the cache, and the protocol's named numbers.

use healcache_js_common::{config, protocol, settings, Backend};
use napi::bindgen_prelude::{BigInt, External};
use napi::Env;
use napi_derive::napi;

use crate::cache::{TokioSpawner, TokioTimer};
use crate::convert::ToJs;
use crate::error::into_js_error;

/// Builds a cache from core `Config` settings given by name (`names` comma-separated, one value
/// each), the seed, and whether its healing loop runs in the background.
#[napi(ts_return_type = "ExternalObject<'Backend'>")]
pub fn create(
    env: &Env,
    names: String,
    values: Vec<f64>,
    seed: Option<BigInt>,
    background: bool,
) -> napi::Result<External<Backend>> {
    let make = || {
        Backend::new(config(&names, &values, seed.map(|s| s.get_u64().1))?, TokioTimer, TokioSpawner, background, None)
    };
    make().map(External::new).map_err(|e| into_js_error(env, e))
}

/// The core's table of settings, as the wrapper reads it (`healcache_js_common::settings`).
#[napi(js_name = "settings", ts_return_type = "any[]")]
pub fn settings_table() -> ToJs {
    ToJs(settings())
}

/// The named numbers of the protocol between this module and the wrapper.
#[napi(js_name = "protocol", ts_return_type = "any")]
pub fn protocol_numbers() -> ToJs {
    ToJs(protocol())
}
