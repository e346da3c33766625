//! The device authorization grant (RFC 8628): ask the provider for a code, show it, poll
//! until the person answers. The result is a session not yet stored: whether it replaces
//! the cached one is the caller's decision (see [`Session::adopt`]).

use std::time::Duration;

use mrmat_api_types::secret::Secret;
use oauth2::{
    DeviceCodeErrorResponseType, RequestTokenError, Scope, StandardDeviceAuthorizationResponse,
};
use reqwest::Method;

use crate::error::ClientError;
use crate::http::StatusCell;
use crate::oauth::{Origin, oauth_client, session_from, token_error};
use crate::provider::Provider;
use crate::sanitise::printable;
use crate::session::Session;
use crate::token_cache::CachedSession;

/// What the person must do to approve a login. Every text is the provider's, made safe
/// for a terminal.
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

impl Session {
    /// Logs in with the device flow: asks the provider for a code, shows it through
    /// `prompt`, and polls until the person answers. Nothing is stored yet.
    pub async fn device_login(
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
                    printable(&provider.issuer)
                ))
            })?;
        let client = oauth_client(
            &self.client_id,
            self.client_secret.as_ref(),
            provider.token_endpoint.clone(),
            Some(device_endpoint.clone()),
        );
        let status = StatusCell::default();
        let http = self.http.for_oauth(&status);
        let indicator = self.resource_indicator();
        let mut request = client
            .exchange_device_code()
            .map_err(|e| ClientError::Config(e.to_string()))?
            .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
        // RFC 8707: in the authorization request and in every token request, so the
        // provider issues tokens for this server only (a provider may read either).
        if let Some(indicator) = indicator {
            request = request.add_extra_param(indicator.param.as_str(), indicator.value.as_str());
        }
        let details: StandardDeviceAuthorizationResponse = request
            .request_async(&http)
            .await
            .map_err(|e| token_error(e, device_endpoint.as_str()))?;

        prompt(&DevicePrompt {
            verification_uri: printable(details.verification_uri()),
            user_code: printable(details.user_code().secret()),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| printable(u.secret())),
            expires_in: details.expires_in(),
        });

        // oauth2 polls at `interval` (5 s when absent), adds 5 s on slow_down, keeps
        // waiting on authorization_pending and stops at the first answer: a device code is
        // single-use, and polling past the 200 would revoke the login.
        let mut request = client.exchange_device_access_token(&details);
        if let Some(indicator) = indicator {
            request = request.add_extra_param(indicator.param.as_str(), indicator.value.as_str());
        }
        let token = request
            .request_async(&http, tokio::time::sleep, None)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(response) => match response.error() {
                    DeviceCodeErrorResponseType::AccessDenied => ClientError::AccessDenied(
                        response.error_description().map(|d| printable(d)),
                    ),
                    DeviceCodeErrorResponseType::ExpiredToken => ClientError::LoginExpired,
                    _ => ClientError::Provider(printable(&response.to_string())),
                },
                RequestTokenError::Request(e) => ClientError::http(
                    "the identity provider",
                    provider.token_endpoint.as_str(),
                    &e,
                ),
                RequestTokenError::Parse(e, _) => ClientError::Protocol {
                    what: "the identity provider",
                    reason: printable(&e.to_string()),
                },
                RequestTokenError::Other(message) => ClientError::Provider(printable(&message)),
            })?;

        let origin = Origin {
            server: self.server.as_str(),
            issuer: &provider.issuer,
            client_id: &self.client_id,
            token_endpoint: provider.token_endpoint.as_str(),
            revocation_endpoint: provider.revocation_endpoint.as_ref().map(|u| u.as_str()),
            requested: scopes,
            resource_indicator: indicator,
        };
        let mut session = session_from(&token, None, &origin);
        if session.name.is_none() {
            session.name = self.userinfo_name(provider, &session.access_token).await;
        }
        Ok(session)
    }

    /// The user's name from the userinfo endpoint, for providers whose ID tokens carry
    /// only `sub`. Best effort: a login without a display name is still a login.
    async fn userinfo_name(&self, provider: &Provider, access_token: &Secret) -> Option<String> {
        let endpoint = provider.userinfo_endpoint.as_ref()?;
        let request = self
            .http
            .request(Method::GET, endpoint.as_str())
            .bearer_auth(access_token.expose());
        let response = self.http.send(request).await.ok()?;
        let claims: serde_json::Value = response.error_for_status().ok()?.json().await.ok()?;
        ["preferred_username", "name"].iter().find_map(|claim| {
            claims
                .get(claim)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
    }
}

/// How long a code stays valid, as a person says it: "15 seconds", "1 minute",
/// "10 minutes".
pub fn expiry_words(expires_in: Duration) -> String {
    crate::words::duration(expires_in.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_said_in_seconds_under_a_minute_and_in_whole_minutes_above() {
        let words = |s| expiry_words(Duration::from_secs(s));
        assert_eq!(words(1), "1 second");
        assert_eq!(words(15), "15 seconds");
        assert_eq!(words(60), "1 minute");
        assert_eq!(words(119), "1 minute");
        assert_eq!(words(600), "10 minutes");
    }
}
