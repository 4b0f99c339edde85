//! KeySpace and the L2 key layout: injectivity, parse inverting key, glob safety, slots.

use healcache::keys::{
    bus_channel, cache_key_of, check_prefix, glob_escape, l2_keys, slot, tag_key, value_glob, verifier_keys, DimValue,
    KeySpace, DEFAULT_PREFIX, MAX_DIMS, MAX_PREFIX_LEN,
};
use proptest::prelude::*;

fn users() -> KeySpace {
    KeySpace::new("shop").unwrap().entity("user", 3).unwrap().dims(["id", "locale"]).unwrap()
}

/// A fleet verifier's lease and record share one slot (the record's write checks the lease in
/// one script), braces in a healing prefix cannot move it, and its SCAN glob takes the prefix
/// literally (P8).
#[test]
fn verifier_keys_share_a_slot_and_their_glob_is_literal() {
    let (lease, record) = verifier_keys("hc1", "user:{x}*");
    let tag = format!("{{{:04x}}}", slot(b"user%3A%7Bx%7D%2A"));
    assert_eq!(lease, format!("hc1:{tag}:hl:user%3A%7Bx%7D%2A"));
    assert_eq!(&lease[..10], &record[..10], "one hash tag");
    assert_eq!(record, lease.replace(":hl:", ":hs:"));
    assert_eq!(value_glob("hc1", "us*r:[a]"), "hc1:{????}:v:us\\*r:\\[a\\]*");
    let k = l2_keys("hc1", "user:42").value;
    assert_eq!(cache_key_of("hc1", &k), Some("user:42"));
}

#[test]
fn key_reads_as_designed() {
    let k = users().key(&[("locale", "en-GB".into()), ("id", 42.into())]).unwrap();
    assert_eq!(k, "shop:user:v3:id=42:locale=en-GB");
    assert_eq!(users().parse(&k).unwrap(), ["42", "en-GB"]);
}

#[test]
fn separators_and_metacharacters_are_encoded() {
    let k = users().key(&[("id", "a:b=c%d".into()), ("locale", "*?[]\\{} \n/é".into())]).unwrap();
    assert_eq!(k, "shop:user:v3:id=a%3Ab%3Dc%25d:locale=%2A%3F%5B%5D%5C%7B%7D%20%0A%2F%C3%A9");
    assert_eq!(users().parse(&k).unwrap(), ["a:b=c%d", "*?[]\\{} \n/é"]);
}

#[test]
fn integers_are_canonical_decimal_text() {
    let ks = users();
    let a = ks.key(&[("id", 42u64.into()), ("locale", "x".into())]).unwrap();
    let b = ks.key(&[("id", "42".into()), ("locale", "x".into())]).unwrap();
    assert_eq!(a, b);
    let neg = ks.key(&[("id", (-7i64).into()), ("locale", "x".into())]).unwrap();
    assert_eq!(neg, "shop:user:v3:id=-7:locale=x");
    let max = ks.key(&[("id", u64::MAX.into()), ("locale", "x".into())]).unwrap();
    assert_eq!(ks.parse(&max).unwrap()[0], u64::MAX.to_string());
}

#[test]
fn every_dimension_once_and_no_other() {
    let ks = users();
    let code = |r: Result<String, healcache::Error>| r.unwrap_err().code();
    assert_eq!(code(ks.key(&[("id", 1.into())])), "InvalidKey");
    assert_eq!(code(ks.key(&[("id", 1.into()), ("locale", "x".into()), ("extra", "y".into())])), "InvalidKey");
    assert_eq!(code(ks.key(&[("id", 1.into()), ("id", 2.into()), ("locale", "x".into())])), "InvalidKey");
    assert!(KeySpace::new("").is_err());
    assert!(KeySpace::new("a").unwrap().entity("", 1).is_err());
    assert!(KeySpace::new("a").unwrap().entity("e", 1).unwrap().dims(["x", "x"]).is_err());
    assert!(KeySpace::new("a").unwrap().entity("e", 1).unwrap().dims(["x", ""]).is_err());
    assert!(KeySpace::new("a").unwrap().entity("e", 1).unwrap().dims(Vec::<&str>::new()).is_err());
    assert!(KeySpace::new("a").unwrap().dims(["x"]).unwrap().key(&[("x", 1.into())]).is_err());
}

#[test]
fn dimension_count_bound_holds_at_the_bound() {
    let names: Vec<String> = (0..MAX_DIMS).map(|i| format!("d{i}")).collect();
    let ks = KeySpace::new("n").unwrap().entity("e", 1).unwrap().dims(&names).unwrap();
    let values: Vec<(&str, DimValue)> = names.iter().map(|n| (n.as_str(), DimValue::from(n))).collect();
    let k = ks.key(&values).unwrap();
    assert_eq!(ks.parse(&k).unwrap(), names);
    let more: Vec<String> = (0..=MAX_DIMS).map(|i| format!("d{i}")).collect();
    assert!(KeySpace::new("n").unwrap().entity("e", 1).unwrap().dims(&more).is_err());
}

#[test]
fn parse_refuses_what_key_would_not_write() {
    let ks = users();
    for bad in [
        "shop:user:v3:id=42",                   // a dimension missing
        "shop:user:v3:id=42:locale=en:extra=1", // one too many
        "shop:user:v3:locale=en:id=42",         // out of order
        "shop:user:v2:id=42:locale=en",         // another version
        "shop:user:v3:id=4%32:locale=en",       // an unreserved byte escaped
        "shop:user:v3:id=a%3ab:locale=en",      // lowercase hex
        "shop:user:v3:id=a b:locale=en",        // a raw reserved byte
        "shop:user:v3:id=%FF:locale=en",        // not UTF-8
        "shop:user:v3:id=%4:locale=en",         // truncated escape
        "shop:user:v3:id42:locale=en",          // no `=`
        "other:user:v3:id=42:locale=en",        // another namespace
    ] {
        assert!(ks.parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn l2_layout_shares_one_hash_tag() {
    let k = l2_keys(DEFAULT_PREFIX, "user:42");
    let b = format!("{{{:04x}}}", slot(b"user:42"));
    assert_eq!(k.value, format!("hc1:{b}:v:user:42"));
    assert_eq!(k.lock, format!("hc1:{b}:l:user:42"));
    assert_eq!(k.fence, format!("hc1:{b}:f"));
    // braces inside a user key come after ours: Redis hashes only the first pair
    let braces = l2_keys("hc1", "{other}:x");
    assert!(braces.value.starts_with(&format!("hc1:{{{:04x}}}:v:", slot(b"{other}:x"))));
    assert_eq!(cache_key_of("hc1", &braces.value), Some("{other}:x"));
    assert_eq!(cache_key_of("hc1", &k.lock), None);
    assert_eq!(cache_key_of("hc1", "hc1:{0000}:v:user:42"), None);
}

#[test]
fn tag_keys_and_bus_channels_encode_their_parts() {
    assert_eq!(tag_key("hc1", "shop", "user:42"), format!("hc1:{{{:04x}}}:t:shop:user%3A42", slot(b"shop:user%3A42")));
    assert_eq!(bus_channel("hc1", "shop"), "hc1:{shop}:bus");
    assert_eq!(bus_channel("hc1", "{x}*"), "hc1:{%7Bx%7D%2A}:bus");
    // an injective pair: a colon inside the namespace cannot make two tags one key
    assert_ne!(tag_key("hc1", "a:b", "c"), tag_key("hc1", "a", "b:c"));
}

#[test]
fn slot_is_redis_cluster_crc16() {
    // the Redis Cluster specification's own example: CRC16("123456789") = 0x31C3
    assert_eq!(slot(b"123456789"), 0x31c3);
    assert_eq!(slot(b""), 0);
    assert!(slot(b"\xff\xff\xff\xff") < 16384);
}

#[test]
fn prefix_is_checked() {
    assert!(check_prefix("hc1").is_ok());
    assert!(check_prefix("app.prod:hc1").is_ok());
    assert!(check_prefix(&"p".repeat(MAX_PREFIX_LEN)).is_ok());
    assert!(check_prefix(&"p".repeat(MAX_PREFIX_LEN + 1)).is_err());
    for bad in ["", "a{b}", "a*", "a b", "a\n", "é"] {
        assert_eq!(check_prefix(bad).unwrap_err().code(), "InvalidKey", "{bad:?}");
    }
}

#[test]
fn patterns_fix_some_dimensions() {
    let ks = users();
    let p = ks.pattern(&[("locale", "en-GB".into())]).unwrap();
    assert_eq!(p.glob(), "shop:user:v3:id=*:locale=en-GB");
    assert_eq!(p.l2_glob("hc1"), "hc1:{????}:v:shop:user:v3:id=*:locale=en-GB");
    assert!(p.matches("shop:user:v3:id=1:locale=en-GB"));
    assert!(!p.matches("shop:user:v3:id=1:locale=fr"));
    assert!(!p.matches("shop:user:v3:id=1"));
    let hostile = ks.pattern(&[("locale", "*".into())]).unwrap();
    assert_eq!(hostile.glob(), "shop:user:v3:id=*:locale=%2A");
    assert!(!hostile.matches("shop:user:v3:id=1:locale=en"));
    assert!(hostile.matches("shop:user:v3:id=1:locale=%2A"));
    assert_eq!(glob_escape("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
    assert!(ks.pattern(&[("nope", 1.into())]).is_err());
}

/// A tiny Redis-style glob matcher (`*`, `?`, `\` escapes, no classes): enough to check that a
/// pattern built from data matches exactly the keys it should.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob_match(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob_match(&p[1..], &s[1..]),
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob_match(&p[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob_match(&p[1..], &s[1..]),
    }
}

fn dim_value() -> impl Strategy<Value = (bool, String, i64)> {
    (any::<bool>(), "\\PC{0,8}|[:=%*?\\[\\]\\\\{}]{0,4}", any::<i64>())
}

fn to_dim((is_int, s, n): &(bool, String, i64)) -> DimValue<'_> {
    if *is_int {
        DimValue::Int(*n)
    } else {
        DimValue::Str(s)
    }
}

fn text((is_int, s, n): &(bool, String, i64)) -> String {
    if *is_int {
        n.to_string()
    } else {
        s.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn parse_inverts_key(ns in "\\PC{1,6}", entity in "\\PC{1,6}", version in any::<u32>(), a in dim_value(), b in dim_value()) {
        let ks = KeySpace::new(&ns).unwrap().entity(&entity, version).unwrap().dims(["a", "b:c"]).unwrap();
        let key = ks.key(&[("a", to_dim(&a)), ("b:c", to_dim(&b))]).unwrap();
        prop_assert_eq!(ks.parse(&key).unwrap(), vec![text(&a), text(&b)]);
        // no glob metacharacter, brace, separator-in-value or control byte survives encoding
        let raw = key.chars().any(|c| "*?[]\\{} \n\r".contains(c) || c.is_control());
        prop_assert!(!raw, "a raw metacharacter in {:?}", key);
    }

    #[test]
    fn distinct_tuples_give_distinct_keys(a in dim_value(), b in dim_value(), c in dim_value(), d in dim_value()) {
        let ks = users();
        let k1 = ks.key(&[("id", to_dim(&a)), ("locale", to_dim(&b))]).unwrap();
        let k2 = ks.key(&[("id", to_dim(&c)), ("locale", to_dim(&d))]).unwrap();
        prop_assert_eq!(k1 == k2, (text(&a), text(&b)) == (text(&c), text(&d)));
    }

    #[test]
    fn distinct_spaces_give_distinct_keys(ns1 in "[a:]{1,3}", ns2 in "[a:]{1,3}", e1 in "[a:]{1,3}", e2 in "[a:]{1,3}", v in "[a:]{0,3}") {
        let k1 = KeySpace::new(&ns1).unwrap().entity(&e1, 1).unwrap().dims(["d"]).unwrap().key(&[("d", v.as_str().into())]).unwrap();
        let k2 = KeySpace::new(&ns2).unwrap().entity(&e2, 1).unwrap().dims(["d"]).unwrap().key(&[("d", v.as_str().into())]).unwrap();
        prop_assert_eq!(k1 == k2, (ns1, e1) == (ns2, e2));
    }

    #[test]
    fn a_pattern_matches_exactly_its_keys(fixed in dim_value(), other in dim_value(), free in dim_value()) {
        let ks = users();
        let p = ks.pattern(&[("locale", to_dim(&fixed))]).unwrap();
        let glob = p.l2_glob("hc1");
        let inside = ks.key(&[("id", to_dim(&free)), ("locale", to_dim(&fixed))]).unwrap();
        let outside = ks.key(&[("id", to_dim(&free)), ("locale", to_dim(&other))]).unwrap();
        let l2 = |k: &str| l2_keys("hc1", k).value;
        prop_assert!(glob_match(glob.as_bytes(), l2(&inside).as_bytes()));
        prop_assert!(p.matches(&inside));
        let same = text(&fixed) == text(&other);
        prop_assert_eq!(glob_match(glob.as_bytes(), l2(&outside).as_bytes()), same);
        prop_assert_eq!(p.matches(&outside), same);
    }

    #[test]
    fn escaped_literals_match_only_themselves(lit in "[a*?\\[\\]\\\\]{0,8}", other in "[a*?\\[\\]\\\\]{0,8}") {
        let g = glob_escape(&lit);
        prop_assert!(glob_match(g.as_bytes(), lit.as_bytes()));
        prop_assert_eq!(glob_match(g.as_bytes(), other.as_bytes()), lit == other);
    }

    #[test]
    fn any_cache_key_maps_back_from_its_value_key(key in "\\PC{0,20}") {
        let k = l2_keys("hc1", &key);
        prop_assert_eq!(cache_key_of("hc1", &k.value), Some(key.as_str()));
        prop_assert!(k.value.starts_with(&k.fence[..k.fence.len() - 1]));
    }
}
