//! DPoP proofs (RFC 9449): a token bound to a key is worth nothing without a fresh proof,
//! signed by that key, for this very request. A pure check of one proof against the
//! request and the token (section 4.3), and the memory of proofs already used (section
//! 11.1), so every rule has a unit test; which token is bound to which key is the token's
//! `cnf.jkt`, read where the token is checked.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::sync::Cache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::bearer::Scheme;
use super::jwt::{ALGORITHMS, json_object};
use crate::error::{ApiError, DpopError};

/// How old a proof may be (its `iat`), and so how long its `jti` is remembered.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// How far ahead of this server's clock a proof's `iat` may be.
pub(crate) const MAX_AHEAD: Duration = Duration::from_secs(10);

/// Longest proof looked at; real ones are well under 1 KiB.
const MAX_PROOF_BYTES: usize = 8 * 1024;

/// Longest `jti` remembered; a few dozen characters in practice.
const MAX_JTI_BYTES: usize = 256;

/// Most proofs remembered at once: a minute of a busy server's requests.
const REPLAY_CAPACITY: u64 = 1_000_000;

/// Why a proof is refused: `invalid_dpop_proof`, with this as the log's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProofError {
    /// Not a compact JWS with JSON header and claims, or too long.
    #[error("the DPoP proof is not a well-formed JWT")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("the DPoP proof's typ is not dpop+jwt")]
    Type,
    /// Not an accepted asymmetric algorithm.
    #[error("the DPoP proof's alg is not accepted")]
    Algorithm,
    /// No usable public `jwk`, or one with private parts.
    #[error("the DPoP proof carries no usable public jwk")]
    Key,
    /// The signature does not verify with its own key.
    #[error("the DPoP proof's signature does not verify")]
    Signature,
    /// `htm` is not this request's method.
    #[error("the DPoP proof is for another method")]
    Method,
    /// `htu` is not this request's URL.
    #[error("the DPoP proof is for another URL")]
    Url,
    /// `iat` missing, too old or in the future.
    #[error("the DPoP proof is too old or from the future")]
    Time,
    /// `jti` missing or too long.
    #[error("the DPoP proof has no usable jti")]
    Jti,
    /// `ath` missing or not the hash of the presented token.
    #[error("the DPoP proof is not for this access token (ath)")]
    TokenHash,
    /// Seen before.
    #[error("the DPoP proof was used before")]
    Replayed,
}

/// What the request says, for the proof to match.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    /// The HTTP method.
    pub(crate) method: &'a str,
    /// The URL the client used, as the server sees it through its public URL or trusted
    /// proxies; query and fragment are ignored (section 4.3, point 9).
    pub(crate) url: &'a str,
    /// The access token presented with the proof.
    pub(crate) access_token: &'a str,
}

/// A proof that passed: the key it proves, by its RFC 7638 thumbprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proven {
    /// base64url SHA-256 thumbprint of the proof's key: what the token's `cnf.jkt` must be.
    pub(crate) jkt: String,
    /// The proof's `jti`, to remember.
    jti: String,
}

/// Checks `proof` against `request`, except replay (see [`Replays`]).
pub(crate) fn verify(proof: &str, request: Request<'_>) -> Result<Proven, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Malformed);
    }
    let mut parts = proof.split('.');
    let header = parts
        .next()
        .and_then(json_object)
        .ok_or(ProofError::Malformed)?;
    if parts.next().is_none() || parts.next().is_none() || parts.next().is_some() {
        return Err(ProofError::Malformed);
    }
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(ProofError::Type);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|name| name.parse::<Algorithm>().ok())
        .filter(|alg| ALGORITHMS.contains(alg))
        .ok_or(ProofError::Algorithm)?;
    let jwk_json = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(ProofError::Key)?;
    // A private key in a header is a client's mistake that must not be rewarded.
    if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .iter()
        .any(|member| jwk_json.contains_key(*member))
    {
        return Err(ProofError::Key);
    }
    let jkt = thumbprint(jwk_json).ok_or(ProofError::Key)?;
    let jwk: Jwk =
        serde_json::from_value(Value::Object(jwk_json.clone())).map_err(|_| ProofError::Key)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ProofError::Key)?;
    if key.family() != alg.family() {
        return Err(ProofError::Key);
    }
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    // A proof has no exp, iss or aud: its life is its iat, checked below.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
        .map_err(|_| ProofError::Signature)?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("htm") != Some(request.method) {
        return Err(ProofError::Method);
    }
    if !same_url(text("htu").ok_or(ProofError::Url)?, request.url) {
        return Err(ProofError::Url);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(ProofError::Time)?;
    let now = Utc::now().timestamp();
    let age = now.saturating_sub(iat);
    if age > secs(MAX_AGE) || -age > secs(MAX_AHEAD) {
        return Err(ProofError::Time);
    }
    let jti = text("jti")
        .filter(|jti| !jti.is_empty() && jti.len() <= MAX_JTI_BYTES)
        .ok_or(ProofError::Jti)?;
    if text("ath") != Some(token_hash(request.access_token).as_str()) {
        return Err(ProofError::TokenHash);
    }
    Ok(Proven {
        jkt,
        jti: jti.to_owned(),
    })
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// `ath`: base64url of the SHA-256 of the token (section 4.2).
pub(crate) fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// The RFC 7638 thumbprint of a public JWK: SHA-256 over its required members, in
/// lexicographic order, without white space. Written here because jsonwebtoken's panics
/// on a key whose `crv` does not match its `kty`, which a client controls.
pub(crate) fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let required: &[&str] = match member("kty")? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for name in required {
        canonical.insert((*name).to_owned(), Value::String(member(name)?.to_owned()));
    }
    // serde_json's map keeps keys sorted (no preserve_order feature here), and prints
    // without white space: the canonical form.
    let text = serde_json::to_string(&Value::Object(canonical)).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes())))
}

/// Whether a proof's `htu` names `url`: scheme and host case-insensitively, the default
/// port implied, the path exactly, query and fragment ignored.
fn same_url(htu: &str, url: &str) -> bool {
    let normal = |text: &str| {
        url::Url::parse(text).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    match (normal(htu), normal(url)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The server's DPoP rules: how a token may be presented, and the proofs already used.
///
/// Each instance remembers its own proofs: behind a load balancer a stolen proof can be
/// replayed once on each other instance within its minute of life, for the same method and
/// URL (docs/DESIGN.md says what an operator does about it).
#[derive(Debug, Default)]
pub(crate) struct Binding {
    /// `--oidc-require-dpop`: bearer tokens are refused.
    required: bool,
    replays: Replays,
}

fn refused(error: DpopError, reason: impl Into<String>) -> ApiError {
    ApiError::Dpop {
        error,
        reason: reason.into(),
    }
}

impl Binding {
    /// The rules, with `required` for `--oidc-require-dpop`.
    pub(crate) fn new(required: bool) -> Self {
        Self {
            required,
            replays: Replays::default(),
        }
    }

    /// Whether only DPoP-bound tokens are accepted.
    pub(crate) fn required(&self) -> bool {
        self.required
    }

    /// Whether a token bound to `bound_to` (or to nothing) may be used as presented:
    /// with `scheme`, the `proofs` of the request's `DPoP` headers, for `request`. Both
    /// are asked for only when a proof is to be checked: a bearer request reads no more
    /// than it did before DPoP.
    pub(crate) fn check(
        &self,
        scheme: Scheme,
        bound_to: Option<&str>,
        proofs: impl FnOnce() -> Vec<Option<String>>,
        request: impl FnOnce() -> Option<(String, String)>,
        access_token: &str,
    ) -> Result<(), ApiError> {
        match (scheme, bound_to) {
            // RFC 9449 section 7.2: a bound token is no bearer token.
            (Scheme::Bearer, Some(_)) => Err(refused(
                DpopError::InvalidToken,
                "this token is bound to a DPoP key: send it with the DPoP scheme and a proof",
            )),
            (Scheme::Bearer, None) if self.required => Err(refused(
                DpopError::InvalidToken,
                "this server accepts DPoP-bound tokens only",
            )),
            (Scheme::Bearer, None) => Ok(()),
            (Scheme::Dpop, None) => Err(refused(
                DpopError::InvalidToken,
                "the token is not bound to a DPoP key",
            )),
            (Scheme::Dpop, Some(jkt)) => {
                let proofs = proofs();
                let proof = match proofs.as_slice() {
                    [] => {
                        return Err(refused(DpopError::InvalidProof, "a DPoP proof is required"));
                    }
                    [Some(proof)] => proof,
                    [None] => {
                        return Err(refused(
                            DpopError::InvalidProof,
                            ProofError::Malformed.to_string(),
                        ));
                    }
                    _ => {
                        return Err(refused(
                            DpopError::InvalidProof,
                            "more than one DPoP proof; send one",
                        ));
                    }
                };
                let Some((method, url)) = request() else {
                    return Err(refused(
                        DpopError::InvalidProof,
                        "the request's URL cannot be told, so no proof can match it",
                    ));
                };
                let proven = verify(
                    proof,
                    Request {
                        method: &method,
                        url: &url,
                        access_token,
                    },
                )
                .map_err(|e| refused(DpopError::InvalidProof, e.to_string()))?;
                if proven.jkt != jkt {
                    return Err(refused(
                        DpopError::InvalidProof,
                        "the proof is signed by another key than the one the token is bound to",
                    ));
                }
                self.replays
                    .first_use(&proven)
                    .map_err(|e| refused(DpopError::InvalidProof, e.to_string()))
            }
        }
    }
}

/// The proofs seen within their life, by key and `jti`: each proof is accepted once.
pub(crate) struct Replays {
    seen: Cache<(String, String), ()>,
}

impl std::fmt::Debug for Replays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replays").finish_non_exhaustive()
    }
}

impl Default for Replays {
    fn default() -> Self {
        Self {
            seen: Cache::builder()
                .max_capacity(REPLAY_CAPACITY)
                .time_to_live(MAX_AGE + MAX_AHEAD)
                // Every proof is admitted and the oldest go first: moka's default
                // (TinyLFU) may refuse to admit a new key under pressure, and a proof
                // refused admission could be replayed at once. Beyond the capacity within
                // a proof's life (about 14,000 proofs a second on one instance), the
                // oldest proofs are forgotten early (docs/dpop.md).
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
        }
    }
}

impl Replays {
    /// `proven`, unless it was seen before.
    pub(crate) fn first_use(&self, proven: &Proven) -> Result<(), ProofError> {
        let key = (proven.jkt.clone(), proven.jti.clone());
        let entry = self.seen.entry(key).or_insert(());
        if entry.is_fresh() {
            Ok(())
        } else {
            Err(ProofError::Replayed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    use crate::auth::test_key::{PRIVATE_KEY, PUBLIC_X, changed};
    const URL: &str = "https://api.example/api/greeting/v3/";
    const TOKEN: &str = "an-access-token";

    fn public_jwk() -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": PUBLIC_X})
    }

    fn proof_with(header_changes: Value, claims: Value) -> String {
        let mut header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": public_jwk()});
        for (name, value) in header_changes.as_object().unwrap() {
            if value.is_null() {
                header.as_object_mut().unwrap().remove(name);
            } else {
                header[name] = value.clone();
            }
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(PRIVATE_KEY)
            .unwrap();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_ed_der(&der),
            Algorithm::EdDSA,
        )
        .unwrap();
        format!("{signing_input}.{signature}")
    }

    fn claims() -> Value {
        json!({
            "jti": "e1j3V_bKic8-LAEB", "htm": "GET", "htu": URL,
            "iat": Utc::now().timestamp(), "ath": token_hash(TOKEN)
        })
    }

    fn with(changes: Value) -> Value {
        changed(claims(), &changes)
    }

    fn checked(proof: &str) -> Result<Proven, ProofError> {
        verify(
            proof,
            Request {
                method: "GET",
                url: URL,
                access_token: TOKEN,
            },
        )
    }

    #[test]
    fn a_fresh_proof_for_this_request_proves_its_key() {
        let proven = checked(&proof_with(json!({}), claims())).unwrap();
        let expected = thumbprint(public_jwk().as_object().unwrap()).unwrap();
        assert_eq!(proven.jkt, expected);
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 section 3.1's example key and thumbprint.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(jwk.as_object().unwrap()).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_proof_for_another_method_is_refused() {
        let proof = proof_with(json!({}), with(json!({"htm": "POST"})));
        assert_eq!(checked(&proof).unwrap_err(), ProofError::Method);
    }

    #[test]
    fn a_proof_for_another_url_is_refused() {
        let proof = proof_with(json!({}), with(json!({"htu": "https://api.example/api/"})));
        assert_eq!(checked(&proof).unwrap_err(), ProofError::Url);
    }

    #[test]
    fn the_url_may_differ_in_query_host_case_and_default_port() {
        let proof = proof_with(
            json!({}),
            with(json!({"htu": "https://API.example:443/api/greeting/v3/?x=1"})),
        );
        assert!(checked(&proof).is_ok());
    }

    #[test]
    fn a_stale_or_future_proof_is_refused() {
        let now = Utc::now().timestamp();
        for iat in [now - 120, now + 60] {
            let proof = proof_with(json!({}), with(json!({"iat": iat})));
            assert_eq!(checked(&proof).unwrap_err(), ProofError::Time, "{iat}");
        }
    }

    #[test]
    fn a_proof_without_ath_or_for_another_token_is_refused() {
        let proof = proof_with(json!({}), with(json!({"ath": null})));
        assert_eq!(checked(&proof).unwrap_err(), ProofError::TokenHash);
        let proof = proof_with(json!({}), with(json!({"ath": token_hash("another")})));
        assert_eq!(checked(&proof).unwrap_err(), ProofError::TokenHash);
    }

    #[test]
    fn a_proof_of_another_type_is_refused() {
        let proof = proof_with(json!({"typ": "JWT"}), claims());
        assert_eq!(checked(&proof).unwrap_err(), ProofError::Type);
    }

    #[test]
    fn a_proof_without_a_key_or_with_a_private_one_is_refused() {
        let proof = proof_with(json!({"jwk": null}), claims());
        assert_eq!(checked(&proof).unwrap_err(), ProofError::Key);
        let mut private = public_jwk();
        private["d"] = json!("UtwkaDuDpAKVRJ4gc7VKKNpZ6GydeYw2avJJEV5uO4U");
        let proof = proof_with(json!({"jwk": private}), claims());
        assert_eq!(checked(&proof).unwrap_err(), ProofError::Key);
    }

    #[test]
    fn a_symmetric_or_unsigned_proof_is_refused() {
        for alg in ["HS256", "none"] {
            let proof = proof_with(json!({"alg": alg}), claims());
            assert_eq!(checked(&proof).unwrap_err(), ProofError::Algorithm, "{alg}");
        }
    }

    #[test]
    fn a_proof_signed_by_another_key_is_refused() {
        let other = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let proof = proof_with(json!({"jwk": other}), claims());
        assert_eq!(checked(&proof).unwrap_err(), ProofError::Signature);
    }

    #[test]
    fn a_key_whose_curve_does_not_fit_its_type_is_refused_not_a_panic() {
        let odd = json!({"kty": "EC", "crv": "Ed25519", "x": PUBLIC_X, "y": PUBLIC_X});
        let proof = proof_with(json!({"jwk": odd}), claims());
        assert_eq!(checked(&proof).unwrap_err(), ProofError::Key);
    }

    #[test]
    fn a_proof_is_accepted_once() {
        let replays = Replays::default();
        let proven = checked(&proof_with(json!({}), claims())).unwrap();
        assert!(replays.first_use(&proven).is_ok());
        assert_eq!(replays.first_use(&proven), Err(ProofError::Replayed));
    }

    #[test]
    fn the_published_algorithms_are_the_accepted_ones() {
        let published: Vec<Algorithm> = mrmat_api_types::metadata::SIGNING_ALGORITHMS
            .iter()
            .map(|name| name.parse().unwrap())
            .collect();
        assert_eq!(published.len(), ALGORITHMS.len());
        assert!(ALGORITHMS.iter().all(|alg| published.contains(alg)));
    }

    fn checked_binding(
        binding: &Binding,
        scheme: Scheme,
        bound_to: Option<&str>,
        proofs: &[Option<String>],
    ) -> Result<(), ApiError> {
        binding.check(
            scheme,
            bound_to,
            || proofs.to_vec(),
            || Some(("GET".to_owned(), URL.to_owned())),
            TOKEN,
        )
    }

    fn dpop_error(result: Result<(), ApiError>) -> Option<DpopError> {
        match result {
            Err(ApiError::Dpop { error, .. }) => Some(error),
            _ => None,
        }
    }

    #[test]
    fn a_bound_token_presented_as_a_bearer_is_refused() {
        let binding = Binding::new(false);
        let result = checked_binding(&binding, Scheme::Bearer, Some("jkt"), &[]);
        assert_eq!(dpop_error(result), Some(DpopError::InvalidToken));
    }

    #[test]
    fn an_unbound_bearer_token_passes_unless_dpop_is_required() {
        assert!(checked_binding(&Binding::new(false), Scheme::Bearer, None, &[]).is_ok());
        let required = checked_binding(&Binding::new(true), Scheme::Bearer, None, &[]);
        assert_eq!(dpop_error(required), Some(DpopError::InvalidToken));
    }

    #[test]
    fn an_unbound_token_presented_with_the_dpop_scheme_is_refused() {
        let result = checked_binding(&Binding::new(false), Scheme::Dpop, None, &[]);
        assert_eq!(dpop_error(result), Some(DpopError::InvalidToken));
    }

    #[test]
    fn a_bound_token_needs_exactly_one_proof_by_its_key_used_once() {
        let binding = Binding::new(false);
        let jkt = thumbprint(public_jwk().as_object().unwrap()).unwrap();
        let proof = proof_with(json!({}), claims());
        let none = checked_binding(&binding, Scheme::Dpop, Some(&jkt), &[]);
        assert_eq!(dpop_error(none), Some(DpopError::InvalidProof));
        let two = checked_binding(
            &binding,
            Scheme::Dpop,
            Some(&jkt),
            &[Some(proof.clone()), Some(proof.clone())],
        );
        assert_eq!(dpop_error(two), Some(DpopError::InvalidProof));
        let other_key = checked_binding(
            &binding,
            Scheme::Dpop,
            Some("another"),
            &[Some(proof.clone())],
        );
        assert_eq!(dpop_error(other_key), Some(DpopError::InvalidProof));
        assert!(
            checked_binding(&binding, Scheme::Dpop, Some(&jkt), &[Some(proof.clone())]).is_ok()
        );
        let replayed = checked_binding(&binding, Scheme::Dpop, Some(&jkt), &[Some(proof)]);
        assert_eq!(dpop_error(replayed), Some(DpopError::InvalidProof));
    }

    #[test]
    fn a_proof_without_jti_is_refused() {
        let proof = proof_with(json!({}), with(json!({"jti": null})));
        assert_eq!(checked(&proof).unwrap_err(), ProofError::Jti);
    }
}
