//! The one error type of the crate.
//!
//! Every variant is stable: bindings map each to a Python exception subclass and a JS `err.code`
//! (see [`Error::code`]). Keys never appear in messages (PROMISES P8: a key is data, maybe a secret).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// The error a loader returned, shared unchanged by every waiter of its flight.
///
/// Bindings put their host error (a Python exception, a JS value) in here and take it back out with
/// [`LoaderError::downcast_ref`], so every waiter sees the very object the loader raised.
#[derive(Clone)]
pub struct LoaderError(Arc<dyn Any + Send + Sync>, Arc<str>);

impl LoaderError {
    /// Wraps any error value; `message` is what `Display` shows.
    pub fn new<E: Any + Send + Sync>(err: E, message: impl Into<Arc<str>>) -> Self {
        LoaderError(Arc::new(err), message.into())
    }

    /// Wraps a `std::error::Error`, using its `Display` text as the message.
    pub fn from_error<E: std::error::Error + Send + Sync + 'static>(err: E) -> Self {
        let msg = err.to_string();
        LoaderError(Arc::new(err), msg.into())
    }

    /// The original error, if it has type `E`.
    pub fn downcast_ref<E: Any>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// The message given at construction.
    pub fn message(&self) -> &str {
        &self.1
    }
}

impl fmt::Debug for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LoaderError").field(&self.1).finish()
    }
}

impl fmt::Display for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.1)
    }
}

/// Every way a healcache call can fail.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range; `field` names it as in [`crate::Config`].
    #[error("invalid config: `{field}` {reason}")]
    InvalidConfig {
        /// The field's name, e.g. `max_entries`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is longer than `max_key_len` bytes.
    #[error("key is {len} bytes, over the limit of {max}")]
    KeyTooLong {
        /// Length of the refused key, in bytes.
        len: usize,
        /// The configured `max_key_len`.
        max: usize,
    },
    /// The entry (key + value weight) is heavier than `max_entry_bytes`.
    #[error("entry weighs {weight} bytes, over the limit of {max}")]
    ValueTooLarge {
        /// Weight of the refused entry.
        weight: u64,
        /// The configured `max_entry_bytes`.
        max: u64,
    },
    /// A compare-and-set found another version than the one expected.
    #[error("version mismatch: expected {expected}, found {current}")]
    VersionMismatch {
        /// The version the caller expected (0 means "absent").
        expected: u64,
        /// The entry's version now (0 means absent).
        current: u64,
    },
    /// The loader returned an error; every waiter of the flight gets this same value.
    #[error("loader failed: {0}")]
    Loader(LoaderError),
    /// The loader panicked; the key is not stuck and the next call loads again.
    #[error("loader panicked")]
    LoaderPanicked,
    /// The load did not finish within `load_timeout_ms`.
    #[error("load timed out after {after_ms} ms")]
    LoadTimeout {
        /// The timeout that fired, in milliseconds.
        after_ms: u64,
    },
    /// A loader asked for the very key it is loading, which could never finish.
    #[error("recursive load: a loader asked for the key it is loading")]
    RecursiveLoad,
    /// More distinct keys are loading at once than `max_in_flight` allows.
    #[error("too many loads in flight (limit {max})")]
    TooManyLoads {
        /// The configured `max_in_flight`.
        max: usize,
    },
    /// A key that cannot be used where it was asked for (e.g. as a URL segment of a source).
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why the key was refused (the key itself is never part of the message).
        reason: &'static str,
    },
    /// The loader, or a cached "not found" answer, says the key does not exist (from the
    /// calls that must return a value; [`crate::Cache::fetch`] returns `None` instead).
    #[error("not found")]
    NotFound,
    /// The caller stopped waiting (a cancelled host task, an aborted signal); others are unaffected.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// The stable code of the variant: the JS `err.code` and the Python exception's name stem.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidConfig { .. } => "InvalidConfig",
            Error::KeyTooLong { .. } => "KeyTooLong",
            Error::ValueTooLarge { .. } => "ValueTooLarge",
            Error::VersionMismatch { .. } => "VersionMismatch",
            Error::Loader(_) => "LoaderError",
            Error::LoaderPanicked => "LoaderPanicked",
            Error::LoadTimeout { .. } => "LoadTimeout",
            Error::RecursiveLoad => "RecursiveLoad",
            Error::TooManyLoads { .. } => "TooManyLoads",
            Error::NotFound => "NotFound",
            Error::InvalidKey { .. } => "InvalidKey",
            Error::Cancelled => "Cancelled",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig { field, reason: reason.into() }
    }
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any `std::error::Error` can be a loader's error (which is why `LoaderError` itself is not one).
impl<E: std::error::Error + Send + Sync + 'static> From<E> for LoaderError {
    fn from(err: E) -> Self {
        LoaderError::from_error(err)
    }
}
