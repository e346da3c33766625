//! Token revocation (RFC 7009), as a plain form POST: `oauth2` refuses revocation
//! endpoints that are not https, which rules out every provider on this machine.
//!
//! Some providers do not let a public client revoke (Glewlwyd answers 401 with an empty
//! body): that is an answer, not a failure to retry, so it is reported as such and the
//! caller may drop the login anyway.

use mrmat_api_types::secret::Secret;
use mrmat_api_types::urls::basic_auth_part;
use reqwest::{Method, StatusCode};

use crate::dpop::{Dpop, nonce_challenge};
use crate::error::ClientError;
use crate::http::{Http, MAX_PROVIDER_ANSWER};
use crate::sanitise::printable;
use crate::token_cache::CachedSession;

/// What revoking a login's tokens came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The provider revoked them.
    Revoked,
    /// The provider names no revocation endpoint.
    NotOffered,
    /// The provider does not let this public client revoke (401 or `invalid_client`).
    RefusedToPublicClient,
}

/// The client that revokes: the one the tokens were issued to.
#[derive(Debug, Clone, Copy)]
pub struct RevokingClient<'a> {
    /// Its id.
    pub client_id: &'a str,
    /// Its secret, when it is confidential.
    pub client_secret: Option<&'a Secret>,
}

/// Revokes `session`'s tokens through `http` as `client`, the refresh token first (that
/// ends the whole grant). A function of its parts rather than a method of the session,
/// which calls it: the session sits above this module, and a method here would make the
/// two import each other.
pub async fn revoke(
    http: &Http,
    client: RevokingClient<'_>,
    session: &CachedSession,
) -> Result<Revocation, ClientError> {
    let Some(endpoint) = session.revocation_endpoint.clone() else {
        return Ok(Revocation::NotOffered);
    };
    let mut tokens = Vec::new();
    if let Some(refresh) = &session.refresh_token {
        tokens.push((refresh.expose(), "refresh_token"));
    }
    tokens.push((session.access_token.expose(), "access_token"));
    // A bound login's revocation carries a proof too (a provider may ask for one); a
    // provider's nonce challenge is answered once.
    let dpop = session.dpop_key.clone().map(Dpop::new);
    let mut revoked = 0;
    for (token, hint) in tokens {
        let mut form = vec![("token", token), ("token_type_hint", hint)];
        let mut request = http.request(Method::POST, &endpoint);
        match client.client_secret {
            // RFC 6749 section 2.3.1: both parts are form-encoded before Basic encoding.
            Some(secret) => {
                request = request.basic_auth(
                    basic_auth_part(client.client_id),
                    Some(basic_auth_part(secret.expose())),
                );
            }
            None => form.push(("client_id", client.client_id)),
        }
        let send = |request: reqwest::RequestBuilder| async {
            let request = match &dpop {
                Some(dpop) => request.header("DPoP", dpop.provider_proof("POST", &endpoint, None)?),
                None => request,
            };
            http.send(request, MAX_PROVIDER_ANSWER)
                .await
                .map_err(|e| ClientError::http("the identity provider", &endpoint, &e))
        };
        let request = request.form(&form);
        let retry = request.try_clone();
        let mut response = send(request).await?;
        if let (Some(dpop), Some(retry)) = (&dpop, retry)
            && nonce_challenge(dpop, response.status(), response.headers(), response.body())
        {
            response = send(retry).await?;
        }
        let status = response.status();
        if status.is_success() {
            revoked += 1;
            continue;
        }
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
        let error = body.get("error").and_then(serde_json::Value::as_str);
        let refused_client = status == StatusCode::UNAUTHORIZED || error == Some("invalid_client");
        if refused_client && client.client_secret.is_none() {
            return Ok(Revocation::RefusedToPublicClient);
        }
        // RFC 7009 section 2.2.1: the provider cannot revoke this kind of token; the
        // other one may still be revocable.
        if error == Some("unsupported_token_type") {
            continue;
        }
        return Err(ClientError::Provider(format!(
            "revocation answered {status}: {}",
            printable(error.unwrap_or("no error code"))
        )));
    }
    if revoked == 0 {
        return Err(ClientError::Provider(
            "revocation answered unsupported_token_type for every token".into(),
        ));
    }
    Ok(Revocation::Revoked)
}
