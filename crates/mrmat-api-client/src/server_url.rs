//! The API server's URL in one normal form, because it keys the token cache and a login
//! is only ever sent to the server it was made for: `HTTP://Example.com:80/api/` and
//! `http://example.com/api` are one server. `localhost` and `127.0.0.1` stay different
//! (they may not even reach the same process: `localhost` can be `::1`), and
//! [`ServerUrl::same_machine`] lets messages explain that.

use mrmat_api_types::urls::{has_userinfo, is_loopback};
use url::Url;

use crate::error::ClientError;

/// A server base URL: http or https, no user, query or fragment; scheme and host in lower
/// case, no default port, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerUrl {
    url: Url,
    text: String,
}

impl ServerUrl {
    /// Parses and normalises `value`; `option` names where it came from, for the error.
    pub fn parse(option: &str, value: &str) -> Result<Self, ClientError> {
        let url = parse_http_url(option, value)?;
        Ok(Self::from_url(url))
    }

    fn from_url(mut url: Url) -> Self {
        // The url crate already lower-cases scheme and host and drops default ports.
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&path);
        let text = url.as_str().trim_end_matches('/').to_owned();
        Self { url, text }
    }

    /// The normal form, e.g. `http://localhost:8080` or `https://api.example.com/mrmat`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL of `path` (which starts with `/`) on this server.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.text)
    }

    /// Whether `other` differs from this URL only by naming the local machine another way
    /// (`localhost` against `127.0.0.1` or `[::1]`).
    pub fn same_machine(&self, other: &ServerUrl) -> bool {
        self != other
            && is_loopback(&self.url)
            && is_loopback(&other.url)
            && self.url.scheme() == other.url.scheme()
            && self.url.port_or_known_default() == other.url.port_or_known_default()
            && self.url.path() == other.url.path()
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `value` as an http(s) URL without user, password, query or fragment (a URL a person
/// configures; a password in it would end up in messages and the cache key).
pub fn parse_http_url(option: &str, value: &str) -> Result<Url, ClientError> {
    let url = Url::parse(value)
        .map_err(|e| ClientError::Config(format!("{option}: {value:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::Config(format!(
            "{option}: {value:?} must be an http:// or https:// URL"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::Config(format!(
            "{option}: {value:?} must not have a query or fragment"
        )));
    }
    if has_userinfo(&url) {
        return Err(ClientError::Config(format!(
            "{option}: the URL must not contain a user name or password"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(value: &str) -> ServerUrl {
        ServerUrl::parse("--server", value).unwrap()
    }

    #[test]
    fn case_default_port_and_trailing_slash_do_not_make_another_server() {
        assert_eq!(
            server("HTTP://Example.COM:80/").as_str(),
            "http://example.com"
        );
        assert_eq!(
            server("https://example.com:443/api/").as_str(),
            "https://example.com/api"
        );
        assert_eq!(
            server("http://localhost:8080"),
            server("http://LOCALHOST:8080/")
        );
    }

    #[test]
    fn localhost_and_the_loopback_address_are_different_servers_on_the_same_machine() {
        let name = server("http://localhost:18080");
        let address = server("http://127.0.0.1:18080");
        assert_ne!(name, address);
        assert!(name.same_machine(&address));
        assert!(!name.same_machine(&server("http://127.0.0.1:18081")));
    }

    #[test]
    fn credentials_queries_and_other_schemes_are_refused() {
        for value in [
            "http://u:p@host",
            "http://host/?a=1",
            "ftp://host",
            "host:8080",
        ] {
            assert!(ServerUrl::parse("--server", value).is_err(), "{value}");
        }
    }

    #[test]
    fn joined_paths_keep_a_path_prefix() {
        assert_eq!(
            server("https://example.com/mrmat/").join("/api/"),
            "https://example.com/mrmat/api/"
        );
    }
}
