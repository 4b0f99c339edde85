//! The request parser over any bytes in any chunking: no panic, no command beyond its limits.
#![no_main]

use bytes::BytesMut;
use healcache_server::resp::{Limits, Parser, INLINE_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size and the limits: before or after AUTH.
    let Some((&first, stream)) = data.split_first() else { return };
    let chunk = usize::from(first % 64) + 1;
    let limits = if first & 0x80 == 0 {
        Limits { max_args: 10, max_bulk: 16 * 1024, max_buffer: 1 << 20, unauthenticated: true }
    } else {
        Limits { max_args: 1024, max_bulk: 8 << 20, max_buffer: 64 << 20, unauthenticated: false }
    };
    let mut parser = Parser::new();
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match parser.next(&mut buf, &limits) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty() && args.len() <= limits.max_args);
                    assert!(args.iter().all(|a| a.len() <= limits.max_bulk.max(INLINE_MAX)));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
