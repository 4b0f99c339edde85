//! WebAssembly binding of healcache (wasm-bindgen): conversion only, the same backend functions as
//! `bindings-node`, so the shared JS wrapper (`js/cache.js`) gives the same `Cache` API on both.
//!
//! No threads, no timers of its own: time comes from the core clock (`performance.now` through
//! web-time), the seed from the host (`crypto.getRandomValues`, passed by the wrapper), and
//! anything periodic (`purgeExpired`) is a call the host schedules. A load timeout, when
//! configured, sleeps on a host `setTimeout` promise.

mod cache;
mod config;
mod error;
mod healing;

pub use cache::*;
pub use healing::*;

/// The maps of this crate: the core's hashbrown with a fixed foldhash state (no std `RandomState`,
/// whose SipHash and second table would grow the module; keys here are handles and load ids).
pub(crate) type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;
