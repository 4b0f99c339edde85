//! # healcache
//!
//! One caching engine for Rust, Python, Node and edge workers: a bounded in-memory store with
//! TTLs, versions and sampled-LFU eviction; coalesced loads (single flight); uniform O(k) key
//! sampling for self-healing. The crate has no async runtime and compiles for
//! `wasm32-unknown-unknown`: time comes through [`Clock`], delays through [`Timer`], randomness
//! from a seed the host gives.
//!
//! ```
//! use healcache::Cache;
//! use std::time::Duration;
//!
//! let cache = Cache::<String>::builder().max_entries(10_000).ttl(Duration::from_secs(60)).build().unwrap();
//! cache.set("greeting", "hello".into()).unwrap();
//! assert_eq!(cache.get("greeting").as_deref(), Some("hello"));
//! ```
#![warn(missing_docs)]

mod cache;
pub mod clock;
mod config;
mod error;
mod eviction;
mod flight;
mod healing;
mod index;
pub mod metrics;
pub mod sampler;
pub mod scoring;
pub mod settings;
mod source;
mod store;
mod sync;
pub mod xfetch;

pub use cache::{Cache, FetchOptions, Fetched, Loaded, RemovalListener, Stats, Status, Ttl, WriteOptions};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{duration_ms, CacheBuilder, Config, Weigher};
pub use error::{ConfigProblem, Error, Host, LoaderError, Result};
pub use flight::{Spawner, Timer};
pub use healing::{Comparator, Digest, DriftEvent, Healer, HealingConfig, HealingStats, IntervalReport, PrefixScore};
pub use metrics::HistogramSnapshot;
pub use sampler::KeySample;
pub use source::{FnSource, Source, SourceAnswer, SourceError, UrlTemplate};
pub use store::{Entry, RemovalCause};

/// The README's Rust examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
