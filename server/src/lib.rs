//! healcache behind the Redis protocol: `redis-cli`, `redis-benchmark` and every Redis client
//! talk to a healcache cache of bytes with its self-healing (`CONSISTENCY ...`, `CONFIG SET
//! healing.*`). See docs/server.md.

pub mod admin;
pub mod commands;
pub mod config;
pub mod conn;
pub mod metrics;
pub mod resp;
pub mod server;

pub use config::{from_args, ServerConfig, Settings};
pub use server::run;
