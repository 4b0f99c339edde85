//! The loads under way of one shard's keys, and whether each may still store its value: a load
//! loses its store to every write and explicit removal of its key since it began (see
//! [`super::Store::begin_load`]).
//!
//! A miss storm (a cold start sending thousands of distinct misses at once) has thousands of
//! loads under way, so nothing here walks them all but a clear: the marks are indexed by their
//! key's hash, so a write visits only its key's loads, and a load's end and its store's check
//! find its mark by the hash and the flight id. A key has a few loads at most (its callers share
//! one flight; only flights left to the background run beside a newer one), so keeping each key's
//! loads apart by id as well would cost every load a second lookup for nothing. The index is the
//! shard's own kind ([`SlotIndex`]): a hashbrown table here made the WebAssembly module 877 bytes
//! larger gzipped, this 226 bytes.

use std::sync::Arc;

use crate::index::SlotIndex;

/// An index that grew past this for a storm is freed when its last load ends, rather than kept
/// at the storm's size for the cache's life.
const KEEP: usize = 64;

pub(crate) struct Loads {
    /// In no order: a load's end moves the last mark into its place.
    marks: Vec<Mark>,
    /// From a key's hash to the positions of its loads' marks; made by the first load.
    index: Option<SlotIndex>,
}

/// A load under way: whether a write or removal of its key since it began means its value must
/// not be stored.
struct Mark {
    id: u64,
    hash: u64,
    key: Arc<str>,
    superseded: bool,
}

impl Loads {
    pub fn new() -> Self {
        Loads { marks: Vec::new(), index: None }
    }

    /// No load under way: a write has nothing to tell.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// The position of the mark of flight `id`, of a key of hash `hash`.
    #[inline]
    fn find(&self, hash: u64, id: u64) -> Option<u32> {
        self.index.as_ref()?.find(hash, |p| self.marks[p as usize].id == id)
    }

    /// A load of `key` (`hash` is its hash) begins, as flight `id`.
    pub fn begin(&mut self, id: u64, hash: u64, key: &Arc<str>) {
        debug_assert!(self.find(hash, id).is_none(), "flight {id} began twice");
        let pos = self.marks.len() as u32;
        self.index.get_or_insert_with(|| SlotIndex::with_capacity(0)).insert(hash, pos);
        self.marks.push(Mark { id, hash, key: Arc::clone(key), superseded: false });
    }

    /// The load of flight `id` (of a key of hash `hash`) ended, or was dropped: its mark goes.
    pub fn end(&mut self, hash: u64, id: u64) {
        let (Some(pos), Some(index)) = (self.find(hash, id), self.index.as_mut()) else {
            return;
        };
        index.remove(hash, pos);
        let last = self.marks.len() as u32 - 1;
        if pos != last {
            index.relocate(self.marks[last as usize].hash, last, pos);
        }
        self.marks.swap_remove(pos as usize);
        if self.marks.is_empty() && self.marks.capacity() > KEEP {
            *self = Loads::new();
        }
    }

    /// Whether the load of flight `id` (of a key of hash `hash`) may no longer store its value:
    /// its key was written or removed since it began (or its mark is gone, which only its end
    /// takes).
    #[inline]
    pub fn superseded(&self, hash: u64, id: u64) -> bool {
        self.find(hash, id).is_none_or(|p| self.marks[p as usize].superseded)
    }

    /// The load of flight `id` (of a key of hash `hash`) reads its value again: what was
    /// written before does not make it lose.
    pub fn refence(&mut self, hash: u64, id: u64) {
        if let Some(p) = self.find(hash, id) {
            self.marks[p as usize].superseded = false;
        }
    }

    /// A write or removal of `key` (`hash` is its hash): every load of it under way loses its
    /// store but `own` (the load storing), which keeps what it had.
    #[inline]
    pub fn supersede(&mut self, hash: u64, key: &str, own: Option<u64>) {
        if self.is_empty() {
            return;
        }
        let Loads { marks, index: Some(index) } = self else {
            return;
        };
        index.each(hash, |p| {
            let m = &mut marks[p as usize];
            // another key of the same hash keeps its store
            if m.hash == hash && *m.key == *key && Some(m.id) != own {
                m.superseded = true;
            }
        });
    }

    /// A clear: every load under way loses its store.
    pub fn supersede_all(&mut self) {
        for m in &mut self.marks {
            m.superseded = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use foldhash::fast::FixedState;

    use super::*;

    fn hash(k: &str) -> u64 {
        FixedState::with_seed(7).hash_one(k)
    }

    /// Begins a load of `k` as flight `id`, with `k`'s own hash.
    fn begin(l: &mut Loads, id: u64, k: &str) {
        l.begin(id, hash(k), &Arc::from(k));
    }

    /// Whether the load of flight `id`, of `k`, lost its store.
    fn lost(l: &Loads, id: u64, k: &str) -> bool {
        l.superseded(hash(k), id)
    }

    /// Many loads of one key: one write makes all lose but the writer's own load, and a later
    /// write makes that one lose too.
    #[test]
    fn a_write_makes_every_load_of_its_key_lose_but_its_own() {
        let mut l = Loads::new();
        for id in 1..=50 {
            begin(&mut l, id, "k");
        }
        begin(&mut l, 51, "other");
        l.supersede(hash("k"), "k", Some(7));
        for id in 1..=50 {
            assert_eq!(lost(&l, id, "k"), id != 7, "flight {id}");
        }
        assert!(!lost(&l, 51, "other"), "another key's load keeps its store");
        l.supersede(hash("k"), "k", None);
        assert!(lost(&l, 7, "k"));
        // a load that lost already stays lost through its own store
        l.supersede(hash("k"), "k", Some(7));
        assert!(lost(&l, 7, "k"));
    }

    /// Distinct keys of one hash: a write of one makes only its own loads lose.
    #[test]
    fn keys_of_one_hash_are_told_apart_by_their_text() {
        let mut l = Loads::new();
        l.begin(1, 5, &Arc::from("a"));
        l.begin(2, 5, &Arc::from("b"));
        l.begin(3, 5, &Arc::from("a"));
        l.supersede(5, "a", Some(2));
        assert!(l.superseded(5, 1) && l.superseded(5, 3));
        assert!(!l.superseded(5, 2), "a load of another key of the same hash keeps its store");
        l.supersede(5, "c", None);
        assert!(!l.superseded(5, 2), "a key with no load under way makes none lose");
        l.end(5, 1);
        l.end(5, 3);
        assert!(!l.superseded(5, 2));
        l.supersede(5, "b", None);
        assert!(l.superseded(5, 2));
        l.end(5, 2);
        assert!(l.is_empty());
    }

    /// A clear makes every load under way lose; a refence, or a load begun after it, keeps its
    /// store.
    #[test]
    fn a_clear_makes_every_load_lose() {
        let mut l = Loads::new();
        let key = |id: u64| format!("k{}", id % 7);
        for id in 1..=20 {
            begin(&mut l, id, &key(id));
        }
        l.supersede_all();
        assert!((1..=20).all(|id| lost(&l, id, &key(id))));
        l.refence(hash("k4"), 4);
        assert!(!lost(&l, 4, "k4"), "read again after the clear");
        assert!(lost(&l, 11, "k4"), "another load of the same key was not");
        begin(&mut l, 21, "k0");
        assert!(!lost(&l, 21, "k0"));
        // a write of the key after the refence makes it lose again
        l.supersede(hash("k4"), "k4", None);
        assert!(lost(&l, 4, "k4"));
    }

    /// A load's end takes only its own mark: the other loads of its key, and of other keys, keep
    /// theirs and what they had.
    #[test]
    fn a_load_end_takes_only_its_own_mark() {
        let mut l = Loads::new();
        begin(&mut l, 1, "k");
        begin(&mut l, 2, "k");
        begin(&mut l, 3, "j");
        l.supersede(hash("j"), "j", None);
        l.end(hash("k"), 1);
        assert!(lost(&l, 1, "k"), "a mark gone is a load that may not store");
        assert!(!lost(&l, 2, "k"));
        assert!(lost(&l, 3, "j"));
        assert_eq!(l.marks.len(), 2);
        l.end(hash("k"), 1);
        assert_eq!(l.marks.len(), 2, "ending it again takes nothing");
        l.supersede(hash("k"), "k", None);
        assert!(lost(&l, 2, "k"));
        l.end(hash("k"), 2);
        begin(&mut l, 4, "k");
        assert!(!lost(&l, 4, "k"), "a load of a key begun after the last write starts afresh");
    }

    /// A thousand loads of distinct keys: a removal of one makes exactly that one lose; when all
    /// end, the storm's table is freed.
    #[test]
    fn a_removal_among_a_thousand_loads_makes_one_lose() {
        let mut l = Loads::new();
        let key = |id: u64| format!("user:{id}");
        for id in 0..1000 {
            begin(&mut l, id, &key(id));
        }
        l.supersede(hash("user:417"), "user:417", None);
        let lost: Vec<u64> = (0..1000).filter(|&id| lost(&l, id, &key(id))).collect();
        assert_eq!(lost, [417]);
        for id in 0..1000 {
            l.end(hash(&key(id)), id);
        }
        assert!(l.is_empty());
        assert!(l.index.is_none() && l.marks.capacity() == 0, "the storm's index is freed");
    }
}
