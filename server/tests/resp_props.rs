//! The request parser over arbitrary input: it never panics, never holds more than its limits,
//! and a valid stream split anywhere parses to the same commands.

mod common;

use bytes::{Bytes, BytesMut};
use common::multibulk;
use healcache_server::resp::{Args, Limits, Parser, ProtoError};
use proptest::prelude::*;

const LIMITS: Limits = Limits { max_args: 64, max_bulk: 4096, max_buffer: 1 << 20, unauthenticated: false };

/// Feeds `stream` in `cuts`-sized pieces; the commands until the end or the first error.
fn feed(stream: &[u8], cuts: &[usize], limits: &Limits) -> (Vec<Args>, Option<ProtoError>) {
    let mut parser = Parser::new();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut at = 0;
    let mut cuts = cuts.iter().cycle();
    while at < stream.len() {
        let n = (*cuts.next().unwrap()).clamp(1, stream.len() - at);
        buf.extend_from_slice(&stream[at..at + n]);
        at += n;
        loop {
            match parser.next(&mut buf, limits) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty() && args.len() <= limits.max_args);
                    assert!(args.iter().all(|a| a.len() <= limits.max_bulk.max(healcache_server::resp::INLINE_MAX)));
                    got.push(args);
                }
                Ok(None) => break,
                Err(e) => return (got, Some(e)),
            }
        }
        // What the connection checks after each read: the parser never keeps more.
        assert!(parser.pending() <= limits.max_buffer);
    }
    (got, None)
}

fn inline(args: &[Vec<u8>]) -> Vec<u8> {
    let words: Vec<String> = args.iter().map(|a| String::from_utf8(a.clone()).unwrap()).collect();
    format!("{}\r\n", words.join(" ")).into_bytes()
}

fn command() -> impl Strategy<Value = (bool, Vec<Vec<u8>>)> {
    prop_oneof![
        (Just(false), prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8)),
        // Inline words: letters and digits only, so they need no quoting.
        (Just(true), prop::collection::vec("[a-zA-Z0-9:_]{1,20}".prop_map(String::into_bytes), 1..8)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(stream in prop::collection::vec(any::<u8>(), 0..4096),
                                   cuts in prop::collection::vec(1usize..64, 1..16)) {
        let _ = feed(&stream, &cuts, &LIMITS);
        let tight = Limits { max_args: 3, max_bulk: 8, max_buffer: 64, unauthenticated: true };
        let _ = feed(&stream, &cuts, &tight);
    }

    #[test]
    fn resp_shaped_noise_never_panics(parts in prop::collection::vec(
            prop_oneof![Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()), Just(b"-1".to_vec()),
                        Just(b"3".to_vec()), Just(b"0".to_vec()), Just(b"\"".to_vec()), Just(b" ".to_vec()),
                        Just(b"'".to_vec()), Just(b"\\x4".to_vec()), prop::collection::vec(any::<u8>(), 0..4)], 0..200),
            cuts in prop::collection::vec(1usize..16, 1..8)) {
        let stream: Vec<u8> = parts.concat();
        let _ = feed(&stream, &cuts, &LIMITS);
    }

    #[test]
    fn a_valid_stream_split_anywhere_parses_the_same(cmds in prop::collection::vec(command(), 1..20),
                                                      cuts in prop::collection::vec(1usize..512, 1..16)) {
        let mut stream = Vec::new();
        for (is_inline, args) in &cmds {
            stream.extend(if *is_inline { inline(args) } else { multibulk(args) });
        }
        let (whole, err) = feed(&stream, &[stream.len()], &LIMITS);
        prop_assert_eq!(err, None);
        let expected: Vec<Args> = cmds.iter().map(|(_, a)| a.iter().map(|x| Bytes::from(x.clone())).collect()).collect();
        prop_assert_eq!(&whole, &expected);
        let (split, err) = feed(&stream, &cuts, &LIMITS);
        prop_assert_eq!(err, None);
        prop_assert_eq!(split, expected);
    }
}

#[test]
fn a_large_array_sent_one_byte_at_a_time() {
    let args: Vec<Vec<u8>> = (0..1000).map(|i| format!("argument-{i:05}").into_bytes()).collect();
    let stream = multibulk(&args);
    let limits = Limits { max_args: 1024, ..LIMITS };
    let (got, err) = feed(&stream, &[1], &limits);
    assert_eq!(err, None);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), 1000);
    assert_eq!(&got[0][999][..], b"argument-00999");
}
