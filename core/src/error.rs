//! The one error type of the crate.
//!
//! Every variant is stable: bindings map each to a Python exception subclass and a JS `err.code`
//! (see [`Error::code`]). Keys never appear in messages: a key is data, and may be a secret.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::decimal::{Decimal, Short};
use crate::settings::{js_name, setting, Unit};

/// The error a loader returned, shared unchanged by every waiter of its flight.
///
/// Bindings put their host error (a Python exception, a JS value) in here and take it back out with
/// [`LoaderError::downcast_ref`], so every waiter sees the very object the loader raised.
#[derive(Clone)]
pub struct LoaderError(Arc<dyn Any + Send + Sync>, Arc<str>, Option<AsError>);

/// Views a loader's error as the `std::error::Error` it was made from: a plain function made
/// for its type, rather than a second `Arc` of it, so the error stays as small as before.
type AsError = fn(&(dyn Any + Send + Sync)) -> Option<&(dyn std::error::Error + 'static)>;

fn as_error<E: std::error::Error + 'static>(
    err: &(dyn Any + Send + Sync),
) -> Option<&(dyn std::error::Error + 'static)> {
    err.downcast_ref::<E>().map(|e| e as _)
}

impl LoaderError {
    /// Wraps any error value; `message` is what `Display` shows.
    pub fn new<E: Any + Send + Sync>(err: E, message: impl Into<Arc<str>>) -> Self {
        LoaderError(Arc::new(err), message.into(), None)
    }

    /// Wraps a `std::error::Error`, using its `Display` text as the message.
    pub fn from_error<E: std::error::Error + Send + Sync + 'static>(err: E) -> Self {
        let msg = err.to_string();
        LoaderError(Arc::new(err), msg.into(), Some(as_error::<E>))
    }

    /// Wraps a boxed error (`Box<dyn Error + Send + Sync>`, what `anyhow::Error` converts into),
    /// which `?` cannot turn into a `LoaderError` (a box is no `std::error::Error` itself);
    /// its `Display` text is the message, and [`LoaderError::as_std_error`] gives the boxed
    /// error.
    pub fn from_boxed(err: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        fn as_boxed(err: &(dyn Any + Send + Sync)) -> Option<&(dyn std::error::Error + 'static)> {
            let boxed = err.downcast_ref::<Box<dyn std::error::Error + Send + Sync + 'static>>()?;
            Some(&**boxed)
        }
        let msg = err.to_string();
        LoaderError(Arc::new(err), msg.into(), Some(as_boxed))
    }

    /// The original error, if it has type `E`.
    pub fn downcast_ref<E: Any>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// The message given at construction.
    pub fn message(&self) -> &str {
        &self.1
    }

    /// The original error as a `std::error::Error`, when it was made from one
    /// ([`LoaderError::from_error`], `?` on a loader's error).
    pub fn as_std_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.2.and_then(|f| f(&*self.0))
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

/// The host a message is written for: it decides how a setting is spelt (`load_timeout` in
/// Rust and Python, `loadTimeout` in JS) and the unit of a duration (Rust and JS milliseconds,
/// Python seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    /// Rust: snake_case names, durations in milliseconds (or a `Duration`).
    Rust,
    /// Python: snake_case names, durations in seconds.
    Python,
    /// JavaScript (Node and WASM): camelCase names, durations in milliseconds.
    Js,
}

/// What is wrong with a configuration value. Bounds are in the core unit of the setting
/// (milliseconds for durations); [`Error::message_for`] writes them in the host's unit.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigProblem {
    /// NaN or infinite.
    NotFinite,
    /// Has a fractional part where a whole number is needed.
    NotWhole,
    /// Zero or negative where only a positive value makes sense.
    NotPositive,
    /// Outside `min..=max`.
    OutOfRange {
        /// Smallest value accepted.
        min: f64,
        /// Largest value accepted.
        max: f64,
    },
    /// A duration shorter than `min` milliseconds (below a nanosecond it would round to zero).
    TooShort {
        /// Shortest duration accepted, in milliseconds.
        min: f64,
    },
    /// A duration longer than `max` milliseconds.
    TooLong {
        /// Longest duration accepted, in milliseconds.
        max: f64,
    },
    /// Not a power of two.
    NotPowerOfTwo,
    /// Neither true nor false (a number other than 1 and 0, or text that is no boolean).
    NotFlag,
    /// Text that is no number.
    NotNumber,
    /// Needs another setting (named as in the settings table) or a part of the cache.
    Needs(&'static str),
    /// Must not be above the setting named (as in the settings table).
    MustNotExceed(&'static str),
    /// Must be below (shorter than) the setting named (as in the settings table).
    MustBeBelow(&'static str),
    /// A bound set by this very setting is reached (e.g. one prefix too many).
    LimitReached {
        /// The bound.
        max: f64,
    },
    /// No setting has this name; `field` is `name`.
    Unknown,
    /// Another rule, stated in words (`must be callable`).
    Rule(&'static str),
}

/// Every way a healcache call can fail.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Error {
    /// A configuration value is refused; `field` names it as in the settings table
    /// ([`crate::settings::SETTINGS`]), or names the option of a call (`ttl`, `soft_timeout`).
    InvalidConfig {
        /// The setting's name in the table, e.g. `max_entries`, `load_timeout`.
        field: &'static str,
        /// What is wrong with it.
        problem: ConfigProblem,
        /// The value refused, in the core unit (milliseconds for durations), when there is one.
        value: Option<f64>,
        /// The unit of the value and of the problem's bounds.
        unit: Unit,
    },
    /// The key is longer than `max_key_len` bytes.
    KeyTooLong {
        /// Length of the refused key, in bytes.
        len: usize,
        /// The configured `max_key_len`.
        max: usize,
    },
    /// The entry (key + value weight) is heavier than `max_entry_bytes`; with a shared tier, so
    /// is the value's encoded payload.
    ValueTooLarge {
        /// Weight of the refused entry.
        weight: u64,
        /// The configured `max_entry_bytes`.
        max: u64,
    },
    /// A compare-and-set found another version than the one expected.
    VersionMismatch {
        /// The version the caller expected (0 means "absent").
        expected: u64,
        /// The entry's version now (0 means absent).
        current: u64,
    },
    /// The loader returned an error; every waiter of the flight gets this same value.
    Loader(LoaderError),
    /// The loader panicked; the key is not stuck and the next call loads again.
    LoaderPanicked {
        /// The panic's message when it was text (`panic!("...")`), else a placeholder.
        message: Arc<str>,
    },
    /// The load did not finish within `load_timeout`.
    LoadTimeout {
        /// The timeout that fired, in milliseconds.
        after_ms: u64,
    },
    /// A loader asked for the very key it is loading, which could never finish.
    RecursiveLoad,
    /// More distinct keys are loading at once than `max_in_flight` allows.
    TooManyLoads {
        /// The configured `max_in_flight`.
        max: usize,
    },
    /// A key that cannot be used where it was asked for (e.g. as a URL segment of a source).
    InvalidKey {
        /// Why the key was refused (the key itself is never part of the message).
        reason: &'static str,
    },
    /// The loader, or a cached "not found" answer, says the key does not exist (from the
    /// calls that must return a value; [`crate::Cache::fetch`] returns `None` instead).
    NotFound,
    /// The caller stopped waiting (a cancelled host task, an aborted signal); others are unaffected.
    Cancelled,
    /// The value cannot be written to the shared tier (a type its payload model lacks, such as
    /// a set or a function, a map with non-text keys, nesting deeper than 64, bytes given to the JSON
    /// codec); nothing was written.
    ValueNotEncodable {
        /// What could not be encoded (the value itself is never part of the message).
        reason: String,
    },
    /// The shared tier could not do what was asked (unreachable, the breaker open, a deadline
    /// passed) for a call that needs it; reads and writes never fail this way (they fall back to
    /// L1 and the loader).
    L2Unavailable {
        /// Why.
        reason: String,
    },
    /// A write-behind queue holds `max_queue` items (with `on_full` reject, or still after the
    /// block timeout); nothing was written, to the cache or the queue. (With the `tier` feature,
    /// as write-behind: the WebAssembly module leaves it out.)
    #[cfg(feature = "tier")]
    QueueFull {
        /// The configured `max_queue`.
        max: usize,
    },
    /// Refused because something is closed; nothing changed: a write-behind queue after its
    /// `close` (nothing written), or a closed cache's background healing asked to start again.
    Closed {
        /// What is closed, as the message says it.
        reason: &'static str,
    },
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
            Error::LoaderPanicked { .. } => "LoaderPanicked",
            Error::LoadTimeout { .. } => "LoadTimeout",
            Error::RecursiveLoad => "RecursiveLoad",
            Error::TooManyLoads { .. } => "TooManyLoads",
            Error::NotFound => "NotFound",
            Error::InvalidKey { .. } => "InvalidKey",
            Error::Cancelled => "Cancelled",
            Error::ValueNotEncodable { .. } => "ValueNotEncodable",
            Error::L2Unavailable { .. } => "L2Unavailable",
            #[cfg(feature = "tier")]
            Error::QueueFull { .. } => "QueueFull",
            Error::Closed { .. } => "Closed",
        }
    }

    /// [`Error::Closed`]: a closed cache's background healing does not start again.
    pub fn healing_closed() -> Self {
        Error::Closed { reason: "the cache is closed: its background healing does not start again" }
    }

    /// The error every waiter of a panicked loader gets, carrying the panic's text.
    pub(crate) fn panicked(payload: &(dyn Any + Send)) -> Self {
        let message: Arc<str> = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).into()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.as_str().into()
        } else {
            "(a panic payload that is not text)".into()
        };
        Error::LoaderPanicked { message }
    }

    /// A refused configuration value: `field` as in the settings table (its unit is the table's,
    /// or [`Unit::Number`] for a name the table lacks).
    pub fn invalid_config(field: &'static str, problem: ConfigProblem, value: Option<f64>) -> Self {
        let unit = setting(field).map_or(Unit::Number, |s| s.unit);
        Error::InvalidConfig { field, problem, value, unit }
    }

    /// The message as the user of `host` reads it: settings spelt as that host spells them,
    /// durations in its unit. `Display` gives [`Host::Rust`]'s.
    pub fn message_for(&self, host: Host) -> String {
        match self {
            Error::InvalidConfig { field, problem, value, unit } => {
                format!("invalid config: `{}` {}", host_name(field, host), problem.text(host, *unit, *value))
            }
            Error::KeyTooLong { len, max } => format!("key is {len} bytes, over the limit of {max}"),
            Error::ValueTooLarge { weight, max } => format!("entry weighs {weight} bytes, over the limit of {max}"),
            Error::VersionMismatch { expected, current } => {
                format!("version mismatch: expected {expected}, found {current}")
            }
            Error::Loader(e) => format!("loader failed: {e}"),
            Error::LoaderPanicked { message } => format!("loader panicked: {message}"),
            Error::LoadTimeout { after_ms } => {
                format!("load timed out after {}", duration(host, *after_ms as f64))
            }
            Error::RecursiveLoad => "recursive load: a loader asked for the key it is loading".to_string(),
            Error::TooManyLoads { max } => format!("too many loads in flight (limit {max})"),
            Error::InvalidKey { reason } => format!("invalid key: {reason}"),
            Error::NotFound => "not found".to_string(),
            Error::Cancelled => "cancelled".to_string(),
            Error::ValueNotEncodable { reason } => format!("value cannot be stored in the shared tier: {reason}"),
            Error::L2Unavailable { reason } => format!("the shared tier is unavailable: {reason}"),
            #[cfg(feature = "tier")]
            Error::QueueFull { max } => format!("write-behind queue full (limit {max})"),
            Error::Closed { reason } => reason.to_string(),
        }
    }
}

/// A value or a bound in a message for `host`: in its unit when `dur`, and an infinity as the
/// user wrote it (Rust and Python spell it `inf`). Not inlined: the messages call it often, and
/// the WebAssembly module's size budget counts every copy.
#[inline(never)]
fn shown(host: Host, dur: bool, v: f64) -> String {
    match host {
        Host::Js if v.is_infinite() => if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string(),
        _ if dur => Short(to_host(host, v)).to_string(),
        _ => Short(v).to_string(),
    }
}

impl ConfigProblem {
    /// The problem in words for `host` (the part of the message after the setting's name), with
    /// `value` and any bound of `unit` written in the host's unit.
    pub fn text(&self, host: Host, unit: Unit, value: Option<f64>) -> String {
        let dur = unit == Unit::Duration;
        let num = |v: f64| shown(host, dur, v);
        let got = value.map_or(String::new(), |v| format!(", got {}", num(v)));
        // where the problem's words do not say the unit, a duration's value carries it
        let got_in_unit = match value {
            Some(v) if dur => format!(", got {} {}", num(v), unit_word(host)),
            _ => got.clone(),
        };
        match *self {
            ConfigProblem::NotFinite => format!("must be a finite number{got}"),
            ConfigProblem::NotWhole => format!("must be a whole number{got}"),
            ConfigProblem::NotPositive if dur => format!("must be a positive number of {}{got}", unit_word(host)),
            ConfigProblem::NotPositive => format!("must be positive{got}"),
            ConfigProblem::OutOfRange { min, max } => format!("must be between {} and {}{got}", num(min), num(max)),
            ConfigProblem::TooShort { min } => {
                let got = value.map_or(String::new(), |v| format!(", got {} {}", num(v), unit_word(host)));
                if min == 1e-6 {
                    // written out: in seconds, 1e-6 ms / 1000 is not exactly 1e-9
                    let ns = if to_host(host, 1.0) == 1.0 { "0.000001" } else { "0.000000001" };
                    format!("must be at least one nanosecond ({ns} {}){got}", unit_word(host))
                } else {
                    let n = num(min);
                    let word = unit_word(host);
                    let word = if n == "1" { word.trim_end_matches('s') } else { word };
                    format!("must be at least {n} {word}{got}")
                }
            }
            ConfigProblem::TooLong { max } => {
                let got = value.map_or(String::new(), |v| format!(", got {} {}", num(v), unit_word(host)));
                let years = max / YEAR_MS;
                if years.fract() == 0.0 {
                    format!("must be at most {} years{got}", Decimal(years))
                } else {
                    format!("must be at most {} {}{got}", num(max), unit_word(host))
                }
            }
            ConfigProblem::NotPowerOfTwo => format!("must be a power of two{got}"),
            ConfigProblem::NotFlag => format!("must be true or false{got}"),
            ConfigProblem::NotNumber => "must be a number".to_string(),
            ConfigProblem::Needs(what) => match setting(what) {
                Some(_) => format!("needs `{}`", host_name(what, host)),
                None => format!("needs {what}"),
            },
            ConfigProblem::MustNotExceed(other) => format!("must not exceed `{}`{got_in_unit}", host_name(other, host)),
            ConfigProblem::MustBeBelow(other) if dur => {
                format!("must be shorter than `{}`{got_in_unit}", host_name(other, host))
            }
            ConfigProblem::MustBeBelow(other) => format!("must be below `{}`{got}", host_name(other, host)),
            ConfigProblem::LimitReached { max } => format!("limit of {} reached", Decimal(max)),
            ConfigProblem::Unknown => "unknown setting".to_string(),
            ConfigProblem::Rule(rule) => rule.to_string(),
        }
    }
}

const YEAR_MS: f64 = 365.0 * 24.0 * 3600.0 * 1000.0;

/// Milliseconds in the host's unit.
fn to_host(host: Host, ms: f64) -> f64 {
    match host {
        Host::Python => ms / 1000.0,
        Host::Rust | Host::Js => ms,
    }
}

fn unit_word(host: Host) -> &'static str {
    match host {
        Host::Python => "seconds",
        Host::Rust | Host::Js => "milliseconds",
    }
}

fn duration(host: Host, ms: f64) -> String {
    match host {
        Host::Python => format!("{} s", Decimal(to_host(host, ms))),
        Host::Rust | Host::Js => format!("{} ms", Decimal(ms)),
    }
}

/// A setting's name as `host` spells it: the table's names, else the name given (camelCase in JS).
fn host_name(field: &'static str, host: Host) -> Cow<'static, str> {
    match (setting(field), host) {
        (_, Host::Js) => js_name(field),
        (Some(s), _) => Cow::Borrowed(s.name),
        (None, _) => Cow::Borrowed(field),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_for(Host::Rust))
    }
}

impl std::error::Error for Error {
    /// What caused a loader's error, when it is a `std::error::Error`: the chain goes on from it,
    /// as `std::io::Error`'s does. Not the loader's error itself, whose text this error's already
    /// shows: a report then shows each text once ([`LoaderError::as_std_error`] gives it).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Loader(e) => e.as_std_error().and_then(std::error::Error::source),
            _ => None,
        }
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
