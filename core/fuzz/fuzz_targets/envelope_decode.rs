//! Any bytes under any key: decoding never panics and never allocates past the bounds; what it
//! accepts re-encodes to an envelope that decodes to the same header and payload, and the payload
//! decoders under every codec only ever answer a value or a typed error.
#![no_main]

use healcache::codec::{self, Limits, PayloadCodec, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // a small bound so that a declared length over it is refused, as in production
    let limits = Limits { max_entry_bytes: 1 << 20, compress_min_bytes: 64 };
    let (key, stored) = data.split_at(data.len().min(8));
    // also try the input with its checksum made right, so the checks after it are reached
    let mut sealed = stored.to_vec();
    if sealed.len() >= HEADER_LEN {
        let sum = xxhash_rust::xxh3::xxh3_64(&[key, &sealed[HEADER_LEN..]].concat());
        sealed[48..56].copy_from_slice(&sum.to_be_bytes());
    }
    for bytes in [stored, &sealed[..]] {
        let Ok(d) = codec::decode(key, bytes, &limits) else { continue };
        assert_eq!(d.payload.len(), d.header.payload_len as usize);
        assert!(d.payload.len() <= limits.max_entry_bytes);
        let h = d.header;
        let again = codec::encode_tagged(
            key, h.kind, h.codec, h.token, h.fresh_ms, h.grace_ms, h.load_us, &d.tags, &d.payload, &limits,
        )
        .expect("a decoded envelope re-encodes");
        let back = codec::decode(key, &again, &limits).expect("a re-encoded envelope decodes");
        assert_eq!((back.header, back.tags, back.payload), (h, d.tags, d.payload.clone()));
        for c in [PayloadCodec::MsgPack, PayloadCodec::Json, PayloadCodec::Utf8] {
            if let Ok(v) = codec::decode_value(c, &d.payload) {
                // an accepted value is inside the model, so it encodes again
                codec::encode_value(c, &v).expect("a decoded value re-encodes");
            }
        }
    }
    let _ = codec::decode_msgpack(stored);
    let _ = codec::decode_json(stored);
});
