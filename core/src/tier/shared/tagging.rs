//! Tag versions in the shared tier: checked on reads, recorded on writes and loads, bumped
//! fleet-wide by an invalidation.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use std::time::Duration;

use futures::future::{self, BoxFuture, FutureExt};

use super::{Tier, Wrote};
use crate::codec::{self, Tag, Token};
use crate::keys;
use crate::tier::breaker::State;
use crate::tier::bus;
use crate::tier::{Expect, TagRead, TagSet, TransportError, UNREADABLE_TAG};

/// How much longer ago than the time since a write began a tag's version must have been set, by
/// the server's clock, for the write to take it: the local clock's resolution and the two
/// clocks' drift over a round trip are far below it, and a step of the server's clock (NTP) of
/// up to this much is covered too.
const TAG_CLOCK_MARGIN: Duration = Duration::from_secs(1);

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
            let read = self.read_tags(unknown.iter().map(|i| names[*i].to_string()).collect()).await.ok()?;
            if read.iter().any(|r| r.version == UNREADABLE_TAG) {
                // no version to compare with: the value is outdated (a miss), and the bytes counted
                self.counters.codec_errors.fetch_add(1, Relaxed);
                return Some(false);
            }
            for (i, r) in unknown.into_iter().zip(read) {
                current[i] = r.version;
            }
        }
        Some(tags.iter().zip(current).all(|(t, v)| t.version == v))
    }

    /// The versions of `names` read from L2 (an absent key made anew: see the TAG_READ script),
    /// each readable one learnt. Those made by this read are announced on the bus
    /// ([`bus::Kind::TagMade`]): after a key was lost, an instance that knew its old version
    /// would otherwise record it in every write, each then outdated.
    async fn read_tags(self: &Arc<Self>, names: Vec<String>) -> Result<Vec<TagRead>, TransportError> {
        let keys = names.iter().map(|n| keys::tag_key(&self.cfg.prefix, "cache", n)).collect();
        let read = self.timed(self.transport.tag_versions(keys), Some(self.cfg.timeout)).await?;
        let mut made = Vec::new();
        for (n, r) in names.into_iter().zip(&read) {
            if r.version != UNREADABLE_TAG {
                self.tags.learn(&n, r.version);
                if r.set == TagSet::ByThisRead {
                    made.push((n, Token { epoch: 0, counter: r.version }));
                }
            }
        }
        if !made.is_empty() {
            self.publish(bus::Kind::TagMade, made);
        }
        Ok(read)
    }

    /// The current versions of `tags` for a write, as known here, and the positions of those
    /// not known: they are recorded as 0, which matches no version (versions come from the
    /// server's clock), so until [`Tier::resolve_tags`] confirms them the value reads as
    /// outdated in L2, never as valid past an invalidation.
    pub(crate) fn versions_for_write(&self, tags: &[&str]) -> (Vec<Tag>, Vec<usize>) {
        let known = self.tags.known(tags);
        let unknown = (0..tags.len()).filter(|i| known[*i].is_none()).collect();
        let recorded = tags.iter().zip(known).map(|(t, v)| Tag { name: t.to_string(), version: v.unwrap_or(0) });
        (recorded.collect(), unknown)
    }

    /// The second half of a write whose tags were not all known ([`Tier::versions_for_write`]):
    /// `first` is its L2 write, begun at `began` (the clock's precise reading). The unknown
    /// versions are read meanwhile (and learnt). When the server shows no invalidation came
    /// after the write began (each version set by a read that found the key absent, or by an
    /// invalidation longer ago than the time since the write began, plus a margin for the
    /// clocks' resolution and drift), the same envelope is written again with them, over the
    /// first only (its token): another write since wins. Otherwise the value stays outdated in
    /// L2 (a miss), as it does when a version cannot be read. `resolved` gets the versions once
    /// written, for the L1 record. Runs in the background.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn resolve_tags(
        self: &Arc<Self>,
        first: BoxFuture<'static, Wrote>,
        began: u64,
        key: &str,
        payload: (codec::PayloadCodec, Vec<u8>),
        ttl: Option<Duration>,
        grace: Duration,
        memo: u64,
        mut tags: Vec<Tag>,
        unknown: Vec<usize>,
        resolved: impl FnOnce(&[Tag]) + Send + 'static,
    ) {
        if unknown.is_empty() || self.breaker.state() != State::Closed {
            return self.spawn(first);
        }
        let names = unknown.iter().map(|i| tags[*i].name.clone()).collect();
        let (tier, key) = (Arc::clone(self), key.to_string());
        let job = async move {
            let (wrote, read) = future::join(first, tier.read_tags(names)).await;
            let Ok(read) = read else { return };
            let elapsed = Duration::from_nanos(tier.clock.precise_nanos().saturating_sub(began));
            let mut before = true;
            for (i, r) in unknown.into_iter().zip(read) {
                if r.version == UNREADABLE_TAG {
                    return;
                }
                tags[i].version = r.version;
                before &= match r.set {
                    TagSet::ByThisRead | TagSet::ByARead => true,
                    TagSet::Bumped(ago) => ago > elapsed.saturating_add(TAG_CLOCK_MARGIN),
                    TagSet::Unknown => false,
                };
            }
            let Wrote::Written(token) = wrote else { return };
            if !before {
                return;
            }
            let again = tier.write_encoded(
                &key,
                Some(payload),
                ttl,
                grace,
                0,
                Expect::Token(token),
                None,
                tags.clone(),
                Some(memo),
            );
            if let Some(w) = again {
                if let Wrote::Written(_) = w.await {
                    resolved(&tags);
                }
            }
        };
        self.transport.spawn(job.boxed());
    }

    /// The clock at full resolution, for [`Tier::resolve_tags`]'s `began`.
    pub(crate) fn precise_nanos(&self) -> u64 {
        self.clock.precise_nanos()
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

    /// Invalidates `tag` fleet-wide: its version in L2 moves to one it never held, and it is
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
