//! Any template and any key: parsing and expansion never panic, and an accepted expansion keeps
//! the template's scheme, host and port.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (template, key) = text.split_once('\n').unwrap_or((&text, "k"));
    let Ok(url) = healcache_http::fuzzing::expand(template, key) else { return };
    let base = url::Url::parse(&template.replacen("{key}", "k", 1)).expect("an accepted template parses");
    let got = url::Url::parse(&url).expect("an accepted expansion parses");
    assert_eq!((got.scheme(), got.host_str(), got.port_or_known_default()), (base.scheme(), base.host_str(), base.port_or_known_default()));
});
