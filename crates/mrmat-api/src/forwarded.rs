//! What the outside world sees of a request: the client address, and the scheme and host
//! of this server's public URL. `Forwarded` / `X-Forwarded-*` are believed only from the
//! configured trusted proxies (addresses or CIDR ranges), and only as far as the chain of
//! trusted hops goes: the chain is walked from the right (the hop nearest to us), skipping
//! trusted proxies, and the first untrusted hop is the client. A client may put anything
//! to the left of that; it is never read.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::HttpRequest;
use actix_web::http::header;
use serde::Deserialize;

/// A proxy whose forwarding headers are believed: one address or a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxy {
    /// Whether `addr` is this proxy or inside its range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 peer) as IPv4.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let network = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?,
        );
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(bits) => bits
                .parse::<u8>()
                .ok()
                .filter(|bits| *bits <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Who a request came from, for the access log: an address (kept as one, so it is
/// formatted only when the line is written), or what a trusted proxy called it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Client {
    /// An address.
    Addr(IpAddr),
    /// A name: `unknown` from a proxy, `unix` on a unix socket, `-` when unknown.
    Named(String),
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Addr(addr) => addr.fmt(f),
            Self::Named(name) => f.write_str(name),
        }
    }
}

/// The configured trusted proxies.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    proxies: Vec<TrustedProxy>,
    /// Peers on a unix socket, which has no addresses: its file mode decides who connects.
    unix_peers: bool,
}

/// What a trusted chain says about the original request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    client: Option<String>,
    proto: Option<String>,
    host: Option<String>,
}

impl TrustedProxies {
    /// The proxies `list` names.
    pub(crate) fn new(list: Vec<TrustedProxy>) -> Self {
        Self {
            proxies: list,
            unix_peers: false,
        }
    }

    /// These, and every peer on the unix socket the server listens on.
    pub(crate) fn and_unix_peers(self) -> Self {
        Self {
            unix_peers: true,
            ..self
        }
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.proxies.iter().any(|proxy| proxy.contains(addr))
    }

    fn trusts_text(&self, hop: &str) -> bool {
        parse_node(hop).is_some_and(|addr| self.trusts(addr))
    }

    fn peer_is_trusted(&self, req: &HttpRequest) -> bool {
        match req.peer_addr() {
            Some(peer) => self.trusts(peer.ip()),
            None => self.unix_peers,
        }
    }

    /// The client address for logs.
    pub(crate) fn client_addr(&self, req: &HttpRequest) -> Client {
        let peer = || match req.peer_addr() {
            Some(addr) => Client::Addr(canonical(addr.ip())),
            None if self.unix_peers => Client::Named("unix".to_owned()),
            None => Client::Named("-".to_owned()),
        };
        if !self.peer_is_trusted(req) {
            return peer();
        }
        match self.origin(req).client {
            Some(text) => text.parse().map_or(Client::Named(text), Client::Addr),
            None => peer(),
        }
    }

    /// `scheme://host` of this server as the client addressed it, or `None` when the host
    /// is missing or not a plausible authority.
    pub(crate) fn base_url(&self, req: &HttpRequest) -> Option<String> {
        let own_host = || {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
                .or_else(|| req.uri().authority().map(|a| a.to_string()))
        };
        // No TLS of our own: without a trusted proxy in front the scheme is plain http.
        let (scheme, host) = if self.peer_is_trusted(req) {
            let origin = self.origin(req);
            (
                origin.proto.unwrap_or_else(|| "http".to_owned()),
                origin.host.or_else(own_host)?,
            )
        } else {
            ("http".to_owned(), own_host()?)
        };
        let scheme = scheme.to_ascii_lowercase();
        let scheme_ok = matches!(scheme.as_str(), "http" | "https");
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
            });
        (scheme_ok && host_ok).then(|| format!("{scheme}://{host}"))
    }

    /// Reads `Forwarded` (RFC 7239) when present, else `X-Forwarded-For/-Proto/-Host`.
    fn origin(&self, req: &HttpRequest) -> Origin {
        let forwarded = header_list(req, "forwarded");
        if !forwarded.is_empty() {
            let elements: Vec<Vec<(String, String)>> =
                forwarded.iter().map(|e| forwarded_pairs(e)).collect();
            let value = |element: &[(String, String)], key: &str| {
                element
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let fors: Vec<String> = elements
                .iter()
                .map(|e| value(e, "for").unwrap_or_default())
                .collect();
            let hop = self.client_hop(&fors);
            return Origin {
                client: hop.map(|i| node_text(&fors[i])),
                proto: hop.and_then(|i| value(&elements[i], "proto")),
                host: hop.and_then(|i| value(&elements[i], "host")),
            };
        }
        let fors = header_list(req, "x-forwarded-for");
        let hop = self.client_hop(&fors);
        // Proxies that set (rather than append) proto and host leave one value: the one
        // the nearest proxy saw. Lists as long as the chain are read at the client's hop.
        let aligned = |name: &str| {
            let list = header_list(req, name);
            match hop {
                Some(i) if list.len() == fors.len() => list.get(i).cloned(),
                _ => list.last().cloned(),
            }
        };
        Origin {
            client: hop.map(|i| node_text(&fors[i])),
            proto: aligned("x-forwarded-proto"),
            host: aligned("x-forwarded-host"),
        }
    }

    /// The index of the client in a `for` chain: the rightmost hop that is not a trusted
    /// proxy; the leftmost when all are trusted; `None` for an empty chain.
    fn client_hop(&self, chain: &[String]) -> Option<usize> {
        if chain.is_empty() {
            return None;
        }
        Some(
            chain
                .iter()
                .rposition(|hop| !self.trusts_text(hop))
                .unwrap_or(0),
        )
    }
}

/// Every comma-separated value of every `name` header, trimmed, in order.
fn header_list(req: &HttpRequest, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// `for=1.2.3.4;proto=https` as lower-case keys and unquoted values.
fn forwarded_pairs(element: &str) -> Vec<(String, String)> {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| {
            (
                key.trim().to_ascii_lowercase(),
                value.trim().trim_matches('"').to_owned(),
            )
        })
        .collect()
}

/// The address of a node (`1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`), if it is one.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(addr) = node.parse::<IpAddr>() {
        return Some(canonical(addr));
    }
    if let Ok(socket) = node.parse::<std::net::SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(canonical)
}

/// A node as logged: its address when it is one, else the text (e.g. `unknown`).
fn node_text(node: &str) -> String {
    parse_node(node).map_or_else(
        || {
            node.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect()
        },
        |addr| addr.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const PROXY: &str = "10.0.0.1:4000";

    fn trusting(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|p| p.parse().unwrap()).collect())
    }

    #[test]
    fn cidr_ranges_contain_their_addresses() {
        let range: TrustedProxy = "10.0.0.0/8".parse().unwrap();
        assert!(range.contains("10.200.1.2".parse().unwrap()));
        assert!(!range.contains("11.0.0.1".parse().unwrap()));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        let all: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_ranges() {
        let range: TrustedProxy = "127.0.0.1/32".parse().unwrap();
        assert!(range.contains("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
        assert!("proxy.example".parse::<TrustedProxy>().is_err());
    }

    #[test]
    fn forwarded_headers_from_untrusted_peers_are_ignored() {
        let req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header((header::HOST, "internal:8080"))
            .insert_header(("x-forwarded-proto", "https"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("x-forwarded-for", "192.0.2.66"))
            .to_http_request();
        let none = TrustedProxies::default();
        assert_eq!(none.base_url(&req).as_deref(), Some("http://internal:8080"));
        assert_eq!(none.client_addr(&req).to_string(), "10.0.0.1");
    }

    #[test]
    fn forwarded_headers_from_trusted_proxies_are_used() {
        let req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header((header::HOST, "internal:8080"))
            .insert_header(("x-forwarded-proto", "https"))
            .insert_header(("x-forwarded-host", "api.example"))
            .insert_header(("x-forwarded-for", "192.0.2.7"))
            .to_http_request();
        let trusted = trusting(&["10.0.0.0/24"]);
        assert_eq!(
            trusted.base_url(&req).as_deref(),
            Some("https://api.example")
        );
        assert_eq!(trusted.client_addr(&req).to_string(), "192.0.2.7");
    }

    #[test]
    fn a_spoofed_leftmost_forwarded_for_is_not_the_client() {
        // The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the real peer.
        let req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 192.0.2.7"))
            .to_http_request();
        assert_eq!(
            trusting(&["10.0.0.1"]).client_addr(&req).to_string(),
            "192.0.2.7"
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 192.0.2.7, 10.0.0.2"))
            .to_http_request();
        assert_eq!(
            trusting(&["10.0.0.0/24"]).client_addr(&req).to_string(),
            "192.0.2.7"
        );
    }

    #[test]
    fn rfc_7239_forwarded_is_read_at_the_client_hop() {
        let req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header((
                "forwarded",
                "for=6.6.6.6;proto=http;host=evil.example, for=\"[2001:db8::7]:1234\";proto=https;host=api.example",
            ))
            .to_http_request();
        let trusted = trusting(&["10.0.0.1"]);
        assert_eq!(trusted.client_addr(&req).to_string(), "2001:db8::7");
        assert_eq!(
            trusted.base_url(&req).as_deref(),
            Some("https://api.example")
        );
    }

    #[test]
    fn implausible_hosts_give_no_base_url() {
        let req = TestRequest::default()
            .insert_header((header::HOST, "a b/c"))
            .to_http_request();
        assert_eq!(TrustedProxies::default().base_url(&req), None);
    }
}
