//! An L2 in memory, for tests of the shared tier's logic without a Redis: tag versions
//! counted, bus messages queued until the test delivers them (to every subscriber, the sender
//! too, as Redis does), writes landing, background jobs dropped, reads absent unless the test
//! gives a function that answers them.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{self, BoxFuture, FutureExt};
use healcache::codec::Token;
use healcache::keys::L2Keys;
use healcache::tier::{
    BusSink, LeaseReply, LockReply, ReadReply, Record, TagRead, TagSet, Transport, TransportError, WriteReply,
    WriteRequest,
};
use healcache::Timer;

/// What a read of a value key answers.
pub type Reads = Arc<dyn Fn(&str) -> BoxFuture<'static, Result<ReadReply, TransportError>> + Send + Sync>;

#[derive(Default)]
struct State {
    tags: HashMap<String, u64>,
    sinks: Vec<Arc<dyn BusSink>>,
    queued: Vec<Vec<u8>>,
    /// Tag bumps fail (Redis unreachable).
    down: bool,
    reads: Option<Reads>,
    /// The last tag version handed out: the TAG_READ and TAG_BUMP scripts take theirs from the
    /// server's clock, so one is never handed out twice.
    versions: u64,
}

impl State {
    /// The next version of this parity (0: made by a read, 1: by a bump).
    fn next_version(&mut self, parity: u64) -> u64 {
        let v = self.versions.max(1_000_000_000_000_000) + 1;
        self.versions = v + (v % 2 != parity) as u64;
        self.versions
    }
}

#[derive(Clone, Default)]
pub struct FakeL2(Arc<Mutex<State>>);

impl FakeL2 {
    /// An L2 whose reads `reads` answers.
    pub fn reading(reads: Reads) -> Self {
        let l2 = FakeL2::default();
        l2.0.lock().unwrap().reads = Some(reads);
        l2
    }

    /// Delivers every queued bus message; answers how many.
    pub fn deliver(&self) -> usize {
        let (msgs, sinks) = {
            let mut s = self.0.lock().unwrap();
            (std::mem::take(&mut s.queued), s.sinks.clone())
        };
        for m in &msgs {
            sinks.iter().for_each(|s| s.message(m));
        }
        msgs.len()
    }

    /// Makes tag bumps fail (`true`) or land again.
    pub fn set_down(&self, down: bool) {
        self.0.lock().unwrap().down = down;
    }
}

fn ok<T: Send + 'static>(t: T) -> BoxFuture<'static, Result<T, TransportError>> {
    future::ready(Ok(t)).boxed()
}

impl Transport for FakeL2 {
    fn read(&self, value_key: &str, _: u64) -> BoxFuture<'static, Result<ReadReply, TransportError>> {
        let reads = self.0.lock().unwrap().reads.clone();
        match reads {
            Some(f) => f(value_key),
            None => ok(ReadReply { value: None, too_long: 0, pttl_ms: -2 }),
        }
    }
    fn revalidate(&self, _: &str) -> BoxFuture<'static, Result<(Option<Token>, i64), TransportError>> {
        ok((None, -2))
    }
    fn tag_versions(&self, keys: Vec<String>) -> BoxFuture<'static, Result<Vec<TagRead>, TransportError>> {
        let mut s = self.0.lock().unwrap();
        let reads = keys
            .iter()
            .map(|k| match s.tags.get(k) {
                // versions made by a read are even, by a bump odd, as the scripts make them
                Some(v) if v % 2 == 0 => TagRead { version: *v, set: TagSet::ByARead },
                Some(v) => TagRead { version: *v, set: TagSet::Bumped(Duration::ZERO) },
                None => {
                    // as the TAG_READ script: an absent key gets a version no value recorded
                    let v = s.next_version(0);
                    s.tags.insert(k.clone(), v);
                    TagRead { version: v, set: TagSet::ByThisRead }
                }
            })
            .collect();
        ok(reads)
    }
    fn tag_bump(&self, key: &str) -> BoxFuture<'static, Result<u64, TransportError>> {
        let mut s = self.0.lock().unwrap();
        if s.down {
            return future::ready(Err(TransportError::Io("down".into()))).boxed();
        }
        let v = s.next_version(1);
        s.tags.insert(key.to_string(), v);
        ok(v)
    }
    fn write(&self, _: WriteRequest) -> BoxFuture<'static, Result<WriteReply, TransportError>> {
        ok(WriteReply::Written(Token::default()))
    }
    fn unlink_matching(&self, _: String) -> BoxFuture<'static, Result<u64, TransportError>> {
        ok(0)
    }
    fn acquire(&self, _: &L2Keys, _: &str, _: Duration) -> BoxFuture<'static, Result<LockReply, TransportError>> {
        future::ready(Err(TransportError::Timeout)).boxed()
    }
    fn renew(&self, _: &str, _: &str, _: Duration) -> BoxFuture<'static, Result<bool, TransportError>> {
        ok(false)
    }
    fn release(&self, _: &str, _: &str) -> BoxFuture<'static, Result<bool, TransportError>> {
        ok(false)
    }
    fn publish(&self, _: &str, message: Vec<u8>, _: Duration) -> BoxFuture<'static, Result<(), TransportError>> {
        self.0.lock().unwrap().queued.push(message);
        ok(())
    }
    fn subscribe(&self, _: &str, sink: Arc<dyn BusSink>) {
        sink.subscribed(true);
        self.0.lock().unwrap().sinks.push(sink);
    }
    fn scan(&self, _: &str, _: u64, _: usize) -> BoxFuture<'static, Result<(u64, Vec<String>), TransportError>> {
        ok((0, Vec::new()))
    }
    fn try_lease(&self, _: &str, _: &str, _: Duration) -> BoxFuture<'static, Result<LeaseReply, TransportError>> {
        ok(LeaseReply::Held { pttl_ms: -2 })
    }
    fn put_record(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Record,
        _: Duration,
    ) -> BoxFuture<'static, Result<bool, TransportError>> {
        ok(false)
    }
    fn get_record(&self, _: &str) -> BoxFuture<'static, Result<Record, TransportError>> {
        ok(Vec::new())
    }
    fn probe(&self) -> BoxFuture<'static, Result<(), TransportError>> {
        ok(())
    }
    fn spawn(&self, _: BoxFuture<'static, ()>) {}
    fn close(&self, _: Duration) -> BoxFuture<'static, ()> {
        future::ready(()).boxed()
    }
}

/// A timer whose deadlines never come: no heartbeat, no silence taken for a gap; the test
/// decides when everything happens.
pub struct Never;

impl Timer for Never {
    fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
        future::pending().boxed()
    }
}
