//! Which URLs the configuration accepts: the server's public URL, and the identity
//! provider's (https, or http to this machine; never a user or password in them).

use mrmat_api_types::urls::has_userinfo;
use url::Url;

use super::ConfigError;
use crate::trust;

/// `--public-url`: where clients reach this server, an http(s) URL without user, query or
/// fragment (it is compared with the `aud` of tokens and published as it is).
pub(super) fn parse_public_url(text: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::invalid("--public-url", reason);
    let url =
        Url::parse(text.trim()).map_err(|e| invalid(format!("{text:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http:// or https:// URL".to_owned()));
    }
    if has_userinfo(&url) || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "must not carry a user, password, query or fragment".to_owned(),
        ));
    }
    Ok(url)
}

/// A URL of the identity provider: https (or http to this machine), no user or password.
pub(super) fn provider_url(
    option: &'static str,
    what: &str,
    value: &str,
    allow_insecure_http: bool,
) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::invalid(option, format!("{what} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            option,
            format!("{what} must be an http:// or https:// URL"),
        ));
    }
    // A user or password in the URL would be logged and published in the metadata.
    if has_userinfo(&url) {
        return Err(ConfigError::invalid(
            option,
            format!(
                "{what} must not carry a user or password; give credentials with --oidc-client-id and --oidc-client-secret"
            ),
        ));
    }
    trust::require_https(&url, allow_insecure_http)
        .map_err(|reason| ConfigError::invalid(option, format!("{what}: {reason}")))?;
    Ok(url)
}
