//! DPoP (RFC 9449): the key a login's tokens are bound to, and the proofs it signs. A
//! token bound to a key is worth nothing without a fresh proof by that key for the very
//! request, so a token copied from a log, a proxy or a look-alike server cannot be used.
//!
//! The key is an Ed25519 pair (`EdDSA`), made once per login from the system's random
//! source and kept with the login in the token cache (0600 in a 0700 directory); its
//! `Debug` shows the thumbprint only. A proof is made for every request: a new `jti`,
//! `iat` now, the method, the URL without query and fragment, `ath` when it carries an
//! access token, and the provider's nonce when it asked for one.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::ClientError;

/// The algorithm this client signs proofs with.
pub const ALGORITHM: &str = "EdDSA";

/// Whether a server that accepts proofs signed with `algorithms` accepts this client's.
pub fn supported(algorithms: &[String]) -> bool {
    algorithms.iter().any(|alg| alg == ALGORITHM)
}

fn random<const N: usize>() -> Result<[u8; N], ClientError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        ClientError::Config(format!(
            "the system's random source failed ({e}); no DPoP key or proof can be made"
        ))
    })?;
    Ok(bytes)
}

/// A login's DPoP key pair. Cloning shares nothing secret with anyone but the clone.
#[derive(Clone)]
pub struct DpopKey {
    signing: SigningKey,
    thumbprint: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl PartialEq for DpopKey {
    fn eq(&self, other: &Self) -> bool {
        self.thumbprint == other.thumbprint
    }
}

impl Eq for DpopKey {}

impl DpopKey {
    /// A new key pair.
    pub fn generate() -> Result<Self, ClientError> {
        Ok(Self::from_seed(&random::<32>()?))
    }

    fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        // RFC 7638: the required members in lexicographic order, no white space.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self {
            signing,
            thumbprint,
        }
    }

    /// The RFC 7638 thumbprint of the public key: what a token bound to it names in
    /// `cnf.jkt`. Not secret.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes()),
        })
    }

    /// A fresh proof for `method` `url` (its query and fragment left out), with the hash
    /// of `access_token` (`ath`) when the request carries one, and `nonce` when the
    /// provider asked for one.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut htu = Url::parse(url).map_err(|e| ClientError::Protocol {
            what: "a DPoP proof",
            reason: format!("the request's URL cannot be read: {e}"),
        })?;
        htu.set_query(None);
        htu.set_fragment(None);
        let header =
            serde_json::json!({"typ": "dpop+jwt", "alg": ALGORITHM, "jwk": self.public_jwk()});
        let mut claims = serde_json::json!({
            "jti": URL_SAFE_NO_PAD.encode(random::<16>()?),
            "htm": method,
            "htu": htu.as_str(),
            "iat": Utc::now().timestamp(),
        });
        if let Some(token) = access_token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(Sha256::digest(token.as_bytes()))
                .into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.signing.sign(input.as_bytes());
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }
}

/// In the token cache: the private key's seed, base64url, beside its algorithm. The
/// file is the login's and owner-only, as its refresh token is.
#[derive(Serialize, Deserialize)]
struct Stored {
    alg: String,
    d: String,
}

impl Serialize for DpopKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Stored {
            alg: ALGORITHM.to_owned(),
            d: URL_SAFE_NO_PAD.encode(self.signing.to_bytes()),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DpopKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let stored = Stored::deserialize(deserializer)?;
        if stored.alg != ALGORITHM {
            return Err(D::Error::custom("the DPoP key is of an unknown algorithm"));
        }
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(stored.d.as_bytes())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| D::Error::custom("the DPoP key is not a 32-byte Ed25519 seed"))?;
        Ok(Self::from_seed(&seed))
    }
}

/// A key at work: it, and the last nonce the provider gave (RFC 9449 section 8), which
/// the next proof to the provider carries.
#[derive(Debug, Clone)]
pub struct Dpop {
    key: DpopKey,
    nonce: Arc<Mutex<Option<String>>>,
}

impl Dpop {
    /// `key`, with no nonce yet.
    pub fn new(key: DpopKey) -> Self {
        Self {
            key,
            nonce: Arc::new(Mutex::new(None)),
        }
    }

    /// The key.
    pub fn key(&self) -> &DpopKey {
        &self.key
    }

    /// A proof to the provider for `method` `url`, with its latest nonce.
    pub fn provider_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, ClientError> {
        let nonce = self.nonce.lock().ok().and_then(|n| n.clone());
        self.key.proof(method, url, access_token, nonce.as_deref())
    }

    /// Remembers the nonce an answer carries, if any; whether it was a new one.
    pub fn remember_nonce(&self, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|n| !n.is_empty() && n.len() <= 1024)
        else {
            return false;
        };
        match self.nonce.lock() {
            Ok(mut slot) if slot.as_deref() != Some(nonce) => {
                *slot = Some(nonce.to_owned());
                true
            }
            _ => false,
        }
    }
}

/// Whether an answer is the provider's `use_dpop_nonce` challenge (400 from the token
/// endpoint, 401 from others) that came with a nonce to use.
pub fn nonce_challenge(dpop: &Dpop, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
    if !matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED) {
        return false;
    }
    let in_body = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|b| b.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .is_some_and(|e| e == "use_dpop_nonce");
    let in_header = headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("use_dpop_nonce"));
    if !(in_body || in_header) || headers.get("dpop-nonce").is_none() {
        return false;
    }
    dpop.remember_nonce(headers);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn a_proof_names_the_request_without_its_query_and_hashes_the_token() {
        let key = DpopKey::generate().unwrap();
        let proof = key
            .proof(
                "GET",
                "https://api.test/api/x/?limit=5#f",
                Some("tok"),
                None,
            )
            .unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["jwk"]["kty"], "OKP");
        assert!(header["jwk"].get("d").is_none(), "{header}");
        let claims = decode(parts[1]);
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://api.test/api/x/");
        assert_eq!(
            claims["ath"],
            URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok"))
        );
        assert!(claims.get("nonce").is_none());
        let again = key
            .proof("GET", "https://api.test/", None, Some("n1"))
            .unwrap();
        let claims2 = decode(again.split('.').nth(1).unwrap());
        assert_ne!(claims["jti"], claims2["jti"]);
        assert_eq!(claims2["nonce"], "n1");
        assert!(claims2.get("ath").is_none());
    }

    #[test]
    fn a_proof_verifies_with_the_key_in_its_header() {
        let key = DpopKey::generate().unwrap();
        let proof = key
            .proof("POST", "https://idp.test/token", None, None)
            .unwrap();
        let (input, signature) = proof.rsplit_once('.').unwrap();
        let x = decode(input.split('.').next().unwrap())["jwk"]["x"]
            .as_str()
            .unwrap()
            .to_owned();
        let public: [u8; 32] = URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap();
        let verifying = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap()
            .try_into()
            .unwrap();
        verifying
            .verify_strict(
                input.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .unwrap();
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 8037 appendix A.1's key and A.3's thumbprint.
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            DpopKey::from_seed(&seed).thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn a_stored_key_reads_back_the_same_and_debug_shows_no_secret() {
        let key = DpopKey::generate().unwrap();
        let text = serde_json::to_string(&key).unwrap();
        let back: DpopKey = serde_json::from_str(&text).unwrap();
        assert_eq!(back, key);
        let seed = URL_SAFE_NO_PAD.encode(key.signing.to_bytes());
        assert!(!format!("{key:?}").contains(&seed));
        assert!(format!("{key:?}").contains(key.thumbprint()));
        assert!(serde_json::from_str::<DpopKey>(r#"{"alg":"ES256","d":"AA"}"#).is_err());
    }

    #[test]
    fn only_eddsa_is_signed() {
        assert!(supported(&["ES256".into(), "EdDSA".into()]));
        assert!(!supported(&["RS256".into()]));
        assert!(!supported(&[]));
    }

    #[test]
    fn a_use_dpop_nonce_answer_with_a_nonce_is_a_challenge_and_the_nonce_is_kept() {
        let dpop = Dpop::new(DpopKey::generate().unwrap());
        let mut headers = HeaderMap::new();
        headers.insert("dpop-nonce", "n-1".parse().unwrap());
        let body = br#"{"error":"use_dpop_nonce"}"#;
        assert!(nonce_challenge(
            &dpop,
            StatusCode::BAD_REQUEST,
            &headers,
            body
        ));
        let proof = dpop
            .provider_proof("POST", "https://idp.test/token", None)
            .unwrap();
        assert_eq!(decode(proof.split('.').nth(1).unwrap())["nonce"], "n-1");
        assert!(!nonce_challenge(
            &dpop,
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body
        ));
        assert!(!nonce_challenge(
            &dpop,
            StatusCode::BAD_REQUEST,
            &headers,
            br#"{"error":"invalid_grant"}"#
        ));
    }
}
