//! Everything the Node (napi-rs) and WebAssembly (wasm-bindgen) bindings share: the [`Backend`]
//! of one cache with every function body the JS wrapper calls, the [`Handle`] the core stores
//! for a JS value, the self-healing side of the handle protocol, and the named layouts of what
//! crosses to JS ([`Js`], [`protocol`]). No napi or wasm-bindgen types live here: each binding
//! keeps its attributes and its host glue (timer, spawner, promise bridging, the conversion of
//! a [`Js`] value) and calls these, so each body is written once.
//!
//! Values never cross: the core stores the numeric handle the wrapper gives, with the value's
//! weight (`Cache<Handle>`), and the wrapper keeps the value under that handle.

mod backend;
mod config;
mod error;
mod heal;
mod removals;
mod shared;
mod value;
#[cfg(feature = "tier")]
mod write_behind;

pub use backend::{AttachTier, Backend, BatchFuture, FetchAnswer, LoaderFuture};
pub use config::{clock_advance, clock_now, config, fetch_options, manual_clock, settings, warm_options};
pub use error::{error_message, error_props};
pub use heal::{HealState, JsSource, VerifyCall};
pub use removals::{Removals, QUIET_LIMIT};
pub use shared::{JsCodec, L2Values, Payload, L2_FIRST_ID};
pub use value::{http, loaded_from, loader_failed, protocol, Js, Out, NONE, NOT_FOUND, SOURCE_FAILED, SOURCE_SKIP};
#[cfg(feature = "tier")]
pub use write_behind::{batch_js, JsWriteBehind, WriteBehindArgs};

/// What the core stores per entry: the wrapper's handle of the value and the value's weight in
/// bytes (the wrapper's `sizeOf`), so `maxBytes` and `maxEntryBytes` bound the JS values too.
#[derive(Clone)]
pub struct Handle {
    /// The wrapper's id of the value (> 0). Even: a value `set` stored, in a slot of the wrapper's
    /// value table, reused once the core has dropped the handle and the wrapper has drained that.
    /// Odd: a loaded value or a repair (never reused).
    pub id: f64,
    /// The value's weight in bytes.
    pub weight: u64,
    /// With a shared tier: the value as it crosses to other processes (`None` without one).
    pub payload: Option<std::sync::Arc<Payload>>,
}

impl Handle {
    /// Whether the value was stored by `set` (its slot in the wrapper's table is freed once the
    /// core drops it, whatever the cause).
    #[inline]
    pub fn from_set(&self) -> bool {
        // ids are integers below 2^53 (an integer test: `%` on f64 pulls fmod into the module)
        self.id as u64 & 1 == 0
    }
}

/// The maps of this crate: the core's hashbrown with a fixed foldhash state (no std `RandomState`,
/// whose SipHash and second table would grow the WebAssembly module; keys here are tickets and
/// handles).
pub(crate) type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;

pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
