//! The identity provider's endpoints, from its OIDC discovery document, or found from the
//! API server's RFC 9728 metadata when only the server is known. Every endpoint is held
//! to the same transport rule as the server: https, or plain http on this machine only.

use mrmat_api_types::metadata::ProtectedResourceMetadata;
use mrmat_api_types::scope::Scope;
use openidconnect::core::CoreProviderMetadata;
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use crate::api::ApiClient;
use crate::error::ClientError;
use crate::http::{Http, MAX_PROVIDER_ANSWER};

/// Discovery fields the core metadata type lacks, read from the same document.
#[derive(Debug, Clone, Default, Deserialize)]
struct DeviceFlowMetadata {
    #[serde(default)]
    device_authorization_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
}

/// What the client needs of a provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its issuer.
    pub issuer: String,
    /// Token endpoint.
    pub token_endpoint: Url,
    /// Device authorization endpoint (RFC 8628), if it has one.
    pub device_authorization_endpoint: Option<Url>,
    /// Revocation endpoint (RFC 7009), if it has one.
    pub revocation_endpoint: Option<Url>,
    /// Userinfo endpoint, for the user's name.
    pub userinfo_endpoint: Option<Url>,
    /// Scopes it says it supports.
    pub scopes_supported: Vec<String>,
}

/// The discovery document URL of `issuer`.
pub fn discovery_url_of(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Reads the discovery document at `url`.
pub async fn discover(http: &Http, url: &Url) -> Result<Provider, ClientError> {
    let what = "the identity provider";
    http.check_url("the discovery URL", url)?;
    let response = http
        .send(http.request(Method::GET, url.as_str()), MAX_PROVIDER_ANSWER)
        .await
        .map_err(|e| ClientError::http(what, url.as_str(), &e))?;
    if !response.status().is_success() {
        return Err(ClientError::Protocol {
            what,
            reason: format!(
                "discovery at {url} answered {} (give the discovery document's full URL, ending in /.well-known/openid-configuration)",
                response.status()
            ),
        });
    }
    let body = response.body();
    let not_discovery = |e: serde_json::Error| ClientError::Protocol {
        what,
        reason: format!("{url} is not an OpenID Connect discovery document: {e}"),
    };
    let metadata: CoreProviderMetadata = serde_json::from_slice(body).map_err(not_discovery)?;
    let extra: DeviceFlowMetadata = serde_json::from_slice(body).map_err(not_discovery)?;
    let endpoint = |value: Option<&str>, name: &str| -> Result<Option<Url>, ClientError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let url = Url::parse(value).map_err(|e| ClientError::Protocol {
            what,
            reason: format!("{name} is not a URL: {e}"),
        })?;
        http.check_url(&format!("the provider's {name}"), &url)?;
        Ok(Some(url))
    };
    let token_endpoint = endpoint(
        metadata.token_endpoint().map(|t| t.url().as_str()),
        "token_endpoint",
    )?
    .ok_or_else(|| ClientError::Protocol {
        what,
        reason: "discovery names no token_endpoint".into(),
    })?;
    Ok(Provider {
        issuer: metadata.issuer().as_str().to_owned(),
        token_endpoint,
        device_authorization_endpoint: endpoint(
            extra.device_authorization_endpoint.as_deref(),
            "device_authorization_endpoint",
        )?,
        revocation_endpoint: endpoint(extra.revocation_endpoint.as_deref(), "revocation_endpoint")?,
        userinfo_endpoint: endpoint(
            metadata.userinfo_endpoint().map(|u| u.url().as_str()),
            "userinfo_endpoint",
        )?,
        scopes_supported: metadata
            .scopes_supported()
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    })
}

/// The provider the API server names in its RFC 9728 metadata, and the API's scopes.
/// The discovered issuer must be the one the server named (RFC 8414 section 3.3), so a
/// tampered document cannot send the login elsewhere.
pub async fn discover_via_server(
    http: &Http,
    api: &ApiClient,
) -> Result<(Provider, Vec<String>), ClientError> {
    let metadata = api.protected_resource_metadata().await?;
    discover_named_by(http, api, &metadata).await
}

/// The provider `metadata`, the RFC 9728 metadata of `api`'s server, names, and the API's
/// scopes: [`discover_via_server`] for a caller that has read the metadata already.
pub async fn discover_named_by(
    http: &Http,
    api: &ApiClient,
    metadata: &ProtectedResourceMetadata,
) -> Result<(Provider, Vec<String>), ClientError> {
    let issuer = metadata.authorization_servers.first().ok_or_else(|| {
        ClientError::Config(format!(
            "the server at {} names no identity provider (is OIDC configured there?); give --discovery-url",
            api.base()
        ))
    })?;
    let url = Url::parse(&discovery_url_of(issuer)).map_err(|e| ClientError::Protocol {
        what: "the server",
        reason: format!("authorization server {issuer:?} is not a URL: {e}"),
    })?;
    let provider = discover(http, &url).await?;
    if provider.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(ClientError::Protocol {
            what: "the identity provider",
            reason: format!(
                "its discovery document names the issuer {}, not {issuer} as the server says",
                provider.issuer
            ),
        });
    }
    Ok((provider, metadata.scopes_supported.clone()))
}

/// The scopes a login asks for: OpenID, the user's profile, `offline_access` (the refresh
/// token) where the provider offers it, and the API's scopes.
pub fn login_scopes(provider: &Provider, api_scopes: &[String]) -> Vec<String> {
    let offered = |scope: &str| {
        provider.scopes_supported.is_empty() || provider.scopes_supported.iter().any(|s| s == scope)
    };
    let mut scopes: Vec<String> = vec!["openid".into(), "profile".into()];
    if offered("offline_access") {
        scopes.push("offline_access".into());
    }
    if api_scopes.is_empty() {
        scopes.extend(Scope::ALL.iter().map(|s| s.as_str().to_owned()));
    } else {
        scopes.extend(api_scopes.iter().cloned());
    }
    scopes
}
