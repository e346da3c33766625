//! What the server knows about each identity provider once its options are checked.

use std::time::Duration;

use oauth2::ClientSecret;
use url::Url;

use super::{ConfigError, DEFAULT_OIDC_CACHE_TTL, DEFAULT_OIDC_TIMEOUT, placeholder};
use crate::cli::defaults;

/// How the server reaches the identity provider.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer the server reaches (discovery base).
    pub issuer: Url,
    /// The issuer clients see, when it differs (reported in metadata, accepted as `iss`).
    pub public_issuer: Option<Url>,
    /// The server's own client at the provider, to introspect opaque tokens; `None` for a
    /// provider whose JWT access tokens alone are accepted.
    pub credentials: Option<ClientCredentials>,
    /// Introspection endpoint given by a client_secrets.json; discovered when `None`.
    pub introspection_endpoint: Option<Url>,
    /// Token endpoint given by a client_secrets.json; discovered when `None`.
    pub token_endpoint: Option<Url>,
    /// Plain http to a provider that is not on this machine is allowed.
    pub allow_insecure_http: bool,
    /// Hosts besides the issuer's that discovery may name for the endpoints that receive
    /// secrets (introspection, token), lower case.
    pub endpoint_hosts: Vec<String>,
    /// PEM certificate authorities trusted besides the platform's and webpki's.
    pub ca_pem: Option<Vec<u8>>,
    /// Audiences accepted in `aud` (`--oidc-audience` and `--public-url`); empty accepts
    /// any introspected token. JWT access tokens are checked here only when this is not
    /// empty: a JWT that need not name this server could be anybody's.
    pub audiences: Vec<String>,
    /// Where a JWT access token holds its scopes.
    pub scope_claim: ScopeClaim,
    /// Introspect with a client-credentials token carrying this scope instead of Basic.
    pub introspection_token_scope: Option<String>,
    /// Ceiling on how long an introspection result is trusted.
    pub cache_ttl: Duration,
    /// Timeout of every call to the provider.
    pub timeout: Duration,
}

impl OidcSettings {
    /// Settings for `issuer` with the server's client `client_id`, everything else at its
    /// default: endpoints from discovery, HTTP Basic, any audience.
    pub fn new(
        issuer: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            credentials: Some(ClientCredentials {
                client_id: client_id.into(),
                client_secret: ClientSecret::new(client_secret.into()),
            }),
            ..Self::jwt_only(issuer, Vec::new())
        }
    }

    /// Settings for a provider whose JWT access tokens are checked here, naming one of
    /// `audiences`; no client of the server's own, so no introspection.
    pub fn jwt_only(issuer: Url, audiences: Vec<String>) -> Self {
        Self {
            issuer,
            public_issuer: None,
            credentials: None,
            introspection_endpoint: None,
            token_endpoint: None,
            allow_insecure_http: false,
            endpoint_hosts: Vec::new(),
            ca_pem: None,
            audiences,
            scope_claim: ScopeClaim::default(),
            introspection_token_scope: None,
            cache_ttl: DEFAULT_OIDC_CACHE_TTL,
            timeout: DEFAULT_OIDC_TIMEOUT,
        }
    }

    /// Whether the client secret is one of the well-known placeholders shipped in examples
    /// and exports, which anyone can read.
    pub fn has_placeholder_secret(&self) -> bool {
        let Some(credentials) = &self.credentials else {
            return false;
        };
        placeholder::is_placeholder(credentials.client_secret.secret())
    }

    /// The issuer to advertise to clients.
    pub fn advertised_issuer(&self) -> &Url {
        self.public_issuer.as_ref().unwrap_or(&self.issuer)
    }

    /// Whether this provider's JWT access tokens are checked here instead of introspected.
    pub fn checks_jwts(&self) -> bool {
        !self.audiences.is_empty()
    }

    /// The server's client id at this provider, for messages.
    pub fn client_id(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.client_id.as_str())
    }
}

/// The server's own client at a provider.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// Its client id.
    pub client_id: String,
    /// Its secret (redacted in `Debug`).
    pub client_secret: ClientSecret,
}

/// Where a JWT access token holds its scopes: a claim, or a path of claims into nested
/// objects (`realm_access.roles`). The value is a space-separated string (RFC 9068's
/// `scope`, Entra's `scp`) or an array of strings (Auth0's `permissions`, Keycloak roles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeClaim(Vec<String>);

impl Default for ScopeClaim {
    fn default() -> Self {
        Self(vec![defaults::OIDC_SCOPE_CLAIM.to_owned()])
    }
}

impl ScopeClaim {
    /// Parses `name` or `a.b.c`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let path: Vec<String> = text.trim().split('.').map(str::to_owned).collect();
        if path
            .iter()
            .any(|part| part.is_empty() || part.chars().any(char::is_whitespace))
        {
            return Err(ConfigError::invalid(
                "--oidc-scope-claim",
                format!("{text:?} is not a claim name or a dotted path such as realm_access.roles"),
            ));
        }
        Ok(Self(path))
    }

    /// The claim names, outermost first.
    pub fn path(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for ScopeClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}
