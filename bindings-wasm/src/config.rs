//! Options → the cache, and the protocol's named numbers.

use healcache::{ConfigProblem, ManualClock};
use healcache_js_common::{clock_advance, clock_now, config, manual_clock, protocol, settings, Backend};
use wasm_bindgen::prelude::*;

use crate::cache::{host_seed, Host, JsTimer, LocalSpawner, Wasm};
use crate::convert::to_js;
use crate::error::into_js_error;

/// Builds a cache from core `Config` settings given by name (`names` comma-separated, one value
/// each), the seed (`undefined`: the host's, drawn at the cache's first use), whether its
/// healing loop runs in the background, and its test clock.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn create(
    names: String,
    values: Vec<f64>,
    seed: Option<u64>,
    background: bool,
    clock: Option<WasmClock>,
    redis: Option<String>,
    l2_prefix: Option<String>,
    fleet_lock: Option<String>,
) -> Result<Wasm, JsValue> {
    let make = || {
        let mut config = config(&names, &values, seed)?;
        for (name, text) in [("l2_prefix", l2_prefix), ("fleet_lock", fleet_lock)] {
            if let Some(text) = text {
                config.set_text(name, &text)?;
            }
        }
        if redis.is_some() {
            // no TCP from a worker's module: the shared tier is the Node package's
            let problem = ConfigProblem::Rule("is not available in WebAssembly (use the Node package)");
            return Err(healcache::Error::invalid_config("redis", problem, None));
        }
        Backend::new(config, JsTimer, LocalSpawner, background, clock.map(|c| c.0), Some(host_seed), None)
    };
    make().map(|b| Wasm(b, Host::default())).map_err(into_js_error)
}

/// A test clock (`healcache_js_common::manual_clock`); clones share one time.
#[wasm_bindgen]
#[derive(Clone)]
pub struct WasmClock(ManualClock);

/// A new test clock.
#[wasm_bindgen(js_name = manualClockNew)]
pub fn manual_clock_new() -> WasmClock {
    WasmClock(manual_clock())
}

/// Another handle on the same clock: `create` takes its clock by value, which wasm-bindgen
/// consumes (no optional borrowed class argument), so the wrapper passes a share.
#[wasm_bindgen(js_name = clockShare)]
pub fn clock_share(clock: &WasmClock) -> WasmClock {
    clock.clone()
}

/// Moves a test clock forward by `ms`.
#[wasm_bindgen(js_name = clockAdvanceBy)]
pub fn clock_advance_by(clock: &WasmClock, ms: f64) -> Result<(), JsValue> {
    clock_advance(&clock.0, ms).map_err(into_js_error)
}

/// A test clock's time in ms.
#[wasm_bindgen(js_name = clockNowMs)]
pub fn clock_now_ms(clock: &WasmClock) -> f64 {
    clock_now(&clock.0)
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
