//! The shared tier's end of the invalidation bus: publishing, heartbeats, hearing other
//! instances' messages, and distrusting L1 after a gap.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed, Ordering::Release};
use std::sync::Arc;
use std::time::Duration;

use futures::future::FutureExt;

use super::Tier;
use crate::codec;
use crate::tier::bus::{self, Heard};
use crate::tier::{lock, BusSink, TransportError};

/// How often an instance announces its last message number on the bus.
const HEARTBEAT: Duration = Duration::from_millis(250);

/// A subscription that has delivered nothing for this long, not even this cache's own
/// heartbeats (three of them missed), is presumed lost. Checked every half heartbeat, so a cut
/// link is noticed within about 0.9 s of the cut.
const SILENCE: Duration = Duration::from_millis(750);

impl<V: Clone + Send + Sync + 'static> Tier<V> {
    /// Announces written or deleted keys on the bus (after the write landed: never a message
    /// without its value in L2). Best effort: a failed publish is a gap receivers notice.
    pub(super) fn publish(self: &Arc<Self>, kind: bus::Kind, keys: Vec<(String, codec::Token)>) {
        self.after_fork();
        // numbered and queued under one lock: the transport sends in queue order, so numbers
        // arrive in order unless messages are lost
        let sending = self.bus.sending.lock().unwrap_or_else(|p| p.into_inner());
        let Some(msg) = self.bus.message(kind, keys, self.clock.unix_micros().unwrap_or(0)) else {
            // over the message bound: receivers see the skipped number as a gap
            self.bus.numbering.take();
            self.bus.publish_failed.fetch_add(1, Relaxed);
            return;
        };
        if kind != bus::Kind::Heartbeat {
            self.bus.sent.fetch_add(1, Relaxed);
        }
        let tier = Arc::clone(self);
        let send = self.transport.publish(&self.bus.channel, msg, self.cfg.timeout);
        drop(sending);
        let heartbeat = kind == bus::Kind::Heartbeat;
        self.transport.spawn(
            async move {
                let r = send.await;
                if r.is_err() {
                    tier.bus.publish_failed.fetch_add(1, Relaxed);
                }
                // heartbeats go to Redis every 250 ms whatever the traffic, so their failures tell
                // the breaker too: an idle cache sees an outage (its `ready()` turns false, its
                // probe reconnects once Redis is back) as a busy one does. A lost connection or a
                // refusal only: a slow answer under load is no outage, and heartbeats, four a
                // second, would open the breaker on it far more often than calls do
                match r {
                    Ok(()) if heartbeat => tier.breaker.on_success_while_closed(),
                    Err(TransportError::Timeout) => {}
                    Err(_) if heartbeat && !tier.is_closed() => tier.failed(false),
                    _ => {}
                }
            }
            .boxed(),
        );
    }

    /// Subscribes to the bus: other instances' messages make keys stale (changed) or remove them
    /// (deleted) in L1 through `drop_key`;
    /// heartbeats go out every 250 ms, and a subscription silent for 750 ms (this cache's own
    /// heartbeats stopped coming back) makes every older L1 entry suspect.
    pub(crate) fn start_bus(self: &Arc<Self>, drop_key: bus::OnKey, on_tag: bus::OnTag) {
        let _ = self.bus.on_key.set(drop_key);
        let _ = self.bus.on_tag.set(on_tag);
        self.bus.last_heard.store(self.clock.now_nanos(), Relaxed);
        let weak = Arc::downgrade(self);
        self.transport.subscribe(&self.bus.channel, Arc::new(Sink(weak)));
        self.start_heartbeat();
    }

    /// Heartbeats every 250 ms, and the check for a silent subscription, until the cache is gone
    /// or its tier closed.
    fn start_heartbeat(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let timer = Arc::clone(&self.timer);
        let jitter = Arc::clone(&self.jitter);
        self.transport.spawn(
            async move {
                for tick in 0u64.. {
                    timer.sleep(lock::jittered(HEARTBEAT / 2, &jitter)).await;
                    let Some(tier) = weak.upgrade() else { return };
                    // closed: no more heartbeats, and a silence that is no gap
                    if tier.is_closed() {
                        return;
                    }
                    if tick % 2 == 1 {
                        tier.publish(bus::Kind::Heartbeat, Vec::new());
                    }
                    let quiet = tier.clock.now_nanos().saturating_sub(tier.bus.last_heard.load(Relaxed));
                    if quiet > SILENCE.as_nanos() as u64 && !tier.bus.silent.swap(true, Relaxed) {
                        tier.bus.gaps.fetch_add(1, Relaxed);
                        tier.distrust();
                    }
                }
            }
            .boxed(),
        );
    }

    /// In a child of `fork()` (first call there): the bus identity, numbering and heartbeat task
    /// were the parent's. Sharing the id, parent and child would each take the other's messages
    /// for its own; the task does not exist here. The child takes its own, and distrusts the L1
    /// it inherited: messages sent before its subscription started again never reached it.
    fn after_fork(self: &Arc<Self>) {
        let pid = bus::process_id();
        if self.bus_pid.load(Relaxed) == pid || self.bus_pid.swap(pid, Relaxed) == pid {
            return;
        }
        let seed = self.jitter.load(Relaxed) ^ u64::from(pid);
        self.bus.numbering.renew(bus::node_id(seed, self.clock.precise_nanos(), Arc::as_ptr(self) as usize));
        self.distrust();
        // the parent's last message is no sign of this process's subscription
        self.bus.last_heard.store(self.clock.now_nanos(), Relaxed);
        if self.bus.on_key.get().is_some() {
            self.start_heartbeat();
        }
    }

    /// Every L1 entry written before now is suspect: re-read from L2 before it is served fresh.
    pub(crate) fn distrust(&self) {
        // bumps of tags may have been missed too: their versions are read from L2 again
        self.tags.forget_versions();
        self.suspect_before.store(self.clock.now_nanos().max(1), Relaxed);
        self.changed();
    }

    /// L1 entries changed outside this process's calls (after the change is made).
    pub(crate) fn changed(&self) {
        self.local_changes.fetch_add(1, Release);
    }

    /// The counter [`Tier::changed`] bumps.
    pub(crate) fn local_changes(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.local_changes)
    }

    fn heard(&self, bytes: &[u8]) {
        let now = self.clock.now_nanos();
        let b = &self.bus;
        b.last_heard.store(now, Relaxed);
        b.silent.store(false, Relaxed);
        let gap = match b.numbering.hear(bytes, now) {
            Heard::Own => false,
            Heard::Malformed => {
                b.malformed.fetch_add(1, Relaxed);
                false
            }
            Heard::Heartbeat { gap } => gap,
            Heard::Keys { keys, removed, gap, sent_us } => {
                b.received.fetch_add(1, Relaxed);
                // across processes, so on wall clocks (an unknown time, or a clock behind the
                // sender's, records nothing rather than a made-up zero)
                if let Some(now_us) = self.clock.unix_micros().filter(|_| sent_us != 0) {
                    if let Some(us) = now_us.checked_sub(sent_us) {
                        b.latency.record(us.saturating_mul(1000));
                    }
                }
                if let Some(drop_key) = b.on_key.get() {
                    let dropped = keys.iter().filter(|(k, t)| drop_key(k, removed, *t)).count();
                    b.invalidated.fetch_add(dropped as u64, Relaxed);
                }
                gap
            }
            Heard::Tags { tags, hard, gap } => {
                b.received.fetch_add(1, Relaxed);
                self.counters.tag_received.fetch_add(1, Relaxed);
                if let Some(on_tag) = b.on_tag.get() {
                    let dropped: usize = tags.iter().map(|(t, v)| on_tag(t, *v, hard)).sum();
                    b.invalidated.fetch_add(dropped as u64, Relaxed);
                }
                gap
            }
            Heard::TagsMade { tags, gap } => {
                b.received.fetch_add(1, Relaxed);
                for (t, v) in &tags {
                    self.tags.learn(t, *v);
                }
                gap
            }
        };
        if gap {
            b.gaps.fetch_add(1, Relaxed);
            self.distrust();
        }
    }
}

/// The bus subscription's end in a tier (weak: a dropped cache stops listening).
struct Sink<V>(std::sync::Weak<Tier<V>>);

impl<V: Clone + Send + Sync + 'static> BusSink for Sink<V> {
    fn message(&self, bytes: &[u8]) {
        if let Some(t) = self.0.upgrade() {
            t.after_fork();
            t.heard(bytes);
        }
    }

    fn alive(&self) -> bool {
        self.0.strong_count() > 0
    }

    fn subscribed(&self, first: bool) {
        let Some(t) = self.0.upgrade() else { return };
        t.after_fork();
        t.bus.last_heard.store(t.clock.now_nanos(), Relaxed);
        t.bus.silent.store(false, Relaxed);
        if !first {
            // messages sent while it was down are lost: numbering starts afresh, L1 is suspect
            t.bus.numbering.forget();
            t.bus.gaps.fetch_add(1, Relaxed);
            t.distrust();
        }
    }
}
