//! The key index of a shard: from a key's hash to the position of its slot in the shard's dense
//! slot vector.
//!
//! Written here rather than taken from hashbrown: `hashbrown::HashTable<u32>` keeps its control
//! bytes and its buckets in two regions, so a lookup in a large table pays two dependent cache
//! misses (the control group, then the bucket holding the slot position) before the third, the
//! slot itself. This index keeps a 32-bit hash tag and the slot position together in one `u64`
//! per bucket, with linear probing, so a lookup reads one line of the index and then the slot.
//! It holds positions only (the store compares keys), and its entries carry their hash tag, so
//! growing it never reads a slot. Its size is any multiple of 8 buckets, not a power of two (the
//! home bucket is the tag scaled to the size, Lemire's multiply-shift): an index sized for a
//! shard's reservation is then about 5/8 full when the store is, where rounding up to a power of
//! two left between 8/5 and 16/5 buckets per entry (13 to 26 bytes).

/// An empty bucket. A full one holds `tag << 32 | (position + 1)`.
const EMPTY: u64 = 0;
/// Buckets of a new index.
const MIN_BUCKETS: usize = 8;

pub(crate) struct SlotIndex {
    buckets: Box<[u64]>,
    len: usize,
}

#[inline]
fn tag(hash: u64) -> u32 {
    hash as u32
}

#[inline]
fn pack(tag: u32, pos: u32) -> u64 {
    (tag as u64) << 32 | (pos as u64 + 1)
}

#[inline]
fn pos_of(e: u64) -> u32 {
    (e as u32).wrapping_sub(1)
}

impl SlotIndex {
    #[cfg(test)]
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An index that holds `n` positions before it first grows. The store starts its indexes
    /// at the least and lets them grow: zeroed buckets are cleared by the allocator, which
    /// touches their pages, unless the block is large enough to be mapped fresh.
    pub fn with_capacity(n: usize) -> Self {
        // whole cache lines of buckets
        let buckets = (n.saturating_mul(8) / 5 + 1).next_multiple_of(8).max(MIN_BUCKETS);
        SlotIndex { buckets: vec![EMPTY; buckets].into_boxed_slice(), len: 0 }
    }

    /// Hints the CPU to fetch the bucket where a lookup of `hash` starts, so its cache miss
    /// overlaps the caller's others.
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        crate::store::prefetch(&self.buckets[self.home(tag(hash))]);
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        ((tag as u64 * self.buckets.len() as u64) >> 32) as usize
    }

    /// The bucket after `i`, wrapping around.
    #[inline(always)]
    fn after(&self, i: usize) -> usize {
        if i + 1 == self.buckets.len() {
            0
        } else {
            i + 1
        }
    }

    /// How many buckets a probe from `from` walks to reach `to`, wrapping around.
    #[inline]
    fn walk(&self, from: usize, to: usize) -> usize {
        if to >= from {
            to - from
        } else {
            to + self.buckets.len() - from
        }
    }

    /// The position of the entry of `hash` for which `eq(position)` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let t = tag(hash);
        let mut i = self.home(t);
        loop {
            let e = self.buckets[i];
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == t && eq(pos_of(e)) {
                return Some(pos_of(e));
            }
            i = self.after(i);
        }
    }

    /// Calls `f` with every position indexed under a hash of `hash`'s tag: those of its key, and
    /// maybe others (the caller compares what they hold).
    #[inline]
    pub fn each(&self, hash: u64, mut f: impl FnMut(u32)) {
        let _ = self.find(hash, |p| {
            f(p);
            false
        });
    }

    /// The bucket holding `pos` under `hash`.
    fn bucket_of(&self, hash: u64, pos: u32) -> Option<usize> {
        let want = pack(tag(hash), pos);
        let mut i = self.home(tag(hash));
        loop {
            match self.buckets[i] {
                EMPTY => return None,
                e if e == want => return Some(i),
                _ => i = self.after(i),
            }
        }
    }

    /// Adds `pos` under `hash` (the caller knows `pos` is not indexed yet; the store, that its
    /// key is not).
    #[inline]
    pub fn insert(&mut self, hash: u64, pos: u32) {
        // at most 5/8 full: linear probing stays short (a miss probes about three buckets, all
        // on one cache line most of the time)
        if (self.len + 1) * 8 > self.buckets.len() * 5 {
            self.grow();
        }
        self.put(pack(tag(hash), pos));
        self.len += 1;
    }

    fn put(&mut self, e: u64) {
        let mut i = self.home((e >> 32) as u32);
        while self.buckets[i] != EMPTY {
            i = self.after(i);
        }
        self.buckets[i] = e;
    }

    fn grow(&mut self) {
        let n = 2 * self.buckets.len();
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; n].into_boxed_slice());
        for e in old.iter().copied().filter(|&e| e != EMPTY) {
            self.put(e);
        }
    }

    /// Removes `pos` indexed under `hash`; returns whether it was there.
    pub fn remove(&mut self, hash: u64, pos: u32) -> bool {
        let Some(mut hole) = self.bucket_of(hash, pos) else { return false };
        // backward-shift deletion: pull later entries of the probe run into the hole when their
        // home bucket is not after it, so no lookup ever stops early at the hole
        let mut j = hole;
        loop {
            j = self.after(j);
            let e = self.buckets[j];
            if e == EMPTY {
                break;
            }
            let home = self.home((e >> 32) as u32);
            if self.walk(home, j) >= self.walk(hole, j) {
                self.buckets[hole] = e;
                hole = j;
            }
        }
        self.buckets[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// Moves the entry of `hash` from position `from` to `to` (a slot moved in the vector);
    /// returns whether it was there.
    pub fn relocate(&mut self, hash: u64, from: u32, to: u32) -> bool {
        match self.bucket_of(hash, from) {
            Some(i) => {
                self.buckets[i] = pack(tag(hash), to);
                true
            }
            None => false,
        }
    }

    pub fn clear(&mut self) {
        self.buckets.fill(EMPTY);
        self.len = 0;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Positions it holds before it grows.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buckets.len() * 5 / 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
        Relocate(u16),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u16..400).prop_map(Op::Insert),
            3 => (0u16..400).prop_map(Op::Remove),
            2 => (0u16..400).prop_map(Op::Relocate),
            1 => Just(Op::Clear),
        ]
    }

    // Few distinct tags, at both ends of their range, so keys share home buckets and tags, and
    // probe runs from the last buckets wrap around.
    fn hash_of(key: u16) -> u64 {
        let h = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        match key % 6 {
            0 | 3 => h & !0xFFFF_FFFF | u64::from(u32::MAX - u32::from(key % 5)),
            1 => h & !0xFFFF_FFFF | u64::from(key % 5),
            _ => h,
        }
    }

    /// An index made for `n` positions holds them without growing (so filling a store to its
    /// reservation never rehashes), and grows at the next.
    #[test]
    fn with_capacity_holds_n_without_growing() {
        for n in (0..300).chain([1000, 16_383, 16_384, 65_536, 65_537]) {
            let mut ix = SlotIndex::with_capacity(n);
            let buckets = ix.buckets.len();
            assert!(ix.capacity() >= n, "{n}");
            for p in 0..n as u32 {
                ix.insert(hash_of(p as u16) ^ (p as u64) << 20, p);
            }
            assert_eq!(ix.buckets.len(), buckets, "grew while filling {n}");
            for p in n as u32..ix.capacity() as u32 + 1 {
                ix.insert(hash_of(p as u16) ^ (p as u64) << 20, p);
            }
            assert_eq!(ix.buckets.len(), 2 * buckets, "past its capacity, {n} doubles");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The index agrees with a map from key to position after any sequence of operations.
        #[test]
        fn index_matches_a_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut ix = SlotIndex::new();
            let mut model: HashMap<u16, u32> = HashMap::new();
            let mut next = 0u32;
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        if let std::collections::hash_map::Entry::Vacant(v) = model.entry(k) {
                            ix.insert(hash_of(k), next);
                            v.insert(next);
                            next += 1;
                        }
                    }
                    Op::Remove(k) => {
                        let had = model.remove(&k);
                        let removed = had.is_some_and(|p| ix.remove(hash_of(k), p));
                        prop_assert_eq!(removed, had.is_some());
                    }
                    Op::Relocate(k) => {
                        if let Some(p) = model.get_mut(&k) {
                            prop_assert!(ix.relocate(hash_of(k), *p, next));
                            *p = next;
                            next += 1;
                        }
                    }
                    Op::Clear => {
                        ix.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(ix.len(), model.len());
                for k in 0u16..400 {
                    let want = model.get(&k).copied();
                    // the store's equality: the position's key is `k`
                    let got = ix.find(hash_of(k), |p| model.get(&k) == Some(&p));
                    prop_assert_eq!(got, want, "key {}", k);
                    let mut under = Vec::new();
                    ix.each(hash_of(k), |p| under.push(p));
                    prop_assert_eq!(under.iter().filter(|&&p| Some(p) == want).count(), usize::from(want.is_some()));
                }
            }
        }
    }
}
