//! A test-only Ed25519 key pair for the unit tests of JWTs, key sets and DPoP proofs:
//! PKCS#8 DER (base64) and the public key's `x` (base64url), made with
//! `openssl genpkey -algorithm ed25519` for these tests alone.

/// The private key, PKCS#8 DER in standard base64.
pub(crate) const PRIVATE_KEY: &str =
    "MC4CAQAwBQYDK2VwBCIEIFLcJGg7g6QClUSeIHO1SijaWehsnXmMNmrySRFebjuF";

/// The public key's `x`, as a JWK carries it.
pub(crate) const PUBLIC_X: &str = "_UNRXymFCZnMaNALC2WrwxaHnyIVuHXgyp8ekOygtT0";
