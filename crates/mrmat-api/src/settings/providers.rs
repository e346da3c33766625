//! The identity providers, from their options: the one the command line (or a
//! client_secrets.json) names, each further `--oidc-issuer`, then the config file's
//! `oidc_providers`, each checked against the others.

use std::time::Duration;

use mrmat_api_types::secret::Secret;
use oauth2::ClientSecret;
use url::Url;

use super::ca_file::read_ca_file;
use super::client_secrets::read_client_secrets;
use super::url_policy::provider_url;
use super::{
    ClientCredentials, ConfigError, DEFAULT_OIDC_CACHE_TTL, DEFAULT_OIDC_TIMEOUT, OidcSettings,
    ScopeClaim,
};
use crate::cli::OidcOptions;

/// What every provider shares: how the server talks to providers and how long it trusts.
struct Shared {
    allow_insecure_http: bool,
    endpoint_hosts: Vec<String>,
    ca_pem: Option<Vec<u8>>,
    cache_ttl: Duration,
    timeout: Duration,
}

impl Shared {
    fn provider(&self, issuer: Url, credentials: Option<ClientCredentials>) -> OidcSettings {
        OidcSettings {
            credentials,
            allow_insecure_http: self.allow_insecure_http,
            endpoint_hosts: self.endpoint_hosts.clone(),
            ca_pem: self.ca_pem.clone(),
            cache_ttl: self.cache_ttl,
            timeout: self.timeout,
            ..OidcSettings::jwt_only(issuer, Vec::new())
        }
    }
}

/// The identity providers: the one the command line (or a client_secrets.json) names,
/// each further `--oidc-issuer`, then the config file's `oidc_providers`.
pub(super) fn resolve_oidc(
    options: OidcOptions,
    public_url: Option<&Url>,
) -> Result<Vec<OidcSettings>, ConfigError> {
    let from_file = options
        .oidc_secrets
        .as_deref()
        .map(read_client_secrets)
        .transpose()?;
    let allow = options.oidc_allow_insecure_http.unwrap_or(false);
    let (file_issuer, file_id, file_secret, introspection, token) = match from_file {
        Some(web) => {
            let introspection = web
                .token_introspection_uri
                .or(web.introspection_endpoint)
                .map(|uri| provider_url("--oidc-secrets", "token_introspection_uri", &uri, allow))
                .transpose()?;
            let token = web
                .token_uri
                .map(|uri| provider_url("--oidc-secrets", "token_uri", &uri, allow))
                .transpose()?;
            (
                web.issuer,
                Some(web.client_id),
                Some(web.client_secret),
                introspection,
                token,
            )
        }
        None => (None, None, None, None, None),
    };
    let mut issuers = options
        .oidc_issuer
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty());
    // Explicit options override the corresponding fields of the secrets file.
    let issuer = issuers.next().or(file_issuer);
    let client_id = options.oidc_client_id.or(file_id);
    let client_secret = options.oidc_client_secret.or(file_secret);

    let shared = Shared {
        allow_insecure_http: allow,
        endpoint_hosts: options
            .oidc_endpoint_hosts
            .unwrap_or_default()
            .iter()
            .map(|host| host.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|host| !host.is_empty())
            .collect(),
        ca_pem: options
            .oidc_ca_file
            .as_deref()
            .map(read_ca_file)
            .transpose()?,
        cache_ttl: options
            .oidc_cache_ttl
            .map_or(DEFAULT_OIDC_CACHE_TTL, Duration::from_secs),
        timeout: match options.oidc_timeout {
            Some(0) => {
                return Err(ConfigError::invalid(
                    "--oidc-timeout",
                    "must be at least 1 second",
                ));
            }
            Some(seconds) => Duration::from_secs(seconds),
            None => DEFAULT_OIDC_TIMEOUT,
        },
    };
    let with_public_url = |audiences: Vec<String>| -> Vec<String> {
        let mut audiences: Vec<String> = audiences
            .into_iter()
            .map(|audience| audience.trim().to_owned())
            .filter(|audience| !audience.is_empty())
            .collect();
        if let Some(url) = public_url {
            audiences.push(url.as_str().to_owned());
        }
        audiences
    };
    let audiences = with_public_url(options.oidc_audience.unwrap_or_default());
    let scope_claim = options
        .oidc_scope_claim
        .as_deref()
        .map(ScopeClaim::parse)
        .transpose()?
        .unwrap_or_default();
    let trimmed = |scope: Option<String>| {
        scope
            .map(|scope| scope.trim().to_owned())
            .filter(|scope| !scope.is_empty())
    };
    let mut providers = Vec::new();

    if issuer.is_some() || client_id.is_some() || client_secret.is_some() {
        let issuer = issuer.ok_or_else(|| {
            ConfigError::invalid(
                "--oidc-issuer",
                "missing: give the issuer URL (or an \"issuer\" in --oidc-secrets)",
            )
        })?;
        let issuer = provider_url("--oidc-issuer", "issuer", &issuer, allow)?;
        let credentials = credentials(client_id, client_secret, !audiences.is_empty())?;
        providers.push(OidcSettings {
            // Clients reach the provider there, so the same rule holds for it.
            public_issuer: options
                .oidc_public_issuer
                .map(|url| provider_url("--oidc-public-issuer", "issuer", &url, allow))
                .transpose()?,
            introspection_endpoint: introspection,
            token_endpoint: token,
            audiences: audiences.clone(),
            scope_claim: scope_claim.clone(),
            introspection_token_scope: trimmed(options.oidc_introspection_token_scope),
            ..shared.provider(issuer, credentials)
        });
    }
    for issuer in issuers {
        let issuer = provider_url("--oidc-issuer", "issuer", &issuer, allow)?;
        require_audience(&audiences, "--oidc-issuer", &issuer)?;
        providers.push(OidcSettings {
            audiences: audiences.clone(),
            scope_claim: scope_claim.clone(),
            ..shared.provider(issuer, None)
        });
    }
    for provider in options.oidc_providers.unwrap_or_default() {
        let issuer = provider_url(
            "--config",
            "an oidc_providers issuer",
            &provider.issuer,
            allow,
        )?;
        let audiences = with_public_url(provider.audience);
        let credentials = credentials(
            provider.client_id,
            provider.client_secret,
            !audiences.is_empty(),
        )
        .map_err(|e| ConfigError::invalid("--config", format!("oidc_providers {issuer}: {e}")))?;
        providers.push(OidcSettings {
            public_issuer: provider
                .public_issuer
                .map(|url| provider_url("--config", "an oidc_providers public_issuer", &url, allow))
                .transpose()?,
            audiences,
            scope_claim: provider
                .scope_claim
                .as_deref()
                .map(ScopeClaim::parse)
                .transpose()?
                .unwrap_or_else(|| scope_claim.clone()),
            introspection_token_scope: trimmed(provider.introspection_token_scope),
            ..shared.provider(issuer, credentials)
        });
    }
    // A token is judged by the provider its `iss` names: two entries for one issuer would
    // make that ambiguous.
    for (i, provider) in providers.iter().enumerate() {
        let name = provider.issuer.as_str().trim_end_matches('/');
        if providers[..i]
            .iter()
            .any(|p| p.issuer.as_str().trim_end_matches('/') == name)
        {
            return Err(ConfigError::invalid(
                "--oidc-issuer",
                format!("{name} is configured twice"),
            ));
        }
    }
    Ok(providers)
}

/// The server's client at a provider: both halves or neither. Neither is allowed only
/// when the provider's JWTs can be checked here, i.e. an audience is set: a JWT that
/// need not name this server could be any application's token.
fn credentials(
    client_id: Option<String>,
    client_secret: Option<Secret>,
    has_audience: bool,
) -> Result<Option<ClientCredentials>, ConfigError> {
    let client_id = client_id.filter(|id| !id.is_empty());
    let client_secret = client_secret.filter(|secret| !secret.expose().is_empty());
    match (client_id, client_secret) {
        (Some(client_id), Some(secret)) => Ok(Some(ClientCredentials {
            client_id,
            client_secret: ClientSecret::new(secret.expose().to_owned()),
        })),
        (None, None) if has_audience => Ok(None),
        (None, None) => Err(ConfigError::invalid(
            "--oidc-client-id",
            "missing: give the server's own client (--oidc-client-id, --oidc-client-secret) to introspect tokens, or --public-url or --oidc-audience to check JWT access tokens here",
        )),
        (None, Some(_)) => Err(ConfigError::invalid(
            "--oidc-client-id",
            "missing: the server needs its own client id to introspect tokens",
        )),
        (Some(_), None) => Err(ConfigError::invalid(
            "--oidc-client-secret",
            "missing: only confidential clients may introspect tokens",
        )),
    }
}

/// A further `--oidc-issuer` has no client of the server's: its JWTs alone are checked,
/// and they must name this server.
fn require_audience(
    audiences: &[String],
    option: &'static str,
    issuer: &Url,
) -> Result<(), ConfigError> {
    if audiences.is_empty() {
        return Err(ConfigError::invalid(
            option,
            format!(
                "{issuer} has no client credentials, so its JWT access tokens are checked here, and they must name this server: give --public-url or --oidc-audience"
            ),
        ));
    }
    Ok(())
}
