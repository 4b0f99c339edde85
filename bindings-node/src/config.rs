//! Options → the cache, and the protocol's named numbers.

use healcache::ManualClock;
use healcache_js_common::{clock_advance, clock_now, config, manual_clock, protocol, settings, AttachTier, Backend};
use napi::bindgen_prelude::{BigInt, External, ExternalRef};
use napi::Env;
use napi_derive::napi;

use crate::cache::{TokioSpawner, TokioTimer};
use crate::convert::ToJs;
use crate::error::into_js_error;

/// Builds a cache from core `Config` settings given by name (`names` comma-separated, one value
/// each), the seed, whether its healing loop runs in the background, its test clock, and its
/// shared tier (a redis:// URL, the L2 key prefix and the fleet lock's mode).
#[napi(ts_return_type = "ExternalObject<'Backend'>")]
#[allow(clippy::too_many_arguments)]
pub fn create(
    env: &Env,
    names: String,
    values: Vec<f64>,
    seed: Option<BigInt>,
    background: bool,
    #[napi(ts_arg_type = "ExternalObject<'ManualClock'> | undefined")] clock: Option<ExternalRef<ManualClock>>,
    redis: Option<String>,
    l2_prefix: Option<String>,
    fleet_lock: Option<String>,
) -> napi::Result<External<Backend>> {
    let clock = clock.map(|c| (*c).clone());
    let seed = seed.map(|s| s.get_u64().1);
    let make = || {
        let mut config = config(&names, &values, seed)?;
        for (name, text) in [("l2_prefix", l2_prefix), ("fleet_lock", fleet_lock)] {
            if let Some(text) = text {
                config.set_text(name, &text)?;
            }
        }
        let tier = match redis {
            Some(url) => {
                config.check()?; // before connecting
                let transport = healcache_redis::RedisTransport::connect(&url)?;
                let attach: AttachTier = Box::new(move |b, codec| b.shared_tier(transport, codec));
                Some(attach)
            }
            None => None,
        };
        Backend::new(config, TokioTimer, TokioSpawner, background, clock, None, tier)
    };
    // V8 hears of the memory behind the handle: without it, a process that drops caches keeps
    // thousands of them until a collection it sees no reason for (10,000 caches of 10,000
    // entries: 123 MB more RSS, freed memory the allocator kept)
    let hinted = |b: Backend| {
        let bytes = usize::try_from(b.reserved_bytes()).unwrap_or(usize::MAX);
        External::new_with_size_hint(b, bytes)
    };
    make().map(hinted).map_err(|e| into_js_error(env, e))
}

/// A new test clock (`healcache_js_common::manual_clock`).
#[napi(ts_return_type = "ExternalObject<'ManualClock'>")]
pub fn manual_clock_new() -> External<ManualClock> {
    External::new(manual_clock())
}

/// Another handle on the same clock (the WASM binding's `create` consumes the one it is given;
/// the wrapper passes a share to both).
#[napi(ts_return_type = "ExternalObject<'ManualClock'>")]
pub fn clock_share(clock: &External<ManualClock>) -> External<ManualClock> {
    External::new((**clock).clone())
}

/// Moves a test clock forward by `ms`.
#[napi]
pub fn clock_advance_by(env: &Env, clock: &External<ManualClock>, ms: f64) -> napi::Result<()> {
    clock_advance(clock, ms).map_err(|e| into_js_error(env, e))
}

/// A test clock's time in ms.
#[napi]
pub fn clock_now_ms(clock: &External<ManualClock>) -> f64 {
    clock_now(clock)
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
