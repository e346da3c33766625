//! Token introspection (RFC 7662) with the server's own client credentials, behind a
//! single-flight cache keyed by a hash of the token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use moka::Expiry;
use moka::future::Cache;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenResponse,
    BasicTokenType,
};
use oauth2::{
    AccessToken, Client, ClientId, EndpointNotSet, EndpointSet, ExtraTokenFields, HttpClientError,
    IntrospectionUrl, RequestTokenError, StandardRevocableToken,
    StandardTokenIntrospectionResponse, TokenIntrospectionResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::Principal;
use super::http::ProviderHttp;
use super::provider::{self, ProviderError, ProviderHealth};
use crate::error::ApiError;
use crate::outage::Outage;
use crate::settings::OidcSettings;

/// How long a "not valid" answer is remembered, so a client hammering with a dead token
/// does not hammer the provider too.
const INVALID_TTL: Duration = Duration::from_secs(10);

/// Most introspection results kept at once.
const CACHE_CAPACITY: u64 = 100_000;

/// Idle pooled connections are dropped before the provider's keep-alive (Node's default is
/// 5 s) would close them under us.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Introspection fields beyond RFC 7662 that real providers send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProviderClaims {
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    /// Keycloak's token type (`Bearer`, `Refresh`, `ID`).
    #[serde(default)]
    typ: Option<String>,
}

impl ExtraTokenFields for ProviderClaims {}

type IntrospectionResponse = StandardTokenIntrospectionResponse<ProviderClaims, BasicTokenType>;

type IntrospectionClient = Client<
    BasicErrorResponse,
    BasicTokenResponse,
    IntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
>;

/// A cached judgement of one token.
#[derive(Debug, Clone)]
struct Verdict {
    principal: Option<Arc<Principal>>,
    ttl: Duration,
}

impl Verdict {
    fn invalid() -> Self {
        Self {
            principal: None,
            ttl: INVALID_TTL,
        }
    }

    /// No verdict outlives the configured ceiling (0 turns caching off).
    fn capped(self, ceiling: Duration) -> Self {
        Self {
            ttl: self.ttl.min(ceiling),
            ..self
        }
    }
}

/// Each entry lives as long as its verdict says.
struct VerdictExpiry;

impl Expiry<[u8; 32], Verdict> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Verdict,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Checks bearer tokens with the identity provider.
pub(crate) struct Authenticator {
    settings: OidcSettings,
    http: ProviderHttp,
    client: OnceCell<IntrospectionClient>,
    cache: Cache<[u8; 32], Verdict>,
    /// The provider down, slow or answering garbage: a warning per outage.
    unreachable: Outage,
    /// The provider refusing the server's own credentials: an error per episode, naming
    /// the option to fix.
    misconfigured: Outage,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.settings.issuer.as_str())
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `settings`. Nothing is fetched until the first token arrives,
    /// so the server starts while the provider is still down.
    pub(crate) fn new(settings: OidcSettings) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            // Following redirects from the provider invites SSRF; none are expected.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("mrmat-api/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(ProviderHttp::new)
            .map_err(|e| ApiError::internal(format!("HTTP client: {e}")))?;
        let cache = Cache::builder()
            .max_capacity(CACHE_CAPACITY)
            .expire_after(VerdictExpiry)
            .build();
        Ok(Self {
            settings,
            http,
            client: OnceCell::new(),
            cache,
            unreachable: Outage::new("the identity provider"),
            misconfigured: Outage::logged_at("token introspection", log::Level::Error),
        })
    }

    /// The settings this authenticator uses.
    pub(crate) fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The holder of `token`, from the cache or the provider. Concurrent calls for one
    /// uncached token share one provider call.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let verdict = self.cache.try_get_with(key, self.introspect(token)).await;
        let verdict = match verdict {
            Ok(verdict) => {
                self.unreachable.answered();
                self.misconfigured.answered();
                verdict
            }
            Err(error) => {
                match &*error {
                    ProviderError::Unreachable(cause) => self.unreachable.failed(cause),
                    misconfigured => self.misconfigured.failed(misconfigured),
                }
                return Err((*error).clone().into());
            }
        };
        match verdict.principal {
            Some(principal) => Ok((*principal).clone()),
            None => Err(ApiError::Unauthenticated {
                invalid_token: true,
            }),
        }
    }

    /// Checks the provider answers and accepts the server's credentials, by introspecting
    /// a token that cannot exist. Never cached.
    pub(crate) async fn check(&self) -> ProviderHealth {
        match self.introspect("mrmat-api-readiness-probe").await {
            Ok(_) => ProviderHealth::Ok,
            Err(ProviderError::Unreachable(_)) => ProviderHealth::Unreachable,
            Err(ProviderError::Misconfigured { .. }) => ProviderHealth::Misconfigured,
        }
    }

    async fn introspection_client(&self) -> Result<&IntrospectionClient, ProviderError> {
        self.client
            .get_or_try_init(|| async {
                let endpoint = provider::introspection_endpoint(&self.http, &self.settings).await?;
                log::info!("introspecting tokens at {endpoint}");
                Ok(Client::new(ClientId::new(self.settings.client_id.clone()))
                    .set_client_secret(self.settings.client_secret.clone())
                    .set_introspection_url(IntrospectionUrl::from_url(endpoint)))
            })
            .await
    }

    async fn introspect(&self, token: &str) -> Result<Verdict, ProviderError> {
        self.call_provider(token)
            .await
            .map(|verdict| verdict.capped(self.settings.cache_ttl))
    }

    async fn call_provider(&self, token: &str) -> Result<Verdict, ProviderError> {
        let client = self.introspection_client().await?;
        let token = AccessToken::new(token.to_owned());
        let mut retried = false;
        loop {
            let answer = client
                .introspect(&token)
                .set_token_type_hint("access_token")
                .request_async(&self.http)
                .await;
            match answer {
                Ok(response) => return Ok(judge(&response, self.settings.cache_ttl)),
                // A pooled connection the provider closed while idle fails at once; one
                // fresh attempt tells that apart from a provider that is really down.
                Err(RequestTokenError::Request(HttpClientError::Reqwest(e)))
                    if !retried && !e.is_timeout() =>
                {
                    retried = true;
                }
                Err(error) => return classify(error),
            }
        }
    }
}

/// What a failed introspection call means. Only errors about the server itself or the
/// provider's health are errors; an error about the token is a verdict.
fn classify(
    error: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
) -> Result<Verdict, ProviderError> {
    match error {
        RequestTokenError::ServerResponse(response) => match response.error() {
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                Err(ProviderError::Misconfigured {
                    option: "--oidc-client-id/--oidc-client-secret",
                    reason: format!(
                        "the provider refused the server's client credentials ({})",
                        response.error()
                    ),
                })
            }
            BasicErrorResponseType::InvalidRequest | BasicErrorResponseType::InvalidGrant => {
                Ok(Verdict::invalid())
            }
            BasicErrorResponseType::Extension(code)
                if matches!(code.as_str(), "invalid_token" | "unsupported_token_type") =>
            {
                Ok(Verdict::invalid())
            }
            other => Err(ProviderError::Unreachable(format!(
                "introspection answered {other}"
            ))),
        },
        RequestTokenError::Request(HttpClientError::Reqwest(e)) => {
            // Without the URL: it is the provider's, and the message is enough.
            Err(ProviderError::Unreachable(e.without_url().to_string()))
        }
        RequestTokenError::Request(e) => Err(ProviderError::Unreachable(e.to_string())),
        RequestTokenError::Parse(e, _) => Err(ProviderError::Unreachable(format!(
            "unreadable introspection answer: {e}"
        ))),
        RequestTokenError::Other(message) => Err(ProviderError::Unreachable(message)),
    }
}

/// Whether an introspection answer describes a usable access token, and whose.
fn judge(response: &IntrospectionResponse, ceiling: Duration) -> Verdict {
    if !response.active() {
        return Verdict::invalid();
    }
    let extra = response.extra_fields();
    // `active` alone would admit refresh and ID tokens: only access tokens are bearers.
    let is_access_token = match (response.token_type(), extra.typ.as_deref()) {
        (Some(token_type), _) => *token_type == BasicTokenType::Bearer,
        (None, Some(typ)) => typ.eq_ignore_ascii_case("bearer"),
        (None, None) => false,
    };
    if !is_access_token {
        return Verdict::invalid();
    }
    let now = Utc::now();
    if response.nbf().is_some_and(|nbf| nbf > now) {
        return Verdict::invalid();
    }
    let remaining = match response.exp() {
        Some(exp) if exp <= now => return Verdict::invalid(),
        Some(exp) => (exp - now).to_std().unwrap_or_default(),
        None => ceiling,
    };
    let client_id = response
        .client_id()
        .map(|id| id.as_str().to_owned())
        .or_else(|| extra.azp.clone());
    let Some(subject) = response
        .sub()
        .map(str::to_owned)
        .or_else(|| client_id.clone())
    else {
        return Verdict::invalid();
    };
    let username = extra
        .preferred_username
        .clone()
        .or_else(|| response.username().map(str::to_owned))
        .unwrap_or_else(|| subject.clone());
    // PostgreSQL text cannot hold NUL; a claim carrying one must not become a 500.
    let clean = |s: String| s.replace('\0', "");
    let principal = Principal {
        client_id: clean(client_id.unwrap_or_else(|| subject.clone())),
        username: clean(username),
        subject: clean(subject),
        scopes: response
            .scopes()
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        expires_at: response.exp().map(SystemTime::from),
    };
    Verdict {
        principal: Some(Arc::new(principal)),
        ttl: remaining.min(ceiling),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(json: serde_json::Value) -> Verdict {
        let response: IntrospectionResponse = serde_json::from_value(json).unwrap();
        judge(&response, Duration::from_secs(300))
    }

    fn in_an_hour() -> i64 {
        Utc::now().timestamp() + 3600
    }

    #[test]
    fn active_bearer_token_names_its_holder() {
        let v = verdict(serde_json::json!({
            "active": true, "token_type": "Bearer", "sub": "u1", "client_id": "cli",
            "preferred_username": "alice", "username": "alice2",
            "scope": "openid mrmat-api-resource-read", "exp": in_an_hour()
        }));
        let p = v.principal.unwrap();
        assert_eq!(
            (
                p.subject.as_str(),
                p.username.as_str(),
                p.client_id.as_str()
            ),
            ("u1", "alice", "cli")
        );
        assert!(p.has_scope(super::super::Scope::ResourceRead));
        assert!(!p.has_scope(super::super::Scope::ResourceWrite));
        assert_eq!(v.ttl, Duration::from_secs(300));
    }

    #[test]
    fn inactive_token_is_invalid() {
        assert!(
            verdict(serde_json::json!({"active": false}))
                .principal
                .is_none()
        );
    }

    #[test]
    fn token_without_token_type_is_not_a_bearer() {
        let v = verdict(
            serde_json::json!({"active": true, "sub": "u1", "client_id": "c", "exp": in_an_hour()}),
        );
        assert!(v.principal.is_none());
    }

    #[test]
    fn keycloak_typ_bearer_counts_and_refresh_does_not() {
        let bearer = verdict(
            serde_json::json!({"active": true, "typ": "Bearer", "sub": "u", "azp": "c", "username": null, "exp": in_an_hour()}),
        );
        let p = bearer.principal.unwrap();
        assert_eq!((p.client_id.as_str(), p.username.as_str()), ("c", "u"));
        let refresh = verdict(
            serde_json::json!({"active": true, "typ": "Refresh", "sub": "u", "exp": in_an_hour()}),
        );
        assert!(refresh.principal.is_none());
    }

    #[test]
    fn expired_token_is_invalid_even_when_active() {
        let v = verdict(
            serde_json::json!({"active": true, "token_type": "bearer", "sub": "u", "exp": Utc::now().timestamp() - 5}),
        );
        assert!(v.principal.is_none());
    }

    #[test]
    fn client_credentials_token_is_its_client() {
        let v = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "client_id": "svc", "exp": in_an_hour()}),
        );
        assert_eq!(v.principal.unwrap().subject, "svc");
    }

    #[test]
    fn cache_life_is_capped_by_the_token_life() {
        let v = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "sub": "u", "exp": Utc::now().timestamp() + 20}),
        );
        assert!(v.ttl <= Duration::from_secs(20));
    }

    #[test]
    fn audience_may_be_a_string_or_an_array() {
        for aud in [
            serde_json::json!("mrmat-api"),
            serde_json::json!(["a", "mrmat-api"]),
        ] {
            let v = verdict(
                serde_json::json!({"active": true, "token_type": "Bearer", "sub": "u", "aud": aud, "exp": in_an_hour()}),
            );
            assert!(v.principal.is_some());
        }
    }
}
