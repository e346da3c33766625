//! Rules about URLs that the server and the client both apply, stated once: which hosts
//! are this machine (plain `http://` is allowed to them without asking), that a URL a
//! person configures carries no user or password, and how a client id and secret are
//! encoded before HTTP Basic.

use std::net::IpAddr;

use url::{Host, Url};

/// Whether `url` names this machine: an address in 127.0.0.0/8, `::1`, or the name
/// `localhost` (any case).
///
/// Names under `.localhost` (RFC 6761) and `localhost.` are not: a name is only as local
/// as the resolver makes it, and reqwest asks the system's. glibc with the usual
/// `hosts: files dns` finds `localhost` in `/etc/hosts` and sends `x.localhost` and
/// `localhost.` on to the DNS server (checked with `getent ahosts` on this project's
/// Debian machines: both come back empty there), which may answer with any address: a
/// token or client secret would then cross the network in clear. Only systemd-resolved,
/// nss-myhostname and browsers map every `*.localhost` to loopback, and nothing here
/// knows which resolver it gets.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        // The url crate has lower-cased the name already; the comparison ignores case
        // anyway, so the rule does not depend on that.
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `url` carries a user name or password (`https://user:pw@host/`). A URL a
/// person configures is logged, shown in messages, published in metadata or used as a
/// cache key: credentials in it would leak through all of those, so both programs refuse
/// such URLs and take credentials through their own options.
pub fn has_userinfo(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// `value` encoded as `application/x-www-form-urlencoded`, which RFC 6749 section 2.3.1
/// asks of a client id and secret before they are joined for HTTP Basic (a `:` in a
/// secret would otherwise end it early).
pub fn basic_auth_part(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn loopback_is_127_slash_8_ipv6_one_and_the_name_localhost() {
        for loopback in [
            "http://localhost",
            "http://LOCALHOST:8080/",
            "http://127.0.0.1:8080/realms/x",
            "http://127.4.5.6:9",
            "http://127.9.9.9/",
            "http://[::1]:80/",
        ] {
            assert!(is_loopback(&url(loopback)), "{loopback}");
        }
    }

    #[test]
    fn names_a_resolver_may_send_to_dns_are_not_loopback() {
        for remote in [
            "http://app.localhost/",
            "http://LOCALHOST./",
            "http://localhost.example.com/",
            "http://localhost.evil.example/",
            "http://0.0.0.0/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://keycloak.example/realms/x",
        ] {
            assert!(!is_loopback(&url(remote)), "{remote}");
        }
    }

    #[test]
    fn a_user_or_a_password_is_userinfo() {
        assert!(has_userinfo(&url("https://user@host/")));
        assert!(has_userinfo(&url("https://user:pw@host/")));
        assert!(has_userinfo(&url("https://:pw@host/")));
        assert!(!has_userinfo(&url("https://host/path?user=x")));
    }

    #[test]
    fn basic_auth_parts_escape_what_would_break_the_pair() {
        assert_eq!(basic_auth_part("client:id"), "client%3Aid");
        assert_eq!(basic_auth_part("a b+c/d"), "a+b%2Bc%2Fd");
        assert_eq!(basic_auth_part("plain-id_1.x~"), "plain-id_1.x%7E");
    }
}
