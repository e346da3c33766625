//! The key Glewlwyd signs its tokens with: an ECDSA P-256 pair (ES256) made by `openssl`
//! once per test process, in a temporary directory, and never written anywhere else. An
//! asymmetric key, so that Glewlwyd publishes its public half in its JWKS and the server
//! can check Glewlwyd's access tokens itself.

use std::sync::OnceLock;

use crate::tools::{openssl, p256_key};

/// A PEM private key and its PEM public key.
#[derive(Clone)]
pub(super) struct SigningKey {
    /// PKCS#8 private key.
    pub(super) private_pem: String,
    /// SubjectPublicKeyInfo public key (Glewlwyd's plugin calls it `cert`).
    pub(super) public_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

fn generate() -> SigningKey {
    let dir = tempfile::tempdir().expect("temp dir for the signing key");
    p256_key(dir.path());
    openssl(
        &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"],
        dir.path(),
    );
    let read = |name: &str| {
        std::fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|e| panic!("read the {name} openssl wrote: {e}"))
    };
    SigningKey {
        private_pem: read("key.pem"),
        public_pem: read("pub.pem"),
    }
}

/// This process's signing key, made on first use.
pub(super) fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(generate)
}
