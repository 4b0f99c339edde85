//! HTTP sources of truth for healcache's self-healing, in native builds.
//!
//! [`HttpSource`] answers for a key by a `GET` of a URL template such as
//! `https://api.internal/users/{key}`. The template and every expanded URL are checked by
//! `UrlTemplate` (`template.rs`): a key is always one percent-encoded path segment or query
//! value, never URL syntax, and a key that cannot be one is refused
//! ([`SourceError::Refused`]: the healer skips it, it is neither drift nor a source failure).
//!
//! Answers: a 2xx status gives the body as the value, 404 and 410 mean "not found", and anything
//! else is [`SourceError::Unavailable`]: other statuses, redirects (never followed), connection
//! errors, and bodies larger than [`HttpOptions::max_body_bytes`] (read no further than the cap).
//! No answer within [`HttpOptions::timeout`] is [`SourceError::Timeout`]. Proxies from the
//! environment are ignored: the request goes to the template's host and nowhere else, and only
//! to a public address unless [`HttpOptions::allow_private`] says otherwise (see
//! [`AllowPrivate`]); a refused destination is an unavailable answer, counted as a source
//! failure. `Debug` output shows templates with their password and query values redacted.
//!
//! Requests run on the process's I/O runtime (`healcache-rt`: one tokio worker thread, started
//! at the first request and rebuilt in a forked child), so the futures this crate returns work under any executor (the Python binding's loop
//! driver, napi's tokio runtime, `futures::executor::block_on`). Dropping such a future aborts
//! its request.

mod destination;

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use healcache::{ConfigProblem, Error, Result, Source, SourceAnswer, SourceError};

mod template;
use template::UrlTemplate;

pub use destination::{is_non_public, AllowPrivate};

/// Entry points for the fuzz target in `http/fuzz` (not part of the API).
#[doc(hidden)]
pub mod fuzzing {
    /// Parses `template` and expands `key` in it, as a source does before each request.
    pub fn expand(template: &str, key: &str) -> healcache::Result<String> {
        crate::template::UrlTemplate::parse(template)?.expand(key)
    }
}

/// What a source fetch gives: the value, or why there is none.
pub type Answer<V> = std::result::Result<SourceAnswer<V>, SourceError>;

/// Limits of one HTTP source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// The whole request (connect, headers, body) must finish within this; default 2 s
    /// (healcache's `healing.source_timeout_ms`).
    pub timeout: Duration,
    /// Bodies larger than this are an unavailable answer; default 1 MiB.
    pub max_body_bytes: usize,
    /// Which hosts may resolve to loopback, private, link-local or other non-public addresses;
    /// default none.
    pub allow_private: AllowPrivate,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions { timeout: Duration::from_secs(2), max_body_bytes: 1 << 20, allow_private: AllowPrivate::No }
    }
}

impl HttpOptions {
    /// The defaults for a source registered with a [`healcache::Healer`] whose cache has a
    /// timer: the healer ends every request by the *current* `healing.source_timeout`, so a
    /// change of it applies to sources registered before; the client's own timeout is then
    /// only a backstop that is never the shorter bound (the longest duration healcache takes).
    pub fn bounded_by_healer() -> Self {
        HttpOptions { timeout: Duration::from_millis(healcache::MAX_DURATION_MS as u64), ..HttpOptions::default() }
    }
}

/// A source of truth served over HTTP(S), answering with the response body's bytes.
#[derive(Clone)]
pub struct HttpSource {
    inner: Arc<Inner>,
}

struct Inner {
    template: UrlTemplate,
    client: reqwest::Client,
    max_body_bytes: usize,
    allow_private: AllowPrivate,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("template", &redact(self.inner.template.as_str()))
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish()
    }
}

/// `url` with the password of its userinfo and every query value but `{key}` replaced by `***`:
/// templates carry credentials (`https://user:pass@host/...?token=...`) that logs must not.
pub fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match head.split_once("://") {
        Some((scheme, rest)) => {
            let auth_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(auth_end);
            out.push_str(scheme);
            out.push_str("://");
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                    out.push_str(user);
                    if userinfo.contains(':') {
                        out.push_str(":***");
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(head),
    }
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if v != "{key}" && !v.is_empty() => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

fn invalid(rule: &'static str) -> Error {
    Error::invalid_config("source", ConfigProblem::Rule(rule), None)
}

impl HttpSource {
    /// A source for `template`; [`Error::InvalidConfig`] when the template breaks the rules or an
    /// option is out of range (zero timeout or body cap).
    pub fn new(template: &str, options: HttpOptions) -> Result<Self> {
        let template = UrlTemplate::parse(template)?;
        if options.timeout.is_zero() {
            return Err(invalid("HTTP source timeout must be above zero"));
        }
        if options.max_body_bytes == 0 {
            // a per-source option, named as the hosts spell it (`max_body_bytes`, `maxBodyBytes`)
            return Err(Error::invalid_config("max_body_bytes", ConfigProblem::NotPositive, Some(0.0)));
        }
        // reqwest is built without a rustls crypto provider (see Cargo.toml): use the process's
        // default if the host installed one, ring otherwise.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .user_agent(concat!("healcache/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(destination::Guard { allow: options.allow_private.clone() })
            .build()
            .map_err(|_| invalid("HTTP client cannot be built"))?;
        Ok(HttpSource {
            inner: Arc::new(Inner {
                template,
                client,
                max_body_bytes: options.max_body_bytes,
                allow_private: options.allow_private,
            }),
        })
    }

    /// The template as given.
    pub fn template(&self) -> &str {
        self.inner.template.as_str()
    }

    /// The source's answer for `key`, as the response body's bytes.
    pub fn fetch_bytes(&self, key: &str) -> BoxFuture<'static, Answer<Vec<u8>>> {
        let url = match self.inner.template.expand(key) {
            Ok(url) => url,
            Err(_) => return futures::future::ready(Err(SourceError::Refused)).boxed(),
        };
        let inner = Arc::clone(&self.inner);
        let task = healcache_rt::spawn(async move { get(&inner, &url).await });
        task.map(|joined| joined.unwrap_or(Err(SourceError::Unavailable))).boxed()
    }

    /// This source with each body turned into a `V` by `convert` (e.g. decoded as JSON); an
    /// `Err` from `convert` is the source's answer.
    pub fn map<V, F>(self, convert: F) -> Mapped<F>
    where
        F: Fn(Vec<u8>) -> std::result::Result<V, SourceError> + Send + Sync + 'static,
    {
        Mapped { source: self, convert: Arc::new(convert) }
    }
}

impl Source<Vec<u8>> for HttpSource {
    fn fetch(&self, key: &str) -> BoxFuture<'static, Answer<Vec<u8>>> {
        self.fetch_bytes(key)
    }
}

/// An [`HttpSource`] whose bodies are converted to `V` (see [`HttpSource::map`]).
pub struct Mapped<F> {
    source: HttpSource,
    convert: Arc<F>,
}

impl<V, F> Source<V> for Mapped<F>
where
    V: Send + 'static,
    F: Fn(Vec<u8>) -> std::result::Result<V, SourceError> + Send + Sync + 'static,
{
    fn fetch(&self, key: &str) -> BoxFuture<'static, Answer<V>> {
        let convert = Arc::clone(&self.convert);
        self.source
            .fetch_bytes(key)
            .map(move |a| match a? {
                SourceAnswer::Value(body) => convert(body).map(SourceAnswer::Value),
                SourceAnswer::NotFound => Ok(SourceAnswer::NotFound),
            })
            .boxed()
    }
}

fn failure(e: &reqwest::Error) -> SourceError {
    if e.is_timeout() {
        SourceError::Timeout
    } else {
        SourceError::Unavailable
    }
}

async fn get(inner: &Inner, url: &str) -> Answer<Vec<u8>> {
    // IP-literal hosts are not resolved, so the resolver's check cannot see them.
    let host_ok = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| destination::literal_allowed(h, &inner.allow_private)))
        .unwrap_or(false);
    if !host_ok {
        return Err(SourceError::Unavailable);
    }
    let mut resp = inner.client.get(url).send().await.map_err(|e| failure(&e))?;
    let status = resp.status().as_u16();
    if status == 404 || status == 410 {
        return Ok(SourceAnswer::NotFound);
    }
    if !resp.status().is_success() {
        return Err(SourceError::Unavailable);
    }
    let cap = inner.max_body_bytes;
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(SourceError::Unavailable);
    }
    let mut body = Vec::with_capacity(resp.content_length().map_or(0, |n| n as usize));
    while let Some(chunk) = resp.chunk().await.map_err(|e| failure(&e))? {
        if body.len() + chunk.len() > cap {
            return Err(SourceError::Unavailable);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(SourceAnswer::Value(body))
}
