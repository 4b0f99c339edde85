//! Sources of truth for self-healing: the [`Source`] trait and a callback adapter. (HTTP sources
//! and their URL templates live in the `healcache-http` crate.)

use std::future::Future;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

/// What a source says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceAnswer<V> {
    /// The current value.
    Value(V),
    /// The key does not exist.
    NotFound,
}

/// A source could not answer: the sample is skipped, never counted as drift.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source failed (connection refused, 5xx, a callback that raised).
    #[error("source unavailable")]
    Unavailable,
    /// The source did not answer within `source_timeout`.
    #[error("source timed out")]
    Timeout,
    /// The key cannot be asked of this source (e.g. a URL template cannot carry it safely): the
    /// sample is skipped and counts neither as drift nor as a source failure.
    #[error("key refused by the source")]
    Refused,
}

/// A source of truth for the keys of one prefix.
pub trait Source<V>: Send + Sync + 'static {
    /// The source's current answer for `key`.
    fn fetch(&self, key: &str) -> BoxFuture<'static, std::result::Result<SourceAnswer<V>, SourceError>>;
}

/// A [`Source`] from an async function (how bindings wrap host callbacks).
pub struct FnSource<F>(pub F);

impl<F> std::fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnSource")
    }
}

impl<V, F, Fut> Source<V> for FnSource<F>
where
    F: Fn(&str) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<SourceAnswer<V>, SourceError>> + Send + 'static,
{
    fn fetch(&self, key: &str) -> BoxFuture<'static, std::result::Result<SourceAnswer<V>, SourceError>> {
        (self.0)(key).boxed()
    }
}

impl<V, S: Source<V> + ?Sized> Source<V> for Arc<S> {
    fn fetch(&self, key: &str) -> BoxFuture<'static, std::result::Result<SourceAnswer<V>, SourceError>> {
        (**self).fetch(key)
    }
}
