//! Proptest state machine: the store against a plain map model (capacity large enough that
//! nothing is evicted), with TTLs on a manual clock and versioned writes; and a bounded run
//! where only the invariants (bounds, no phantom values) are checked.

use std::collections::HashMap;
use std::time::Duration;

use healcache::{Cache, Error, ManualClock};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u32),
    SetTtl(u8, u32, u16),
    SetIfVersion(u8, u32, bool),
    Get(u8),
    Remove(u8),
    RemoveIfVersion(u8, bool),
    Advance(u16),
    Purge,
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..24;
    prop_oneof![
        4 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => (key.clone(), any::<u32>(), 1u16..500).prop_map(|(k, v, t)| Op::SetTtl(k, v, t)),
        2 => (key.clone(), any::<u32>(), any::<bool>()).prop_map(|(k, v, b)| Op::SetIfVersion(k, v, b)),
        5 => key.clone().prop_map(Op::Get),
        1 => key.clone().prop_map(Op::Remove),
        1 => (key.clone(), any::<bool>()).prop_map(|(k, b)| Op::RemoveIfVersion(k, b)),
        2 => (0u16..300).prop_map(Op::Advance),
        1 => Just(Op::Purge),
        1 => Just(Op::Clear),
    ]
}

#[derive(Clone, Copy)]
struct ModelEntry {
    value: u32,
    expires_at: Option<u64>,
    version: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        let clock = ManualClock::new();
        let c: Cache<u32> = Cache::builder().max_entries(1000).shards(4).clock(clock.clone()).build().unwrap();
        let mut model: HashMap<String, ModelEntry> = HashMap::new();
        let mut now: u64 = 0; // ms
        let live = |m: &HashMap<String, ModelEntry>, k: &str, now: u64| {
            m.get(k).filter(|e| e.expires_at.is_none_or(|t| t > now)).copied()
        };
        let mut last_version = 0u64;
        for op in ops {
            match op {
                Op::Set(k, v) => {
                    let k = format!("k{k}");
                    let ver = c.set(&k, v).unwrap();
                    prop_assert!(ver > last_version);
                    last_version = ver;
                    model.insert(k, ModelEntry { value: v, expires_at: None, version: ver });
                }
                Op::SetTtl(k, v, t) => {
                    let k = format!("k{k}");
                    let ver = c.set_with_ttl(&k, v, Some(Duration::from_millis(t as u64))).unwrap();
                    prop_assert!(ver > last_version);
                    last_version = ver;
                    model.insert(k, ModelEntry { value: v, expires_at: Some(now + t as u64), version: ver });
                }
                Op::SetIfVersion(k, v, right) => {
                    let k = format!("k{k}");
                    let cur = live(&model, &k, now).map_or(0, |e| e.version);
                    let expected = if right { cur } else { cur + 1 };
                    match c.set_if_version(&k, v, expected) {
                        Ok(ver) => {
                            prop_assert!(right);
                            prop_assert!(ver > last_version);
                            last_version = ver;
                            model.insert(k, ModelEntry { value: v, expires_at: None, version: ver });
                        }
                        Err(Error::VersionMismatch { current, .. }) => {
                            prop_assert!(!right);
                            prop_assert_eq!(current, cur);
                        }
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
                Op::Get(k) => {
                    let k = format!("k{k}");
                    prop_assert_eq!(c.get(&k), live(&model, &k, now).map(|e| e.value));
                    prop_assert_eq!(c.version(&k), live(&model, &k, now).map_or(0, |e| e.version));
                }
                Op::Remove(k) => {
                    let k = format!("k{k}");
                    let expect = live(&model, &k, now).map(|e| e.value);
                    model.remove(&k);
                    prop_assert_eq!(c.remove(&k), expect);
                }
                Op::RemoveIfVersion(k, right) => {
                    let k = format!("k{k}");
                    if let Some(e) = live(&model, &k, now) {
                        let r = c.remove_if_version(&k, if right { e.version } else { e.version + 1 });
                        prop_assert_eq!(r.is_ok(), right);
                        if right { model.remove(&k); }
                    } else {
                        prop_assert!(c.remove_if_version(&k, 5).is_err());
                    }
                }
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms as u64));
                    now += ms as u64;
                }
                Op::Purge => {
                    c.purge_expired();
                    model.retain(|_, e| e.expires_at.is_none_or(|t| t > now));
                    prop_assert_eq!(c.len(), model.len());
                }
                Op::Clear => {
                    c.clear();
                    model.clear();
                }
            }
            let live_count = model.values().filter(|e| e.expires_at.is_none_or(|t| t > now)).count();
            prop_assert!(c.len() >= live_count);
            prop_assert!(c.len() <= model.len());
        }
        for k in 0..24u8 {
            let k = format!("k{k}");
            prop_assert_eq!(c.get(&k), live(&model, &k, now).map(|e| e.value));
        }
    }

    #[test]
    fn bounded_store_never_exceeds_bounds_or_invents_values(
        ops in proptest::collection::vec((0u16..400, any::<u32>(), 0usize..64, any::<bool>()), 1..400),
        cap in 1u64..50,
    ) {
        let c: Cache<(u16, u32)> = Cache::builder()
            .max_entries(cap)
            .max_bytes(cap * 40)
            .weigher(|v: &(u16, u32)| (v.1 % 32) as u64)
            .build()
            .unwrap();
        let mut written: HashMap<u16, u32> = HashMap::new();
        for (k, v, _, read) in ops {
            let key = format!("{k}");
            if read {
                if let Some((kk, vv)) = c.get(&key) {
                    prop_assert_eq!(kk, k);
                    prop_assert_eq!(Some(&vv), written.get(&k), "a read returned a value never written last");
                }
            } else {
                c.set(&key, (k, v)).unwrap();
                written.insert(k, v);
            }
            let s = c.stats();
            prop_assert!(s.entries <= cap);
            prop_assert!(s.weight <= cap * 40);
        }
    }
}
