//! # healcache
//!
//! One caching engine for Rust, Python, Node and edge workers: a bounded in-memory store with
//! TTLs, versions and S3-FIFO eviction; coalesced loads (single flight); uniform O(k) key
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
// Without the `tier` feature the shared tier's paths are compiled out, and what only they use
// (helpers, imports, arguments) is left unused.
#![cfg_attr(not(feature = "tier"), allow(dead_code, unused_imports, unused_variables, unused_mut))]

mod batch;
mod cache;
mod clock;
pub mod codec;
mod config;
mod decimal;
mod error;
mod eviction;
mod fetch;
mod flight;
mod healing;
mod index;
pub mod keys;
mod prometheus;
mod sampler;
mod scoring;
pub mod settings;
mod source;
mod stats;
mod store;
mod sync;
mod tags;
pub mod tier;
mod warm;
#[cfg(feature = "tier")]
mod write_behind;
mod write_through;
mod xfetch;

/// The seeded generator behind every random choice of the core (eviction samples, jitter,
/// XFetch, healing draws): Xoshiro256++ on every target. rand's `SmallRng` is Xoshiro128++ on
/// 32-bit targets (wasm32), so one seed would choose differently in WebAssembly than natively.
pub(crate) type SeededRng = rand_xoshiro::Xoshiro256PlusPlus;

pub use cache::{Cache, Entry, Ttl, WriteOptions, Written};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    close_timeout_ms, duration_ms, CacheBuilder, Config, RemovalListener, Weigher, DEFAULT_CLOSE_TIMEOUT,
    EXIT_CLOSE_TIMEOUT, MAX_DURATION_MS,
};
pub use error::{ConfigProblem, Error, Host, LoaderError, Result};
pub use fetch::{FetchOptions, Fetched, Loaded};
#[cfg(not(target_arch = "wasm32"))]
pub use flight::after_fork;
pub use flight::{Interrupt, Spawner, Timer};
pub use healing::{Comparator, Digest, DriftEvent, Healer, HealingConfig, HealingStats, IntervalReport, PrefixScore};
pub use prometheus::prometheus_join;
pub use sampler::KeySample;
pub use source::{FnSource, Source, SourceAnswer, SourceError};
pub use stats::{HistogramSnapshot, Stats, Status, LATENCY_BUCKETS_MS};
pub use store::RemovalCause;
pub use warm::{Warm, WarmReport, MAX_PATTERN_KEYS};
#[cfg(feature = "tier")]
pub use write_behind::close_all as close_all_write_behind;
#[cfg(feature = "tier")]
pub use write_behind::exit_report as write_behind_exit_report;
#[cfg(feature = "tier")]
pub use write_behind::{
    BatchWriter, FailedItem, OnFull, Op, WriteBehind, WriteBehindConfig, WriteBehindStats, BATCH_SIZE_BUCKETS,
};
pub use write_through::WriteThrough;

/// The README's Rust examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
