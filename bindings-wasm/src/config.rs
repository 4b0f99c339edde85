//! Options → the cache, and the protocol's named numbers.

use healcache_js_common::{config, protocol, settings, Backend};
use wasm_bindgen::prelude::*;

use crate::cache::{host_seed, Host, JsTimer, LocalSpawner, Wasm};
use crate::convert::to_js;
use crate::error::into_js_error;

/// Builds a cache from core `Config` settings given by name (`names` comma-separated, one value
/// each), the seed (`undefined`: the host's, drawn at the cache's first use), and whether its
/// healing loop runs in the background.
#[wasm_bindgen]
pub fn create(names: String, values: Vec<f64>, seed: Option<u64>, background: bool) -> Result<Wasm, JsValue> {
    let make = || Backend::new(config(&names, &values, seed)?, JsTimer, LocalSpawner, background, Some(host_seed));
    make().map(|b| Wasm(b, Host::default())).map_err(into_js_error)
}

/// The core's table of settings, as the wrapper reads it (`healcache_js_common::settings`).
#[wasm_bindgen(js_name = settings)]
pub fn settings_table() -> JsValue {
    to_js(settings())
}

/// The named numbers of the protocol between this module and the wrapper.
#[wasm_bindgen(js_name = protocol)]
pub fn protocol_numbers() -> JsValue {
    to_js(protocol())
}
