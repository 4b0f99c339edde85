//! The shared tier (L2) from JS. JS values live in JS, so a value crosses to other processes as
//! the core's neutral value model (MessagePack), converted by the binding on the JS thread: a
//! value `set` or loaded is converted when it reaches the core, and travels with its [`Handle`]
//! as a [`Payload`]; a value read from L2 is decoded on the tier's thread, given a new handle
//! ([`L2Values`]) and turned into a JS value when the wrapper first asks for it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use healcache::codec::{self, PayloadCodec};
use healcache::tier::ValueCodec;

use crate::{lock, Handle, Map};

/// Handles of values read from L2: odd, from 2^52 up, above every id the wrapper gives (it
/// counts odd ids from 1), and exact as JS numbers (below 2^53).
pub const L2_FIRST_ID: u64 = (1 << 52) + 1;

/// What a handle carries for the shared tier.
pub enum Payload {
    /// A JS value as MessagePack, converted when it reached the core.
    Encoded(Vec<u8>),
    /// A JS value that has no neutral form (the reason): kept in L1, never written to L2.
    Unencodable(String),
    /// A value read from L2, not yet a JS value.
    Decoded(rmpv::Value),
}

/// The values read from L2, by handle, while the core holds them: the wrapper turns one into a
/// JS value on its thread ([`L2Values::get`]). Held weakly: the core's entry owns the payload.
/// The last [`KEPT_ANSWERS`] values answered to a call are also held here, so a value the core
/// evicts between answering and the wrapper's read of it is still there to read.
#[derive(Default)]
pub struct L2Values {
    next: AtomicU64,
    map: Mutex<L2Map>,
    answered: Mutex<std::collections::VecDeque<Arc<Payload>>>,
}

/// Values answered to calls kept alive until the wrapper has read them (it reads each within the
/// same turn of its event loop; the bound only caps memory).
const KEPT_ANSWERS: usize = 4096;

#[derive(Default)]
struct L2Map {
    by_id: Map<u64, Weak<Payload>>,
    /// Size at which dead entries are swept next (amortised: twice the live ones).
    sweep_at: usize,
}

impl L2Values {
    fn add(&self, value: rmpv::Value) -> (u64, Arc<Payload>) {
        let id = L2_FIRST_ID + 2 * self.next.fetch_add(1, Relaxed);
        let payload = Arc::new(Payload::Decoded(value));
        let mut m = lock(&self.map);
        if m.by_id.len() >= m.sweep_at.max(1024) {
            m.by_id.retain(|_, w| w.strong_count() > 0);
            m.sweep_at = 2 * m.by_id.len();
        }
        m.by_id.insert(id, Arc::downgrade(&payload));
        (id, payload)
    }

    /// Keeps a value read from L2 that a call is being answered with.
    pub fn answered(&self, h: &Handle) {
        if let Some(p) = h.payload.as_ref().filter(|p| matches!(***p, Payload::Decoded(_))) {
            let mut q = lock(&self.answered);
            if q.len() == KEPT_ANSWERS {
                q.pop_front();
            }
            q.push_back(Arc::clone(p));
        }
    }

    /// The value read from L2 under handle `id`, while the core or a recent answer holds it.
    pub fn get(&self, id: f64) -> Option<Arc<Payload>> {
        lock(&self.map).by_id.get(&(id as u64)).and_then(Weak::upgrade)
    }
}

/// The codec of JS values: the payloads their handles carry.
pub struct JsCodec(pub Arc<L2Values>);

impl ValueCodec<Handle> for JsCodec {
    fn encode(&self, h: &Handle) -> Result<(PayloadCodec, Vec<u8>), String> {
        match h.payload.as_deref() {
            Some(Payload::Encoded(b)) => Ok((PayloadCodec::MsgPack, b.clone())),
            Some(Payload::Decoded(v)) => {
                codec::encode_msgpack(v).map(|b| (PayloadCodec::MsgPack, b)).map_err(|e| e.to_string())
            }
            Some(Payload::Unencodable(why)) => Err(why.clone()),
            None => Err("a value with no neutral form (a repair from a healing source)".into()),
        }
    }

    fn decode(&self, pc: PayloadCodec, payload: &[u8]) -> Result<Handle, String> {
        let v = codec::decode_value(pc, payload).map_err(|e| e.to_string())?;
        representable(&v)?;
        let (id, payload_arc) = self.0.add(v);
        Ok(Handle { id: id as f64, weight: payload.len() as u64, payload: Some(payload_arc) })
    }
}

/// Whether JS can hold `v` as it is: map keys must be scalars (JS object keys are strings), and
/// there is no JS form of a MessagePack extension. Checked when read, so a value that JS cannot
/// take is a codec error (a miss), never a failure later on the JS thread.
fn representable(v: &rmpv::Value) -> Result<(), String> {
    use rmpv::Value as V;
    match v {
        V::String(s) if s.as_str().is_none() => Err("a string that is not valid UTF-8".into()),
        V::Array(a) => a.iter().try_for_each(representable),
        V::Map(m) => m.iter().try_for_each(|(k, x)| {
            match k {
                V::String(_) | V::Integer(_) | V::Boolean(_) | V::F32(_) | V::F64(_) | V::Nil => representable(k)?,
                _ => return Err("a map key that is not a string or a number".into()),
            }
            representable(x)
        }),
        V::Ext(..) => Err("a MessagePack extension value".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Value `n` read from L2: the handle the codec gives the core.
    fn read(values: &Arc<L2Values>, n: usize) -> Handle {
        let bytes = codec::encode_msgpack(&rmpv::Value::from(n as u64)).unwrap();
        JsCodec(Arc::clone(values)).decode(PayloadCodec::MsgPack, &bytes).unwrap()
    }

    /// Whether the value under `id` is still there to read, and is `n`.
    fn readable(values: &L2Values, id: f64, n: usize) -> bool {
        matches!(values.get(id).as_deref(), Some(Payload::Decoded(v)) if *v == rmpv::Value::from(n as u64))
    }

    /// P5: what is kept for calls being answered is bounded: with exactly 4,096 answered values
    /// the core has already dropped (evicted), every one is still readable; the 4,097th pushes
    /// out exactly the oldest, which then reads as a miss (`None`), and no other.
    #[test]
    fn the_last_4096_answers_are_kept_and_the_next_pushes_out_the_oldest() {
        assert_eq!(KEPT_ANSWERS, 4096);
        let values = Arc::new(L2Values::default());
        let answer = |n| {
            let h = read(&values, n);
            values.answered(&h);
            // the core evicts it before the wrapper reads it
            h.id
        };
        let ids: Vec<f64> = (0..KEPT_ANSWERS).map(answer).collect();
        assert!(ids.iter().enumerate().all(|(n, id)| readable(&values, *id, n)), "all 4,096 kept");
        let newest = answer(KEPT_ANSWERS);
        assert!(values.get(ids[0]).is_none(), "the oldest is pushed out");
        assert!(ids.iter().enumerate().skip(1).all(|(n, id)| readable(&values, *id, n)), "and only the oldest");
        assert!(readable(&values, newest, KEPT_ANSWERS));
    }
}
