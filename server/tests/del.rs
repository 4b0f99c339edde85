//! Multi-key commands check every key before they apply any: a key that is not UTF-8 text
//! answers the error and leaves the keyspace as it was.

mod common;

use common::{multibulk, Raw, Server};
use serde_json::json;

fn send(c: &mut Raw, args: &[&[u8]]) -> String {
    c.send(&multibulk(args));
    c.value()
}

fn set_a_and_c(c: &mut Raw) {
    assert_eq!(send(c, &[b"SET", b"a", b"1"]), "+OK");
    assert_eq!(send(c, &[b"SET", b"c", b"3"]), "+OK");
}

#[test]
fn del_with_a_bad_key_deletes_nothing() {
    let s = Server::start(json!({}), &[]);
    let mut c = s.connect();
    set_a_and_c(&mut c);
    assert_eq!(send(&mut c, &[b"DEL", b"a", b"\xff", b"c"]), "-ERR keys must be UTF-8 text");
    assert_eq!(send(&mut c, &[b"EXISTS", b"a", b"c"]), ":2");
    // the bad key first or last: the same
    assert_eq!(send(&mut c, &[b"DEL", b"\xff", b"a"]), "-ERR keys must be UTF-8 text");
    assert_eq!(send(&mut c, &[b"DEL", b"c", b"\xff"]), "-ERR keys must be UTF-8 text");
    assert_eq!(send(&mut c, &[b"EXISTS", b"a", b"c"]), ":2");
    // good keys still delete
    assert_eq!(send(&mut c, &[b"DEL", b"a", b"b", b"c"]), ":2");
    assert_eq!(send(&mut c, &[b"EXISTS", b"a", b"c"]), ":0");
}

#[test]
fn exists_with_a_bad_key_is_an_error() {
    let s = Server::start(json!({}), &[]);
    let mut c = s.connect();
    set_a_and_c(&mut c);
    assert_eq!(send(&mut c, &[b"EXISTS", b"a", b"\xff", b"c"]), "-ERR keys must be UTF-8 text");
    // a key named twice counts twice, as in Redis
    assert_eq!(send(&mut c, &[b"EXISTS", b"a", b"a", b"b"]), ":2");
}

/// EXISTS reads as Redis's does: each key named counts a keyspace hit when present and a miss
/// when absent in `INFO stats` (a key named twice counts twice).
#[test]
fn exists_counts_keyspace_hits_and_misses() {
    let s = Server::start(json!({}), &[]);
    let mut c = s.connect();
    set_a_and_c(&mut c);
    let counts = || {
        let field = |name: &str| s.info_field(name, None).parse::<u64>().unwrap();
        (field("keyspace_hits"), field("keyspace_misses"))
    };
    let before = counts();
    assert_eq!(send(&mut c, &[b"EXISTS", b"a", b"b", b"a", b"c", b"d"]), ":3");
    let after = counts();
    assert_eq!((after.0 - before.0, after.1 - before.1), (3, 2), "{before:?} -> {after:?}");
    // a refused EXISTS reads nothing
    assert_eq!(send(&mut c, &[b"EXISTS", b"a", b"\xff"]), "-ERR keys must be UTF-8 text");
    assert_eq!(counts(), after);
}
