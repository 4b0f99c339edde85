//! What crosses between the bindings and the JS wrapper, written once: [`Js`], a value each
//! binding converts with one function of its own (so records cross as objects with named
//! fields), the row layout of the hot calls ([`Out`]) and the named outcomes of the handle
//! protocol ([`protocol`], which the wrapper reads once instead of restating numbers).

use healcache::{Loaded, LoaderError, RemovalCause};

use crate::removals::cause_code;
use crate::Handle;

/// A JS value as the bindings build it: records are objects with named fields.
pub enum Js {
    /// `undefined`.
    Undefined,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An array of numbers.
    Nums(Vec<f64>),
    /// An array.
    List(Vec<Js>),
    /// An object with these fields, in this order.
    Obj(Vec<(&'static str, Js)>),
    /// An object whose field names are made at run time.
    Named(Vec<(String, Js)>),
}

impl From<u64> for Js {
    fn from(n: u64) -> Js {
        Js::Num(n as f64)
    }
}

impl From<f64> for Js {
    fn from(n: f64) -> Js {
        Js::Num(n)
    }
}

impl From<bool> for Js {
    fn from(b: bool) -> Js {
        Js::Bool(b)
    }
}

impl From<String> for Js {
    fn from(s: String) -> Js {
        Js::Str(s)
    }
}

/// The row of numbers that `set`, `peek` and `state` fill instead of allocating an array per
/// call: a `Float64Array` of [`Out::LEN`] the wrapper reads by these indices (names in
/// [`protocol`]).
pub struct Out;

impl Out {
    /// The entry's version.
    pub const VERSION: usize = 0;
    /// Milliseconds until the entry stops being fresh, as the core decided (`Infinity`: never).
    pub const EXPIRES: usize = 1;
    /// The handle the core holds ([`NONE`] if none).
    pub const HANDLE: usize = 2;
    /// Loads under way in the cache (`state`).
    pub const FLIGHTS: usize = 3;
    /// 1 when removals are queued: the wrapper drains them before it answers again.
    pub const PENDING: usize = 4;
    /// 1 when the write replaced a live entry of the key (`set`, the core's `Written::replaced`):
    /// the wrapper's read mirror enters an overwrite in its Map at once and batches the entry of
    /// new keys.
    pub const REPLACED: usize = 5;
    /// The `set` value a write replaced, whose slot the wrapper frees now ([`NONE`]: none, or
    /// one left in the removal queue because more than the wrapper must hear of it).
    pub const DROPPED: usize = 6;
    /// The row's length.
    pub const LEN: usize = 7;
}

/// No handle: nothing live under the key.
pub const NONE: f64 = -1.0;
/// A loader's or a source's answer "the key does not exist" (the core's `NotFound`).
pub const NOT_FOUND: f64 = 0.0;
/// A source's answer: it failed (`SourceError::Unavailable`: skipped, counted as a failure).
pub const SOURCE_FAILED: f64 = -1.0;
/// A source's answer: skip this key (`SourceError::Refused`: neither drift nor failure).
pub const SOURCE_SKIP: f64 = -2.0;

/// Where a source's answer row keeps each part: `[handle, weight, oldDigest, newDigest]`.
pub(crate) mod answer {
    pub const HANDLE: usize = 0;
    pub const WEIGHT: usize = 1;
    pub const OLD_DIGEST: usize = 2;
    pub const NEW_DIGEST: usize = 3;
}

/// What a URL-template fetch found (`httpFetch`'s first element).
pub mod http {
    /// A 2xx answer; its body follows.
    pub const VALUE: u32 = 0;
    /// 404 or 410.
    pub const NOT_FOUND: u32 = 1;
    /// Any other failure.
    pub const UNAVAILABLE: u32 = 2;
    /// No answer within the timeout.
    pub const TIMEOUT: u32 = 3;
    /// The key cannot be one URL segment.
    pub const REFUSED: u32 = 4;
}

/// Every named number of the protocol, for the wrapper to read once at load.
pub fn protocol() -> Js {
    let n = |v: f64| Js::Num(v);
    let u = |v: usize| Js::Num(v as f64);
    Js::Obj(vec![
        (
            "out",
            Js::Obj(vec![
                ("version", u(Out::VERSION)),
                ("expires", u(Out::EXPIRES)),
                ("handle", u(Out::HANDLE)),
                ("flights", u(Out::FLIGHTS)),
                ("pending", u(Out::PENDING)),
                ("replaced", u(Out::REPLACED)),
                ("dropped", u(Out::DROPPED)),
                ("len", u(Out::LEN)),
            ]),
        ),
        (
            "removal",
            Js::Obj(vec![
                ("evicted", n(cause_code(RemovalCause::Evicted))),
                ("expired", n(cause_code(RemovalCause::Expired))),
                ("replaced", n(cause_code(RemovalCause::Replaced))),
                ("explicit", n(cause_code(RemovalCause::Explicit))),
            ]),
        ),
        ("none", n(NONE)),
        ("notFound", n(NOT_FOUND)),
        ("l2FirstId", n(crate::shared::L2_FIRST_ID as f64)),
        ("sourceFailed", n(SOURCE_FAILED)),
        ("sourceSkip", n(SOURCE_SKIP)),
        (
            "http",
            Js::Obj(vec![
                ("value", n(http::VALUE.into())),
                ("notFound", n(http::NOT_FOUND.into())),
                ("unavailable", n(http::UNAVAILABLE.into())),
                ("timeout", n(http::TIMEOUT.into())),
                ("refused", n(http::REFUSED.into())),
            ]),
        ),
    ])
}

/// A JS loader's answer as the core's: `[handle, weight]` of the value, `[NOT_FOUND]`, or
/// `[-loadId]` when the user's loader threw or rejected (the wrapper keeps that value and hands
/// it to every waiter; the load id comes back in the error's `loadId`).
pub fn loaded_from(got: &[f64]) -> Result<Loaded<Handle>, LoaderError> {
    match *got {
        [id, ..] if id < 0.0 => Err(LoaderError::new(-id, "loader rejected")),
        [id, ..] if id == NOT_FOUND => Ok(Loaded::NotFound),
        [id, weight, ..] => Ok(Loaded::Value(Handle { id, weight: weight as u64, payload: None })),
        _ => Err(LoaderError::new(0.0f64, "loader protocol: expected [handle, weight]")),
    }
}

/// A failed loader call (the JS function threw before returning a promise, or the bridge failed).
pub fn loader_failed(message: impl Into<std::sync::Arc<str>>) -> LoaderError {
    LoaderError::new(0.0f64, message)
}
