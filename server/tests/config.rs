//! CONFIG GET's patterns (Redis's glob: `*`, `?`, `[...]`, `\x`, without case) and CONFIG SET's
//! names (without case, as in Redis), against the server started as a child process.

mod common;

use common::{multibulk, Raw, Server};
use healcache::settings::{Scope, SETTINGS};
use serde_json::json;

/// Every name CONFIG GET knows, in its order.
fn all_names() -> Vec<String> {
    let healing = SETTINGS.iter().filter(|s| s.scope == Scope::Healing).map(|s| format!("healing.{}", s.name));
    healing.chain(["save".to_string(), "appendonly".to_string()]).collect()
}

/// The names CONFIG GET answers for `patterns` (RESP2: flat name, value pairs), or its error.
fn get(c: &mut Raw, patterns: &[&[u8]]) -> Result<Vec<String>, String> {
    let mut args: Vec<&[u8]> = vec![b"CONFIG", b"GET"];
    args.extend_from_slice(patterns);
    c.send(&multibulk(&args));
    let head = c.line();
    let Some(n) = head.strip_prefix('*') else { return Err(head) };
    let n: usize = n.parse().unwrap();
    let mut names = Vec::new();
    for i in 0..n {
        let item = String::from_utf8(c.bulk().unwrap()).unwrap();
        if i % 2 == 0 {
            names.push(item);
        }
    }
    Ok(names)
}

fn names(c: &mut Raw, pattern: &str) -> Vec<String> {
    get(c, &[pattern.as_bytes()]).unwrap_or_else(|e| panic!("CONFIG GET {pattern:?}: {e}"))
}

fn answers(c: &mut Raw) -> bool {
    c.send(b"PING\r\n");
    c.line() == "+PONG"
}

/// A pattern of many stars is answered at once. The matcher once tried every split of the name
/// at every star: 10 stars took seconds, 20 pinned a worker for good; 60 would take longer
/// than the universe has been around. Stars in a row count as one, and a mismatch backtracks
/// to the last star only, so each name costs at most its length times the pattern's.
#[test]
fn a_pattern_of_many_stars_is_answered_at_once() {
    let s = Server::start(json!({}), &[]);
    let mut c = s.connect();
    let stars = "*".repeat(60);
    assert_eq!(names(&mut c, &format!("{stars}#")), Vec::<String>::new(), "no name has a #");
    let with_v: Vec<String> = all_names().into_iter().filter(|n| n.contains('v')).collect();
    assert_eq!(names(&mut c, &format!("{stars}v{stars}")), with_v);
    // Stars between every letter, and one letter off at the end.
    let spread: String = "healing.sample_rate".chars().map(|ch| format!("*{ch}")).collect();
    assert_eq!(names(&mut c, &spread), ["healing.sample_rate"]);
    assert_eq!(names(&mut c, &format!("{spread}x")), Vec::<String>::new());
    assert!(answers(&mut s.connect()), "another client is served");
    assert!(answers(&mut c));
}

/// A pattern is at most 128 bytes: one of exactly 128 is matched, one of 129 gets an error
/// that names the bound (as does a command with one such pattern among good ones), and the
/// connection goes on.
#[test]
fn a_pattern_of_128_bytes_is_matched_and_one_of_129_refused() {
    let s = Server::start(json!({}), &[]);
    let mut c = s.connect();
    let name = "healing.sample_rate";
    let at = format!("{}{name}", "*".repeat(128 - name.len()));
    assert_eq!(at.len(), 128);
    assert_eq!(names(&mut c, &at), [name]);
    let past = format!("*{at}");
    let err = "-ERR CONFIG GET pattern longer than 128 bytes".to_string();
    assert_eq!(get(&mut c, &[past.as_bytes()]), Err(err.clone()));
    assert_eq!(get(&mut c, &[b"save", past.as_bytes()]), Err(err));
    assert!(answers(&mut c));
}

/// Redis's glob, as its `stringmatchlen` reads it, without case as CONFIG GET reads it there:
/// `?` one byte, `[abc]` one of them, `[a-z]` a range (either way round), `[^...]` none of
/// them, `\x` the byte x itself (inside a class too); a class without its `]` runs to the end
/// of the pattern, and `[]` matches nothing.
#[test]
fn config_get_reads_redis_glob() {
    let s = Server::start(json!({}), &[]);
    let mut c = s.connect();
    let sample = ["healing.sample_rate"];
    let none: [&str; 0] = [];
    let cases: &[(&str, &[&str])] = &[
        ("healing.sample_rate", &sample),
        ("HEALING.SAMPLE_RATE", &sample),
        ("healing.[s]ample_rate", &sample),
        ("healing.[S]AMPLE_rate", &sample),
        ("healing.[xys]ample_rate", &sample),
        ("healing.[a-z]ample_rate", &sample),
        ("healing.[z-a]ample_rate", &sample),
        ("healing.[A-Z]ample_rate", &sample),
        ("healing.[a-r]ample_rate", &none),
        ("healing.[^s]ample_rate", &none),
        ("healing.[^x]ample_rate", &sample),
        ("healing.[^a-r]ample_rate", &sample),
        ("healing.sample[_]rate", &sample),
        ("healing.sample[\\_]rate", &sample),
        ("healing.sample\\_rate", &sample),
        ("healing.sample_rat\\e", &sample),
        ("healing.sample_rat?", &sample),
        ("healing.sample_rate?", &none),
        ("healing.sample_rat[]", &none),
        ("healing.sample_rat[^]", &sample),
        ("healing.sample_rat[e", &sample),
        ("healing.sample_rat[", &none),
        ("healing\\.sample_rate", &sample),
        ("\\*", &none),
        ("sav?", &["save"]),
        ("s*", &["save"]),
        ("*pend*", &["appendonly"]),
        ("[as][pa]*", &["save", "appendonly"]),
    ];
    for (pattern, want) in cases {
        assert_eq!(names(&mut c, pattern), *want, "CONFIG GET {pattern:?}");
    }
    // `*` alone: every name, each once, also with several patterns naming it
    assert_eq!(names(&mut c, "*"), all_names());
    assert_eq!(get(&mut c, &[b"*", b"save"]).unwrap(), all_names());
}

/// CONFIG SET takes a name in any case, as Redis does (and as CONFIG GET does here); the value
/// set is the one CONFIG GET then answers. A name that is no healing setting in any case is
/// still refused, and a refused command changes nothing.
#[test]
fn config_set_names_ignore_case() {
    let s = Server::start(json!({}), &[]);
    let mut c = s.connect();
    let set = |c: &mut Raw, args: &[&[u8]]| {
        let mut all: Vec<&[u8]> = vec![b"CONFIG", b"SET"];
        all.extend_from_slice(args);
        c.send(&multibulk(&all));
        c.line()
    };
    let value = |c: &mut Raw, name: &[u8]| {
        c.send(&multibulk(&[b"CONFIG".as_slice(), b"GET", name]));
        assert_eq!(c.line(), "*2");
        c.bulk().unwrap();
        String::from_utf8(c.bulk().unwrap()).unwrap()
    };
    assert_eq!(set(&mut c, &[b"HEALING.SAMPLE_RATE", b"0.02"]), "+OK");
    assert_eq!(value(&mut c, b"healing.sample_rate"), "0.02");
    assert_eq!(set(&mut c, &[b"Healing.Sample_Rate", b"0.03"]), "+OK");
    assert_eq!(value(&mut c, b"healing.sample_rate"), "0.03");
    // the camelCase and former names the core's table knows, in any case too
    assert_eq!(set(&mut c, &[b"healing.SAMPLERATE", b"0.04"]), "+OK");
    assert_eq!(value(&mut c, b"healing.sample_rate"), "0.04");
    assert_eq!(set(&mut c, &[b"HEALING.VERIFY_INTERVAL_MS", b"4000"]), "+OK");
    assert_eq!(value(&mut c, b"healing.verify_interval"), "4000");

    for bad in [&b"HEALING.NOPE"[..], b"SAMPLE_RATE", b"healing.", b"HEALING_SAMPLE_RATE"] {
        let reply = set(&mut c, &[b"healing.sample_rate", b"0.5", bad, b"1"]);
        let want =
            format!("-ERR Unknown option or number of arguments for CONFIG SET - '{}'", String::from_utf8_lossy(bad));
        assert_eq!(reply, want);
    }
    assert_eq!(value(&mut c, b"healing.sample_rate"), "0.04", "a refused CONFIG SET changes nothing");
}
