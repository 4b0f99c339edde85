//! The invalidation bus: how one instance's write drops the copies other instances hold in L1.
//!
//! Every write, delete and repair that lands in L2 is announced on a pub/sub channel per prefix
//! (`<prefix>:{<ns>}:bus`, hash-tagged so sharded pub/sub can carry it later); other instances
//! remove their L1 copy, and their next read takes the new value from L2. Pub/sub delivers at
//! most once, so the bus is best effort and a gap must be noticed: each instance numbers its
//! messages (a publish that fails still takes its number) and announces its last number in a
//! heartbeat; a receiver that sees a number jump, a heartbeat ahead of what it received, its own
//! heartbeats stop coming back, or its subscription start again, distrusts every L1 entry
//! written before that moment (one "trusted since" stamp, O(1)): those entries are re-read from
//! L2 before they are served fresh again, never flushed into a miss storm.
//!
//! Message v1, big-endian: u8 version (1), u8 kind, 16-byte node id, u64 seq, u64 sent (the
//! sender's wall clock in µs since the UNIX epoch, 0 when unknown), u16 count, then
//! `count` × (u16 key length, key bytes, u64 epoch, u64 counter). At most [`MAX_MESSAGE`] bytes.
//! Kinds: 1 changed, 2 removed, 3 tags made stale and 4 tags removed (a tag in place of each key,
//! its new version as the counter), 5 heartbeat.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::codec::Token;

/// Largest message accepted or sent.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Bytes of a message before its keys (version, kind, node, seq, sent, count).
const HEADER_BYTES: usize = 36;
/// Bytes of each key's entry besides the key (its length, epoch and counter).
const KEY_ENTRY_BYTES: usize = 18;
/// Longest key a message can announce. A cache with a shared tier refuses a `max_key_len` over
/// it, so every write is announced: a key that did not fit could only show as a gap, which makes
/// every receiver distrust its whole L1.
pub const MAX_KEY_BYTES: usize = MAX_MESSAGE - HEADER_BYTES - KEY_ENTRY_BYTES;
/// Publishers whose numbering a receiver tracks; the one heard from longest ago is forgotten.
pub const MAX_PUBLISHERS: usize = 4096;

/// What a message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The keys were written (a set, a load, a repair): copies elsewhere are out of date.
    Changed = 1,
    /// The keys were deleted.
    Removed = 2,
    /// The tags (in place of keys, with their new version as the token's counter) were
    /// invalidated: entries written with them become stale.
    TagStale = 3,
    /// As [`Kind::TagStale`], and the entries are removed (a hard invalidation).
    TagRemoved = 4,
    /// Nothing changed: the sender's last sequence number, so receivers notice lost messages.
    Heartbeat = 5,
    /// The tags' keys were absent in L2 (a new tag, or its key lost) and were made, at these
    /// versions: receivers learn them (an instance that knew a lost version would record it in
    /// its writes, each then outdated). No entry changes.
    TagMade = 6,
}

/// One bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What happened.
    pub kind: Kind,
    /// The sender (random per cache).
    pub node: [u8; 16],
    /// The sender's number for this message (a heartbeat: its last number used).
    pub seq: u64,
    /// The sender's wall clock when it sent the message, µs since the UNIX epoch (0: unknown),
    /// for the receivers' invalidation-latency histogram.
    pub sent_us: u64,
    /// The keys and the tokens they were written under (empty for a heartbeat).
    pub keys: Vec<(String, Token)>,
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// Shorter than what it announces, longer than [`MAX_MESSAGE`], or with bytes left over.
    #[error("a bus message of the wrong length")]
    Length,
    /// A version or kind this build does not know.
    #[error("an unknown bus message version or kind")]
    Unknown,
    /// A key that is not UTF-8.
    #[error("a bus message key that is not UTF-8")]
    Key,
}

impl Message {
    /// The message's bytes; `None` when it would exceed [`MAX_MESSAGE`] (the sender then skips
    /// its number, which receivers see as a gap).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let len = HEADER_BYTES + self.keys.iter().map(|(k, _)| KEY_ENTRY_BYTES + k.len()).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.push(1);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.node);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.sent_us.to_be_bytes());
        out.extend_from_slice(&u16::try_from(self.keys.len()).ok()?.to_be_bytes());
        for (k, t) in &self.keys {
            out.extend_from_slice(&u16::try_from(k.len()).ok()?.to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&t.epoch.to_be_bytes());
            out.extend_from_slice(&t.counter.to_be_bytes());
        }
        (out.len() <= MAX_MESSAGE).then_some(out)
    }

    /// Reads a message; anything malformed is an error, never a panic.
    pub fn decode(b: &[u8]) -> Result<Message, BusError> {
        if b.len() > MAX_MESSAGE {
            return Err(BusError::Length);
        }
        let mut r = Reader(b);
        if r.take(1)?[0] != 1 {
            return Err(BusError::Unknown);
        }
        let kind = match r.take(1)?[0] {
            1 => Kind::Changed,
            2 => Kind::Removed,
            3 => Kind::TagStale,
            4 => Kind::TagRemoved,
            5 => Kind::Heartbeat,
            6 => Kind::TagMade,
            _ => return Err(BusError::Unknown),
        };
        let node: [u8; 16] = r.take(16)?.try_into().map_err(|_| BusError::Length)?;
        let seq = r.u64()?;
        let sent_us = r.u64()?;
        let n = r.u16()?;
        let mut keys = Vec::with_capacity(usize::from(n).min(b.len() / 18));
        for _ in 0..n {
            let len = usize::from(r.u16()?);
            let key = std::str::from_utf8(r.take(len)?).map_err(|_| BusError::Key)?.to_string();
            keys.push((key, Token { epoch: r.u64()?, counter: r.u64()? }));
        }
        if !r.0.is_empty() {
            return Err(BusError::Length);
        }
        Ok(Message { kind, node, seq, sent_us, keys })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BusError> {
        if self.0.len() < n {
            return Err(BusError::Length);
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u16(&mut self) -> Result<u16, BusError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| BusError::Length)?))
    }
    fn u64(&mut self) -> Result<u64, BusError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| BusError::Length)?))
    }
}

/// What a received message means for this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Heard {
    /// Its own message coming back: proof the subscription is alive.
    Own,
    /// Another instance's: these keys changed (`removed`: were deleted), under these tokens;
    /// `gap` when messages were lost before it.
    Keys { keys: Vec<(String, Token)>, removed: bool, gap: bool, sent_us: u64 },
    /// Another instance's invalidation of tags, at these versions (`hard`: entries are removed).
    Tags { tags: Vec<(String, u64)>, hard: bool, gap: bool },
    /// Another instance made these tags' keys, at these versions.
    TagsMade { tags: Vec<(String, u64)>, gap: bool },
    /// Another instance's heartbeat; `gap` when it is ahead of what was received.
    Heartbeat { gap: bool },
    /// Not a message (counted, ignored).
    Malformed,
}

/// A sender's numbering and receivers' tracking of everyone else's.
pub(crate) struct Numbering {
    /// This instance's id; a forked child takes a new one ([`Numbering::renew`]).
    node: Mutex<[u8; 16]>,
    next: AtomicU64,
    /// publisher -> (last seq received, when heard, in the receiver's clock nanos)
    seen: Mutex<HashMap<[u8; 16], (u64, u64)>>,
}

impl Numbering {
    pub(crate) fn new(node: [u8; 16]) -> Self {
        Numbering { node: Mutex::new(node), next: AtomicU64::new(1), seen: Mutex::new(HashMap::new()) }
    }

    /// This instance's id on the bus.
    pub(crate) fn node(&self) -> [u8; 16] {
        *self.node.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new id, numbering from 1 and nobody's numbering known: a forked child is another
    /// instance than its parent (sharing the id, each would take the other's messages for its own).
    pub(crate) fn renew(&self, node: [u8; 16]) {
        *self.node.lock().unwrap_or_else(|p| p.into_inner()) = node;
        self.next.store(1, Relaxed);
        self.forget();
    }

    /// The number of the next message; taken before the publish, so a lost publish is a gap.
    pub(crate) fn take(&self) -> u64 {
        self.next.fetch_add(1, Relaxed)
    }

    /// The last number taken (0: none yet), for a heartbeat.
    pub(crate) fn last(&self) -> u64 {
        self.next.load(Relaxed) - 1
    }

    /// Interprets received bytes at `now` (nanos, any clock that only moves forward).
    pub(crate) fn hear(&self, bytes: &[u8], now: u64) -> Heard {
        let Ok(m) = Message::decode(bytes) else { return Heard::Malformed };
        if m.node == self.node() {
            return Heard::Own;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains_key(&m.node) && seen.len() >= MAX_PUBLISHERS {
            if let Some(oldest) = seen.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) {
                seen.remove(&oldest);
            }
        }
        let last = seen.get(&m.node).map(|(s, _)| *s);
        let gap = match (m.kind, last) {
            // a publisher first heard of: nothing to compare with (a new instance, or one forgotten)
            (_, None) => false,
            (Kind::Heartbeat, Some(l)) => m.seq > l,
            (_, Some(l)) => m.seq != l.wrapping_add(1) && m.seq > l,
        };
        let newest = last.map_or(m.seq, |l| l.max(m.seq));
        seen.insert(m.node, (newest, now));
        match m.kind {
            Kind::Heartbeat => Heard::Heartbeat { gap },
            Kind::Changed | Kind::Removed => {
                Heard::Keys { keys: m.keys, removed: m.kind == Kind::Removed, gap, sent_us: m.sent_us }
            }
            Kind::TagStale | Kind::TagRemoved => Heard::Tags {
                tags: m.keys.into_iter().map(|(k, t)| (k, t.counter)).collect(),
                hard: m.kind == Kind::TagRemoved,
                gap,
            },
            Kind::TagMade => Heard::TagsMade { tags: m.keys.into_iter().map(|(k, t)| (k, t.counter)).collect(), gap },
        }
    }

    /// Forgets every publisher's numbering (after a resubscribe, lost messages are covered by
    /// distrusting L1, and numbers start being compared afresh).
    pub(crate) fn forget(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A node id for one cache: distinct between caches and processes even when every instance of a
/// fleet is given the same seed (the seed, the precise clock, a process-wide counter and the
/// cache's own address, mixed). The core has no entropy source of its own on every target.
pub(crate) fn node_id(seed: u64, precise_nanos: u64, addr: usize) -> [u8; 16] {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let n = MADE.fetch_add(1, Relaxed);
    let mix = crate::xfetch::splitmix64;
    let a = mix(seed ^ mix(precise_nanos) ^ mix(addr as u64));
    let b = mix(a ^ mix(n.wrapping_add(0x6a09_e667_f3bc_c908)) ^ precise_nanos.rotate_left(29));
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&a.to_be_bytes());
    id[8..].copy_from_slice(&b.to_be_bytes());
    id
}

/// This process's id (0 where there are no processes to tell apart).
pub(crate) fn process_id() -> u32 {
    #[cfg(not(target_arch = "wasm32"))]
    return std::process::id();
    #[cfg(target_arch = "wasm32")]
    0
}

/// What a cache does with a key another instance changed (`false`) or deleted (`true`), under a
/// token: true if it made a fresh copy stale or removed it.
pub(crate) type OnKey = Box<dyn Fn(&str, bool, Token) -> bool + Send + Sync>;

/// What a cache does with a tag another instance invalidated, at its new version (`true`:
/// hard): how many fresh entries it made stale or removed.
pub(crate) type OnTag = Box<dyn Fn(&str, u64, bool) -> usize + Send + Sync>;

/// One cache's end of the bus: its numbering, its channel and its counters.
pub(crate) struct Link {
    pub numbering: Numbering,
    pub channel: String,
    pub sent: AtomicU64,
    pub publish_failed: AtomicU64,
    pub received: AtomicU64,
    pub invalidated: AtomicU64,
    pub gaps: AtomicU64,
    pub malformed: AtomicU64,
    /// From a message's send (the sender's wall clock) to its receipt here (this one's).
    pub latency: crate::stats::Histogram,
    /// When the subscription last delivered anything, this cache's own heartbeats included
    /// (cache clock, nanos); 0 before the first subscription.
    pub last_heard: AtomicU64,
    /// Held while a message is numbered and queued, so numbers leave in order.
    pub sending: Mutex<()>,
    /// Set while the subscription is silent past its bound, so one silence distrusts once.
    pub silent: std::sync::atomic::AtomicBool,
    /// Acts on a key another instance changed (stale) or deleted (removed) in its L1.
    pub on_key: std::sync::OnceLock<OnKey>,
    /// Acts on a tag another instance invalidated.
    pub on_tag: std::sync::OnceLock<OnTag>,
}

impl Link {
    pub(crate) fn new(node: [u8; 16], channel: String) -> Self {
        Link {
            numbering: Numbering::new(node),
            channel,
            sent: AtomicU64::new(0),
            publish_failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            invalidated: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            latency: crate::stats::Histogram::default(),
            last_heard: AtomicU64::new(0),
            sending: Mutex::new(()),
            silent: std::sync::atomic::AtomicBool::new(false),
            on_key: std::sync::OnceLock::new(),
            on_tag: std::sync::OnceLock::new(),
        }
    }

    /// A message for `keys` (or a heartbeat), numbered, sent at `sent_us` (wall clock, 0:
    /// unknown); `None` past [`MAX_MESSAGE`].
    pub(crate) fn message(&self, kind: Kind, keys: Vec<(String, Token)>, sent_us: u64) -> Option<Vec<u8>> {
        let seq = if kind == Kind::Heartbeat { self.numbering.last() } else { self.numbering.take() };
        Message { kind, node: self.numbering.node(), seq, sent_us, keys }.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: Kind, node: u8, seq: u64, keys: &[&str]) -> Vec<u8> {
        let keys = keys.iter().map(|k| (k.to_string(), Token { epoch: 7, counter: seq })).collect();
        Message { kind, node: [node; 16], seq, sent_us: 5, keys }.encode().unwrap()
    }

    #[test]
    fn messages_round_trip() {
        let m = Message {
            kind: Kind::Changed,
            node: [3; 16],
            seq: 42,
            sent_us: 1_767_225_600_000_000,
            keys: vec![("user:1".into(), Token { epoch: 1, counter: 2 }), ("ü".into(), Token::default())],
        };
        assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
        use Kind::*;
        for kind in [Changed, Removed, TagStale, TagRemoved, Heartbeat, TagMade] {
            let m = Message { kind, ..m.clone() };
            assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
        }
        let mut seven = m.encode().unwrap();
        seven[1] = 7;
        assert_eq!(Message::decode(&seven), Err(BusError::Unknown));
    }

    #[test]
    fn malformed_bytes_are_errors_never_panics() {
        let good = msg(Kind::Removed, 1, 9, &["a", "bc"]);
        for cut in 0..good.len() {
            assert!(Message::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert_eq!(Message::decode(&extra), Err(BusError::Length));
        let mut v2 = good.clone();
        v2[0] = 2;
        assert_eq!(Message::decode(&v2), Err(BusError::Unknown));
        // a count far beyond the bytes allocates nothing large and fails
        let mut huge = good[..34].to_vec();
        huge.extend_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(Message::decode(&huge), Err(BusError::Length));
        let mut rng = 0x1234_5678_u64;
        for _ in 0..10_000 {
            let mut b = good.clone();
            rng = crate::xfetch::splitmix64(rng);
            let at = (rng % b.len() as u64) as usize;
            b[at] ^= (rng >> 32) as u8 | 1;
            let _ = Message::decode(&b);
        }
        assert!(Message::decode(&vec![0u8; MAX_MESSAGE + 1]).is_err());
    }

    #[test]
    fn a_message_over_the_bound_is_not_encoded() {
        let key = "k".repeat(1000);
        let keys = (0..70).map(|_| (key.clone(), Token::default())).collect();
        assert_eq!(Message { kind: Kind::Changed, node: [0; 16], seq: 1, sent_us: 0, keys }.encode(), None);
    }

    /// The bytes of a one-key message as the format above lays them out, whatever their length,
    /// so a message past the bound can be well formed in every other way.
    fn one_key(key_len: usize) -> Vec<u8> {
        let mut b = vec![1, Kind::Changed as u8];
        b.extend_from_slice(&[4; 16]);
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&9u64.to_be_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&u16::try_from(key_len).unwrap().to_be_bytes());
        b.extend(std::iter::repeat_n(b'k', key_len));
        b.extend_from_slice(&2u64.to_be_bytes());
        b.extend_from_slice(&3u64.to_be_bytes());
        b
    }

    /// P5: a message of exactly [`MAX_MESSAGE`] bytes is sent and read; one byte more is neither
    /// encoded nor decoded, though it is well formed in every other way.
    #[test]
    fn a_message_is_kept_at_64_kib_and_refused_one_byte_past() {
        // 36 bytes of header, then 2 + key + 16 for the one key
        let at = MAX_MESSAGE - 36 - 18;
        assert_eq!(at, MAX_KEY_BYTES, "the longest key a message announces");
        let m = |len: usize| Message {
            kind: Kind::Changed,
            node: [4; 16],
            seq: 7,
            sent_us: 9,
            keys: vec![("k".repeat(len), Token { epoch: 2, counter: 3 })],
        };
        let bytes = m(at).encode().expect("a message of exactly 64 KiB is encoded");
        assert_eq!(bytes.len(), MAX_MESSAGE);
        assert!(bytes == one_key(at), "the test's layout is the encoder's");
        assert!(Message::decode(&bytes) == Ok(m(at)), "a message of exactly 64 KiB is read back whole");

        assert_eq!(m(at + 1).encode().map(|b| b.len()), None, "65,537 bytes are not encoded");
        let over = one_key(at + 1);
        assert_eq!(over.len(), MAX_MESSAGE + 1);
        // compared without the message itself, so a failure does not print 64 KiB of key
        assert_eq!(Message::decode(&over).map(|m| m.keys[0].0.len()), Err(BusError::Length));
        assert_eq!(Numbering::new([0; 16]).hear(&over, 0), Heard::Malformed);
    }

    #[test]
    fn a_jump_in_numbers_or_a_heartbeat_ahead_is_a_gap() {
        let me = Numbering::new([9; 16]);
        assert_eq!(me.hear(&msg(Kind::Changed, 9, 1, &["x"]), 0), Heard::Own);
        // the keys with the tokens they were written under (`msg` writes counter `seq`)
        let keys = |gap, seq| Heard::Keys {
            keys: vec![("k".into(), Token { epoch: 7, counter: seq })],
            removed: false,
            gap,
            sent_us: 5,
        };
        assert_eq!(me.hear(&msg(Kind::Changed, 1, 5, &["k"]), 1), keys(false, 5), "first heard of");
        assert_eq!(me.hear(&msg(Kind::Changed, 1, 6, &["k"]), 2), keys(false, 6));
        assert_eq!(me.hear(&msg(Kind::Heartbeat, 1, 6, &[]), 3), Heard::Heartbeat { gap: false });
        assert_eq!(me.hear(&msg(Kind::Changed, 1, 8, &["k"]), 4), keys(true, 8), "7 was lost");
        assert_eq!(me.hear(&msg(Kind::Heartbeat, 1, 10, &[]), 5), Heard::Heartbeat { gap: true }, "9 and 10 lost");
        assert_eq!(me.hear(&msg(Kind::Changed, 1, 11, &["k"]), 6), keys(false, 11));
        // a late duplicate is no gap
        assert_eq!(me.hear(&msg(Kind::Changed, 1, 3, &["k"]), 7), keys(false, 3));
        assert_eq!(me.hear(b"junk", 8), Heard::Malformed);
        me.forget();
        assert_eq!(me.hear(&msg(Kind::Changed, 1, 20, &["k"]), 9), keys(false, 20));
    }

    #[test]
    fn publishers_tracked_are_bounded() {
        let me = Numbering::new([0; 16]);
        for i in 0..(MAX_PUBLISHERS as u32 + 10) {
            let mut node = [1u8; 16];
            node[..4].copy_from_slice(&i.to_be_bytes());
            let m = Message { kind: Kind::Heartbeat, node, seq: 1, sent_us: 0, keys: vec![] };
            me.hear(&m.encode().unwrap(), u64::from(i));
        }
        assert_eq!(me.seen.lock().unwrap().len(), MAX_PUBLISHERS);
    }

    /// P5: with exactly [`MAX_PUBLISHERS`] publishers every numbering is kept; one more forgets
    /// the publisher heard from longest ago (not the first one heard), whose next message is then
    /// first heard of again, while one heard recently still has its gaps noticed.
    #[test]
    fn the_publisher_heard_from_longest_ago_is_forgotten_one_past_the_bound() {
        let me = Numbering::new([0; 16]);
        let id = |i: u32| {
            let mut node = [1u8; 16];
            node[..4].copy_from_slice(&i.to_be_bytes());
            node
        };
        let beat = |i: u32, seq: u64| Message { kind: Kind::Heartbeat, node: id(i), seq, sent_us: 0, keys: vec![] };
        let at = MAX_PUBLISHERS as u32;
        for i in 0..at {
            me.hear(&beat(i, 1).encode().unwrap(), u64::from(i) + 1);
        }
        // publisher 0 is heard again last, so publisher 1 is now the one heard from longest ago
        assert_eq!(me.hear(&beat(0, 1).encode().unwrap(), 10_000), Heard::Heartbeat { gap: false });
        {
            let seen = me.seen.lock().unwrap();
            assert_eq!(seen.len(), MAX_PUBLISHERS);
            assert!((0..at).all(|i| seen.contains_key(&id(i))), "none forgotten at the bound");
        }

        me.hear(&beat(at, 1).encode().unwrap(), 10_001);
        {
            let seen = me.seen.lock().unwrap();
            assert_eq!(seen.len(), MAX_PUBLISHERS);
            assert!(!seen.contains_key(&id(1)), "the one heard from longest ago is forgotten");
            assert!((0..=at).filter(|i| *i != 1).all(|i| seen.contains_key(&id(i))), "only that one");
        }
        // a recent publisher's skipped number is a gap; the forgotten one's is a first hearing
        assert_eq!(me.hear(&beat(0, 3).encode().unwrap(), 10_002), Heard::Heartbeat { gap: true });
        assert_eq!(me.hear(&beat(1, 3).encode().unwrap(), 10_003), Heard::Heartbeat { gap: false });
    }

    #[test]
    fn numbers_are_taken_before_publishing() {
        let me = Numbering::new([0; 16]);
        assert_eq!(me.last(), 0);
        assert_eq!((me.take(), me.take()), (1, 2));
        assert_eq!(me.last(), 2);
    }

    #[test]
    fn a_renewed_numbering_is_another_instance() {
        // a forked child renews: the parent's messages (its old id) are no longer its own
        let me = Numbering::new([9; 16]);
        me.take();
        assert!(matches!(me.hear(&msg(Kind::Changed, 7, 1, &["x"]), 0), Heard::Keys { gap: false, .. }));
        me.renew([4; 16]);
        assert_eq!(me.node(), [4; 16]);
        assert_eq!(me.last(), 0);
        assert!(matches!(me.hear(&msg(Kind::Changed, 9, 5, &["x"]), 0), Heard::Keys { gap: false, .. }));
        // whoever was heard before is first heard again: no gap from numbers seen by the parent
        assert!(matches!(me.hear(&msg(Kind::Changed, 7, 3, &["x"]), 0), Heard::Keys { gap: false, .. }));
        assert_eq!(me.hear(&msg(Kind::Changed, 4, 1, &["x"]), 0), Heard::Own);
    }
}
