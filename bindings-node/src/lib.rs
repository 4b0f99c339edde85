//! Node.js binding of healcache (napi-rs): conversion only.
//!
//! The public JS API is the wrapper in `js/cache.js`, shared with the WASM binding. This crate is
//! its "backend": free functions over an `External` handle (a napi class method costs about 170 ns
//! more per call, see TOOLCHAIN.md). Core stores a small numeric handle per entry
//! (`healcache::Cache<f64>`); the JS wrapper keeps the values, so an in-process hit returns the very
//! object that was stored. See `js/cache.js` for the whole design.

mod cache;
mod config;
mod error;
mod healing;

pub use cache::*;
pub use healing::*;
