//! Tags: one call invalidates every entry written with a tag, in this process and, with a
//! shared tier, in every instance of the fleet.
//!
//! A tag has a version, and a new one at each [`crate::Cache::invalidate_tag`]. Without a shared
//! tier a tag is at 0 until first invalidated, and each invalidation takes the next value of a
//! counter of the cache's, shared by all its tags, so a version is never handed out twice, even
//! for a tag whose version was forgotten. With one, the version lives in the tag's key in
//! Redis and comes from the server's clock (the TAG_READ and TAG_BUMP scripts), so every
//! instance sees the same, and a key lost in Redis never comes back at a version an entry
//! recorded.
//! An entry records the version each of its tags had when it was written (a load: when it
//! began) and is valid only while every recorded version is still the current one. Versions and
//! not timestamps, as the fleet design chooses over FusionCache's and bentocache's: no clocks
//! are compared across processes, and a load that began before an invalidation and ends after
//! it carries the older version, so it is rejected.
//! - L1 acts at once: an index from tag to the keys written here with it makes those entries
//!   stale (kept as a fallback within their grace window) or, for a hard invalidation, removes
//!   them. A value about to be stored whose recorded versions are no longer current is dropped.
//! - L2 is checked lazily: a read of a tagged envelope compares its recorded versions with the
//!   current ones (known here, else read from Redis), and an outdated value reads as a miss.
//! - Other instances learn of a bump on the invalidation bus; a lost message is a gap, which
//!   distrusts L1 and forgets the known versions, so the next reads ask Redis.
//!
//! Equality decides whether an entry is valid: a version forgotten here (the table is bounded)
//! can only make an entry read as invalid, a miss, never make an invalidated entry valid
//! (without a tier, the next version comes from the counter, never from the version known, so it
//! cannot be one an entry recorded). Order only keeps what is known from going back: versions
//! grow, and news of them arrives from several processes in no set order.

use std::collections::HashMap;
#[cfg(feature = "tier")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
#[cfg(feature = "tier")]
use std::sync::Arc;
use std::sync::Mutex;

#[cfg(feature = "tier")]
use crate::cache::{Cache, WriteOptions, Written};
use crate::codec::Tag;
use crate::error::{ConfigProblem, Error, Result};
#[cfg(feature = "tier")]
use crate::store::Expect;
#[cfg(feature = "tier")]
use crate::tier;

/// Most tags one entry may carry (the envelope's tag section holds at most this many).
pub const MAX_TAGS: usize = crate::codec::MAX_TAGS;
/// Longest tag name, in bytes.
pub const MAX_TAG_BYTES: usize = 128;
/// Most tag versions a cache keeps known at once; past it one is forgotten (and read again from
/// the shared tier when next needed).
pub const MAX_KNOWN_TAGS: usize = 10_000;

/// Refuses an unusable tag list, naming the bound.
pub(crate) fn check(tags: &[&str]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        let problem = ConfigProblem::LimitReached { max: MAX_TAGS as f64 };
        return Err(Error::invalid_config("tags", problem, Some(tags.len() as f64)));
    }
    if let Some(t) = tags.iter().find(|t| t.is_empty() || t.len() > MAX_TAG_BYTES) {
        let problem = ConfigProblem::Rule("each tag must be 1 to 128 bytes long");
        return Err(Error::invalid_config("tags", problem, Some(t.len() as f64)));
    }
    Ok(())
}

/// A cache's tags: the versions it knows and which of its keys carry which tag.
pub(crate) struct TagIndex {
    /// False until the first tagged write, so a cache that never uses tags pays one relaxed load
    /// per write and nothing per read.
    used: AtomicBool,
    /// Most memberships (key, tag) kept: 16 per entry the cache can hold; past it memberships of
    /// keys no longer in L1 are swept.
    bound: usize,
    /// The last version handed out by an invalidation without a shared tier (0: none yet). One
    /// counter for every tag, so a new version differs from every version recorded before,
    /// whatever was forgotten since.
    #[cfg(feature = "tier")]
    local: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    known: HashMap<Box<str>, u64>,
    /// tag -> key -> the version recorded when the key was written
    by_tag: HashMap<Box<str>, HashMap<Box<str>, u64>>,
    /// key -> its tags
    by_key: HashMap<Box<str>, Vec<Box<str>>>,
    members: usize,
}

impl State {
    fn unlink(&mut self, key: &str) {
        let Some(tags) = self.by_key.remove(key) else { return };
        for t in tags {
            if let Some(keys) = self.by_tag.get_mut(&t) {
                if keys.remove(key).is_some() {
                    self.members -= 1;
                }
                if keys.is_empty() {
                    self.by_tag.remove(&t);
                }
            }
        }
    }
}

impl TagIndex {
    pub(crate) fn new(max_entries: usize) -> Self {
        TagIndex {
            used: AtomicBool::new(false),
            bound: max_entries.saturating_mul(MAX_TAGS).max(MAX_TAGS),
            #[cfg(feature = "tier")]
            local: AtomicU64::new(0),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once any tagged write was made.
    #[inline]
    pub(crate) fn used(&self) -> bool {
        self.used.load(Relaxed)
    }

    /// The versions known now of `tags` (`None` for a tag not known).
    pub(crate) fn known(&self, tags: &[&str]) -> Vec<Option<u64>> {
        let s = self.state();
        tags.iter().map(|t| s.known.get(*t).copied()).collect()
    }

    /// Records that `tag` is at `version` now, unless a higher one is known: versions only grow,
    /// and news of them arrives from several processes in no set order (an older one heard last
    /// would make values recorded under it read as valid again).
    pub(crate) fn learn(&self, tag: &str, version: u64) {
        let mut s = self.state();
        if let Some(v) = s.known.get_mut(tag) {
            *v = (*v).max(version);
            return;
        }
        if s.known.len() >= MAX_KNOWN_TAGS {
            if let Some(k) = s.known.keys().next().cloned() {
                s.known.remove(&k);
            }
        }
        s.known.insert(tag.into(), version);
    }

    /// A version never handed out before, for an invalidation without a shared tier: at least 1,
    /// so never the 0 of a tag not invalidated yet. Not "known + 1": a tag's version forgotten
    /// at the bound would come back as one its entries recorded, and leave them valid.
    #[cfg(feature = "tier")]
    pub(crate) fn next_local_version(&self) -> u64 {
        self.local.fetch_add(1, Relaxed) + 1
    }

    /// Forgets every known version (after a bus gap: bumps may have been missed).
    pub(crate) fn forget_versions(&self) {
        self.state().known.clear();
    }

    /// Whether every recorded version is known here and current. A version forgotten since
    /// (after a bus gap, or at the bound) counts as outdated: a value is kept only when certain.
    pub(crate) fn current(&self, tags: &[Tag]) -> bool {
        let s = self.state();
        tags.iter().all(|t| s.known.get(t.name.as_str()) == Some(&t.version))
    }

    /// The versions of `tags` now, for a load in this process alone: a tag not known yet is at 0
    /// (and known so from now on).
    pub(crate) fn versions_now(&self, tags: &[&str]) -> Vec<Tag> {
        let known = self.known(tags);
        tags.iter()
            .zip(known)
            .map(|(t, v)| {
                if v.is_none() {
                    self.learn(t, 0);
                }
                Tag { name: t.to_string(), version: v.unwrap_or(0) }
            })
            .collect()
    }

    /// `key` now holds a value written with `tags` (empty: none); `held` tells whether a key is
    /// still in L1, for sweeping at the bound.
    pub(crate) fn record(&self, key: &str, tags: &[Tag], held: impl Fn(&str) -> bool) {
        if tags.is_empty() && !self.used() {
            return;
        }
        self.used.store(true, Relaxed);
        let mut s = self.state();
        s.unlink(key);
        if tags.is_empty() {
            return;
        }
        if s.members + tags.len() > self.bound {
            let gone: Vec<Box<str>> = s.by_key.keys().filter(|k| !held(k)).cloned().collect();
            for k in gone {
                s.unlink(&k);
            }
        }
        for t in tags {
            let keys = s.by_tag.entry(t.name.as_str().into()).or_default();
            if keys.insert(key.into(), t.version).is_none() {
                s.members += 1;
            }
        }
        s.by_key.insert(key.into(), tags.iter().map(|t| t.name.as_str().into()).collect());
    }

    /// The tags `key` was written with, at the versions recorded then.
    #[cfg(feature = "tier")]
    pub(crate) fn of(&self, key: &str) -> Vec<Tag> {
        let s = self.state();
        let Some(names) = s.by_key.get(key) else { return Vec::new() };
        names
            .iter()
            .filter_map(|n| {
                let version = *s.by_tag.get(n)?.get(key)?;
                Some(Tag { name: n.to_string(), version })
            })
            .collect()
    }

    /// Whether `key` was written with tags.
    pub(crate) fn tagged(&self, key: &str) -> bool {
        self.used() && self.state().by_key.contains_key(key)
    }

    /// `tag` moved to `version`: the keys written here under another version, which the caller
    /// makes stale or, `hard`, removes. Removed keys are no longer members; stale ones stay, at
    /// the versions they recorded, so a later hard invalidation of any of their tags finds them.
    pub(crate) fn bumped(&self, tag: &str, version: u64, hard: bool) -> Vec<Box<str>> {
        self.learn(tag, version);
        let mut s = self.state();
        let Some(keys) = s.by_tag.get(tag) else { return Vec::new() };
        let out: Vec<Box<str>> = keys.iter().filter(|(_, v)| **v != version).map(|(k, _)| k.clone()).collect();
        if hard {
            for k in &out {
                s.unlink(k);
            }
        }
        out
    }

    /// Every key written here with `tag`, whatever its version, and the tag's version forgotten:
    /// for an invalidation whose new version is not known. Members afterwards as after
    /// [`TagIndex::bumped`].
    pub(crate) fn take_all(&self, tag: &str, hard: bool) -> Vec<Box<str>> {
        let mut s = self.state();
        s.known.remove(tag);
        let out: Vec<Box<str>> = s.by_tag.get(tag).map(|keys| keys.keys().cloned().collect()).unwrap_or_default();
        if hard {
            for k in &out {
                s.unlink(k);
            }
        }
        out
    }

    /// Memberships kept (for the bound's test).
    #[cfg(test)]
    fn members(&self) -> usize {
        self.state().members
    }
}

/// Tagged writes and tag invalidation, the cache's side of the tags above.
#[cfg(feature = "tier")]
impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// [`Cache::write_entry`] of a value carrying tags (at most 16, each 1 to 128 bytes): one
    /// [`Cache::invalidate_tag`] of any of them later makes it stale, here and, with a shared
    /// tier, in every instance and in L2. A tag list out of bounds is refused with
    /// [`Error::InvalidConfig`] (field `tags`), changing nothing.
    ///
    /// ```
    /// use healcache::{Cache, WriteOptions};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::<u64>::builder().build().unwrap();
    /// cache.write_tagged("user:1", 1, WriteOptions::default(), &["team:7"]).unwrap();
    /// cache.write_tagged("user:2", 2, WriteOptions::default(), &["team:8"]).unwrap();
    /// assert_eq!(cache.invalidate_tag("team:7", false).await.unwrap(), 1);
    /// assert_eq!((cache.get("user:1"), cache.get("user:2")), (None, Some(2)));
    /// # });
    /// ```
    pub fn write_tagged(&self, key: &str, value: V, opts: WriteOptions, tags: &[&str]) -> Result<Written> {
        check(tags)?;
        let tier = self.inner.tier();
        let payload = match tier {
            Some(t) => Some(t.encode(&value)?),
            None => None,
        };
        let (recorded, unknown) = match tier {
            Some(t) => t.versions_for_write(tags),
            None => {
                let known = self.inner.tags.known(tags);
                let recorded =
                    tags.iter().zip(known).map(|(t, v)| Tag { name: t.to_string(), version: v.unwrap_or(0) });
                (recorded.collect(), Vec::new())
            }
        };
        let began = tier.map_or(0, |t| t.precise_nanos());
        let written = self.write_raw(key, Some(value), opts.ttl, opts.if_version.map(Expect::Live), 0)?;
        self.inner.tags.record(key, &recorded, |k| self.inner.store.stored_version(k) != 0);
        let (Some(tier), Some(payload)) = (tier, payload) else { return Ok(written) };
        if unknown.is_empty() {
            if let Some(w) = self.l2_write(tier, key, payload, opts.ttl, &written, tier::Expect::Any, recorded) {
                tier.spawn(w);
            }
            return Ok(written);
        }
        let again = payload.clone();
        let Some(w) = self.l2_write(tier, key, payload, opts.ttl, &written, tier::Expect::Any, recorded.clone()) else {
            return Ok(written);
        };
        // the L1 record takes the versions confirmed, while the key still holds this write
        let inner = Arc::downgrade(&self.inner);
        let (k, version) = (key.to_string(), written.version);
        let resolved = move |tags: &[Tag]| {
            if let Some(inner) = inner.upgrade() {
                if inner.store.stored_version(&k) == version {
                    inner.tags.record(&k, tags, |k| inner.store.stored_version(k) != 0);
                }
            }
        };
        let ttl = self.resolve_ttl(opts.ttl);
        let grace = self.inner.settings.grace.unwrap_or_default();
        tier.resolve_tags(w, began, key, again, ttl, grace, written.version, recorded, unknown, resolved);
        Ok(written)
    }

    /// Invalidates every entry written with `tag`: made stale (served only as a fallback within
    /// its grace window, as by stale-while-revalidate and fail-safe) or, `hard`, removed. With a
    /// shared tier the tag's version in L2 moves to a new one, so tagged values there read as misses,
    /// and every instance is told on the bus; [`Error::L2Unavailable`] when L2 cannot be reached
    /// (this process's entries are invalidated all the same). An entry that never expires is
    /// kept stale for the cache's grace window from now; a hard invalidation removes the entries
    /// an earlier soft one left stale too. Answers how many fresh entries of this process it
    /// invalidated (a stale entry it removes is not counted).
    pub async fn invalidate_tag(&self, tag: &str, hard: bool) -> Result<usize> {
        check(&[tag])?;
        let Some(tier) = self.inner.tier() else {
            return Ok(self.tag_bumped(tag, self.inner.tags.next_local_version(), hard));
        };
        match tier.bump_tag(tag, hard).await {
            Ok(v) => Ok(self.tag_bumped(tag, v, hard)),
            Err(e) => {
                // no new version to compare with: every entry of this process with the tag goes,
                // and the tag's version is read from L2 again when next needed
                for k in self.inner.tags.take_all(tag, hard) {
                    self.drop_local(&k, hard);
                }
                Err(Error::L2Unavailable { reason: e.to_string() })
            }
        }
    }

    /// `tag` is at `version` now: the entries written here under another version are made stale
    /// (`hard`: removed); answers how many were fresh.
    pub(crate) fn tag_bumped(&self, tag: &str, version: u64, hard: bool) -> usize {
        self.inner.tags.bumped(tag, version, hard).iter().filter(|k| self.drop_local(k, hard)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, version: u64) -> Tag {
        Tag { name: name.into(), version }
    }

    #[test]
    fn tags_are_checked_at_their_bounds() {
        let sixteen: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = sixteen.iter().map(String::as_str).collect();
        assert!(check(&refs).is_ok());
        let mut seventeen = refs.clone();
        seventeen.push("t16");
        let e = check(&seventeen).unwrap_err();
        assert_eq!((e.code(), e.to_string().contains("tags")), ("InvalidConfig", true), "{e}");
        let long = "x".repeat(128);
        assert!(check(&[long.as_str()]).is_ok());
        let longer = "x".repeat(129);
        assert!(check(&[longer.as_str()]).is_err());
        assert!(check(&[""]).is_err());
    }

    #[test]
    fn a_bump_takes_the_keys_written_under_another_version() {
        let ix = TagIndex::new(10);
        ix.record("a", &[tag("t", 0)], |_| true);
        ix.record("b", &[tag("t", 1), tag("u", 0)], |_| true);
        ix.record("c", &[tag("u", 0)], |_| true);
        let mut out = ix.bumped("t", 1, true);
        out.sort();
        assert_eq!(out, vec![Box::from("a")]);
        assert!(ix.current(&[tag("t", 1)]) && !ix.current(&[tag("t", 0)]));
        assert!(!ix.current(&[tag("never-seen", 0)]), "a version not known is not certain");
        // a key rewritten without tags leaves the index
        ix.record("c", &[], |_| true);
        assert!(ix.bumped("u", 1, true).iter().map(|k| &**k).eq(["b"]));
        assert_eq!(ix.members(), 0, "an invalidated key leaves every tag's list");
    }

    /// A soft bump hands out its stale keys and keeps them, at the versions they recorded: the
    /// next bump (the hard one that removes them) finds them again, and only it unlinks them.
    #[test]
    fn a_soft_bump_keeps_its_keys_for_a_later_hard_one() {
        let ix = TagIndex::new(10);
        ix.record("a", &[tag("t", 0), tag("u", 0)], |_| true);
        assert!(ix.bumped("t", 1, false).iter().map(|k| &**k).eq(["a"]));
        assert_eq!(ix.members(), 2, "still under both tags");
        assert!(ix.bumped("t", 2, true).iter().map(|k| &**k).eq(["a"]), "found again by the hard bump");
        assert_eq!(ix.members(), 0);
        // the same when the new version is not known
        ix.record("b", &[tag("t", 2)], |_| true);
        assert!(ix.take_all("t", false).iter().map(|k| &**k).eq(["b"]));
        assert!(ix.take_all("t", true).iter().map(|k| &**k).eq(["b"]));
        assert_eq!(ix.members(), 0);
    }

    #[test]
    fn memberships_are_bounded_by_sweeping_keys_no_longer_held() {
        let ix = TagIndex::new(1);
        for i in 0..16 {
            ix.record(&format!("k{i}"), &[tag("t", 0)], |_| true);
        }
        assert_eq!(ix.members(), 16);
        ix.record("k16", &[tag("t", 0)], |k| k == "k15");
        assert_eq!(ix.members(), 2, "only the held key and the new one remain");
    }

    #[test]
    fn known_versions_are_bounded() {
        let ix = TagIndex::new(1);
        for i in 0..MAX_KNOWN_TAGS + 5 {
            ix.learn(&format!("t{i}"), 1);
        }
        assert_eq!(ix.state().known.len(), MAX_KNOWN_TAGS);
    }

    /// P7: versions only grow (from the server's clock, or the cache's counter), and news of
    /// them comes from several processes in no set order: a made key's version announced after
    /// a newer invalidation, or two invalidations heard out of order, must not take the known
    /// version back, or values recorded under the older one would read as valid again.
    #[test]
    fn a_known_version_never_goes_back() {
        let ix = TagIndex::new(10);
        ix.learn("t", 10);
        ix.learn("t", 4);
        assert_eq!(ix.known(&["t"]), vec![Some(10)]);
        ix.record("k", &[Tag { name: "t".into(), version: 10 }], |_| true);
        // an older invalidation heard late still makes what it names stale, but not current
        assert_eq!(ix.bumped("t", 7, false), vec![Box::<str>::from("k")]);
        assert_eq!(ix.known(&["t"]), vec![Some(10)]);
        ix.learn("t", 12);
        assert_eq!(ix.known(&["t"]), vec![Some(12)]);
    }

    /// P5: at exactly [`MAX_KNOWN_TAGS`] every version is known, and relearning one forgets
    /// nothing; the next new tag forgets exactly one other (which one is not chosen: a version
    /// forgotten only reads as outdated until it is read again) and is itself known.
    #[test]
    fn known_versions_are_kept_at_the_bound_and_one_is_forgotten_past_it() {
        let ix = TagIndex::new(1);
        let names: Vec<String> = (0..MAX_KNOWN_TAGS).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for (i, t) in refs.iter().enumerate() {
            ix.learn(t, i as u64);
        }
        let known = ix.known(&refs);
        assert!(known.iter().enumerate().all(|(i, v)| *v == Some(i as u64)), "all 10,000 known");
        ix.learn("t0", 77);
        assert_eq!(ix.state().known.len(), MAX_KNOWN_TAGS);
        assert_eq!(ix.known(&["t0"]), vec![Some(77)]);

        ix.learn("newest", 5);
        assert_eq!(ix.state().known.len(), MAX_KNOWN_TAGS);
        assert_eq!(ix.known(&["newest"]), vec![Some(5)]);
        let forgotten = ix.known(&refs).iter().filter(|v| v.is_none()).count();
        assert_eq!(forgotten, 1, "exactly one version forgotten");
    }

    /// P7: without a shared tier a tag's versions come from this process alone, and the known
    /// versions are bounded, so a tag invalidated once can be forgotten (other tags crowd it
    /// out) while an entry still records its version. Invalidating it again must still make
    /// that entry stale: were the new version taken as "known + 1", the forgotten tag would get
    /// the version the entry recorded again, the two would match, and the entry, invalidated,
    /// would be served as fresh.
    #[cfg(feature = "tier")]
    #[test]
    fn a_forgotten_tag_invalidated_again_still_invalidates_its_entries() {
        use crate::cache::{Cache, WriteOptions};
        use futures::executor::block_on;

        let cache = Cache::<u64>::builder().build().unwrap();
        let tags = &cache.inner.tags;
        // as before: a tag never invalidated is at 0, the first invalidation takes it to 1
        assert_eq!(tags.versions_now(&["a"])[0].version, 0);
        assert_eq!(block_on(cache.invalidate_tag("a", false)).unwrap(), 0);
        assert_eq!(tags.known(&["a"]), vec![Some(1)]);
        cache.write_tagged("k", 1, WriteOptions::default(), &["a"]).unwrap();
        // as many other tags invalidated as the table holds: past the bound, versions are
        // forgotten. Which one goes is not chosen (the map's first key, most often one just
        // learnt), so the test makes the choice fall on "a", as it may in use.
        for i in 0..MAX_KNOWN_TAGS {
            assert_eq!(block_on(cache.invalidate_tag(&format!("other{i}"), false)).unwrap(), 0);
        }
        assert_eq!(tags.state().known.len(), MAX_KNOWN_TAGS, "the table is at its bound");
        tags.state().known.remove("a");
        assert_eq!(tags.known(&["a"]), vec![None], "\"a\" forgotten");
        assert_eq!(cache.peek("k"), Some(1), "k untouched by the other tags");

        assert_eq!(block_on(cache.invalidate_tag("a", false)).unwrap(), 1, "k was fresh: one invalidated");
        assert_eq!(cache.peek("k"), None, "k is not served fresh after its tag's invalidation");
        assert_ne!(cache.inner.store.stored_version("k"), 0, "a soft invalidation keeps k, stale");
        // and the tag goes on working: a new write under it is fresh until the next invalidation
        cache.write_tagged("k", 2, WriteOptions::default(), &["a"]).unwrap();
        cache.write_tagged("j", 3, WriteOptions::default(), &["never-invalidated"]).unwrap();
        assert_eq!(tags.versions_now(&["never-invalidated"])[0].version, 0, "still at 0");
        assert_eq!((cache.get("k"), cache.get("j")), (Some(2), Some(3)));
        assert_eq!(block_on(cache.invalidate_tag("a", true)).unwrap(), 1);
        assert_eq!(cache.inner.store.stored_version("k"), 0, "a hard invalidation removes k");
    }
}
