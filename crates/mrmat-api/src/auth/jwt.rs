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

/// A base64url part of a compact JWS as a JSON object, if it is one.
pub(super) fn json_object(part: &str) -> Option<Map<String, Value>> {
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
        // Cognito says it in `token_use` ("access" versus "id").
        match text("token_use")? {
            Some(use_) if !use_.eq_ignore_ascii_case("access") => {
                return Err(Rejection::NotAnAccessToken("its token_use is not access"));
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
        // Cognito's access tokens have no `aud`: they name the app client they were issued
        // to in `client_id` and say `token_use: access`, and that client is the audience.
        None if text("token_use")?.is_some_and(|u| u.eq_ignore_ascii_case("access")) => {
            text("client_id")?.into_iter().collect()
        }
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
    // A token no user took part in (client credentials) names its client as `sub` (RFC
    // 9068 section 2.2; oidc-provider, Okta). Its holder is that client, keyed as the same
    // client's introspected tokens are (`client:<id>`): else the client would own what a
    // user whose `sub` equals its id created, and the other way round.
    let sub = text("sub")?.filter(|sub| client_id.as_deref() != Some(*sub));
    let verdict = claims::holder_verdict(
        Holder {
            sub,
            client_id,
            username,
            scopes: scopes(claims, expect.scope_claim)?,
            // The leeway applied to `exp` above holds for the verdict's life too.
            expires_at: Some(expires_at + chrono::Duration::seconds(leeway)),
            bound_to: match claims.get("cnf") {
                None | Some(Value::Null) => None,
                Some(Value::Object(cnf)) => match cnf.get("jkt") {
                    None => None,
                    Some(Value::String(jkt)) => Some(jkt.clone()),
                    Some(_) => return Err(Rejection::Malformed("cnf.jkt".to_owned())),
                },
                Some(_) => return Err(Rejection::Malformed("cnf".to_owned())),
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use crate::auth::Scope;
    use crate::auth::test_key::{PRIVATE_KEY, PUBLIC_X, changed};
    const ISSUER: &str = "https://idp.example";
    const AUDIENCE: &str = "https://api.example";

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "client_id": "cli",
            "scope": Scope::ResourceRead.as_str(), "exp": now() + 600, "iat": now()
        })
    }

    fn sign(header: Header, claims: &Value) -> String {
        let der = base64::engine::general_purpose::STANDARD
            .decode(PRIVATE_KEY)
            .unwrap();
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&der)).unwrap()
    }

    fn header(typ: Option<&str>) -> Header {
        Header {
            typ: typ.map(str::to_owned),
            kid: Some("k1".to_owned()),
            ..Header::new(Algorithm::EdDSA)
        }
    }

    fn judged_with(token: &str, scope_claim: &ScopeClaim) -> Result<Verdict, Rejection> {
        let key = DecodingKey::from_ed_components(PUBLIC_X).unwrap();
        let issuers = [ISSUER.to_owned()];
        let audiences = [AUDIENCE.to_owned()];
        let issuer = Arc::from(ISSUER);
        let peeked = peek(token).expect("a JWT");
        verify(
            token,
            &peeked,
            &key,
            Expectations {
                issuers: &issuers,
                scope_claim,
                rules: Rules {
                    ceiling: Duration::from_secs(300),
                    audiences: &audiences,
                    issuer: &issuer,
                    primary: true,
                },
            },
        )
    }

    fn judged(token: &str) -> Result<Verdict, Rejection> {
        judged_with(token, &ScopeClaim::default())
    }

    fn with(changes: Value) -> Value {
        changed(claims(), &changes)
    }

    #[test]
    fn a_well_signed_access_token_names_its_holder_and_scopes() {
        let verdict = judged(&sign(header(Some("at+jwt")), &claims())).unwrap();
        let who = verdict.principal.unwrap();
        assert_eq!((&*who.subject, who.client_id.as_str()), ("u1", "cli"));
        assert_eq!(who.scopes, [Scope::ResourceRead.as_str()]);
        assert_eq!(&*who.issuer, ISSUER);
    }

    #[test]
    fn a_client_credentials_token_whose_sub_is_its_client_belongs_to_that_client() {
        let token = sign(
            header(Some("at+jwt")),
            &with(json!({"sub": "svc", "client_id": "svc"})),
        );
        let who = judged(&token).unwrap().principal.unwrap();
        assert_eq!(&*who.subject, "client:svc");
        assert_eq!(who.client_id, "svc");
        // A user's token through another client keeps the user's `sub`.
        let token = sign(
            header(Some("at+jwt")),
            &with(json!({"sub": "svc", "client_id": "cli"})),
        );
        assert_eq!(&*judged(&token).unwrap().principal.unwrap().subject, "svc");
    }

    #[test]
    fn an_opaque_token_is_not_a_jwt() {
        assert_eq!(peek("2YotnFZFEjr1zCsicMWpAA"), None);
        assert_eq!(peek("a.b.c"), None);
    }

    #[test]
    fn peeking_reads_issuer_and_key_id_but_not_a_forbidden_algorithm() {
        let token = sign(header(None), &claims());
        let peeked = peek(&token).unwrap();
        assert_eq!(peeked.issuer, ISSUER);
        assert_eq!(peeked.kid.as_deref(), Some("k1"));
        assert_eq!(peeked.alg, Some(Algorithm::EdDSA));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert_eq!(peek(&none).unwrap().alg, None);
        let hmac = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert_eq!(peek(&hmac).unwrap().alg, None);
        assert_eq!(judged(&none).unwrap_err(), Rejection::Algorithm);
    }

    #[test]
    fn a_token_longer_than_the_limit_is_not_looked_at() {
        let token = format!("{}.{}.x", "a".repeat(MAX_TOKEN_BYTES), "b");
        assert_eq!(peek(&token), None);
    }

    #[test]
    fn another_signature_is_refused() {
        let mut token = sign(header(None), &claims());
        let last = token.pop().unwrap();
        token.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(judged(&token).unwrap_err(), Rejection::Signature);
    }

    #[test]
    fn another_issuer_is_refused() {
        let token = sign(header(None), &with(json!({"iss": "https://evil.example"})));
        assert_eq!(judged(&token).unwrap_err(), Rejection::Issuer);
    }

    #[test]
    fn a_token_without_an_issuer_is_no_provider_s_jwt() {
        let token = sign(header(None), &with(json!({"iss": null})));
        assert_eq!(peek(&token), None);
        // Even if it reached the check, the issuer is required there too.
        let peeked = Peeked {
            issuer: ISSUER.to_owned(),
            kid: None,
            alg: Some(Algorithm::EdDSA),
        };
        let key = DecodingKey::from_ed_components(PUBLIC_X).unwrap();
        let issuers = [ISSUER.to_owned()];
        let audiences = [AUDIENCE.to_owned()];
        let issuer = Arc::from(ISSUER);
        let expect = Expectations {
            issuers: &issuers,
            scope_claim: &ScopeClaim::default(),
            rules: Rules {
                ceiling: Duration::from_secs(300),
                audiences: &audiences,
                issuer: &issuer,
                primary: true,
            },
        };
        assert_eq!(
            verify(&token, &peeked, &key, expect).unwrap_err(),
            Rejection::Issuer
        );
    }

    #[test]
    fn a_token_for_another_server_is_refused() {
        let token = sign(
            header(None),
            &with(json!({"aud": ["https://other.example"]})),
        );
        assert!(matches!(judged(&token), Err(Rejection::Audience(_))));
    }

    #[test]
    fn a_token_without_an_audience_is_refused() {
        let token = sign(header(None), &with(json!({"aud": null})));
        assert!(matches!(judged(&token), Err(Rejection::Audience(_))));
    }

    #[test]
    fn the_audience_may_carry_a_trailing_slash_and_stand_in_a_list() {
        let token = sign(
            header(None),
            &with(json!({"aud": ["https://other.example", "https://api.example/"]})),
        );
        assert!(judged(&token).is_ok());
    }

    #[test]
    fn an_expired_token_is_refused_past_the_leeway() {
        let token = sign(header(None), &with(json!({"exp": now() - 60})));
        assert_eq!(judged(&token).unwrap_err(), Rejection::Expired);
    }

    #[test]
    fn a_token_just_expired_within_the_leeway_passes() {
        let token = sign(header(None), &with(json!({"exp": now() - 5})));
        assert!(judged(&token).is_ok());
    }

    #[test]
    fn a_token_without_an_expiry_is_refused() {
        let token = sign(header(None), &with(json!({"exp": null})));
        assert_eq!(judged(&token).unwrap_err(), Rejection::Expired);
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let token = sign(header(None), &with(json!({"nbf": now() + 600})));
        assert_eq!(judged(&token).unwrap_err(), Rejection::NotYetValid);
        let token = sign(header(None), &with(json!({"iat": now() + 600})));
        assert_eq!(judged(&token).unwrap_err(), Rejection::NotYetValid);
    }

    #[test]
    fn an_id_token_is_refused() {
        let token = sign(header(None), &with(json!({"nonce": "n-0S6_WzA2Mj"})));
        assert!(matches!(
            judged(&token),
            Err(Rejection::NotAnAccessToken(_))
        ));
        let token = sign(
            header(None),
            &with(json!({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"})),
        );
        assert!(matches!(
            judged(&token),
            Err(Rejection::NotAnAccessToken(_))
        ));
    }

    #[test]
    fn keycloak_tokens_count_by_their_typ_claim() {
        let bearer = sign(header(Some("JWT")), &with(json!({"typ": "Bearer"})));
        assert!(judged(&bearer).is_ok());
        for typ in ["ID", "Refresh", "Logout"] {
            let token = sign(header(Some("JWT")), &with(json!({"typ": typ})));
            assert!(
                matches!(judged(&token), Err(Rejection::NotAnAccessToken(_))),
                "{typ}"
            );
        }
    }

    #[test]
    fn a_cognito_access_token_is_bound_by_its_client_id() {
        let token = sign(
            header(None),
            &with(json!({"aud": null, "token_use": "access", "client_id": AUDIENCE})),
        );
        assert!(judged(&token).is_ok());
        let token = sign(
            header(None),
            &with(json!({"aud": null, "token_use": "access", "client_id": "other-app"})),
        );
        assert!(matches!(judged(&token), Err(Rejection::Audience(_))));
    }

    #[test]
    fn a_cognito_id_token_is_refused() {
        let token = sign(header(None), &with(json!({"token_use": "id"})));
        assert!(matches!(
            judged(&token),
            Err(Rejection::NotAnAccessToken(_))
        ));
    }

    #[test]
    fn an_at_jwt_token_is_an_access_token_whatever_its_claims() {
        let token = sign(header(Some("application/at+jwt")), &claims());
        assert!(judged(&token).is_ok());
    }

    #[test]
    fn a_header_type_of_another_kind_of_jwt_is_refused() {
        let token = sign(header(Some("dpop+jwt")), &claims());
        assert_eq!(
            judged(&token).unwrap_err(),
            Rejection::Type("dpop+jwt".to_owned())
        );
    }

    #[test]
    fn a_critical_header_extension_is_refused() {
        let mut header = header(None);
        header
            .extras
            .insert("crit".to_owned(), "[\"exp\"]".to_owned());
        let token = sign(header, &claims());
        assert_eq!(judged(&token).unwrap_err(), Rejection::Critical);
    }

    #[test]
    fn a_key_url_in_the_header_changes_nothing() {
        let header = Header {
            jku: Some("https://evil.example/jwks.json".to_owned()),
            x5u: Some("https://evil.example/cert.pem".to_owned()),
            ..header(None)
        };
        assert!(judged(&sign(header, &claims())).is_ok());
    }

    #[test]
    fn a_client_credentials_token_is_its_client() {
        let token = sign(
            header(None),
            &with(json!({"sub": null, "client_id": null, "azp": "svc"})),
        );
        let who = judged(&token).unwrap().principal.unwrap();
        assert_eq!(&*who.subject, "client:svc");
    }

    #[test]
    fn a_subject_with_control_characters_is_refused() {
        let token = sign(header(None), &with(json!({"sub": "alice\u{1b}[2J"})));
        assert_eq!(judged(&token).unwrap_err(), Rejection::Subject);
    }

    #[test]
    fn scopes_are_read_from_the_configured_claim_as_string_or_array() {
        let token = sign(header(None), &with(json!({"scp": "a b"})));
        let who = judged_with(&token, &ScopeClaim::parse("scp").unwrap())
            .unwrap()
            .principal
            .unwrap();
        assert_eq!(who.scopes, ["a", "b"]);
        let token = sign(
            header(None),
            &with(json!({"realm_access": {"roles": ["r1", "r2"]}})),
        );
        let who = judged_with(&token, &ScopeClaim::parse("realm_access.roles").unwrap())
            .unwrap()
            .principal
            .unwrap();
        assert_eq!(who.scopes, ["r1", "r2"]);
    }

    #[test]
    fn a_scope_claim_of_another_type_is_refused() {
        let token = sign(header(None), &with(json!({"scope": 42})));
        assert!(matches!(judged(&token), Err(Rejection::Malformed(_))));
    }

    #[test]
    fn the_verdict_lasts_no_longer_than_the_token() {
        let token = sign(header(None), &with(json!({"exp": now() + 60})));
        let verdict = judged(&token).unwrap();
        assert!(verdict.ttl <= Duration::from_secs(60 + LEEWAY.as_secs()));
    }
}
