//! A test-only Ed25519 key pair for the unit tests of JWTs, key sets and DPoP proofs:
//! PKCS#8 DER (base64) and the public key's `x` (base64url), made with
//! `openssl genpkey -algorithm ed25519` for these tests alone; and the one way those tests
//! spoil a good set of claims.

use serde_json::Value;

/// The private key, PKCS#8 DER in standard base64.
pub(crate) const PRIVATE_KEY: &str =
    "MC4CAQAwBQYDK2VwBCIEIFLcJGg7g6QClUSeIHO1SijaWehsnXmMNmrySRFebjuF";

/// The public key's `x`, as a JWK carries it.
pub(crate) const PUBLIC_X: &str = "_UNRXymFCZnMaNALC2WrwxaHnyIVuHXgyp8ekOygtT0";

/// `claims` with each of `changes` set, or removed where its value is `null`.
pub(crate) fn changed(mut claims: Value, changes: &Value) -> Value {
    for (name, value) in changes.as_object().into_iter().flatten() {
        if value.is_null() {
            if let Some(object) = claims.as_object_mut() {
                object.remove(name);
            }
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}
