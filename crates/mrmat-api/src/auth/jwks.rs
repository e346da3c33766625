//! The issuer's signing keys (its JWKS, from discovery's `jwks_uri`), kept in memory so
//! that a JWT costs no call to the provider.
//!
//! - Fetched on first use, and again when older than [`MAX_AGE`] (in the request that
//!   finds them old; a failed refresh keeps the keys it had, so JWTs signed by known keys
//!   keep working while the provider is down).
//! - A token naming a key id the set lacks triggers one refetch, shared by every request
//!   that waits for it, and at most one per [`MIN_REFETCH`]: a flood of tokens with made-up
//!   key ids costs the provider a handful of calls a minute, never one a request. A request
//!   that needs a refetch sooner waits for the next one (a key the provider has just
//!   rotated in then still works, a moment later).
//! - Keys for encryption (`use: enc`), of unknown types or with unusable parameters are
//!   skipped, not fatal: Keycloak publishes an RSA-OAEP key beside its signing keys.
//! - An EC key's coordinates are taken at their full size even when published shorter
//!   (see [`full_size_coordinates`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::http::{ProviderHttp, read_capped};
use super::provider::ProviderError;

/// Keys older than this are fetched again on their next use.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Fewest seconds between two fetches.
pub(crate) const MIN_REFETCH: Duration = Duration::from_secs(10);

/// One usable verification key.
#[derive(Clone)]
pub(crate) struct Key {
    /// Its `kid`.
    pub(crate) kid: Option<String>,
    /// Its `alg`, when the set names one: the only algorithm it then verifies.
    pub(crate) alg: Option<Algorithm>,
    /// The key.
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Whether this key may verify a token with `kid` and `alg`.
    fn fits(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        let kid_ok = match kid {
            Some(kid) => self.kid.as_deref() == Some(kid),
            None => true,
        };
        kid_ok && self.alg.is_none_or(|a| a == alg) && self.key.family() == alg.family()
    }
}

/// A fetched key set.
#[derive(Debug)]
pub(crate) struct KeySet {
    /// Its usable keys.
    pub(crate) keys: Vec<Key>,
    /// How many entries were skipped.
    pub(crate) skipped: usize,
    fetched: Instant,
}

/// What was learnt from the key set about one token.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Keys that may verify it (one, when the token names a key id).
    Found(Vec<Key>),
    /// The token names a key (or an algorithm) no published key has.
    Unknown,
}

/// The issuer's keys, shared by every request.
#[derive(Debug)]
pub(crate) struct Jwks {
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while a fetch runs: one at a time, and the waiters take its result.
    fetching: Mutex<Option<Instant>>,
}

impl Default for Jwks {
    fn default() -> Self {
        Self::new()
    }
}

impl Jwks {
    /// No keys yet.
    pub(crate) fn new() -> Self {
        Self {
            current: RwLock::new(None),
            fetching: Mutex::new(None),
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.current.read().map_or(None, |c| c.clone())
    }

    /// The keys that may verify a token with `kid` and `alg`, fetching the set from `uri`
    /// as the rules above allow. An error only when there are no keys at all and the
    /// provider cannot be reached.
    pub(crate) async fn lookup(
        &self,
        http: &ProviderHttp,
        uri: &Url,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Lookup, ProviderError> {
        let seen = self.current();
        if let Some(set) = &seen {
            let found = find(set, kid, alg);
            if !found.is_empty() {
                if set.fetched.elapsed() >= MAX_AGE {
                    // Old but usable: refresh now, and keep these if that fails.
                    self.refresh(http, uri, &seen, false).await.ok();
                    return Ok(match self.current() {
                        Some(set) => found_or_unknown(find(&set, kid, alg)),
                        None => Lookup::Found(found),
                    });
                }
                return Ok(Lookup::Found(found));
            }
        }
        let set = self.refresh(http, uri, &seen, true).await?;
        Ok(found_or_unknown(find(&set, kid, alg)))
    }

    /// The key set after at most one fetch: the one another request fetched while this
    /// one waited, or a new one. `wait` lets the request wait out [`MIN_REFETCH`].
    async fn refresh(
        &self,
        http: &ProviderHttp,
        uri: &Url,
        seen: &Option<Arc<KeySet>>,
        wait: bool,
    ) -> Result<Arc<KeySet>, ProviderError> {
        let mut last_fetch = self.fetching.lock().await;
        let current = self.current();
        if let Some(current) = &current
            && !same(seen, current)
        {
            return Ok(current.clone());
        }
        if let (Some(last), Some(current)) = (*last_fetch, &current) {
            let since = last.elapsed();
            if since < MIN_REFETCH {
                if !wait {
                    return Ok(current.clone());
                }
                tokio::time::sleep(MIN_REFETCH - since).await;
            }
        }
        *last_fetch = Some(Instant::now());
        match fetch(http, uri).await {
            Ok(set) => {
                let set = Arc::new(set);
                log::debug!(
                    "fetched {} signing keys from {uri} ({} skipped)",
                    set.keys.len(),
                    set.skipped
                );
                if let Ok(mut slot) = self.current.write() {
                    *slot = Some(set.clone());
                }
                Ok(set)
            }
            Err(error) => match current {
                Some(current) => {
                    log::warn!(
                        "could not refresh the signing keys at {uri}, keeping the known ones: {error}"
                    );
                    Ok(current)
                }
                None => Err(error),
            },
        }
    }
}

fn same(seen: &Option<Arc<KeySet>>, current: &Arc<KeySet>) -> bool {
    seen.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, current))
}

fn find(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Vec<Key> {
    set.keys
        .iter()
        .filter(|key| key.fits(kid, alg))
        .cloned()
        .collect()
}

fn found_or_unknown(keys: Vec<Key>) -> Lookup {
    if keys.is_empty() {
        Lookup::Unknown
    } else {
        Lookup::Found(keys)
    }
}

/// The key set at `uri`, fetched now.
pub(crate) async fn fetch(http: &ProviderHttp, uri: &Url) -> Result<KeySet, ProviderError> {
    let unreachable =
        |reason: String| ProviderError::Unreachable(format!("JWKS at {uri}: {reason}"));
    let response = http
        .send("jwks", http.get(uri.as_str()))
        .await
        .map_err(|e| unreachable(e.without_url().to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(unreachable(format!("answered {status}")));
    }
    let body = read_capped(response)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    parse(&body).map_err(unreachable)
}

/// The usable keys of a JWKS document.
pub(crate) fn parse(body: &[u8]) -> Result<KeySet, String> {
    let document: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWK set (no \"keys\" array)")?;
    let mut keys = Vec::new();
    for entry in entries {
        if let Some(key) = usable(entry) {
            keys.push(key);
        }
    }
    Ok(KeySet {
        skipped: entries.len() - keys.len(),
        keys,
        fetched: Instant::now(),
    })
}

/// A JWK entry as a verification key, or `None` for one to skip.
fn usable(entry: &Value) -> Option<Key> {
    let mut entry = entry.clone();
    full_size_coordinates(&mut entry)?;
    let jwk: Jwk = serde_json::from_value(entry).ok()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let alg = match &jwk.common.key_algorithm {
        None => None,
        Some(alg) => Some(alg.to_string().parse::<Algorithm>().ok()?),
    };
    if alg.is_some_and(|alg| !super::jwt::ALGORITHMS.contains(&alg)) {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    if matches!(key.family(), jsonwebtoken::AlgorithmFamily::Hmac) {
        return None;
    }
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// An EC key's `x` and `y` at the full size of its curve's coordinates, as RFC 7518
/// section 6.2.1.2 requires; `None` when one is larger (no point of that curve).
///
/// Glewlwyd drops a coordinate's leading zero bytes, so one of its P-256 keys in 128 has a
/// 31-byte `x` or `y`. jsonwebtoken takes such a key and then refuses every token with it
/// (`InvalidEcdsaKey`), so all tokens of that provider were refused until its next key.
/// The number a shorter coordinate stands for is plain, so it is padded back.
fn full_size_coordinates(entry: &mut Value) -> Option<()> {
    if entry.get("kty").and_then(Value::as_str) != Some("EC") {
        return Some(());
    }
    let size = match entry.get("crv").and_then(Value::as_str) {
        Some("P-256") => 32,
        Some("P-384") => 48,
        Some("P-521") => 66,
        _ => return Some(()),
    };
    for name in ["x", "y"] {
        let Some(text) = entry.get(name).and_then(Value::as_str) else {
            continue;
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() == size {
            continue;
        }
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let significant = &bytes[first..];
        if significant.len() > size {
            return None;
        }
        let mut full = vec![0; size - significant.len()];
        full.extend_from_slice(significant);
        entry[name] = Value::String(URL_SAFE_NO_PAD.encode(full));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::auth::test_key::PUBLIC_X as ED_X;

    fn set(keys: serde_json::Value) -> KeySet {
        parse(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn encryption_keys_and_unknown_key_types_are_skipped_not_fatal() {
        let keys = set(serde_json::json!([
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "sig", "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "enc", "use": "enc"},
            {"kty": "RSA", "kid": "oaep", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
            {"kty": "XYZ", "kid": "future"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
        ]));
        let kids: Vec<_> = keys.keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("sig")]);
        assert_eq!(keys.skipped, 4);
    }

    #[test]
    fn a_key_fits_its_own_kid_and_algorithm_family_only() {
        let keys = set(serde_json::json!([
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "a"}
        ]));
        assert_eq!(find(&keys, Some("a"), Algorithm::EdDSA).len(), 1);
        assert!(find(&keys, Some("b"), Algorithm::EdDSA).is_empty());
        assert!(find(&keys, Some("a"), Algorithm::RS256).is_empty());
        assert_eq!(find(&keys, None, Algorithm::EdDSA).len(), 1);
    }

    #[test]
    fn a_key_that_names_its_algorithm_verifies_no_other() {
        let keys = set(serde_json::json!([
            {"kty": "RSA", "kid": "r", "alg": "RS256",
             "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
             "e": "AQAB"}
        ]));
        assert_eq!(find(&keys, Some("r"), Algorithm::RS256).len(), 1);
        assert!(find(&keys, Some("r"), Algorithm::PS256).is_empty());
    }

    #[test]
    fn a_document_without_keys_is_an_error() {
        assert!(parse(br#"{"issuer": "x"}"#).is_err());
        assert!(parse(b"not json").is_err());
    }

    /// A P-256 key whose `x` starts with a zero byte (made with `openssl genpkey` for this
    /// test alone), PKCS#8 DER in standard base64, and its coordinates in base64url.
    const EC_PRIVATE_KEY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWc/4+SLhQcZpWkHgI1zlmWKZ7Q1PLWomRNvcg2iY7nyhRANCAAQAA1qoI6EbCkeuz0e54S9JNM+0bMNJGNuMwdO/tdajs9L1ZBX+USvg1VG87KrwtBT7FWOnX4a8VzThm4/CMyxa";
    const EC_X: &str = "AANaqCOhGwpHrs9HueEvSTTPtGzDSRjbjMHTv7XWo7M";
    const EC_X_SHORT: &str = "A1qoI6EbCkeuz0e54S9JNM-0bMNJGNuMwdO_tdajsw";
    const EC_Y: &str = "0vVkFf5RK-DVUbzsqvC0FPsVY6dfhrxXNOGbj8IzLFo";

    /// A token signed by the key above, checked against `x` as published.
    fn verifies_with_published_x(x: &str) -> bool {
        let der = base64::engine::general_purpose::STANDARD
            .decode(EC_PRIVATE_KEY)
            .unwrap();
        let signing = jsonwebtoken::EncodingKey::from_ec_der(&der);
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some("ec".into());
        let token =
            jsonwebtoken::encode(&header, &serde_json::json!({"sub": "alice"}), &signing).unwrap();
        let keys = set(serde_json::json!([
            {"kty": "EC", "crv": "P-256", "x": x, "y": EC_Y, "kid": "ec", "alg": "ES256"}
        ]));
        let found = find(&keys, Some("ec"), Algorithm::ES256);
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        found
            .iter()
            .any(|key| jsonwebtoken::decode::<Value>(&token, &key.key, &validation).is_ok())
    }

    #[test]
    fn an_ec_key_published_at_full_size_verifies_its_tokens() {
        assert_eq!(URL_SAFE_NO_PAD.decode(EC_X).unwrap().len(), 32);
        assert!(verifies_with_published_x(EC_X));
    }

    #[test]
    fn an_ec_key_published_without_its_leading_zero_byte_verifies_its_tokens() {
        assert_eq!(URL_SAFE_NO_PAD.decode(EC_X_SHORT).unwrap().len(), 31);
        assert!(verifies_with_published_x(EC_X_SHORT));
    }

    #[test]
    fn an_ec_coordinate_larger_than_its_curve_is_skipped() {
        let mut long = vec![1u8];
        long.extend(URL_SAFE_NO_PAD.decode(EC_X).unwrap());
        let keys = set(serde_json::json!([
            {"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(long), "y": EC_Y, "kid": "ec"}
        ]));
        assert!(keys.keys.is_empty());
        assert_eq!(keys.skipped, 1);
    }
}
