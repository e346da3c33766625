//! What the outside world sees of a request: the client address, and the scheme and host
//! of this server's public URL. Forwarding headers are believed only from the configured
//! trusted proxies (addresses or CIDR ranges, or peers on the unix socket), only from the
//! one header family the operator names (`--forwarded-headers`: RFC 7239 `Forwarded`, or
//! `X-Forwarded-For/-Proto/-Host`), and only as far as the chain of trusted hops goes:
//! the chain is walked from the right (the hop nearest to us), skipping trusted proxies,
//! and the first untrusted hop is the client. A client may put anything to the left of
//! that; it is never read.
//!
//! One family only: a proxy replaces (or appends to) the headers it speaks and passes the
//! others on untouched, so a header of the other family is whatever the client wrote.
//! Every value is checked before it is used: `Forwarded` is parsed to RFC 7239's grammar
//! (quoted strings with their commas, semicolons and escapes; a malformed header is not
//! believed at all), a host must be a host[:port] and a scheme http or https.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::HttpRequest;
use actix_web::http::header;
use ipnet::IpNet;
use serde::Deserialize;

/// A proxy whose forwarding headers are believed: one address or a CIDR range. The range
/// arithmetic is `ipnet`'s; what is parsed here is what `ipnet` would take differently: an
/// IPv4-mapped IPv6 address is the IPv4 one (a dual-stack socket shows IPv4 peers so), a
/// bare address is a range of one, and the messages name the option's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

impl TrustedProxy {
    /// Whether `addr` is this proxy or inside its range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&canonical(addr))
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
        let bad_prefix = || format!("{text:?}: the prefix length must be 0 to {max}");
        let prefix = match prefix {
            None => max,
            Some(bits) => bits.parse::<u8>().map_err(|_| bad_prefix())?,
        };
        IpNet::new(network, prefix)
            .map(Self)
            .map_err(|_| bad_prefix())
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

/// Which forwarding headers are read from a trusted proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeaders {
    /// RFC 7239 `Forwarded` only.
    Forwarded,
    /// `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` only: what nginx,
    /// HAProxy, Envoy, Traefik and the cloud load balancers set, so the default.
    #[default]
    XForwarded,
}

impl FromStr for ForwardedHeaders {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "forwarded" => Ok(Self::Forwarded),
            "x-forwarded" => Ok(Self::XForwarded),
            _ => Err(format!(
                "{text:?} is not a header family: use forwarded (RFC 7239) or x-forwarded (X-Forwarded-For/-Proto/-Host)"
            )),
        }
    }
}

impl std::fmt::Display for ForwardedHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Forwarded => "forwarded",
            Self::XForwarded => "x-forwarded",
        })
    }
}

impl<'de> Deserialize<'de> for ForwardedHeaders {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The configured trusted proxies.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    proxies: Vec<TrustedProxy>,
    /// Peers on a unix socket, which has no addresses: its file mode decides who connects.
    unix_peers: bool,
    /// The one header family read from them.
    headers: ForwardedHeaders,
}

/// What a trusted chain says about the original request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Origin {
    client: Option<Node>,
    proto: Option<String>,
    host: Option<String>,
}

impl TrustedProxies {
    /// The proxies `list` names.
    pub(crate) fn new(list: Vec<TrustedProxy>) -> Self {
        Self {
            proxies: list,
            ..Self::default()
        }
    }

    /// These, and every peer on the unix socket the server listens on.
    pub(crate) fn and_unix_peers(self) -> Self {
        Self {
            unix_peers: true,
            ..self
        }
    }

    /// These, read through `headers` only.
    pub(crate) fn reading(self, headers: ForwardedHeaders) -> Self {
        Self { headers, ..self }
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.proxies.iter().any(|proxy| proxy.contains(addr))
    }

    fn trusts_node(&self, node: &Node) -> bool {
        matches!(node, Node::Addr(addr) if self.trusts(*addr))
    }

    /// Whether the peer itself is one of these proxies (or on the unix socket).
    pub(crate) fn peer_is_trusted(&self, req: &HttpRequest) -> bool {
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
            Some(Node::Addr(addr)) => Client::Addr(addr),
            Some(Node::Named(name)) => Client::Named(name),
            None => peer(),
        }
    }

    /// `scheme://host` of this server as the client addressed it, or `None` when the host
    /// is missing or not a host[:port], or the scheme is not http or https.
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
        (scheme_ok && is_authority(&host)).then(|| format!("{scheme}://{host}"))
    }

    /// What the configured header family says; nothing from the other family.
    fn origin(&self, req: &HttpRequest) -> Origin {
        match self.headers {
            ForwardedHeaders::Forwarded => self.origin_from_forwarded(req),
            ForwardedHeaders::XForwarded => self.origin_from_x_forwarded(req),
        }
    }

    /// RFC 7239 `Forwarded`, read at the client's hop. A header that does not parse is not
    /// believed at all: where a client's text ends and the proxy's begins is then unknown.
    fn origin_from_forwarded(&self, req: &HttpRequest) -> Origin {
        // A line that is not visible ASCII is not believed either (to_str refuses it).
        let values: Option<Vec<&str>> = req
            .headers()
            .get_all("forwarded")
            .map(|value| value.to_str().ok())
            .collect();
        let Some(values) = values else {
            return Origin::default();
        };
        if values.is_empty() {
            return Origin::default();
        }
        // Each field line on its own: a quoted string never spans two lines, so a
        // client's unterminated quote cannot swallow the element a proxy appends.
        let parsed: Option<Vec<Vec<Element>>> =
            values.iter().map(|value| parse_forwarded(value)).collect();
        let Some(elements) = parsed.map(|lines| lines.into_iter().flatten().collect::<Vec<_>>())
        else {
            log::debug!("a trusted proxy sent a Forwarded header that does not parse");
            return Origin::default();
        };
        let fors: Vec<Node> = elements
            .iter()
            .map(|element| Node::parse(element.get("for").unwrap_or("")))
            .collect();
        let Some(hop) = self.client_hop(&fors) else {
            return Origin::default();
        };
        Origin {
            client: fors.get(hop).cloned(),
            proto: elements
                .get(hop)
                .and_then(|e| e.get("proto"))
                .map(str::to_owned),
            host: elements
                .get(hop)
                .and_then(|e| e.get("host"))
                .map(str::to_owned),
        }
    }

    /// `X-Forwarded-For`, with `-Proto` and `-Host`.
    fn origin_from_x_forwarded(&self, req: &HttpRequest) -> Origin {
        let fors: Vec<Node> = header_list(req, "x-forwarded-for")
            .iter()
            .map(|hop| Node::parse(hop))
            .collect();
        let hop = self.client_hop(&fors);
        // A proxy that sets (rather than appends) proto and host leaves one value: the
        // one the nearest proxy saw. A list as long as the chain is read at the client's
        // hop. Any other list does not line up with the chain (a host or scheme never
        // holds a comma, so a client wrote part of it): it is not believed.
        let aligned = |name: &str| {
            let list = header_list(req, name);
            match (list.len(), hop) {
                (1, _) => list.into_iter().next(),
                (n, Some(i)) if n == fors.len() => list.into_iter().nth(i),
                _ => None,
            }
        };
        Origin {
            client: hop.and_then(|i| fors.get(i).cloned()),
            proto: aligned("x-forwarded-proto"),
            host: aligned("x-forwarded-host"),
        }
    }

    /// The index of the client in a `for` chain: the rightmost hop that is not a trusted
    /// proxy; the leftmost when all are trusted; `None` for an empty chain.
    fn client_hop(&self, chain: &[Node]) -> Option<usize> {
        if chain.is_empty() {
            return None;
        }
        Some(
            chain
                .iter()
                .rposition(|hop| !self.trusts_node(hop))
                .unwrap_or(0),
        )
    }
}

/// Every comma-separated value of every `name` header, trimmed, in order. (For the
/// X-Forwarded-* headers, whose values never hold a comma or a quote.)
fn header_list(req: &HttpRequest, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// One `Forwarded` element: its parameters, keys in lower case, values unquoted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Element(Vec<(String, String)>);

impl Element {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// RFC 7239 section 4: `Forwarded = 1#forwarded-element`, `forwarded-element =
/// [ forwarded-pair ] *( ";" [ forwarded-pair ] )`, `forwarded-pair = token "=" value`,
/// `value = token / quoted-string`. A comma or semicolon inside a quoted string is text,
/// `\x` is `x`. `None` for anything else: an unterminated quote, a pair without `=`, a
/// key that is not a token, text after a quoted string, a parameter twice in an element.
fn parse_forwarded(text: &str) -> Option<Vec<Element>> {
    let mut elements = vec![Element::default()];
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| matches!(c, ' ' | '\t')).is_some() {}
        match chars.peek() {
            None => break,
            Some(',') => {
                chars.next();
                elements.push(Element::default());
                continue;
            }
            Some(';') => {
                chars.next();
                continue;
            }
            Some(_) => {}
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| is_tchar(*c))).collect();
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c if c == '\t' || (' '..='~').contains(&c) => value.push(c),
                    _ => return None,
                }
            }
            value
        } else {
            let token: String = std::iter::from_fn(|| chars.next_if(|c| is_tchar(*c))).collect();
            if token.is_empty() {
                return None;
            }
            token
        };
        while chars.next_if(|c| matches!(c, ' ' | '\t')).is_some() {}
        if !matches!(chars.peek(), None | Some(',' | ';')) {
            return None;
        }
        let key = key.to_ascii_lowercase();
        let element = elements.last_mut()?;
        if element.get(&key).is_some() {
            return None;
        }
        element.0.push((key, value));
    }
    Some(elements)
}

/// RFC 9110 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A node of a `for` chain (RFC 7239 section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// An address (`1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`; bare IPv6 as
    /// X-Forwarded-For writes it).
    Addr(IpAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`), or `invalid` for anything else.
    Named(String),
}

impl Node {
    fn parse(node: &str) -> Self {
        let node = node.trim();
        if let Some(addr) = parse_addr(node) {
            return Self::Addr(addr);
        }
        // nodename [":" node-port]; node-port = port / obfport.
        let (name, port) = node.split_once(':').unwrap_or((node, ""));
        let obfuscated = |text: &str| {
            text.len() > 1
                && text.len() <= 64
                && text.starts_with('_')
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        let name_ok = name.eq_ignore_ascii_case("unknown") || obfuscated(name);
        let port_ok = port.is_empty() || is_port(port) || obfuscated(port);
        if name_ok && port_ok && !(node.contains(':') && port.is_empty()) {
            Self::Named(name.to_owned())
        } else {
            Self::Named("invalid".to_owned())
        }
    }
}

/// The address of `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80` or a bare IPv6 address.
fn parse_addr(node: &str) -> Option<IpAddr> {
    if let Ok(addr) = node.parse::<IpAddr>() {
        return Some(canonical(addr));
    }
    if let Ok(socket) = node.parse::<std::net::SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    // `[v6]:_obfport`: the address is still an address.
    let inner = node.strip_prefix('[')?;
    let (addr, rest) = inner.split_once(']')?;
    let addr = addr.parse::<std::net::Ipv6Addr>().ok()?;
    let port = rest.strip_prefix(':').unwrap_or(rest);
    (rest.is_empty() || (rest.starts_with(':') && !port.is_empty()))
        .then_some(canonical(IpAddr::V6(addr)))
}

/// 1 to 5 digits naming a port 1..=65535.
fn is_port(text: &str) -> bool {
    (1..=5).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u16>().is_ok_and(|port| port > 0)
}

/// Whether `text` is a `host[:port]` a URL can be built on: a DNS name or IPv4 address
/// (letters, digits, `-`, `_`, dot-separated non-empty labels, at most 253 characters),
/// or an IPv6 address in brackets; a port 1..=65535. No userinfo, path, space, quote or
/// comma, so nothing can follow it into a header or a URL.
pub(crate) fn is_authority(text: &str) -> bool {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => return is_port(port),
                None => return false,
            },
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        });
    host_ok && port.is_none_or(is_port)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const PROXY: &str = "10.0.0.1:4000";

    fn trusting(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|p| p.parse().unwrap()).collect())
    }

    /// Trusting 10.0.0.1 (the peer of these requests), reading `Forwarded`.
    fn reading_forwarded() -> TrustedProxies {
        trusting(&["10.0.0.1"]).reading(ForwardedHeaders::Forwarded)
    }

    /// A request from the proxy with these `Forwarded` lines and `Host: internal:8080`.
    fn with_forwarded(lines: &[&str]) -> HttpRequest {
        let mut req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header((header::HOST, "internal:8080"));
        for line in lines {
            req = req.append_header(("forwarded", *line));
        }
        req.to_http_request()
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

    /// What the hand-written masks did before `ipnet`, kept: host bits in the range are
    /// ignored, a bare address is itself only, families never match, a mapped address in
    /// the list is its IPv4 address.
    #[test]
    fn ranges_behave_as_before_ipnet() {
        let sloppy: TrustedProxy = "10.1.2.3/8".parse().unwrap();
        assert!(sloppy.contains("10.200.0.1".parse().unwrap()));
        let one: TrustedProxy = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let every_v4: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(!every_v4.contains("2001:db8::1".parse().unwrap()));
        let every_v6: TrustedProxy = "::/0".parse().unwrap();
        assert!(!every_v6.contains("192.0.2.1".parse().unwrap()));
        let mapped: TrustedProxy = "::ffff:10.0.0.1".parse().unwrap();
        assert!(mapped.contains("10.0.0.1".parse().unwrap()));
        assert!("::ffff:10.0.0.0/104".parse::<TrustedProxy>().is_err());
        assert!("10.0.0.0/-1".parse::<TrustedProxy>().is_err());
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
        let trusted = reading_forwarded();
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

    #[test]
    fn only_the_configured_family_is_read() {
        let req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header((header::HOST, "internal:8080"))
            .insert_header(("forwarded", "for=6.6.6.6;proto=https;host=evil.example"))
            .insert_header(("x-forwarded-for", "192.0.2.7"))
            .insert_header(("x-forwarded-proto", "https"))
            .insert_header(("x-forwarded-host", "api.example"))
            .to_http_request();
        // The default: X-Forwarded-*; the client's Forwarded is never read.
        let x = trusting(&["10.0.0.1"]);
        assert_eq!(x.client_addr(&req).to_string(), "192.0.2.7");
        assert_eq!(x.base_url(&req).as_deref(), Some("https://api.example"));
        // Forwarded: X-Forwarded-* are never read, even when Forwarded is absent.
        let f = reading_forwarded();
        assert_eq!(f.client_addr(&req).to_string(), "6.6.6.6");
        let without = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header((header::HOST, "internal:8080"))
            .insert_header(("x-forwarded-for", "192.0.2.7"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .to_http_request();
        assert_eq!(f.client_addr(&without).to_string(), "10.0.0.1");
        assert_eq!(
            f.base_url(&without).as_deref(),
            Some("http://internal:8080")
        );
    }

    #[test]
    fn a_quoted_comma_or_semicolon_is_part_of_one_value() {
        let f = reading_forwarded();
        // Split on the comma, this would be a second element naming 6.6.6.6 and evil.example.
        let req = with_forwarded(&[
            r#"for=192.0.2.7;proto=https;host="api.example,for=6.6.6.6;host=evil.example""#,
        ]);
        assert_eq!(f.client_addr(&req).to_string(), "192.0.2.7");
        assert_eq!(f.base_url(&req), None, "a host with a comma is no host");
        let req = with_forwarded(&[r#"for="192.0.2.7;proto=https""#]);
        assert_eq!(f.client_addr(&req).to_string(), "invalid");
        assert_eq!(f.base_url(&req).as_deref(), Some("http://internal:8080"));
    }

    #[test]
    fn escaped_quotes_stay_inside_their_string() {
        let f = reading_forwarded();
        let req = with_forwarded(&[
            r#"for=192.0.2.7;host="api.example\",for=6.6.6.6;host=\"evil.example""#,
        ]);
        assert_eq!(f.client_addr(&req).to_string(), "192.0.2.7");
        assert_eq!(f.base_url(&req), None);
    }

    #[test]
    fn a_malformed_forwarded_header_is_not_believed_at_all() {
        let f = reading_forwarded();
        for bad in [
            r#"for="6.6.6.6"#,
            "for=6.6.6.6;for=192.0.2.7",
            "for=6.6.6.6 junk",
            "for",
            r#"for="6.6.6.6"x"#,
            "for=6.6.6.6;host=a b",
            "f@r=6.6.6.6",
        ] {
            let req = with_forwarded(&[bad]);
            assert_eq!(f.client_addr(&req).to_string(), "10.0.0.1", "{bad}");
            assert_eq!(
                f.base_url(&req).as_deref(),
                Some("http://internal:8080"),
                "{bad}"
            );
        }
        // An unterminated quote in a client's line cannot swallow the proxy's line.
        let req = with_forwarded(&[r#"for="6.6.6.6"#, "for=192.0.2.7"]);
        assert_eq!(f.client_addr(&req).to_string(), "10.0.0.1");
    }

    #[test]
    fn unknown_and_obfuscated_nodes_are_names_and_junk_is_invalid() {
        let f = reading_forwarded();
        for (node, logged) in [
            ("unknown", "unknown"),
            ("_hidden", "_hidden"),
            (r#""_gazonk:_port""#, "_gazonk"),
            (r#""[2001:db8::7]:_p""#, "2001:db8::7"),
            ("192.0.2.7", "192.0.2.7"),
            (r#""192.0.2.7:8080""#, "192.0.2.7"),
            (r#""192.0.2.7:99999""#, "invalid"),
            ("evil.example", "invalid"),
            (r#""x\u{1b}[31m""#, "invalid"),
        ] {
            let req = with_forwarded(&[&format!("for={node}")]);
            assert_eq!(f.client_addr(&req).to_string(), logged, "{node}");
        }
    }

    #[test]
    fn only_http_and_https_schemes_make_a_url() {
        let f = reading_forwarded();
        for (proto, url) in [
            ("https", Some("https://api.example")),
            ("HTTPS", Some("https://api.example")),
            ("http", Some("http://api.example")),
            ("ftp", None),
            (r#""javascript""#, None),
        ] {
            let req = with_forwarded(&[&format!("for=192.0.2.7;proto={proto};host=api.example")]);
            assert_eq!(f.base_url(&req).as_deref(), url, "{proto}");
        }
    }

    #[test]
    fn x_forwarded_lists_that_do_not_line_up_with_the_chain_are_not_believed() {
        let x = trusting(&["10.0.0.1"]);
        // A Host of "api.example,evil.example" passed on by a proxy as X-Forwarded-Host.
        let req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header((header::HOST, "internal:8080"))
            .insert_header(("x-forwarded-for", "192.0.2.7"))
            .insert_header(("x-forwarded-proto", "https"))
            .insert_header(("x-forwarded-host", "api.example,evil.example"))
            .to_http_request();
        assert_eq!(x.base_url(&req).as_deref(), Some("https://internal:8080"));
        // Two hops, two values: the client's hop is read.
        let req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header(("x-forwarded-for", "192.0.2.7, 10.0.0.1"))
            .insert_header(("x-forwarded-host", "api.example, internal"))
            .to_http_request();
        assert_eq!(x.base_url(&req).as_deref(), Some("http://api.example"));
    }

    #[test]
    fn hosts_must_be_host_and_port() {
        for ok in [
            "api.example",
            "api.example:8443",
            "127.0.0.1:1",
            "[::1]",
            "[2001:db8::1]:65535",
            "my_host.internal",
        ] {
            assert!(is_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "user@api.example",
            "api.example:0",
            "api.example:65536",
            "api.example:99999",
            "api.example:",
            "api.example:80:80",
            "a..b",
            ".api.example",
            "[::1",
            "[evil]",
            "[::1]x",
            "api.example\"",
            "api.example,evil.example",
            "api.example;for=1.2.3.4",
        ] {
            assert!(!is_authority(bad), "{bad}");
        }
    }
}
