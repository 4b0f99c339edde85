//! Tag versions in the shared tier: checked on reads, recorded on writes and loads, bumped
//! fleet-wide by an invalidation.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use futures::future::FutureExt;

use super::Tier;
use crate::codec::{Tag, Token};
use crate::keys;
use crate::tier::breaker::State;
use crate::tier::bus;
use crate::tier::{TransportError, UNREADABLE_TAG};

impl<V: Clone + Send + Sync + 'static> Tier<V> {
    /// Whether every recorded tag version is current: the versions known here, the others read
    /// from L2 (and learnt). `None` when they cannot be read: the value is not used unchecked.
    /// A version no cache wrote is not current (and not learnt).
    pub(super) async fn tags_current(self: &Arc<Self>, tags: &[Tag]) -> Option<bool> {
        let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
        let known = self.tags.known(&names);
        let unknown: Vec<usize> = (0..tags.len()).filter(|i| known[*i].is_none()).collect();
        let mut current: Vec<u64> = known.iter().map(|v| v.unwrap_or(0)).collect();
        if !unknown.is_empty() {
            let keys = unknown.iter().map(|i| keys::tag_key(&self.cfg.prefix, "cache", names[*i])).collect();
            let read = self.timed(self.transport.tag_versions(keys), Some(self.cfg.timeout)).await.ok()?;
            if read.contains(&UNREADABLE_TAG) {
                // no version to compare with: the value is outdated (a miss), and the bytes counted
                self.counters.codec_errors.fetch_add(1, Relaxed);
                return Some(false);
            }
            for (i, v) in unknown.into_iter().zip(read) {
                self.tags.learn(names[i], v);
                current[i] = v;
            }
        }
        Some(tags.iter().zip(current).all(|(t, v)| t.version == v))
    }

    /// The current versions of `tags` for a write: known here, the others taken as 0 and read
    /// from L2 in the background for the next write. A version taken too low only makes the
    /// value read as outdated later (a miss), never an invalidated value valid.
    pub(crate) fn versions_for_write(self: &Arc<Self>, tags: &[&str]) -> Vec<Tag> {
        let known = self.tags.known(tags);
        let unknown: Vec<String> =
            tags.iter().zip(&known).filter(|(_, v)| v.is_none()).map(|(t, _)| t.to_string()).collect();
        if !unknown.is_empty() && self.breaker.state() == State::Closed {
            let keys = unknown.iter().map(|t| keys::tag_key(&self.cfg.prefix, "cache", t)).collect();
            let (op, tier) = (self.transport.tag_versions(keys), Arc::clone(self));
            self.transport.spawn(
                async move {
                    if let Ok(vs) = tier.timed(op, Some(tier.cfg.timeout)).await {
                        for (t, v) in unknown.iter().zip(vs).filter(|(_, v)| *v != UNREADABLE_TAG) {
                            tier.tags.learn(t, v);
                        }
                    }
                }
                .boxed(),
            );
        }
        tags.iter().zip(known).map(|(t, v)| Tag { name: t.to_string(), version: v.unwrap_or(0) }).collect()
    }

    /// The current versions of `tags` before a load, read from L2 when not known here (and
    /// learnt), so the loaded value records the versions its load saw. A version that cannot be
    /// read stays unknown: the value is then not kept in L1, and reads as outdated in L2.
    pub(crate) async fn versions_for_load(self: &Arc<Self>, tags: &[&str]) -> Vec<Tag> {
        let probe: Vec<Tag> = tags.iter().map(|t| Tag { name: t.to_string(), version: 0 }).collect();
        let _ = self.tags_current(&probe).await;
        let known = self.tags.known(tags);
        tags.iter().zip(known).map(|(t, v)| Tag { name: t.to_string(), version: v.unwrap_or(u64::MAX) }).collect()
    }

    /// Invalidates `tag` fleet-wide: its version in L2 is incremented, and the new version is
    /// announced on the bus (`hard`: other instances remove their tagged entries instead of
    /// making them stale). Answers the new version.
    pub(crate) async fn bump_tag(self: &Arc<Self>, tag: &str, hard: bool) -> Result<u64, TransportError> {
        if !self.admit() {
            return Err(TransportError::Io("the breaker is open".into()));
        }
        let key = keys::tag_key(&self.cfg.prefix, "cache", tag);
        let v = self.timed(self.transport.tag_bump(&key), Some(self.cfg.timeout)).await?;
        self.counters.tag_invalidations.fetch_add(1, Relaxed);
        let kind = if hard { bus::Kind::TagRemoved } else { bus::Kind::TagStale };
        self.publish(kind, vec![(tag.to_string(), Token { epoch: 0, counter: v })]);
        Ok(v)
    }
}
