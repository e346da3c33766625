//! The identity provider the authentication tests use: the local test provider by default,
//! or a real one (Keycloak) described by the file `MRMAT_TEST_OIDC_CONFIG` names:
//!
//! ```json
//! {"issuer": "https://kc/realms/mrmat",
//!  "server": {"client_id": "mrmat-api", "client_secret": "..."},
//!  "clients": {"rw": {"client_id": "...", "client_secret": "..."}, "rw2": {...},
//!              "ro": {...}, "none": {...}}}
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mrmat_api::settings::OidcSettings;
use mrmat_api_types::scope::{Permission, Scope};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

use crate::idp::Idp;

/// The variable naming an external provider's test configuration.
pub const OIDC_CONFIG_ENV: &str = "MRMAT_TEST_OIDC_CONFIG";

/// A client-credentials test client, by what its token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TestClient {
    /// Read and write.
    Rw,
    /// Read and write, another identity.
    Rw2,
    /// Read only.
    Ro,
    /// No resource scope.
    NoScope,
}

impl TestClient {
    /// Every test client.
    pub const ALL: [TestClient; 4] = [Self::Rw, Self::Rw2, Self::Ro, Self::NoScope];

    fn key(self) -> &'static str {
        match self {
            Self::Rw => "rw",
            Self::Rw2 => "rw2",
            Self::Ro => "ro",
            Self::NoScope => "none",
        }
    }

    /// The API scopes it is given at every test provider: all of them, the reading ones,
    /// or none, as the scope list says.
    pub fn scopes(self) -> Vec<Scope> {
        match self {
            Self::Rw | Self::Rw2 => Scope::ALL.to_vec(),
            Self::Ro => Scope::with_permission(Permission::Read).collect(),
            Self::NoScope => Vec::new(),
        }
    }

    /// Its client id at the local test providers.
    pub(crate) fn local_id(self) -> &'static str {
        match self {
            Self::Rw => "mrmat-api-test-rw",
            Self::Rw2 => "mrmat-api-test-rw2",
            Self::Ro => "mrmat-api-test-ro",
            Self::NoScope => "mrmat-api-test-none",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Credentials {
    client_id: String,
    client_secret: String,
}

#[derive(Debug, Deserialize)]
struct ExternalConfig {
    issuer: String,
    server: Credentials,
    clients: HashMap<String, Credentials>,
}

/// A provider and the credentials the tests use with it.
#[derive(Debug)]
pub struct Oidc {
    /// Issuer URL.
    pub issuer: String,
    /// The server's own client.
    server: Credentials,
    clients: HashMap<&'static str, Credentials>,
    /// The local provider, when the tests run their own.
    pub idp: Option<Idp>,
}

impl Oidc {
    /// The provider shared by a test binary: started once, gone with the process.
    pub fn shared() -> &'static Oidc {
        static SHARED: OnceLock<Oidc> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var(OIDC_CONFIG_ENV) {
            Ok(path) if !path.is_empty() => Self::external(&path),
            _ => Self::local(Idp::start()),
        })
    }

    /// Whether the tests run against their own provider (some tests need its switches).
    pub fn is_local() -> bool {
        std::env::var(OIDC_CONFIG_ENV).map_or(true, |v| v.is_empty())
    }

    /// The local provider `idp` with its fixed test clients.
    pub fn local(idp: Idp) -> Self {
        let clients = TestClient::ALL
            .into_iter()
            .map(|c| {
                let id = c.local_id();
                (
                    c.key(),
                    Credentials {
                        client_id: id.to_owned(),
                        client_secret: format!("{id}-secret"),
                    },
                )
            })
            .collect();
        Self {
            issuer: idp.issuer.clone(),
            server: Credentials {
                client_id: "mrmat-api".to_owned(),
                client_secret: "mrmat-api-secret".to_owned(),
            },
            clients,
            idp: Some(idp),
        }
    }

    fn external(path: &str) -> Self {
        let text = std::fs::read_to_string(path).expect("read MRMAT_TEST_OIDC_CONFIG");
        let config: ExternalConfig =
            serde_json::from_str(&text).expect("parse MRMAT_TEST_OIDC_CONFIG");
        let clients = TestClient::ALL
            .into_iter()
            .filter_map(|c| {
                config
                    .clients
                    .get(c.key())
                    .cloned()
                    .map(|cred| (c.key(), cred))
            })
            .collect();
        Self {
            issuer: config.issuer,
            server: config.server,
            clients,
            idp: None,
        }
    }

    /// Server settings for this provider, with a cache ceiling of `cache_ttl`.
    pub fn settings(&self) -> OidcSettings {
        OidcSettings {
            timeout: Duration::from_secs(2),
            ..OidcSettings::new(
                Url::parse(&self.issuer).expect("issuer URL"),
                self.server.client_id.clone(),
                self.server.client_secret.clone(),
            )
        }
    }

    /// The server's credentials, for command-line tests.
    pub fn server_credentials(&self) -> (&str, &str) {
        (&self.server.client_id, &self.server.client_secret)
    }

    fn credentials(&self, client: TestClient) -> &Credentials {
        self.clients
            .get(client.key())
            .unwrap_or_else(|| panic!("no {:?} client configured", client))
    }

    /// The endpoint `name` (e.g. `token_endpoint`) from the provider's discovery document.
    pub async fn endpoint(&self, name: &str) -> String {
        let discovery: serde_json::Value = reqwest::get(format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        ))
        .await
        .expect("discovery")
        .json()
        .await
        .expect("discovery JSON");
        discovery[name]
            .as_str()
            .unwrap_or_else(|| panic!("discovery has no {name}"))
            .to_owned()
    }

    /// Revokes `token`, an access token of `client`, at the provider (RFC 7009), with that
    /// client's own credentials.
    pub async fn revoke(&self, client: TestClient, token: &str) {
        self.post_as(
            client,
            "revocation_endpoint",
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .await;
    }

    /// Posts `form` to the discovered endpoint `endpoint` with `client`'s credentials
    /// (HTTP Basic); the answer must be a success.
    async fn post_as(
        &self,
        client: TestClient,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let credentials = self.credentials(client);
        let response = reqwest::Client::new()
            .post(self.endpoint(endpoint).await)
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        assert!(
            response.status().is_success(),
            "{endpoint}: {}",
            response.status()
        );
        response
    }

    /// An access token of `client` (client credentials grant, default scopes).
    pub async fn token(&self, client: TestClient) -> String {
        self.token_for(client, None).await
    }

    /// An access token of `client` asked for `resource` (RFC 8707), when given.
    pub async fn token_for(&self, client: TestClient, resource: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(resource.map(|resource| ("resource", resource)));
        let response = self.post_as(client, "token_endpoint", &form).await;
        let body: serde_json::Value = response.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}

/// A DPoP key of the tests (RFC 9449): an ECDSA P-256 pair (ES256) made by `openssl` for
/// this test process, never written anywhere but a temporary directory. Its `Debug` shows
/// only the thumbprint.
#[derive(Clone)]
pub struct DpopKey {
    encoding: EncodingKey,
    jwk: serde_json::Value,
    thumbprint: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new key pair.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for a DPoP key");
        let openssl = |args: &[&str]| crate::tools::openssl(args, dir.path());
        crate::tools::p256_key(dir.path());
        // PKCS#8, which is what `jsonwebtoken` reads (genpkey's DER is SEC1).
        openssl(&[
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der",
        ]);
        let der = std::fs::read(dir.path().join("key.der")).expect("read the DPoP key");
        let encoding = EncodingKey::from_ec_der(&der);
        let public = Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("public JWK");
        let AlgorithmParameters::EllipticCurve(ec) = &public.algorithm else {
            panic!("not an EC key");
        };
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": ec.x, "y": ec.y});
        // RFC 7638: the required members, in lexicographic order, no white space.
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            ec.x, ec.y
        );
        let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self {
            encoding,
            jwk,
            thumbprint,
        }
    }

    /// Its RFC 7638 thumbprint: what a token bound to it names in `cnf.jkt`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Its public JWK.
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// A proof with these claims and header (`typ`, `alg`, `jwk` are this key's unless
    /// `header` names them), signed by this key: for proofs a real client would never send.
    pub fn sign(&self, header: serde_json::Value, claims: &serde_json::Value) -> String {
        let mut full = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        if let (Some(full), Some(extra)) = (full.as_object_mut(), header.as_object()) {
            for (name, value) in extra {
                full.insert(name.clone(), value.clone());
            }
        }
        let header: Header = serde_json::from_value(full).expect("a JWS header");
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign the DPoP proof")
    }
}

/// Seconds since the epoch.
fn epoch_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `ath` of a proof for `token`: the base64url SHA-256 of the token.
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// The claims of a fresh proof for `method` `url` (query and fragment dropped, as section
/// 4.2 says) with `token`'s `ath` when given: a new `jti`, `iat` now.
pub fn proof_claims(method: &str, url: &str, token: Option<&str>) -> serde_json::Value {
    let mut htu = Url::parse(url).expect("a proof's URL");
    htu.set_query(None);
    htu.set_fragment(None);
    let mut claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": htu.as_str(),
        "iat": epoch_seconds(),
    });
    if let Some(token) = token {
        claims["ath"] = token_hash(token).into();
    }
    claims
}

/// A fresh DPoP proof by `key` for `method` `url`, with `ath` when `token` is given.
pub fn proof(key: &DpopKey, method: &str, url: &str, token: Option<&str>) -> String {
    key.sign(json!({}), &proof_claims(method, url, token))
}

impl Oidc {
    /// An access token of `client` bound to `key` (client credentials with a DPoP proof).
    pub async fn dpop_token(&self, client: TestClient, key: &DpopKey) -> String {
        self.dpop_token_for(client, key, None).await
    }

    /// An access token of `client` bound to `key`, asked for `resource` when given.
    pub async fn dpop_token_for(
        &self,
        client: TestClient,
        key: &DpopKey,
        resource: Option<&str>,
    ) -> String {
        let credentials = self.credentials(client);
        let token_endpoint = self.endpoint("token_endpoint").await;
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(resource.map(|resource| ("resource", resource)));
        let response = reqwest::Client::new()
            .post(&token_endpoint)
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .header("DPoP", proof(key, "POST", &token_endpoint, None))
            .form(&form)
            .send()
            .await
            .expect("token request");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("token JSON");
        assert!(status.is_success(), "DPoP token request: {status} {body}");
        assert_eq!(body["token_type"], "DPoP", "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// What the provider's introspection says of `token`, asked with the server's
    /// credentials.
    pub async fn introspect(&self, token: &str) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(self.endpoint("introspection_endpoint").await)
            .basic_auth(&self.server.client_id, Some(&self.server.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspection request");
        assert!(
            response.status().is_success(),
            "introspection: {}",
            response.status()
        );
        response.json().await.expect("introspection JSON")
    }
}
