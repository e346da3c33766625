//! Getting and keeping tokens: the device authorization grant (RFC 8628), refresh with
//! rotation, and revocation (RFC 7009), all through `oauth2`, stored in a [`TokenCache`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    Client, ClientId, ClientSecret, DeviceAuthorizationUrl, DeviceCodeErrorResponseType,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, ExtraTokenFields, HttpClientError, RefreshToken,
    RequestTokenError, Scope, StandardDeviceAuthorizationResponse, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{ClientError, display_url, root_cause};
use crate::provider::Provider;
use crate::token_cache::{CACHE_VERSION, CachedSession, Loaded, TokenCache};

/// The token response field OIDC adds; kept only to read the user's name from it.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    /// The ID token. Never sent as a bearer: only access tokens are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

impl std::fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenField")
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

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
    /// The cache file was unreadable; it was deleted, nothing could be revoked.
    Unreadable,
}

/// A client's tokens for one provider.
#[derive(Clone)]
pub struct Session {
    http: reqwest::Client,
    client_id: String,
    client_secret: Option<String>,
    cache: TokenCache,
    /// Serialises writers within this process; the cache's file lock does it across
    /// processes, but blocks a whole thread, so tasks queue here first.
    writers: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("cache", &self.cache.path())
            .finish_non_exhaustive()
    }
}

/// Held while a session is written: in-process and cross-process exclusion together.
struct WriteGuard {
    _file: std::fs::File,
    _task: tokio::sync::OwnedMutexGuard<()>,
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

/// A failed request to the provider, named by its innermost cause.
fn unreachable_provider<RE: std::error::Error + 'static>(
    error: &HttpClientError<RE>,
    endpoint: &str,
) -> ClientError {
    let cause = root_cause(error);
    ClientError::Unreachable {
        what: "the identity provider",
        url: display_url(endpoint),
        reason: if cause.contains("://") {
            "request failed".to_owned()
        } else {
            cause
        },
    }
}

fn provider_error<RE: std::error::Error + 'static>(
    error: RequestTokenError<HttpClientError<RE>, BasicErrorResponse>,
    endpoint: &str,
) -> ClientError {
    match error {
        RequestTokenError::ServerResponse(response) => ClientError::Provider(response.to_string()),
        RequestTokenError::Request(e) => unreachable_provider(&e, endpoint),
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
            writers: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Exclusive right to change the cache, across tasks and processes.
    async fn lock(&self) -> Result<WriteGuard, ClientError> {
        let task = Arc::clone(&self.writers).lock_owned().await;
        let cache = self.cache.clone();
        let file = tokio::task::spawn_blocking(move || cache.lock())
            .await
            .map_err(|e| ClientError::Cache {
                path: self.cache.path().display().to_string(),
                reason: format!("locking failed: {e}"),
            })??;
        Ok(WriteGuard {
            _file: file,
            _task: task,
        })
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
                RequestTokenError::Request(e) => {
                    unreachable_provider(&e, provider.token_endpoint.as_str())
                }
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
        let _guard = self.lock().await?;
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
        // One refresh at a time across tasks and processes; the loser finds the winner's
        // new token instead of spending a refresh token that was just rotated away.
        let _guard = self.lock().await?;
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
                // The grant is over (expired, revoked, or a rotated token reused): only a
                // new login helps. Other refusals are configuration faults, said as such.
                RequestTokenError::ServerResponse(response)
                    if *response.error() == BasicErrorResponseType::InvalidGrant =>
                {
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
    /// and deletes the cache. When revocation fails the cache stays, so logout can be
    /// tried again rather than leaving live tokens nobody can revoke.
    pub async fn logout(&self) -> Result<Logout, ClientError> {
        let _guard = self.lock().await?;
        let session = match self.cache.load()? {
            Loaded::Found(session) => *session,
            Loaded::Missing => return Ok(Logout::NotLoggedIn),
            Loaded::Unusable(_) => {
                self.cache.remove()?;
                return Ok(Logout::Unreadable);
            }
        };
        let outcome = self
            .revoke(&session)
            .await
            .map_err(|e| ClientError::LogoutIncomplete(Box::new(e)))?;
        self.cache.remove()?;
        Ok(outcome)
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
                // RFC 6749 section 2.3.1: both parts are form-encoded before Basic encoding.
                Some(secret) => {
                    request =
                        request.basic_auth(form_encode(&self.client_id), Some(form_encode(secret)));
                }
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

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
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
