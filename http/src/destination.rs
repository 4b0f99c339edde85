//! Which addresses an HTTP source may reach.
//!
//! A source template is configuration, but its host resolves at request time, and a name that
//! resolves to the metadata service (169.254.169.254), to loopback or to the private network is
//! the classic server-side request forgery. So private, loopback, link-local and other
//! non-public destinations are refused by default, after DNS resolution, unless the options allow
//! them for named hosts or for all. The check sits in the resolver that reqwest connects through:
//! it connects only to the addresses returned here, so a name cannot resolve to a public address
//! when checked and to a private one when connected (DNS rebinding). IP-literal hosts never reach
//! a resolver and are checked before the request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which hosts of an HTTP source may resolve to non-public addresses (loopback, private ranges,
/// link-local, unique-local, CGNAT, multicast, unspecified, reserved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowPrivate {
    /// Only public addresses. The default.
    #[default]
    No,
    /// These hosts (names or IP literals, compared without case) may be non-public; every other
    /// host must resolve to public addresses.
    Hosts(Arc<[String]>),
    /// Any destination (for sources on a private network or on this machine).
    All,
}

impl AllowPrivate {
    /// Allows the listed hosts.
    pub fn hosts<S: AsRef<str>>(hosts: impl IntoIterator<Item = S>) -> Self {
        AllowPrivate::Hosts(
            hosts.into_iter().map(|h| h.as_ref().trim_matches(['[', ']']).to_ascii_lowercase()).collect(),
        )
    }

    /// Whether `host` (as in the URL, without port) may reach non-public addresses.
    pub(crate) fn allows(&self, host: &str) -> bool {
        match self {
            AllowPrivate::No => false,
            AllowPrivate::All => true,
            AllowPrivate::Hosts(list) => {
                let host = host.trim_matches(['[', ']']);
                list.iter().any(|h| h.eq_ignore_ascii_case(host))
            }
        }
    }
}

/// Whether `ip` is anything but a public unicast address.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_non_public(v4),
        IpAddr::V6(v6) => v6_non_public(v6),
    }
}

fn v4_non_public(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn v6_non_public(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Addresses that carry an IPv4 address are judged by it: mapped (::ffff:a.b.c.d),
    // compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_non_public(v4);
    }
    if s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
        return v4_non_public(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return v4_non_public(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[0] == 0x2002 {
        return v4_non_public(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
}

/// Checks an IP-literal host before a request (such hosts are not resolved).
pub(crate) fn literal_allowed(host: &str, allow: &AllowPrivate) -> bool {
    match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => !is_non_public(ip) || allow.allows(host),
        Err(_) => true, // a name: the resolver checks what it resolves to
    }
}

/// The resolver every request of a source connects through.
pub(crate) struct Guard {
    pub allow: AllowPrivate,
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allowed = self.allow.allows(&host);
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = all.into_iter().filter(|a| allowed || !is_non_public(a.ip())).collect();
            if ok.is_empty() {
                return Err("destination refused: the host resolves only to non-public addresses".into());
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(is_non_public(a.parse().unwrap()), "{a} must be refused");
        }
        for a in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "172.32.0.1", "100.128.0.1"] {
            assert!(!is_non_public(a.parse().unwrap()), "{a} is public");
        }
    }

    #[test]
    fn allow_lists_compare_hosts_without_case_or_brackets() {
        let a = AllowPrivate::hosts(["API.internal", "[::1]"]);
        assert!(a.allows("api.INTERNAL") && a.allows("::1") && a.allows("[::1]"));
        assert!(!a.allows("other.internal") && !AllowPrivate::No.allows("api.internal"));
        assert!(AllowPrivate::All.allows("anything"));
        assert!(!literal_allowed("127.0.0.1", &AllowPrivate::No));
        assert!(!literal_allowed("[::1]", &AllowPrivate::No));
        assert!(literal_allowed("[::1]", &a));
        assert!(literal_allowed("8.8.8.8", &AllowPrivate::No));
        assert!(literal_allowed("example.com", &AllowPrivate::No));
    }
}
