//! The server's settings: a JSON file (`--config`) with `server`, `cache` and `healing`
//! sections, then the command line over it.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use healcache::{Config, HealingConfig};
use serde::Deserialize;

use crate::resp::Limits;

/// A password: compared in constant time, never shown by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// Whether `given` is the password. The time taken depends on the length of `given` only:
    /// neither where the two differ nor the password's length shows.
    pub fn matches(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let secret = self.0.as_bytes();
        if secret.is_empty() {
            return given.is_empty();
        }
        let mut diff = u8::from(secret.len() != given.len());
        for (i, b) in given.iter().enumerate() {
            diff |= std::hint::black_box(secret[i % secret.len()] ^ b);
        }
        diff.ct_eq(&0).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Limits before AUTH: a client that has not proven anything gets little (10 arguments, 16 KiB
/// per bulk, a 1 MiB query buffer, 64 KiB of replies held).
pub const PRE_AUTH: Limits = Limits { max_args: 10, max_bulk: 16 * 1024, max_buffer: 1 << 20, unauthenticated: true };
/// Replies held for a client before AUTH.
pub const PRE_AUTH_OUTPUT: usize = 64 * 1024;

/// Most arguments `max_args` may allow: Redis 6's fixed multibulk limit. The parser makes room
/// for arguments as they arrive, so this bounds what a config can ask for, not memory.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest bulk `max_bulk` may allow: 512 MiB, Redis's `proto-max-bulk-len` default.
pub const MAX_BULK: usize = 512 << 20;

/// Longest timeout accepted, in ms (a year): deadlines are computed by adding it to the time now.
const MAX_TIMEOUT_MS: u64 = 365 * 24 * 3600 * 1000;

/// The `server` section. Every field documents its default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// TCP port. Defaults to: 6380.
    pub port: u16,
    /// Address to listen on; anything but loopback needs `requirepass`. Defaults to: 127.0.0.1.
    pub bind: String,
    /// The password of the `default` user; none: every client is authenticated. Defaults to: none.
    pub requirepass: Option<Secret>,
    /// Port of the Prometheus `/metrics` endpoint on 127.0.0.1; none: no endpoint. Defaults to: none.
    pub metrics_port: Option<u16>,
    /// Hosts (`host` or `host:port`) that `CONSISTENCY SOURCE` templates may name. Fixed at
    /// startup: it decides where the server sends HTTP requests. Defaults to: none.
    pub source_allow: Vec<String>,
    /// Most connected clients. Defaults to: 256.
    pub max_clients: usize,
    /// A client that completes no command for this long is disconnected, in ms. Defaults to: 300,000.
    pub idle_timeout_ms: u64,
    /// A command must arrive whole within this long of its first byte, in ms. Defaults to: 30,000.
    pub request_timeout_ms: u64,
    /// Replies held for a client may take this long to drain, in ms, else it is disconnected.
    /// Defaults to: 10,000.
    pub output_timeout_ms: u64,
    /// Most arguments in one command after AUTH. Defaults to: 1,024.
    pub max_args: usize,
    /// Longest bulk argument after AUTH, in bytes. Defaults to: 8 MiB.
    pub max_bulk: usize,
    /// Most bytes of one command plus unparsed input after AUTH. Defaults to: 64 MiB.
    pub max_query_buffer: usize,
    /// Replies held for a client after AUTH before they must drain, in bytes. Defaults to: 16 MiB.
    pub output_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 6380,
            bind: "127.0.0.1".into(),
            requirepass: None,
            metrics_port: None,
            source_allow: Vec::new(),
            max_clients: 256,
            idle_timeout_ms: 300_000,
            request_timeout_ms: 30_000,
            output_timeout_ms: 10_000,
            max_args: 1024,
            max_bulk: 8 << 20,
            max_query_buffer: 64 << 20,
            output_limit: 16 << 20,
        }
    }
}

impl ServerConfig {
    /// The parser limits of a client, before or after AUTH.
    pub fn limits(&self, authenticated: bool) -> Limits {
        if authenticated {
            Limits {
                max_args: self.max_args,
                max_bulk: self.max_bulk,
                max_buffer: self.max_query_buffer,
                unauthenticated: false,
            }
        } else {
            PRE_AUTH
        }
    }

    /// Replies held for a client before they must drain.
    pub fn output_limit(&self, authenticated: bool) -> usize {
        if authenticated {
            self.output_limit
        } else {
            PRE_AUTH_OUTPUT
        }
    }

    /// See the field.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// See the field.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// See the field.
    pub fn output_timeout(&self) -> Duration {
        Duration::from_millis(self.output_timeout_ms)
    }

    /// The address to listen on; refuses a non-loopback address without a password (a cache
    /// open to the network without one is how Redis servers got taken over).
    pub fn bind_addr(&self) -> Result<IpAddr, String> {
        let ip: IpAddr = match self.bind.as_str() {
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            other => other.parse().map_err(|_| format!("--bind: not an IP address: {other:?}"))?,
        };
        if self.requirepass.as_ref().is_some_and(|p| p.0.is_empty()) {
            return Err("requirepass must not be empty".into());
        }
        if !ip.is_loopback() && self.requirepass.is_none() {
            return Err(format!("refusing to listen on {ip} without --requirepass (only loopback may go without)"));
        }
        let positive = [
            ("max_clients", self.max_clients as u64),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("output_timeout_ms", self.output_timeout_ms),
            ("max_args", self.max_args as u64),
            ("max_bulk", self.max_bulk as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be above zero"));
        }
        if let Some((name, _)) = positive[1..4].iter().find(|(_, v)| *v > MAX_TIMEOUT_MS) {
            return Err(format!("{name} must be at most {MAX_TIMEOUT_MS} (a year)"));
        }
        if self.max_args > MAX_ARGS {
            return Err(format!("max_args must be at most {MAX_ARGS}"));
        }
        if self.max_bulk > MAX_BULK {
            return Err(format!("max_bulk must be at most {MAX_BULK} (512 MiB)"));
        }
        // checked, so no max_bulk can wrap past the rule
        let bulk_and_crlf = self.max_bulk.checked_add(2);
        if bulk_and_crlf.is_none_or(|least| self.max_query_buffer < least) || self.output_limit < PRE_AUTH_OUTPUT {
            return Err("max_query_buffer must be at least max_bulk + 2 bytes, output_limit at least 64 KiB".into());
        }
        Ok(ip)
    }

    /// Whether a `CONSISTENCY SOURCE` template may send requests to `host` (and `port`). An
    /// IPv6 host may come with or without its URL brackets; entries name one as `[::1]` or
    /// `[::1]:port`, or bare as `::1` (no port then: its colons would be ambiguous).
    pub fn source_allowed(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let v6 = host.parse::<Ipv6Addr>().ok();
        self.source_allow.iter().any(|entry| {
            let (h, p) = split_host_port(entry);
            let same_host = match (h.parse::<Ipv6Addr>(), v6) {
                // one address has many spellings (`::1`, `0:0::1`)
                (Ok(a), Some(b)) => a == b,
                _ => h.eq_ignore_ascii_case(host),
            };
            same_host && p.is_none_or(|p| port == Some(p))
        })
    }
}

/// An allowlist entry's host (without IPv6 brackets) and port, if it names one: `host`,
/// `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address (its colons are no port).
fn split_host_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            match tail.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(p)) => return (h, Some(p)),
                None if tail.is_empty() => return (h, None),
                // anything else after `]` names no host a URL can have
                _ => return (entry, None),
            }
        }
    }
    if entry.parse::<Ipv6Addr>().is_ok() {
        return (entry, None);
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => match p.parse::<u16>() {
            Ok(p) => (h, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// Everything the server starts from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Listening, limits, security.
    pub server: ServerConfig,
    /// The cache (the core's settings; `max_entries` defaults to 1,000,000 here).
    pub cache: Option<Config>,
    /// Self-healing (the core's settings; enabled here by default).
    pub healing: Option<HealingConfig>,
}

impl Settings {
    /// The cache settings: the file's, or the server's defaults.
    pub fn cache_config(&self) -> Config {
        self.cache.clone().unwrap_or_else(|| Config { max_entries: 1_000_000.0, ..Config::default() })
    }

    /// The healing settings: the file's, or the core's defaults with healing on.
    pub fn healing_config(&self) -> HealingConfig {
        self.healing.clone().unwrap_or_else(|| HealingConfig { enabled: true, ..HealingConfig::default() })
    }
}

const USAGE: &str = "usage: healcache-server [--port 6380] [--bind 127.0.0.1] [--requirepass PW] [--config file.json] \
[--metrics-port P] [--source-allow host[:port],...]";

/// Reads the command line (and the `--config` file it names).
pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Settings, String> {
    let mut args = args.into_iter();
    let mut flags: Vec<(String, String)> = Vec::new();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        flags.push((flag, value));
    }
    let mut settings = match flags.iter().find(|(f, _)| f == "--config") {
        Some((_, path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--config {path}: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("--config {path}: {e}"))?
        }
        None => Settings::default(),
    };
    let s = &mut settings.server;
    for (flag, value) in flags {
        let port = || value.parse::<u16>().map_err(|_| format!("{flag}: not a port: {value:?}"));
        match flag.as_str() {
            "--config" => {}
            "--port" => s.port = port()?,
            "--bind" => s.bind = value.clone(),
            "--requirepass" => s.requirepass = Some(Secret::new(value)),
            "--metrics-port" => s.metrics_port = Some(port()?),
            "--source-allow" => {
                s.source_allow = value.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect()
            }
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_line_and_bind_rules() {
        let s = from_args(args(&["--port", "7000", "--source-allow", "127.0.0.1:8080, api.internal"])).unwrap();
        assert_eq!(s.server.port, 7000);
        assert!(s.server.source_allowed("127.0.0.1", Some(8080)));
        assert!(!s.server.source_allowed("127.0.0.1", Some(8081)));
        assert!(s.server.source_allowed("API.internal", None));
        assert!(s.server.bind_addr().unwrap().is_loopback());
        let open = from_args(args(&["--bind", "0.0.0.0"])).unwrap();
        assert!(open.server.bind_addr().unwrap_err().contains("refusing"));
        let open = from_args(args(&["--bind", "0.0.0.0", "--requirepass", "pw"])).unwrap();
        assert!(open.server.bind_addr().is_ok());
        let empty = from_args(args(&["--bind", "0.0.0.0", "--requirepass", ""])).unwrap();
        assert!(empty.server.bind_addr().unwrap_err().contains("empty"));
        assert!(from_args(args(&["--nope", "1"])).is_err());
        let forever = ServerConfig { idle_timeout_ms: u64::MAX, ..ServerConfig::default() };
        assert!(forever.bind_addr().unwrap_err().contains("idle_timeout_ms"));
    }

    #[test]
    fn password_is_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter3"));
        assert!(!s.matches(b"hunter2hunter2"), "a repetition of the password is not it");
        assert!(!s.matches(b"hunter"));
        assert!(!s.matches(b""));
        assert!(Secret::new("").matches(b""));
    }
}
