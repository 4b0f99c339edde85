//! Sources of truth for self-healing: the [`Source`] trait, a callback adapter, and URL templates
//! checked by the rules of PROMISES.md ("URL-template sources").

use std::future::Future;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

use crate::error::{ConfigProblem, Error, Result};

/// What a source says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceAnswer<V> {
    /// The current value.
    Value(V),
    /// The key does not exist.
    NotFound,
}

/// A source could not answer: the sample is skipped, never counted as drift.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source failed (connection refused, 5xx, a callback that raised).
    #[error("source unavailable")]
    Unavailable,
    /// The source did not answer within `healing.source_timeout_ms`.
    #[error("source timed out")]
    Timeout,
    /// The key cannot be asked of this source (e.g. a URL template refuses it, PROMISES.md): the
    /// sample is skipped and counts neither as drift nor as a source failure.
    #[error("key refused by the source")]
    Refused,
}

/// A source of truth for the keys of one prefix.
pub trait Source<V>: Send + Sync + 'static {
    /// The source's current answer for `key`.
    fn fetch(&self, key: &str) -> BoxFuture<'static, std::result::Result<SourceAnswer<V>, SourceError>>;
}

/// A [`Source`] from an async function (how bindings wrap host callbacks).
pub struct FnSource<F>(pub F);

impl<V, F, Fut> Source<V> for FnSource<F>
where
    F: Fn(&str) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<SourceAnswer<V>, SourceError>> + Send + 'static,
{
    fn fetch(&self, key: &str) -> BoxFuture<'static, std::result::Result<SourceAnswer<V>, SourceError>> {
        (self.0)(key).boxed()
    }
}

impl<V, S: Source<V> + ?Sized> Source<V> for Arc<S> {
    fn fetch(&self, key: &str) -> BoxFuture<'static, std::result::Result<SourceAnswer<V>, SourceError>> {
        (**self).fetch(key)
    }
}

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
pub struct UrlTemplate {
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
    pub fn parse(template: &str) -> Result<Self> {
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
    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// The URL for `key`, or [`Error::InvalidKey`] when the key cannot be a URL segment.
    pub fn expand(&self, key: &str) -> Result<String> {
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
