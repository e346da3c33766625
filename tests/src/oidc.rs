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

use mrmat_api::settings::OidcSettings;
use serde::Deserialize;
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
        let credentials = self.credentials(client);
        let response = reqwest::Client::new()
            .post(self.endpoint("revocation_endpoint").await)
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .expect("revocation request");
        assert!(
            response.status().is_success(),
            "revocation: {}",
            response.status()
        );
    }

    /// An access token of `client` (client credentials grant, default scopes).
    pub async fn token(&self, client: TestClient) -> String {
        self.token_for(client, None).await
    }

    /// An access token of `client` asked for `resource` (RFC 8707), when given.
    pub async fn token_for(&self, client: TestClient, resource: Option<&str>) -> String {
        let credentials = self.credentials(client);
        let token_endpoint = self.endpoint("token_endpoint").await;
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(resource.map(|resource| ("resource", resource)));
        let response = reqwest::Client::new()
            .post(&token_endpoint)
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .form(&form)
            .send()
            .await
            .expect("token request");
        assert!(
            response.status().is_success(),
            "token request: {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}
