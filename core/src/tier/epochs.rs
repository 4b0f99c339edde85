//! The fence epoch last seen for each slot, so a write can name it and take its token from the
//! slot's fence record with one `HINCRBY` (see [`super::scripts::WRITE_SEEN`]). A hint is only a
//! guess: a wrong one costs that write the script's slower way, never a wrong token.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::keys::{slot, SLOTS};

/// One epoch per Redis Cluster slot (16,384 of 8 bytes: 128 KiB), 0 while none was seen. A
/// tier has one prefix, so each slot has one fence record and no two records share a place.
pub struct EpochHints {
    slots: Box<[AtomicU64]>,
}

impl Default for EpochHints {
    fn default() -> Self {
        EpochHints { slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl EpochHints {
    /// The place of `key`'s slot (the L2 keys of a cache key share its slot).
    pub fn slot_of(key: &str) -> usize {
        usize::from(slot(key.as_bytes()))
    }

    /// The epoch last seen for `slot` (0: none).
    pub fn get(&self, slot: usize) -> u64 {
        self.slots[slot].load(Relaxed)
    }

    /// `epoch` was seen for `slot` (in a write's token or a lock's).
    pub fn learn(&self, slot: usize, epoch: u64) {
        self.slots[slot].store(epoch, Relaxed);
    }

    /// `epoch` was read for `slot` (in a stored envelope's token): kept only while none is known,
    /// as what a write or a lock answered is newer than what a value stored earlier carries.
    pub fn learn_if_unknown(&self, slot: usize, epoch: u64) {
        let _ = self.slots[slot].compare_exchange(0, epoch, Relaxed, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_keeps_its_own_epoch() {
        let h = EpochHints::default();
        assert_eq!(h.slots.len(), usize::from(SLOTS));
        let (a, b) = (EpochHints::slot_of("a"), EpochHints::slot_of("b"));
        assert_ne!(a, b);
        assert_eq!((h.get(a), h.get(b)), (0, 0));
        h.learn(a, 7);
        h.learn(usize::from(SLOTS) - 1, 9);
        assert_eq!((h.get(a), h.get(b), h.get(usize::from(SLOTS) - 1)), (7, 0, 9));
        // a read teaches only a slot that knows none
        h.learn_if_unknown(a, 8);
        h.learn_if_unknown(b, 5);
        assert_eq!((h.get(a), h.get(b)), (7, 5));
        // the L2 keys of a cache key are in its slot: the slot is the cache key's
        let k = crate::keys::l2_keys("hc1", "a");
        assert!(k.fence.contains(&format!("{{{a:04x}}}")), "{k:?}");
    }
}
