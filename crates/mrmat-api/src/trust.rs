//! Which URLs the server may talk to the identity provider over. Plain `http://` carries
//! the server's client secret and every bearer token in clear and lets anyone on the path
//! rewrite discovery and answer `active: true` for anything, so it is allowed only to
//! loopback hosts ([`is_loopback`]: 127.0.0.0/8, ::1, `localhost`), or everywhere when
//! the operator says so with `--oidc-allow-insecure-http` (logged as a warning at every
//! start).

use url::Url;

/// The one loopback rule, shared with the client (it says why `*.localhost` is not one).
pub(crate) use mrmat_api_types::urls::is_loopback;

/// Refuses `url` unless it is https, or http to a loopback host, or insecure http is
/// explicitly allowed. The error says what to do.
pub(crate) fn require_https(url: &Url, allow_insecure_http: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "{url} is plain http to a host that is not this machine; use https (or pass --oidc-allow-insecure-http, never in production)"
        )),
        other => Err(format!("{url}: the scheme {other:?} is not http or https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn loopback_hosts_may_use_http() {
        for ok in [
            "http://127.0.0.1:8080/realms/x",
            "http://127.9.9.9/",
            "http://[::1]:80/",
            "http://localhost/",
        ] {
            assert!(require_https(&url(ok), false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_hosts_need_https_unless_allowed() {
        let remote = url("http://keycloak.example/realms/x");
        assert!(require_https(&remote, false).is_err());
        assert!(require_https(&remote, true).is_ok());
        assert!(require_https(&url("https://keycloak.example/"), false).is_ok());
        assert!(require_https(&url("http://10.0.0.1/"), false).is_err());
        assert!(require_https(&url("http://localhost.evil.example/"), false).is_err());
        // Names a resolver may send on to DNS (mrmat_api_types::urls says why).
        assert!(require_https(&url("http://LOCALHOST./"), false).is_err());
        assert!(require_https(&url("http://idp.localhost/"), false).is_err());
    }
}
