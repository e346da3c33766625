//! The identity provider's endpoints (introspection, token, JWKS): from OIDC discovery, or
//! straight from a client_secrets.json.
//!
//! The discovery document is fetched here and parsed with `openidconnect`'s typed metadata
//! instead of `discover_async`, because that also downloads the JWKS (kept apart here, in
//! `jwks`, with its own refresh rules) and insists the document's issuer equals the URL it
//! was fetched from, which `--oidc-public-issuer` deployments break on purpose.

use openidconnect::core::CoreProviderMetadata;
use serde::Deserialize;
use url::Url;

use super::http::{ProviderHttp, read_capped};
use crate::error::{ApiError, Dependency};
use crate::settings::OidcSettings;

/// Why the provider could not judge a token.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ProviderError {
    /// Down, slow, or answering nonsense: retry later.
    #[error("{0}")]
    Unreachable(String),
    /// The provider refuses the server itself: an operator must fix an option.
    #[error("identity provider configuration fault ({option}): {reason}")]
    Misconfigured {
        /// The option to fix.
        option: &'static str,
        /// What the provider said.
        reason: String,
    },
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        ApiError::Unavailable {
            dependency: Dependency::IdentityProvider,
            cause: error.to_string(),
        }
    }
}

/// What the server last learnt about its provider, for `/healthz/ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProviderHealth {
    /// Answered as expected.
    Ok,
    /// Did not answer.
    Unreachable,
    /// Refused the server's configuration.
    Misconfigured,
}

impl ProviderHealth {
    /// The readiness-check word.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Unreachable => "UNREACHABLE",
            Self::Misconfigured => "MISCONFIGURED",
        }
    }
}

/// Discovery fields the core metadata lacks, read from the same document.
#[derive(Debug, Clone, Default, Deserialize)]
struct IntrospectionMetadata {
    /// RFC 8414 name.
    #[serde(default)]
    introspection_endpoint: Option<String>,
    /// The name older Keycloak releases used.
    #[serde(default)]
    token_introspection_endpoint: Option<String>,
}

/// Where the server talks to the provider.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    /// RFC 7662 introspection, if the provider offers it (JWT-only providers do not).
    pub(crate) introspection: Option<Url>,
    /// The token endpoint, for the server's own client-credentials tokens, if known.
    pub(crate) token: Option<Url>,
    /// The signing keys, from discovery; `None` when discovery was not needed.
    pub(crate) jwks: Option<Url>,
}

/// Where discovery lives for `issuer` (OIDC Discovery 1.0 section 4).
pub(crate) fn discovery_url(issuer: &Url) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    )
}

fn same_issuer(a: &str, b: &Url) -> bool {
    a.trim_end_matches('/') == b.as_str().trim_end_matches('/')
}

/// The endpoints, from the settings when they name them, else from discovery.
pub(crate) async fn endpoints(
    http: &ProviderHttp,
    settings: &OidcSettings,
) -> Result<Endpoints, ProviderError> {
    if let Some(introspection) = &settings.introspection_endpoint {
        // Without a token endpoint the server goes without tokens of its own, unless it
        // needs one to introspect with; then discovery must name it. Checking JWTs needs
        // the keys, which only discovery names.
        if !settings.checks_jwts()
            && (settings.token_endpoint.is_some() || settings.introspection_token_scope.is_none())
        {
            return Ok(Endpoints {
                introspection: Some(introspection.clone()),
                token: settings.token_endpoint.clone(),
                jwks: None,
            });
        }
    }
    let discovered = discover(http, settings).await?;
    let introspection = settings
        .introspection_endpoint
        .clone()
        .or(discovered.introspection);
    if settings.credentials.is_some() && introspection.is_none() {
        return Err(ProviderError::Misconfigured {
            option: "--oidc-issuer",
            reason: format!(
                "{} names no introspection_endpoint: give --public-url or --oidc-audience to check this provider's JWT access tokens here, and drop --oidc-client-id/--oidc-client-secret",
                discovery_url(&settings.issuer)
            ),
        });
    }
    Ok(Endpoints {
        introspection,
        token: settings.token_endpoint.clone().or(discovered.token),
        jwks: discovered.jwks,
    })
}

async fn discover(
    http: &ProviderHttp,
    settings: &OidcSettings,
) -> Result<Endpoints, ProviderError> {
    let url = discovery_url(&settings.issuer);
    let misconfigured = |reason: String| ProviderError::Misconfigured {
        option: "--oidc-issuer",
        reason,
    };
    let response = http.send("discovery", http.get(&url)).await.map_err(|e| {
        ProviderError::Unreachable(format!("discovery at {url}: {}", e.without_url()))
    })?;
    let status = response.status();
    if !status.is_success() {
        let reason = format!("discovery at {url} answered {status}");
        return Err(if status.is_client_error() {
            misconfigured(reason)
        } else {
            ProviderError::Unreachable(reason)
        });
    }
    let body = read_capped(response)
        .await
        .map_err(|e| ProviderError::Unreachable(format!("discovery at {url}: {e}")))?;
    let not_discovery = |e: serde_json::Error| {
        misconfigured(format!(
            "{url} is not an OpenID Connect discovery document: {e}"
        ))
    };
    let metadata: CoreProviderMetadata = serde_json::from_slice(&body).map_err(not_discovery)?;
    let extra: IntrospectionMetadata = serde_json::from_slice(&body).map_err(not_discovery)?;

    let issuer = metadata.issuer().as_str();
    let known = same_issuer(issuer, &settings.issuer)
        || settings
            .public_issuer
            .as_ref()
            .is_some_and(|public| same_issuer(issuer, public));
    if !known {
        return Err(ProviderError::Misconfigured {
            option: "--oidc-public-issuer",
            reason: format!(
                "discovery names the issuer {issuer}, not {}; set --oidc-public-issuer when the provider's public URL differs",
                settings.issuer
            ),
        });
    }

    let introspection = extra
        .introspection_endpoint
        .as_deref()
        .or(extra.token_introspection_endpoint.as_deref())
        .map(|endpoint| checked(endpoint, "introspection_endpoint", settings))
        .transpose()?
        .map(|url| on_the_issuer_host(url, "introspection_endpoint", settings))
        .transpose()?;
    let token = metadata
        .token_endpoint()
        .map(|url| checked(url.url().as_str(), "token_endpoint", settings))
        .transpose()?
        .map(|url| on_the_issuer_host(url, "token_endpoint", settings))
        .transpose()?;
    let jwks = checked(metadata.jwks_uri().url().as_str(), "jwks_uri", settings)?;
    Ok(Endpoints {
        introspection,
        token,
        jwks: Some(jwks),
    })
}

/// An endpoint that receives the server's client secret or users' tokens, on the issuer's
/// host (or the public issuer's, or one of `--oidc-endpoint-hosts`): a discovery document
/// that names another host must not be able to send them there. Only discovered endpoints
/// are held to this; the operator's own (`--oidc-secrets`) are taken as given.
fn on_the_issuer_host(url: Url, name: &str, settings: &OidcSettings) -> Result<Url, ProviderError> {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let issuer_host = |issuer: &Url| {
        issuer
            .host_str()
            .is_some_and(|h| h.trim_end_matches('.').eq_ignore_ascii_case(&host))
    };
    if issuer_host(&settings.issuer)
        || settings.public_issuer.as_ref().is_some_and(issuer_host)
        || settings.endpoint_hosts.contains(&host)
    {
        return Ok(url);
    }
    Err(ProviderError::Misconfigured {
        option: "--oidc-endpoint-hosts",
        reason: format!(
            "discovery names {name} on {host}, not on the issuer's host {}: the server's secret and users' tokens would go there; if that host is the provider's, add it to --oidc-endpoint-hosts",
            settings.issuer.host_str().unwrap_or_default()
        ),
    })
}

/// A discovered endpoint, held to the same https rule as the issuer: a document that
/// sends the server's secret to a plain-http host elsewhere is refused.
fn checked(value: &str, name: &str, settings: &OidcSettings) -> Result<Url, ProviderError> {
    let misconfigured = |reason: String| ProviderError::Misconfigured {
        option: "--oidc-issuer",
        reason,
    };
    let url = Url::parse(value)
        .map_err(|e| misconfigured(format!("{name} {value:?} is not a URL: {e}")))?;
    crate::trust::require_https(&url, settings.allow_insecure_http)
        .map_err(|reason| misconfigured(format!("discovery's {name}: {reason}")))?;
    Ok(url)
}
