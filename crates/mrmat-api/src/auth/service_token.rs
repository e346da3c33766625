//! Tokens of the server's own client (the client-credentials grant): the bearer token it
//! introspects with when `--oidc-introspection-token-scope` is set (RFC 7662 section 2.1
//! allows that instead of client credentials, and Glewlwyd wants it), and the fresh probe
//! token the readiness check introspects, which must come back active.

use std::time::{Duration, Instant};

use mrmat_api_types::secret::Secret;
use oauth2::TokenResponse;
use oauth2::basic::{BasicErrorResponse, BasicTokenResponse};
use tokio::sync::Mutex;
use url::Url;

use super::http::{ProviderHttp, read_capped};
use super::provider::ProviderError;
use crate::settings::OidcSettings;

/// Tokens are renewed this long before they expire, at most half their life.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// A client-credentials token of the server's client, or why there is none.
pub(crate) async fn fetch(
    http: &ProviderHttp,
    settings: &OidcSettings,
    token_endpoint: &Url,
    scope: Option<&str>,
) -> Result<(Secret, Duration), ProviderError> {
    let Some(credentials) = &settings.credentials else {
        return Err(ProviderError::Misconfigured {
            option: "--oidc-client-id/--oidc-client-secret",
            reason: "the server has no client at this provider".to_owned(),
        });
    };
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let request = http
        .post(token_endpoint.as_str())
        .basic_auth(
            mrmat_api_types::urls::basic_auth_part(&credentials.client_id),
            Some(mrmat_api_types::urls::basic_auth_part(
                credentials.client_secret.secret(),
            )),
        )
        .form(&form);
    let response = http
        .send("token", request)
        .await
        .map_err(|e| ProviderError::Unreachable(format!("token endpoint: {}", e.without_url())))?;
    let status = response.status();
    let body = read_capped(response)
        .await
        .map_err(|e| ProviderError::Unreachable(format!("token endpoint: {e}")))?;
    if status.is_success() {
        let token: BasicTokenResponse = serde_json::from_slice(&body).map_err(|e| {
            ProviderError::Unreachable(format!("unreadable token endpoint answer: {e}"))
        })?;
        let life = token.expires_in().unwrap_or(Duration::from_secs(60));
        return Ok((Secret::new(token.access_token().secret().clone()), life));
    }
    let error = serde_json::from_slice::<BasicErrorResponse>(&body)
        .map(|e| e.error().to_string())
        .unwrap_or_else(|_| status.to_string());
    if status.is_client_error() {
        Err(ProviderError::Misconfigured {
            option: if scope.is_some() {
                "--oidc-client-id/--oidc-client-secret/--oidc-introspection-token-scope"
            } else {
                "--oidc-client-id/--oidc-client-secret"
            },
            reason: format!("the token endpoint refused the server's client ({error})"),
        })
    } else {
        Err(ProviderError::Unreachable(format!(
            "the token endpoint answered {error}"
        )))
    }
}

/// The bearer token introspection is authenticated with, renewed before it expires.
#[derive(Debug)]
pub(crate) struct ServiceToken {
    scope: String,
    current: Mutex<Option<(Secret, Instant)>>,
}

impl ServiceToken {
    /// Tokens carrying `scope`.
    pub(crate) fn new(scope: String) -> Self {
        Self {
            scope,
            current: Mutex::new(None),
        }
    }

    /// A token that is not about to expire; concurrent callers wait for one renewal.
    pub(crate) async fn get(
        &self,
        http: &ProviderHttp,
        settings: &OidcSettings,
        token_endpoint: &Url,
    ) -> Result<Secret, ProviderError> {
        let mut current = self.current.lock().await;
        if let Some((token, renew_at)) = current.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let (token, life) = fetch(http, settings, token_endpoint, Some(&self.scope)).await?;
        let renew_at = Instant::now() + life.saturating_sub(RENEW_BEFORE.min(life / 2));
        *current = Some((token.clone(), renew_at));
        Ok(token)
    }

    /// Drops the token, after the provider refused it: the next call gets a new one.
    pub(crate) async fn forget(&self) {
        *self.current.lock().await = None;
    }
}
