//! Getting and keeping tokens: the device authorization grant (RFC 8628), refresh with
//! rotation, and revocation (RFC 7009), all through `oauth2`, stored in a [`TokenCache`].

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    Client, ClientId, ClientSecret, DeviceAuthorizationUrl, DeviceCodeErrorResponseType,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, ExtraTokenFields, HttpClientError, RefreshToken,
    RequestTokenError, Scope, StandardDeviceAuthorizationResponse, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::ClientError;
use crate::provider::Provider;
use crate::token_cache::{CACHE_VERSION, CachedSession, Loaded, TokenCache};

/// The token response field OIDC adds; kept only to read the user's name from it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    /// The ID token. Never sent as a bearer: only access tokens are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type OAuthClient = Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What the person must do to approve a login.
#[derive(Debug, Clone)]
pub struct DevicePrompt {
    /// Where to go.
    pub verification_uri: String,
    /// The code to enter there.
    pub user_code: String,
    /// The same page with the code filled in, when the provider offers it.
    pub verification_uri_complete: Option<String>,
    /// How long the code is valid.
    pub expires_in: Duration,
}

/// What logging out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logout {
    /// Tokens revoked at the provider and the cache deleted.
    Revoked,
    /// The provider has no revocation endpoint; only the cache was deleted.
    CacheOnly,
    /// Nobody was logged in.
    NotLoggedIn,
}

/// A client's tokens for one provider.
#[derive(Debug, Clone)]
pub struct Session {
    http: reqwest::Client,
    client_id: String,
    client_secret: Option<String>,
    cache: TokenCache,
}

/// Refresh this long before expiry, at most: a token about to expire fails mid-request.
const REFRESH_MARGIN_SECONDS: i64 = 30;

fn needs_refresh(session: &CachedSession) -> bool {
    let Some(expires_at) = session.expires_at else {
        return false;
    };
    // Short-lived tokens get half their life as margin, so they are not refreshed at birth.
    let margin = session.lifetime.map_or(REFRESH_MARGIN_SECONDS, |life| {
        (i64::try_from(life).unwrap_or(i64::MAX) / 2).min(REFRESH_MARGIN_SECONDS)
    });
    expires_at - Utc::now().timestamp() <= margin
}

/// The claims of an ID token's payload, read without verifying its signature: they are
/// only shown to the person who just logged in, never trusted for a decision.
fn id_token_claims(id_token: &str) -> Option<serde_json::Value> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn provider_error<RE: std::error::Error + 'static>(
    error: RequestTokenError<HttpClientError<RE>, BasicErrorResponse>,
    endpoint: &str,
) -> ClientError {
    match error {
        RequestTokenError::ServerResponse(response) => ClientError::Provider(response.to_string()),
        RequestTokenError::Request(e) => ClientError::Unreachable {
            what: "the identity provider",
            url: endpoint.to_owned(),
            reason: e.to_string(),
        },
        RequestTokenError::Parse(e, _) => ClientError::Protocol {
            what: "the identity provider",
            reason: e.to_string(),
        },
        RequestTokenError::Other(message) => ClientError::Provider(message),
    }
}

fn parse_url<T>(value: &str, make: fn(Url) -> T) -> Result<T, ClientError> {
    Url::parse(value)
        .map(make)
        .map_err(|e| ClientError::Protocol {
            what: "the token cache",
            reason: format!("{value:?} is not a URL: {e}"),
        })
}

impl Session {
    /// A session of `client_id` kept in `cache`.
    pub fn new(
        http: reqwest::Client,
        client_id: String,
        client_secret: Option<String>,
        cache: TokenCache,
    ) -> Self {
        Self {
            http,
            client_id,
            client_secret,
            cache,
        }
    }

    /// The cache behind this session.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    fn oauth_client(&self, token_endpoint: Url, device_endpoint: Option<Url>) -> OAuthClient {
        let client = Client::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(TokenUrl::from_url(token_endpoint))
            .set_device_authorization_url_option(
                device_endpoint.map(DeviceAuthorizationUrl::from_url),
            );
        match &self.client_secret {
            Some(secret) => client.set_client_secret(ClientSecret::new(secret.clone())),
            None => client,
        }
    }

    fn cached_client(&self, session: &CachedSession) -> Result<OAuthClient, ClientError> {
        let token = parse_url(&session.token_endpoint, |u| u)?;
        Ok(self.oauth_client(token, None))
    }

    /// The stored session, if any. An unusable cache file is an error that says it will be
    /// replaced by the next login.
    pub fn current(&self) -> Result<Option<CachedSession>, ClientError> {
        match self.cache.load()? {
            Loaded::Missing => Ok(None),
            Loaded::Found(session) => Ok(Some(*session)),
            Loaded::Unusable(reason) => Err(ClientError::Cache {
                path: self.cache.path().display().to_string(),
                reason: format!("{reason}; run `mrmat-api-client login` to replace it"),
            }),
        }
    }

    /// Logs in with the device flow: asks the provider for a code, shows it through
    /// `prompt`, polls until the person answers, and stores the tokens.
    pub async fn login(
        &self,
        provider: &Provider,
        scopes: &[String],
        prompt: impl FnOnce(&DevicePrompt),
    ) -> Result<CachedSession, ClientError> {
        let device_endpoint = provider
            .device_authorization_endpoint
            .clone()
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "the identity provider {} offers no device authorization endpoint",
                    provider.issuer
                ))
            })?;
        let client = self.oauth_client(
            provider.token_endpoint.clone(),
            Some(device_endpoint.clone()),
        );
        let details: StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .map_err(|e| ClientError::Config(e.to_string()))?
            .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())))
            .request_async(&self.http)
            .await
            .map_err(|e| provider_error(e, device_endpoint.as_str()))?;

        prompt(&DevicePrompt {
            verification_uri: details.verification_uri().to_string(),
            user_code: details.user_code().secret().clone(),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| u.secret().clone()),
            expires_in: details.expires_in(),
        });

        // oauth2 polls at `interval` (5 s when absent), adds 5 s on slow_down, keeps
        // waiting on authorization_pending and stops at the first answer: a device code is
        // single-use, and polling past the 200 would revoke the login.
        let token = client
            .exchange_device_access_token(&details)
            .request_async(&self.http, tokio::time::sleep, None)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(response) => match response.error() {
                    DeviceCodeErrorResponseType::AccessDenied => ClientError::AccessDenied,
                    DeviceCodeErrorResponseType::ExpiredToken => ClientError::LoginExpired,
                    _ => ClientError::Provider(response.to_string()),
                },
                RequestTokenError::Request(e) => ClientError::Unreachable {
                    what: "the identity provider",
                    url: provider.token_endpoint.to_string(),
                    reason: e.to_string(),
                },
                RequestTokenError::Parse(e, _) => ClientError::Protocol {
                    what: "the identity provider",
                    reason: e.to_string(),
                },
                RequestTokenError::Other(message) => ClientError::Provider(message),
            })?;

        let mut session = self.session_from(&token, None, provider, scopes);
        if session.name.is_none() {
            session.name = self.userinfo_name(provider, &session.access_token).await;
        }
        self.cache.store(&session)?;
        Ok(session)
    }

    /// The user's name from the userinfo endpoint, for providers whose ID tokens carry
    /// only `sub`. Best effort: a login without a display name is still a login.
    async fn userinfo_name(&self, provider: &Provider, access_token: &str) -> Option<String> {
        let endpoint = provider.userinfo_endpoint.clone()?;
        let response = self
            .http
            .get(endpoint)
            .bearer_auth(access_token)
            .send()
            .await
            .ok()?;
        let claims: serde_json::Value = response.error_for_status().ok()?.json().await.ok()?;
        ["preferred_username", "name"].iter().find_map(|claim| {
            claims
                .get(claim)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
    }

    fn session_from(
        &self,
        token: &OidcTokenResponse,
        previous: Option<&CachedSession>,
        provider: &Provider,
        requested: &[String],
    ) -> CachedSession {
        let claims = token
            .extra_fields()
            .id_token
            .as_deref()
            .and_then(id_token_claims);
        let claim = |name: &str| {
            claims
                .as_ref()
                .and_then(|c| c.get(name))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let lifetime = token.expires_in().map(|d| d.as_secs());
        CachedSession {
            version: CACHE_VERSION,
            issuer: provider.issuer.clone(),
            client_id: self.client_id.clone(),
            token_endpoint: provider.token_endpoint.to_string(),
            revocation_endpoint: provider.revocation_endpoint.as_ref().map(Url::to_string),
            access_token: token.access_token().secret().clone(),
            // Providers that rotate refresh tokens send a new one; others keep the old.
            refresh_token: token
                .refresh_token()
                .map(|r| r.secret().clone())
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            expires_at: lifetime
                .map(|s| Utc::now().timestamp() + i64::try_from(s).unwrap_or(i64::MAX / 2)),
            lifetime,
            scopes: token
                .scopes()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
                .unwrap_or_else(|| {
                    previous.map_or_else(|| requested.to_vec(), |p| p.scopes.clone())
                }),
            subject: claim("sub").or_else(|| previous.and_then(|p| p.subject.clone())),
            name: claim("preferred_username")
                .or_else(|| claim("name"))
                .or_else(|| previous.and_then(|p| p.name.clone())),
        }
    }

    /// A valid access token: the cached one, or a refreshed one when it has expired, is
    /// about to, or is `rejected` (the server answered `invalid_token` to it).
    pub async fn valid_token(&self, rejected: Option<&str>) -> Result<String, ClientError> {
        let stale =
            |s: &CachedSession| needs_refresh(s) || Some(s.access_token.as_str()) == rejected;
        let session = self.current()?.ok_or(ClientError::NotLoggedIn)?;
        if !stale(&session) {
            return Ok(session.access_token);
        }
        // One refresh at a time across processes; the loser finds the winner's new token.
        let _lock = self.cache.lock()?;
        let session = self.current()?.ok_or(ClientError::NotLoggedIn)?;
        if !stale(&session) {
            return Ok(session.access_token);
        }
        let refreshed = self.refresh(&session).await?;
        Ok(refreshed.access_token)
    }

    async fn refresh(&self, session: &CachedSession) -> Result<CachedSession, ClientError> {
        let refresh_token = session.refresh_token.clone().ok_or_else(|| {
            ClientError::LoginAgain("the access token expired and there is no refresh token".into())
        })?;
        let client = self.cached_client(session)?;
        let token = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(response) => {
                    ClientError::LoginAgain(response.to_string())
                }
                other => provider_error(other, &session.token_endpoint),
            })?;
        let provider = Provider {
            issuer: session.issuer.clone(),
            token_endpoint: parse_url(&session.token_endpoint, |u| u)?,
            device_authorization_endpoint: None,
            revocation_endpoint: session
                .revocation_endpoint
                .as_deref()
                .map(|r| parse_url(r, |u| u))
                .transpose()?,
            userinfo_endpoint: None,
            scopes_supported: Vec::new(),
        };
        let refreshed = self.session_from(&token, Some(session), &provider, &session.scopes);
        // Store first: the old refresh token is already dead if the provider rotates them.
        self.cache.store(&refreshed)?;
        Ok(refreshed)
    }

    /// Revokes the tokens at the provider (refresh token first: that ends the whole grant)
    /// and deletes the cache, even when revocation fails.
    pub async fn logout(&self) -> Result<Logout, ClientError> {
        let session = match self.cache.load()? {
            Loaded::Found(session) => *session,
            Loaded::Missing => return Ok(Logout::NotLoggedIn),
            Loaded::Unusable(_) => {
                self.cache.remove()?;
                return Ok(Logout::CacheOnly);
            }
        };
        let outcome = self.revoke(&session).await;
        self.cache.remove()?;
        outcome
    }

    /// RFC 7009 revocation, as a plain form POST: `oauth2` refuses revocation endpoints
    /// that are not https, which rules out every provider on loopback (development, tests).
    async fn revoke(&self, session: &CachedSession) -> Result<Logout, ClientError> {
        let Some(endpoint) = session.revocation_endpoint.clone() else {
            return Ok(Logout::CacheOnly);
        };
        let mut tokens = Vec::new();
        if let Some(refresh) = &session.refresh_token {
            tokens.push((refresh.as_str(), "refresh_token"));
        }
        tokens.push((session.access_token.as_str(), "access_token"));
        for (token, hint) in tokens {
            let mut form = vec![("token", token), ("token_type_hint", hint)];
            let mut request = self.http.post(&endpoint);
            match &self.client_secret {
                Some(secret) => request = request.basic_auth(&self.client_id, Some(secret)),
                None => form.push(("client_id", &self.client_id)),
            }
            let response =
                request.form(&form).send().await.map_err(|e| {
                    ClientError::unreachable("the identity provider", &endpoint, &e)
                })?;
            if !response.status().is_success() {
                let status = response.status();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let error = body
                    .get("error")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("no error code");
                return Err(ClientError::Provider(format!(
                    "revocation answered {status}: {error}"
                )));
            }
        }
        Ok(Logout::Revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires_in: i64, lifetime: u64) -> CachedSession {
        CachedSession {
            version: CACHE_VERSION,
            issuer: String::new(),
            client_id: String::new(),
            token_endpoint: String::new(),
            revocation_endpoint: None,
            access_token: String::new(),
            refresh_token: None,
            expires_at: Some(Utc::now().timestamp() + expires_in),
            lifetime: Some(lifetime),
            scopes: Vec::new(),
            subject: None,
            name: None,
        }
    }

    #[test]
    fn fresh_token_is_kept_and_nearly_expired_one_is_refreshed() {
        assert!(!needs_refresh(&session(3000, 3600)));
        assert!(needs_refresh(&session(20, 3600)));
        assert!(needs_refresh(&session(-5, 3600)));
    }

    #[test]
    fn short_lived_tokens_get_half_their_life_as_margin() {
        assert!(!needs_refresh(&session(9, 10)));
        assert!(needs_refresh(&session(4, 10)));
    }

    #[test]
    fn id_token_claims_are_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","preferred_username":"alice"}"#);
        let claims = id_token_claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert!(id_token_claims("not-a-jwt").is_none());
    }
}
