//! Writes reach Redis in call order, also when one skips the queue: a write called when nothing
//! is queued goes straight to the connection, and every write called after it waits for it.
//! Against a real redis-server on a free loopback port (the test kit's).
//!
//! Promise checked: P7, data is protected by fencing and order (the last write of a key wins,
//! whichever way each write went).

mod common;

use std::time::Duration;

use common::{block, server};
use healcache::codec::{self, Limits, Token};
use healcache::keys::l2_keys;
use healcache::tier::{Transport, WriteReply, WriteRequest};
use healcache_redis::RedisTransport;

/// An unconditional write of `payload` under cache key `key`, as the core sends it.
fn write(key: &str, payload: &[u8]) -> WriteRequest {
    common::write_request(key, payload, Duration::from_secs(10))
}

/// What Redis holds under cache key `key`: the payload and its token.
fn stored(url: &str, key: &str) -> (Vec<u8>, Token) {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let value = l2_keys("hc1", key).value;
    let raw: Vec<u8> = redis::cmd("GET").arg(&value).query(&mut conn).unwrap();
    let d = codec::decode(value.as_bytes(), &raw, &Limits::default()).unwrap();
    (d.payload, d.header.token)
}

fn written(r: Result<WriteReply, healcache::tier::TransportError>) -> Token {
    match r {
        Ok(WriteReply::Written(t)) => t,
        other => panic!("not written: {other:?}"),
    }
}

/// On the I/O thread a write that goes straight is sent by the task that polls it. A write called
/// after it, queued, is not sent before it, though the writer task is free: after both, Redis
/// holds the later one, under the higher token.
#[test]
fn a_queued_write_waits_for_the_straight_one_called_before_it() {
    let r = server();
    let t = RedisTransport::connect(&r.url()).unwrap();
    let io = t.clone();
    let (first, second) = block(healcache_rt::spawn(async move {
        let first = io.write(write("k", b"first"));
        let second = io.write(write("k", b"second"));
        // the writer task runs meanwhile; the first write is not polled yet
        tokio::time::sleep(Duration::from_millis(300)).await;
        (first.await, second.await)
    }))
    .unwrap();
    let (first, second) = (written(first), written(second));
    assert!(second.counter > first.counter, "{first:?} then {second:?}");
    assert_eq!(stored(&r.url(), "k"), (b"second".to_vec(), second));
}

/// Called from another thread, a write that goes straight is sent at once by a task of its own,
/// as a queued write is: a caller that waits for a later write first is not held up by it.
#[test]
fn a_straight_write_called_off_the_io_thread_is_sent_without_being_polled() {
    let r = server();
    let t = RedisTransport::connect(&r.url()).unwrap();
    let first = t.write(write("k", b"first"));
    let second = t.write(write("k", b"second"));
    let second = block(healcache_rt::spawn(async { tokio::time::timeout(Duration::from_secs(5), second).await }))
        .unwrap()
        .expect("the later write is answered while the first is not polled");
    let second = written(second);
    let first = written(block(first));
    assert!(second.counter > first.counter, "{first:?} then {second:?}");
    assert_eq!(stored(&r.url(), "k"), (b"second".to_vec(), second));
}

/// A write that goes straight, dropped before it is polled, is never sent, and the writes queued
/// behind it go on.
#[test]
fn a_straight_write_dropped_unpolled_is_not_sent_and_frees_the_queue() {
    let r = server();
    let t = RedisTransport::connect(&r.url()).unwrap();
    let io = t.clone();
    let second = block(healcache_rt::spawn(async move {
        let first = io.write(write("dropped", b"first"));
        let second = io.write(write("kept", b"second"));
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second).await
    }))
    .unwrap()
    .expect("the queued write is sent once the straight one is dropped");
    let second = written(second);
    assert_eq!(stored(&r.url(), "kept"), (b"second".to_vec(), second));
    let mut conn = redis::Client::open(r.url().as_str()).unwrap().get_connection().unwrap();
    let exists: bool = redis::cmd("EXISTS").arg(l2_keys("hc1", "dropped").value).query(&mut conn).unwrap();
    assert!(!exists, "a dropped write that was never polled is not sent");
}
