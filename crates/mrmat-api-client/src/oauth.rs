//! The `oauth2` client as this crate uses it, and the translation of token responses and
//! token-endpoint failures into cached sessions and [`ClientError`]s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use mrmat_api_types::secret::Secret;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    Client, ClientId, ClientSecret, DeviceAuthorizationUrl, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, ExtraTokenFields, RequestTokenError, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::binding::ResourceIndicator;
use crate::dpop::DpopKey;
use crate::error::ClientError;
use crate::http::{HttpError, StatusCell};
use crate::sanitise::printable;
use crate::token_cache::{CACHE_VERSION, CachedSession, MAX_TOKEN_LIFETIME};
use crate::words;

/// The token response field OIDC adds; kept only to read the user's name from it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    /// The ID token. Never sent as a bearer: only access tokens are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<Secret>,
}

impl ExtraTokenFields for IdTokenField {}

/// A token endpoint's answer, with the ID token OIDC adds.
pub(crate) type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

/// The client: a token endpoint always, a device authorization endpoint for logins.
pub(crate) type OAuthClient = Client<
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

/// A token request's failure as `oauth2` reports it.
pub(crate) type TokenError = RequestTokenError<HttpError, BasicErrorResponse>;

/// The `oauth2` client of `client_id` (and `secret`, for a confidential client).
pub(crate) fn oauth_client(
    client_id: &str,
    secret: Option<&Secret>,
    token_endpoint: Url,
    device_endpoint: Option<Url>,
) -> OAuthClient {
    let client = Client::new(ClientId::new(client_id.to_owned()))
        .set_token_uri(TokenUrl::from_url(token_endpoint))
        .set_device_authorization_url_option(device_endpoint.map(DeviceAuthorizationUrl::from_url));
    match secret {
        Some(secret) => client.set_client_secret(ClientSecret::new(secret.expose().to_owned())),
        None => client,
    }
}

/// The provider's error as one line: its code and, sanitised, its description.
pub(crate) fn provider_text(response: &BasicErrorResponse) -> String {
    printable(&response.to_string())
}

/// A failed token request to `endpoint`, in the words of [`ClientError`]; `status` is the
/// cell the request's HTTP client reported to, which knows of an answer refused for its
/// size.
pub(crate) fn token_error(error: TokenError, endpoint: &str, status: &StatusCell) -> ClientError {
    if let Some(oversized) = status.oversized() {
        return oversized;
    }
    match error {
        RequestTokenError::ServerResponse(response) => {
            ClientError::Provider(provider_text(&response))
        }
        RequestTokenError::Request(e) => ClientError::http("the identity provider", endpoint, &e),
        RequestTokenError::Parse(e, _) => ClientError::Protocol {
            what: "the identity provider",
            reason: printable(&e.to_string()),
        },
        RequestTokenError::Other(message) => ClientError::Provider(printable(&message)),
    }
}

/// The claims of an ID token's payload, read without verifying its signature: they are
/// only shown to the person who just logged in, never trusted for a decision.
pub(crate) fn id_token_claims(id_token: &str) -> Option<serde_json::Value> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What a token response says about the provider and client, besides the tokens.
#[derive(Debug, Clone)]
pub(crate) struct Origin<'a> {
    /// The server the login is for.
    pub server: &'a str,
    /// The provider's issuer.
    pub issuer: &'a str,
    /// The client.
    pub client_id: &'a str,
    /// Where to refresh.
    pub token_endpoint: &'a str,
    /// Where to revoke.
    pub revocation_endpoint: Option<&'a str>,
    /// The scopes asked for, for providers that do not say which they granted.
    pub requested: &'a [String],
    /// What the tokens were asked for (RFC 8707).
    pub resource_indicator: Option<&'a ResourceIndicator>,
    /// The key the tokens are bound to (RFC 9449), if they are.
    pub dpop_key: Option<&'a DpopKey>,
}

/// `seconds`, a token answer's `expires_in`, unless it is beyond any plausible lifetime
/// ([`MAX_TOKEN_LIFETIME`]): such a value cannot be stored as a time, and a provider
/// that sends it is broken or hostile. (A negative one never parses.)
pub(crate) fn token_lifetime(seconds: u64) -> Result<u64, ClientError> {
    if seconds <= MAX_TOKEN_LIFETIME {
        return Ok(seconds);
    }
    Err(ClientError::Protocol {
        what: "the identity provider",
        reason: format!(
            "its token answer says the access token expires in {seconds} seconds (expires_in), more than the {MAX_TOKEN_LIFETIME} ({}) this client accepts; nothing was stored",
            words::duration(MAX_TOKEN_LIFETIME)
        ),
    })
}

/// Whether the token endpoint issued `token` as DPoP-bound (`token_type: DPoP`).
fn is_dpop(token: &OidcTokenResponse) -> bool {
    serde_json::to_value(token.token_type())
        .ok()
        .and_then(|v| v.as_str().map(|t| t.eq_ignore_ascii_case("dpop")))
        .unwrap_or(false)
}

/// The session `token` makes, taking what it lacks from `previous` (a refresh often
/// carries no ID token, and providers that do not rotate send no new refresh token).
/// An `expires_in` out of range is an error: see [`token_lifetime`].
pub(crate) fn session_from(
    token: &OidcTokenResponse,
    previous: Option<&CachedSession>,
    origin: &Origin<'_>,
) -> Result<CachedSession, ClientError> {
    let claims = token
        .extra_fields()
        .id_token
        .as_ref()
        .map(Secret::expose)
        .and_then(id_token_claims);
    let claim = |name: &str| {
        claims
            .as_ref()
            .and_then(|c| c.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let lifetime = token
        .expires_in()
        .map(|d| token_lifetime(d.as_secs()))
        .transpose()?;
    Ok(CachedSession {
        version: CACHE_VERSION,
        server: origin.server.to_owned(),
        issuer: origin.issuer.to_owned(),
        client_id: origin.client_id.to_owned(),
        token_endpoint: origin.token_endpoint.to_owned(),
        revocation_endpoint: origin.revocation_endpoint.map(str::to_owned),
        access_token: Secret::new(token.access_token().secret().as_str()),
        refresh_token: token
            .refresh_token()
            .map(|r| Secret::new(r.secret().as_str()))
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        // At most ten years from now: far inside what an i64 of seconds holds.
        expires_at: lifetime.map(|s| {
            Utc::now()
                .timestamp()
                .saturating_add(i64::try_from(s).unwrap_or(i64::MAX))
        }),
        lifetime,
        scopes: token
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_else(|| {
                previous.map_or_else(|| origin.requested.to_vec(), |p| p.scopes.clone())
            }),
        subject: claim("sub").or_else(|| previous.and_then(|p| p.subject.clone())),
        name: claim("preferred_username")
            .or_else(|| claim("name"))
            .or_else(|| previous.and_then(|p| p.name.clone())),
        ended: None,
        resource_indicator: origin.resource_indicator.cloned(),
        // Bound only when the provider says so (RFC 9449 section 5): one that ignored the
        // proof issued a bearer token, which must not go out under the DPoP scheme.
        dpop_key: origin.dpop_key.filter(|_| is_dpop(token)).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_token_claims_are_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","preferred_username":"alice"}"#);
        let claims = id_token_claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert!(id_token_claims("not-a-jwt").is_none());
    }

    #[test]
    fn id_token_field_reads_the_token_and_its_debug_output_hides_it() {
        let field: IdTokenField =
            serde_json::from_str(r#"{"id_token": "h.hunter2-id.s"}"#).unwrap();
        assert_eq!(
            field.id_token.as_ref().map(Secret::expose),
            Some("h.hunter2-id.s")
        );
        let text = format!("{field:?}");
        assert!(!text.contains("hunter2-id"), "{text}");
    }
}
