//! Write-through: the source of truth first, then the cache.
//!
//! The writer (the database update) runs first; only when it succeeded does the cache change,
//! so a failed write never leaves a value in any cache that the source does not hold. With a
//! shared tier the L2 write (or tombstone) is awaited, within the tier's deadline, before the
//! call returns, so by then every instance reads the new value from L2 and its L1 copy has been
//! told to go stale on the bus.

use std::future::Future;

use crate::cache::{Cache, Ttl};
use crate::error::{Error, LoaderError, Result};

/// Options of [`Cache::write_through`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriteThrough {
    /// TTL of the value cached. Defaults to: the cache's TTL.
    pub ttl: Ttl,
    /// Remove the key from the cache (a tombstone in L2) instead of caching the value written:
    /// the cache-aside rule "update the source, delete the cache", for values the cache should
    /// only ever get from a load.
    pub invalidate: bool,
}

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// Writes `value` to the source of truth with `writer`, then to the cache: L1, and with a
    /// shared tier L2 (awaited within `l2_timeout`; past it the write lands in the background)
    /// and the bus. Returns the entry's new version (0 when `invalidate` removed it instead).
    ///
    /// Checked before the writer runs, so bad input changes nothing anywhere: the key's length
    /// ([`Error::KeyTooLong`]), the entry's weight ([`Error::ValueTooLarge`]), the TTL, and with
    /// a shared tier that the value can be encoded ([`Error::ValueNotEncodable`]). A writer
    /// error reaches the caller as [`Error::Loader`] carrying the writer's own error, and the
    /// cache is left as it was.
    ///
    /// ```
    /// use healcache::{Cache, WriteThrough};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::<u64>::builder().build().unwrap();
    /// let save = || async { Ok::<_, std::io::Error>(()) }; // e.g. an UPDATE in the database
    /// cache.write_through("stock:7", 41, WriteThrough::default(), save).await.unwrap();
    /// assert_eq!(cache.get("stock:7"), Some(41));
    /// let fail = || async { Err::<(), _>(std::io::Error::other("database down")) };
    /// assert!(cache.write_through("stock:7", 40, WriteThrough::default(), fail).await.is_err());
    /// assert_eq!(cache.get("stock:7"), Some(41));
    /// # });
    /// ```
    pub async fn write_through<F, Fut, E>(&self, key: &str, value: V, opts: WriteThrough, writer: F) -> Result<u64>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<(), E>>,
        E: Into<LoaderError>,
    {
        self.check_write_through(key, &value, &opts)?;
        #[cfg(feature = "tier")]
        let payload = match self.inner.tier() {
            Some(t) => Some(t.encode(&value)?),
            None => None,
        };
        writer().await.map_err(|e| Error::Loader(e.into()))?;
        if opts.invalidate {
            #[cfg(feature = "tier")]
            if let Some(tier) = self.inner.tier() {
                let w = tier.tombstone(key);
                self.remove_local(key);
                if let Some(w) = w {
                    tier.settle(w, drop).await;
                }
                return Ok(0);
            }
            self.remove(key);
            return Ok(0);
        }
        let written = self.write_raw(key, Some(value), opts.ttl, None, 0)?;
        #[cfg(feature = "tier")]
        if let (Some(tier), Some(payload)) = (self.inner.tier(), payload) {
            let any = crate::tier::Expect::Any;
            if let Some(w) = self.l2_write(tier, key, payload, opts.ttl, &written, any, Vec::new()) {
                tier.settle(w, drop).await;
            }
        }
        Ok(written.version)
    }

    /// What [`Cache::write_through`] refuses before it calls the writer (the key, the TTL, the
    /// value's weight), checked without writing: a host whose call returns a future checks with
    /// it when called, not when awaited.
    pub fn check_write_through(&self, key: &str, value: &V, opts: &WriteThrough) -> Result<()> {
        if let Ttl::For(d) = opts.ttl {
            if d.is_zero() {
                return Err(Error::invalid_config("ttl", crate::ConfigProblem::NotPositive, Some(0.0)));
            }
        }
        self.inner.store.check_key(key)?;
        let weight = self.weigh_value(value).saturating_add(key.len() as u64);
        self.inner.store.check_weight(weight)
    }
}
