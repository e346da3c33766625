//! What the outside world sees of a request: the client address, and the scheme and host
//! of this server's public URL. `Forwarded` / `X-Forwarded-*` are believed only from the
//! configured trusted proxies; anyone else could forge them.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;

fn from_trusted_proxy(req: &HttpRequest, trusted: &[IpAddr]) -> bool {
    req.peer_addr()
        .is_some_and(|peer| trusted.contains(&peer.ip()))
}

/// The client address for logs.
pub fn client_addr(req: &HttpRequest, trusted: &[IpAddr]) -> String {
    if from_trusted_proxy(req, trusted)
        && let Some(addr) = req.connection_info().realip_remote_addr()
    {
        return addr.to_owned();
    }
    req.peer_addr()
        .map_or_else(|| "-".to_owned(), |addr| addr.ip().to_string())
}

/// `scheme://host` of this server as the client addressed it, or `None` when the host is
/// missing or not a plausible authority.
pub fn base_url(req: &HttpRequest, trusted: &[IpAddr]) -> Option<String> {
    let (scheme, host) = if from_trusted_proxy(req, trusted) {
        let info = req.connection_info();
        (info.scheme().to_owned(), info.host().to_owned())
    } else {
        // No TLS of our own: without a trusted proxy in front the scheme is plain http.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))?;
        ("http".to_owned(), host)
    };
    let scheme_ok = matches!(scheme.as_str(), "http" | "https");
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        });
    (scheme_ok && host_ok).then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const PROXY: &str = "10.0.0.1:4000";

    #[test]
    fn forwarded_headers_from_untrusted_peers_are_ignored() {
        let req = TestRequest::default()
            .peer_addr(PROXY.parse().unwrap())
            .insert_header((header::HOST, "internal:8080"))
            .insert_header(("x-forwarded-proto", "https"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .to_http_request();
        assert_eq!(base_url(&req, &[]).as_deref(), Some("http://internal:8080"));
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
        let trusted = ["10.0.0.1".parse().unwrap()];
        assert_eq!(
            base_url(&req, &trusted).as_deref(),
            Some("https://api.example")
        );
        assert_eq!(client_addr(&req, &trusted), "192.0.2.7");
    }

    #[test]
    fn implausible_hosts_give_no_base_url() {
        let req = TestRequest::default()
            .insert_header((header::HOST, "a b/c"))
            .to_http_request();
        assert_eq!(base_url(&req, &[]), None);
    }
}
