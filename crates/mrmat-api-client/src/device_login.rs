//! The device authorization grant (RFC 8628): ask the provider for a code, show it, poll
//! until the person answers. The result is a session not yet stored: whether it replaces
//! the cached one is the caller's decision (see [`Session::adopt`]).

use std::time::Duration;

use mrmat_api_types::secret::Secret;
use oauth2::{
    DeviceCodeErrorResponse, DeviceCodeErrorResponseType, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse,
};
use reqwest::Method;

use crate::dpop::{Dpop, DpopKey};
use crate::error::ClientError;
use crate::http::{HttpError, MAX_PROVIDER_ANSWER, StatusCell};
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
    /// How long the code is valid (at most [`MAX_DEVICE_CODE_LIFE`]).
    pub expires_in: Duration,
    /// What the client changed of the provider's answer, one sentence each: an `interval`
    /// or `expires_in` beyond its bound, clamped.
    pub adjusted: Vec<String>,
}

/// The longest the client waits between two polls, whatever the provider's `interval`
/// and `slow_down`s say: a hostile `interval` of 10^9 s must not put it to sleep for good.
/// Real providers ask for 5 s; 30 s is that after five `slow_down`s.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// The longest the client waits for a login to be approved, whatever the device code's
/// `expires_in` says. Providers give 5 to 30 minutes.
pub const MAX_DEVICE_CODE_LIFE: Duration = Duration::from_secs(3600);

/// `details` with `interval` and `expires_in` within [`MAX_POLL_INTERVAL`] and
/// [`MAX_DEVICE_CODE_LIFE`], and a sentence for each value clamped. `oauth2` keeps the
/// fields private, so a clamped answer is made by reading it back with the new values;
/// it must be, as `oauth2` adds 5 s to the interval on `slow_down` and an interval near
/// `u64::MAX` seconds would overflow.
fn clamp_device_details(
    details: StandardDeviceAuthorizationResponse,
) -> Result<(StandardDeviceAuthorizationResponse, Vec<String>), ClientError> {
    let mut adjusted = Vec::new();
    let mut clamp = |name: &str, value: Duration, most: Duration, what: &str| {
        if value <= most {
            return None;
        }
        adjusted.push(format!(
            "the identity provider's {name} is {} seconds; this client {what} {} instead",
            value.as_secs(),
            crate::words::duration(most.as_secs())
        ));
        Some(most.as_secs())
    };
    let interval = clamp(
        "interval",
        details.interval(),
        MAX_POLL_INTERVAL,
        "polls every",
    );
    let expires_in = clamp(
        "expires_in",
        details.expires_in(),
        MAX_DEVICE_CODE_LIFE,
        "waits for approval at most",
    );
    if interval.is_none() && expires_in.is_none() {
        return Ok((details, adjusted));
    }
    let fault = |e: serde_json::Error| ClientError::Protocol {
        what: "the identity provider",
        reason: format!("its device authorization answer cannot be bounded: {e}"),
    };
    let mut value = serde_json::to_value(&details).map_err(fault)?;
    if let Some(interval) = interval {
        value["interval"] = interval.into();
    }
    if let Some(expires_in) = expires_in {
        value["expires_in"] = expires_in.into();
    }
    Ok((serde_json::from_value(value).map_err(fault)?, adjusted))
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
            .map_err(|e| token_error(e, device_endpoint.as_str(), &status))?;
        let (details, adjusted) = clamp_device_details(details)?;

        prompt(&DevicePrompt {
            verification_uri: printable(details.verification_uri()),
            user_code: printable(details.user_code().secret()),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| printable(u.secret())),
            expires_in: details.expires_in(),
            adjusted,
        });

        // oauth2 polls at `interval` (5 s when absent), adds 5 s on slow_down, keeps
        // waiting on authorization_pending and stops at the first answer: a device code is
        // single-use, and polling past the 200 would revoke the login. Each wait is at
        // most MAX_POLL_INTERVAL, however many slow_downs came; the whole at most the
        // (clamped) life of the code.
        // A DPoP login: a key of its own, and a proof by it with every poll (RFC 9449).
        let dpop = if self.dpop {
            Some(Dpop::new(DpopKey::generate()?))
        } else {
            None
        };
        let token_http = self.http.for_oauth_dpop(&status, dpop.as_ref());
        let mut request = client.exchange_device_access_token(&details);
        if let Some(indicator) = indicator {
            request = request.add_extra_param(indicator.param.as_str(), indicator.value.as_str());
        }
        let pause = |wait: Duration| tokio::time::sleep(wait.min(MAX_POLL_INTERVAL));
        let token = request
            .request_async(&token_http, pause, Some(details.expires_in()))
            .await
            .map_err(|e| {
                status
                    .oversized()
                    .unwrap_or_else(|| poll_error(e, provider.token_endpoint.as_str()))
            })?;

        let origin = Origin {
            server: self.server.as_str(),
            issuer: &provider.issuer,
            client_id: &self.client_id,
            token_endpoint: provider.token_endpoint.as_str(),
            revocation_endpoint: provider.revocation_endpoint.as_ref().map(|u| u.as_str()),
            requested: scopes,
            resource_indicator: indicator,
            dpop_key: dpop.as_ref().map(Dpop::key),
        };
        let mut session = session_from(&token, None, &origin)?;
        if session.name.is_none() {
            session.name = self
                .userinfo_name(provider, &session.access_token, session.dpop_key.as_ref())
                .await;
        }
        Ok(session)
    }

    /// The user's name from the userinfo endpoint, for providers whose ID tokens carry
    /// only `sub`. Best effort: a login without a display name is still a login.
    async fn userinfo_name(
        &self,
        provider: &Provider,
        access_token: &Secret,
        dpop_key: Option<&DpopKey>,
    ) -> Option<String> {
        let endpoint = provider.userinfo_endpoint.as_ref()?;
        let request = self.http.request(Method::GET, endpoint.as_str());
        let request = match dpop_key {
            Some(key) => {
                let proof = key
                    .proof("GET", endpoint.as_str(), Some(access_token.expose()), None)
                    .ok()?;
                let mut authorization = reqwest::header::HeaderValue::from_str(&format!(
                    "DPoP {}",
                    access_token.expose()
                ))
                .ok()?;
                authorization.set_sensitive(true);
                request
                    .header(reqwest::header::AUTHORIZATION, authorization)
                    .header("DPoP", proof)
            }
            None => request.bearer_auth(access_token.expose()),
        };
        let answer = self.http.send(request, MAX_PROVIDER_ANSWER).await.ok()?;
        if !answer.status().is_success() {
            return None;
        }
        let claims: serde_json::Value = serde_json::from_slice(answer.body()).ok()?;
        ["preferred_username", "name"].iter().find_map(|claim| {
            claims
                .get(claim)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
    }
}

/// A failed poll for the login's tokens at `token_endpoint`, in the words of
/// [`ClientError`].
fn poll_error(
    error: RequestTokenError<HttpError, DeviceCodeErrorResponse>,
    token_endpoint: &str,
) -> ClientError {
    match error {
        RequestTokenError::ServerResponse(response) => match response.error() {
            DeviceCodeErrorResponseType::AccessDenied => {
                ClientError::AccessDenied(response.error_description().map(|d| printable(d)))
            }
            DeviceCodeErrorResponseType::ExpiredToken => ClientError::LoginExpired,
            _ => ClientError::Provider(printable(&response.to_string())),
        },
        RequestTokenError::Request(e) => {
            ClientError::http("the identity provider", token_endpoint, &e)
        }
        RequestTokenError::Parse(e, _) => ClientError::Protocol {
            what: "the identity provider",
            reason: printable(&e.to_string()),
        },
        RequestTokenError::Other(message) => ClientError::Provider(printable(&message)),
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

    fn details(interval: u64, expires_in: u64) -> StandardDeviceAuthorizationResponse {
        serde_json::from_value(serde_json::json!({
            "device_code": "d",
            "user_code": "u",
            "verification_uri": "http://127.0.0.1/device",
            "expires_in": expires_in,
            "interval": interval,
        }))
        .unwrap()
    }

    #[test]
    fn an_interval_and_a_code_life_beyond_their_bounds_are_clamped_and_said() {
        let (clamped, adjusted) = clamp_device_details(details(u64::MAX, u64::MAX)).unwrap();
        assert_eq!(clamped.interval(), MAX_POLL_INTERVAL);
        assert_eq!(clamped.expires_in(), MAX_DEVICE_CODE_LIFE);
        assert_eq!(clamped.device_code().secret(), "d");
        assert_eq!(
            adjusted,
            [
                "the identity provider's interval is 18446744073709551615 seconds; this client polls every 30 seconds instead",
                "the identity provider's expires_in is 18446744073709551615 seconds; this client waits for approval at most 1 hour instead",
            ]
        );
        // A slow_down on the clamped interval adds 5 s without overflowing.
        assert_eq!(
            clamped.interval() + Duration::from_secs(5),
            Duration::from_secs(35)
        );
    }

    #[test]
    fn values_within_their_bounds_are_kept_and_nothing_is_said() {
        let (kept, adjusted) = clamp_device_details(details(5, 600)).unwrap();
        assert_eq!(
            (kept.interval(), kept.expires_in()),
            (Duration::from_secs(5), Duration::from_secs(600))
        );
        assert!(adjusted.is_empty());
    }

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
