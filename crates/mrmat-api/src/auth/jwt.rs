//! JWT access tokens (RFC 9068; RFC 7519 and 7515) checked here, against the issuer's
//! published keys, instead of asked about: what Entra ID, Auth0 and Cognito issue, and
//! what Keycloak and Glewlwyd issue too. A pure function of the token, the key and the
//! rules, so every rule has a unit test; fetching the keys is `jwks`.
//!
//! The signature is checked by `jsonwebtoken`; everything it leaves to the caller is here:
//! which algorithms (asymmetric only: never `none`, never HMAC, so a public key can never
//! serve as a shared secret), the header fields that point elsewhere (`jku`, `x5u`, an
//! embedded `jwk` or `x5c`: ignored, a key comes only from the issuer's JWKS), `crit`
//! (refused: no extension is understood here), the issuer (exactly the configured one),
//! the audience (required, and naming this server), and telling an access token from an
//! ID token.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::claims::{self, Holder, Rules, Verdict};
use crate::settings::ScopeClaim;

/// Longest token looked at. Real access tokens are one or two KiB; Entra's with many
/// groups reach about 8. Anything longer is refused before it is decoded.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Clock skew allowed on `exp`, `nbf` and `iat`, between this server and the provider.
pub(crate) const LEEWAY: Duration = Duration::from_secs(30);

/// The algorithms a token may be signed with: asymmetric ones only.
pub(crate) const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The `typ` of RFC 9068 access tokens, with and without its `application/` prefix.
const ACCESS_TOKEN_TYPES: &[&str] = &["at+jwt", "application/at+jwt"];

/// What can be read from a token before its signature is checked: enough to choose the
/// provider (`iss`) and its key (`kid`, `alg`). Nothing here is trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peeked {
    /// The claimed issuer.
    pub(crate) issuer: String,
    /// The key id, if the header names one.
    pub(crate) kid: Option<String>,
    /// The signing algorithm, one of [`ALGORITHMS`]; `None` for any other (`none`,
    /// HMAC, unknown), which no key can verify.
    pub(crate) alg: Option<Algorithm>,
}

/// The token as a JWT, when it looks like one: three base64url parts whose first two are
/// JSON objects, the payload naming an issuer. `None` for an opaque token (introspected
/// instead) and for anything malformed.
pub(crate) fn peek(token: &str) -> Option<Peeked> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = json_object(header)?;
    let payload = json_object(payload)?;
    let issuer = payload.get("iss")?.as_str()?.to_owned();
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|name| name.parse::<Algorithm>().ok())
        .filter(|alg| ALGORITHMS.contains(alg));
    Some(Peeked {
        issuer,
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        alg,
    })
}

fn json_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// What a token must be, besides well signed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expectations<'a> {
    /// `iss` must be exactly one of these: the issuer as configured and as clients see it.
    pub(crate) issuers: &'a [String],
    /// Where the scopes are.
    pub(crate) scope_claim: &'a ScopeClaim,
    /// The audiences, the cache ceiling and the issuer identities name.
    pub(crate) rules: Rules<'a>,
}

/// Why a token is refused; said in `doctor` and in the server's debug log, never to the
/// client (which gets `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejection {
    /// Not one of [`ALGORITHMS`].
    #[error(
        "the token is signed with an algorithm that is not accepted (only RS*, PS*, ES256, ES384, EdDSA)"
    )]
    Algorithm,
    /// The header's `typ` is neither a JWT nor an access token.
    #[error("the token's typ {0:?} is not an access token")]
    Type(String),
    /// The header has `crit`.
    #[error("the token asks for header extensions (crit) this server does not understand")]
    Critical,
    /// No published key of the issuer verifies it.
    #[error("no key the issuer publishes verifies the token's signature")]
    Signature,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not the configured one")]
    Issuer,
    /// `aud` is missing or names other servers only.
    #[error("the token is not meant for this server: its aud names none of {0}")]
    Audience(String),
    /// Past `exp`, or no `exp`.
    #[error("the token has expired (or has no exp)")]
    Expired,
    /// Before `nbf` or `iat`.
    #[error("the token is not valid yet (nbf or iat in the future)")]
    NotYetValid,
    /// An ID token, a refresh token or another token that is not an access token.
    #[error("the token is not an access token ({0})")]
    NotAnAccessToken(&'static str),
    /// A claim of the wrong type.
    #[error("the token's claims are malformed: {0}")]
    Malformed(String),
    /// No usable identity (`sub` with control characters, or neither `sub` nor a client).
    #[error("the token names no usable subject")]
    Subject,
}

/// The verdict on `token`, verified with `key`.
pub(crate) fn verify(
    token: &str,
    peeked: &Peeked,
    key: &DecodingKey,
    expect: Expectations<'_>,
) -> Result<Verdict, Rejection> {
    let alg = peeked.alg.ok_or(Rejection::Algorithm)?;
    let header = token
        .split('.')
        .next()
        .and_then(json_object)
        .ok_or_else(|| Rejection::Malformed("header".to_owned()))?;
    if header.contains_key("crit") {
        return Err(Rejection::Critical);
    }
    let typ = header.get("typ").and_then(Value::as_str);
    let is_at_jwt =
        typ.is_some_and(|t| ACCESS_TOKEN_TYPES.iter().any(|a| t.eq_ignore_ascii_case(a)));
    if let Some(typ) = typ
        && !is_at_jwt
        && !typ.eq_ignore_ascii_case("jwt")
    {
        return Err(Rejection::Type(typ.to_owned()));
    }

    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.leeway = LEEWAY.as_secs();
    validation.validate_nbf = true;
    // The audience is checked below, with the trailing-slash rule of claims::audience_accepted
    // and a clear reason; the issuer is set *and* required, as jsonwebtoken enforces a
    // configured issuer only when the claim is present.
    validation.validate_aud = false;
    validation.set_issuer(expect.issuers);
    validation.set_required_spec_claims(&["exp", "iss"]);
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => Rejection::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => Rejection::NotYetValid,
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => Rejection::Issuer,
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => {
                Rejection::Expired
            }
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => Rejection::Issuer,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Rejection::Algorithm,
            jsonwebtoken::errors::ErrorKind::InvalidClaimFormat(claim) => {
                Rejection::Malformed(claim.clone())
            }
            _ => Rejection::Signature,
        })?;
    let claims = data.claims;
    judge_claims(&claims, is_at_jwt, expect)
}

/// The rules on a verified token's claims.
fn judge_claims(
    claims: &Map<String, Value>,
    is_at_jwt: bool,
    expect: Expectations<'_>,
) -> Result<Verdict, Rejection> {
    let text = |name: &str| -> Result<Option<&str>, Rejection> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Rejection::Malformed(name.to_owned())),
        }
    };
    // Exactly, not as URLs: jsonwebtoken compared already; this holds if it ever changes.
    let iss = text("iss")?.ok_or(Rejection::Issuer)?;
    if !expect.issuers.iter().any(|i| i == iss) {
        return Err(Rejection::Issuer);
    }
    // An ID token is for the client that logged in, not a bearer for APIs. RFC 9068
    // tokens say what they are in `typ`; the plain-JWT access tokens of Keycloak carry a
    // `typ` claim ("Bearer" versus "ID" or "Refresh"), and ID tokens of every provider
    // may carry `nonce`, `at_hash` or `c_hash`, which no access token has. Beyond these,
    // the audience rule below refuses an ID token: its `aud` is the client that logged
    // in, never this server.
    if !is_at_jwt {
        match text("typ")? {
            Some(typ) if !typ.eq_ignore_ascii_case("bearer") => {
                return Err(Rejection::NotAnAccessToken("its typ claim is not Bearer"));
            }
            _ => {}
        }
        if ["nonce", "at_hash", "c_hash"]
            .iter()
            .any(|claim| claims.contains_key(*claim))
        {
            return Err(Rejection::NotAnAccessToken(
                "it carries nonce, at_hash or c_hash: an ID token",
            ));
        }
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences
        .iter()
        .any(|aud| claims::audience_accepted(aud, expect.rules.audiences))
    {
        return Err(Rejection::Audience(expect.rules.audiences.join(", ")));
    }
    // jsonwebtoken checked `nbf`; an `iat` in the future is a token from a clock that
    // cannot be trusted either.
    let now = Utc::now().timestamp();
    let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(i64::MAX);
    if claims
        .get("iat")
        .and_then(Value::as_i64)
        .is_some_and(|iat| iat > now.saturating_add(leeway))
    {
        return Err(Rejection::NotYetValid);
    }
    let expires_at = claims
        .get("exp")
        .and_then(Value::as_i64)
        .and_then(|exp| DateTime::<Utc>::from_timestamp(exp, 0))
        .ok_or(Rejection::Expired)?;
    let client_id = text("client_id")?.or(text("azp")?).map(str::to_owned);
    let username = text("preferred_username")?
        .or(text("username")?)
        .map(str::to_owned);
    let verdict = claims::holder_verdict(
        Holder {
            sub: text("sub")?,
            client_id,
            username,
            scopes: scopes(claims, expect.scope_claim)?,
            // The leeway applied to `exp` above holds for the verdict's life too.
            expires_at: Some(expires_at + chrono::Duration::seconds(leeway)),
        },
        expect.rules,
    );
    if verdict.principal.is_none() {
        return Err(Rejection::Subject);
    }
    Ok(verdict)
}

/// The scopes at `claim`: a space-separated string or an array of strings.
fn scopes(claims: &Map<String, Value>, claim: &ScopeClaim) -> Result<Vec<String>, Rejection> {
    let mut value = None;
    let mut level = Some(claims);
    for name in claim.path() {
        value = level.and_then(|map| map.get(name));
        level = value.and_then(Value::as_object);
    }
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(list)) => Ok(list.split_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Rejection::Malformed(claim.to_string())),
        Some(_) => Err(Rejection::Malformed(claim.to_string())),
    }
}

/// The identity rules' issuer, for a provider's tokens: see `Identity::issuer`.
pub(crate) fn issuer_identity(issuer: &url::Url) -> Arc<str> {
    Arc::from(issuer.as_str().trim_end_matches('/'))
}
