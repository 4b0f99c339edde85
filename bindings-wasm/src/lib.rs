//! WebAssembly binding of healcache (wasm-bindgen): attributes and host glue only, the same
//! exports as `bindings-node`, so the shared JS wrapper (`js/`) gives the same `Cache` on both.
//!
//! Every body lives in `healcache-js-common`. The host glue here: delays on host `setTimeout`s
//! (the module has no timer of its own), background work on the host's `waitUntil` or its event
//! loop (`spawn_local`), JS promises answered in each caller's own request context, the
//! conversion of shared values and errors. Time comes from the core clock (`performance.now`
//! through web-time), the seed from the host (`crypto.getRandomValues`, drawn at a cache's first
//! use: edge runtimes refuse it in global scope); anything periodic (`purgeExpired`, a healing
//! interval) is a call the host schedules.

mod cache;
mod config;
mod convert;
mod error;
mod healing;

pub use cache::*;
pub use config::*;
pub use healing::*;
