//! URL templates of HTTP sources, checked so that a key stays data: `{key}` may stand only as one
//! whole path segment or one whole query value; a key is percent-encoded as a single segment;
//! empty, `.`, `..` and control-character keys are refused; and the expanded URL must keep the
//! template's scheme, host, port and number of path segments (percent-encoding alone would let
//! `..` climb to the site root, or a key in the host change the host).

use healcache::{ConfigProblem, Error, Result};

const PLACEHOLDER: &str = "{key}";
/// Stands in for `{key}` while the template is parsed: only unreserved characters, so the URL
/// parser keeps it verbatim wherever it stands.
const MARK: &str = "hc0key0mark7f3a";

/// Where `{key}` stands in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    PathSegment,
    QueryValue,
}

/// A URL template such as `https://api.internal/users/{key}`, validated at registration.
///
/// `{key}` may stand only once, as one whole path segment or one whole query value. Keys are
/// percent-encoded as a single segment (every byte outside the unreserved set); keys that are
/// empty, `.`, `..` or hold control characters are refused; the expanded URL is parsed again and
/// must keep the template's scheme, host, port and number of path segments.
#[derive(Debug, Clone)]
pub(crate) struct UrlTemplate {
    template: String,
    scheme: String,
    host: String,
    port: Option<u16>,
    segments: usize,
    slot: Slot,
}

/// A refused template: the `source` setting, with the rule it breaks.
macro_rules! bad_template {
    ($rule:literal) => {
        Error::invalid_config("source", ConfigProblem::Rule(concat!("URL template refused: ", $rule)), None)
    };
}

impl UrlTemplate {
    /// Validates `template`.
    pub(crate) fn parse(template: &str) -> Result<Self> {
        if template.matches(PLACEHOLDER).count() != 1 {
            return Err(bad_template!("`{key}` must appear exactly once"));
        }
        if template.contains(MARK) {
            return Err(bad_template!("reserved marker in template"));
        }
        let marked = template.replace(PLACEHOLDER, MARK);
        let url = url::Url::parse(&marked).map_err(|_| bad_template!("not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad_template!("scheme must be http or https"));
        }
        let host = url.host_str().ok_or_else(|| bad_template!("no host"))?.to_string();
        if host.contains(MARK) || url.username().contains(MARK) || url.password().is_some_and(|p| p.contains(MARK)) {
            return Err(bad_template!("`{key}` may not stand in the host or credentials"));
        }
        if url.fragment().is_some_and(|f| f.contains(MARK)) {
            return Err(bad_template!("`{key}` may not stand in the fragment"));
        }
        let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        let in_path = segments.iter().filter(|s| s.contains(MARK)).count();
        let slot = if in_path == 1 {
            if !segments.contains(&MARK) {
                return Err(bad_template!("`{key}` must be a whole path segment"));
            }
            Slot::PathSegment
        } else {
            let q = url.query().unwrap_or("");
            let whole_value =
                q.split('&').any(|pair| pair.split_once('=').is_some_and(|(k, v)| v == MARK && !k.contains(MARK)));
            if !whole_value {
                return Err(bad_template!("`{key}` must be a whole path segment or a whole query value"));
            }
            Slot::QueryValue
        };
        Ok(UrlTemplate {
            template: template.to_string(),
            scheme: url.scheme().to_string(),
            host,
            port: url.port_or_known_default(),
            segments: segments.len(),
            slot,
        })
    }

    /// The template as given.
    pub(crate) fn as_str(&self) -> &str {
        &self.template
    }

    /// The URL for `key`, or [`Error::InvalidKey`] when the key cannot be a URL segment.
    pub(crate) fn expand(&self, key: &str) -> Result<String> {
        if key.is_empty() || key == "." || key == ".." {
            return Err(Error::InvalidKey { reason: "empty, `.` and `..` keys cannot name a resource" });
        }
        if key.chars().any(char::is_control) {
            return Err(Error::InvalidKey { reason: "keys with control characters are refused" });
        }
        let mut enc = String::with_capacity(key.len() * 3);
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                enc.push(b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        let expanded = self.template.replacen(PLACEHOLDER, &enc, 1);
        let url =
            url::Url::parse(&expanded).map_err(|_| Error::InvalidKey { reason: "the expanded URL does not parse" })?;
        let same = url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == self.port
            && url.path_segments().map_or(0, |s| s.count()) == self.segments;
        if !same {
            return Err(Error::InvalidKey {
                reason: "the expanded URL leaves the template's scheme, host, port or path",
            });
        }
        if self.slot == Slot::QueryValue && !url.query_pairs().any(|(_, v)| v == key) {
            return Err(Error::InvalidKey { reason: "the key does not survive as one query value" });
        }
        Ok(url.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_refused_where_a_key_could_change_the_target() {
        for t in [
            "https://{key}.example.com/x",
            "https://example.com:{key}/x",
            "https://user:{key}@example.com/x",
            "https://example.com/x#{key}",
            "https://example.com/users/pre{key}",
            "https://example.com/users/{key}/and/{key}",
            "https://example.com/users",
            "https://example.com/?{key}=1",
            "https://example.com/?q=a{key}",
            "ftp://example.com/{key}",
            "file:///etc/{key}",
            "not a url {key}",
        ] {
            assert!(UrlTemplate::parse(t).is_err(), "accepted {t}");
        }
        for t in [
            "https://example.com/users/{key}",
            "http://127.0.0.1:8080/v1/{key}/profile",
            "https://e.com/get?id={key}&x=1",
        ] {
            assert!(UrlTemplate::parse(t).is_ok(), "refused {t}");
        }
    }

    #[test]
    fn hostile_keys_stay_one_segment_or_are_refused() {
        let t = UrlTemplate::parse("https://api.internal/users/{key}/profile").unwrap();
        for k in ["", ".", "..", "a\nb", "a\0b", "\u{7f}", "tab\tkey", "\u{85}nel"] {
            assert!(matches!(t.expand(k), Err(Error::InvalidKey { .. })), "accepted {k:?}");
        }
        let cases = [
            ("42", "https://api.internal/users/42/profile"),
            ("../admin", "https://api.internal/users/..%2Fadmin/profile"),
            ("%2E%2E", "https://api.internal/users/%252E%252E/profile"),
            ("a/b?c#d", "https://api.internal/users/a%2Fb%3Fc%23d/profile"),
            ("@evil.com", "https://api.internal/users/%40evil.com/profile"),
            ("ключ", "https://api.internal/users/%D0%BA%D0%BB%D1%8E%D1%87/profile"),
            ("...", "https://api.internal/users/.../profile"),
            ("a b", "https://api.internal/users/a%20b/profile"),
        ];
        for (k, want) in cases {
            assert_eq!(t.expand(k).unwrap(), want, "key {k:?}");
        }
        let q = UrlTemplate::parse("http://127.0.0.1:9/get?id={key}&v=1").unwrap();
        assert_eq!(q.expand("a&b=c").unwrap(), "http://127.0.0.1:9/get?id=a%26b%3Dc&v=1");
    }
}
