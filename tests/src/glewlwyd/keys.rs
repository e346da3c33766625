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

/// Which key a Glewlwyd instance signs with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyShape {
    /// This test process's own key, made on first use.
    #[default]
    Fresh,
    /// A fixed key (made with `openssl genpkey` for these tests alone) whose public `x`
    /// starts with a zero byte. Glewlwyd publishes it one byte short, 31 bytes, against
    /// RFC 7518 section 6.2.1.2, as it does by chance with one fresh key in 128.
    LeadingZeroX,
}

/// [`KeyShape::LeadingZeroX`]: its `x` is `00 03 5a a8 ...`.
const LEADING_ZERO_X_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWc/4+SLhQcZpWkHg
I1zlmWKZ7Q1PLWomRNvcg2iY7nyhRANCAAQAA1qoI6EbCkeuz0e54S9JNM+0bMNJ
GNuMwdO/tdajs9L1ZBX+USvg1VG87KrwtBT7FWOnX4a8VzThm4/CMyxa
-----END PRIVATE KEY-----
";
const LEADING_ZERO_X_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAANaqCOhGwpHrs9HueEvSTTPtGzD
SRjbjMHTv7XWo7PS9WQV/lEr4NVRvOyq8LQU+xVjp1+GvFc04ZuPwjMsWg==
-----END PUBLIC KEY-----
";

/// The key of `shape`.
pub(super) fn signing_key(shape: KeyShape) -> &'static SigningKey {
    static FRESH: OnceLock<SigningKey> = OnceLock::new();
    static LEADING_ZERO_X: OnceLock<SigningKey> = OnceLock::new();
    match shape {
        KeyShape::Fresh => FRESH.get_or_init(generate),
        KeyShape::LeadingZeroX => LEADING_ZERO_X.get_or_init(|| SigningKey {
            private_pem: LEADING_ZERO_X_PRIVATE.to_owned(),
            public_pem: LEADING_ZERO_X_PUBLIC.to_owned(),
        }),
    }
}
