//! Node.js binding of healcache (napi-rs): attributes and host glue only.
//!
//! Every body lives in `healcache-js-common` (shared with the WebAssembly binding); this crate
//! adds napi's attributes, its host glue (delays and background work on napi's tokio runtime,
//! JS promises, the conversion of shared values and errors) and the URL-template sources, which
//! need the native HTTP client. The public JS API is the wrapper in `js/`. The exports are free
//! functions over an `External` handle: a napi class method costs about 170 ns more per call.

mod cache;
mod config;
mod convert;
mod error;
mod healing;
mod shared;
mod write_behind;

pub use cache::*;
pub use config::*;
pub use healing::*;
pub use shared::*;
pub use write_behind::*;
