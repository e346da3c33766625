//! Glewlwyd's `at+jwt` access tokens checked by the server itself (RFC 9068), against
//! the ES256 key Glewlwyd publishes at discovery's `jwks_uri`.
//!
//! Each test knows the server's URL before Glewlwyd starts (a loopback port held until the
//! server binds it), so Glewlwyd can be told to accept it as an RFC 8707 resource: a token
//! asked for `resource=<server URL>`, as `mrmat-api-client` asks by default, carries it as
//! `aud`, and the server is bound to it with `--public-url`. Most servers here have no
//! client credentials at Glewlwyd (a JWT-only provider), so they cannot introspect: every
//! answer they give comes from the token alone.

use std::net::TcpListener;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mrmat_api_testkit::glewlwyd::{CLI_CLIENT, KeyShape, USER_SCOPES};
use mrmat_api_testkit::{Backend, Glewlwyd, GlewlwydOptions, TestApp, TestClient};
use mrmat_api_types::scope::Scope;
use serde_json::{Value, json};

use crate::home::Home;

/// A resource that is some other server's, which Glewlwyd also accepts.
const OTHER_API: &str = "https://other-api.example/";

/// A Glewlwyd that accepts a server's URL as a resource, and that server's port, held
/// until the server binds it.
struct Setup {
    glewlwyd: Glewlwyd,
    /// `http://127.0.0.1:PORT`, the server's URL to be.
    url: String,
    port: TcpListener,
}

impl Setup {
    /// `None` where Glewlwyd is not installed (the test is skipped).
    async fn start() -> Option<Self> {
        Self::start_signing_with(KeyShape::Fresh).await
    }

    /// [`Self::start`], Glewlwyd signing with the key of `shape`.
    async fn start_signing_with(shape: KeyShape) -> Option<Self> {
        // Held while Glewlwyd starts, so that Glewlwyd cannot be given this port.
        let port = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", port.local_addr().unwrap().port());
        let glewlwyd = Glewlwyd::start_or_skip(GlewlwydOptions {
            // Glewlwyd compares resources as strings: both forms of the URL.
            resources: vec![url.clone(), format!("{url}/"), OTHER_API.to_owned()],
            signing_key: shape,
            ..GlewlwydOptions::default()
        })
        .await?;
        Some(Self {
            glewlwyd,
            url,
            port,
        })
    }

    /// The server on its URL, checking Glewlwyd's JWTs, bound to its URL by
    /// `--public-url`; with the server's client at Glewlwyd (for anything else, by
    /// introspection) when `with_client`.
    async fn server(self, with_client: bool) -> (Glewlwyd, TestApp) {
        let settings = self.glewlwyd.jwt_server_settings(&self.url, with_client);
        let port = self.port.local_addr().unwrap().port();
        drop(self.port);
        let app = TestApp::spawn_with(Backend::Sqlite, move |s| {
            s.port = port;
            s.public_url = settings.public_url;
            s.oidc = settings.oidc;
        })
        .await;
        assert_eq!(app.address, self.url);
        (self.glewlwyd, app)
    }

    /// A JWT-only server: no client credentials, so no introspection is possible.
    async fn jwt_only_server(self) -> (Glewlwyd, TestApp) {
        self.server(false).await
    }
}

/// A JWT's header and claims, unverified.
fn decoded(token: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let text = token.split('.').nth(i).expect("a JWT part");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).expect("base64url")).expect("JSON")
    };
    (part(0), part(1))
}

/// A 401 that says the token is invalid (not "no token").
async fn assert_invalid_token(response: reqwest::Response) {
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

// --- what Glewlwyd issues ------------------------------------------------------------------

#[tokio::test]
async fn glewlwyds_jwks_publishes_the_es256_key_its_access_tokens_name() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let glewlwyd = &setup.glewlwyd;
    let discovery = glewlwyd.discovery().await;
    assert_eq!(discovery["jwks_uri"], format!("{}/jwks", glewlwyd.issuer));
    let jwks = glewlwyd.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["kty"], "EC", "{jwks}");
    assert_eq!(keys[0]["crv"], "P-256", "{jwks}");
    assert!(keys[0].get("d").is_none(), "no private part");

    let token = glewlwyd.token(TestClient::Ro).await;
    let (header, _) = decoded(&token);
    assert_eq!(header["alg"], "ES256", "{header}");
    assert_eq!(header["typ"], "at+jwt", "{header}");
    // The key's thumbprint, set by Glewlwyd.
    assert!(header["kid"].is_string(), "{header}");
    assert_eq!(header["kid"], keys[0]["kid"], "{header} {jwks}");
}

#[tokio::test]
async fn an_access_token_asked_for_a_resource_carries_it_as_aud_and_the_claims_rfc_9068_asks() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let glewlwyd = &setup.glewlwyd;
    let tokens = glewlwyd.user_tokens_for("alice", Some(&setup.url)).await;
    let (_, claims) = decoded(&tokens.access_token);
    assert_eq!(claims["aud"], setup.url.as_str(), "{claims}");
    assert_eq!(claims["iss"], glewlwyd.issuer.as_str(), "{claims}");
    assert_eq!(claims["client_id"], CLI_CLIENT, "{claims}");
    assert_eq!(claims["scope"], USER_SCOPES, "{claims}");
    assert_eq!(claims["type"], "access_token", "{claims}");
    for claim in ["sub", "jti"] {
        assert!(claims[claim].is_string(), "{claim} in {claims}");
    }
    for claim in ["iat", "nbf", "exp"] {
        assert!(claims[claim].is_i64(), "{claim} in {claims}");
    }
    assert_ne!(claims["sub"], "alice", "an opaque subject");
}

#[tokio::test]
async fn an_access_token_asked_for_no_resource_has_the_scope_list_as_aud() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let token = setup.glewlwyd.token(TestClient::Ro).await;
    let (_, claims) = decoded(&token);
    assert_eq!(claims["aud"], Scope::ResourceRead.as_str(), "{claims}");
}

#[tokio::test]
async fn a_client_credentials_token_names_its_client_as_the_subject() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let glewlwyd = &setup.glewlwyd;
    let token = glewlwyd.token_for(TestClient::Rw, Some(&setup.url)).await;
    let (_, claims) = decoded(&token);
    let client_id = &glewlwyd.client_credentials(TestClient::Rw).client_id;
    assert_eq!(claims["sub"], client_id.as_str(), "{claims}");
    assert_eq!(claims["client_id"], client_id.as_str(), "{claims}");
    assert_eq!(claims["aud"], setup.url.as_str(), "{claims}");
}

// --- the server checking them --------------------------------------------------------------

#[tokio::test]
async fn a_jwt_only_server_accepts_alices_token_and_she_owns_what_she_creates() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let url = setup.url.clone();
    let (glewlwyd, app) = setup.jwt_only_server().await;
    let token = glewlwyd
        .user_tokens_for("alice", Some(&url))
        .await
        .access_token;
    let (_, claims) = decoded(&token);
    let created = app.create_resource(&token, "checked here").await;
    assert_eq!(created["owner"]["client_id"], CLI_CLIENT);
    // No username claim in Glewlwyd's access tokens: the owner is named by its subject.
    assert_eq!(created["owner"]["name"], claims["sub"]);
    let list = app.get("/api/resource/v1/", Some(&token)).await;
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["resources"][0]["name"], "checked here");
}

#[tokio::test]
async fn a_jwt_only_server_gives_bob_403_on_alices_resource() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let url = setup.url.clone();
    let (glewlwyd, app) = setup.jwt_only_server().await;
    let alice = glewlwyd.user_tokens_for("alice", Some(&url)).await;
    let bob = glewlwyd.user_tokens_for("bob", Some(&url)).await;
    let created = app.create_resource(&alice.access_token, "alice's").await;
    let path = format!("/api/resource/v1/{}", created["id"]);
    let response = app
        .put_json(&path, Some(&bob.access_token), &json!({"name": "bob's"}))
        .await;
    assert_eq!(response.status(), 403);
}

/// Glewlwyd publishes a P-256 coordinate without its leading zero bytes (one fresh key in
/// 128): every token of such a key was refused, until the server padded it back.
#[tokio::test]
async fn a_key_glewlwyd_publishes_one_byte_short_still_verifies_its_tokens() {
    let Some(setup) = Setup::start_signing_with(KeyShape::LeadingZeroX).await else {
        return;
    };
    let jwks = setup.glewlwyd.jwks().await;
    let x = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().expect("x"))
        .expect("base64url");
    assert_eq!(
        x.len(),
        31,
        "Glewlwyd now publishes x at full size: this test no longer tries a short one"
    );
    let url = setup.url.clone();
    let (glewlwyd, app) = setup.jwt_only_server().await;
    let alice = glewlwyd.user_tokens_for("alice", Some(&url)).await;
    let created = app.create_resource(&alice.access_token, "alice's").await;
    assert_eq!(created["name"], "alice's");
}

#[tokio::test]
async fn a_jwt_only_server_lets_a_read_only_client_list_but_not_create() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let url = setup.url.clone();
    let (glewlwyd, app) = setup.jwt_only_server().await;
    let token = glewlwyd.token_for(TestClient::Ro, Some(&url)).await;
    assert_eq!(
        app.get("/api/resource/v1/", Some(&token)).await.status(),
        200
    );
    let response = app
        .post_json("/api/resource/v1/", Some(&token), &json!({"name": "no"}))
        .await;
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert!(
        challenge.contains(Scope::ResourceWrite.as_str()),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_jwt_only_server_gives_a_client_without_resource_scopes_403_on_the_list() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let url = setup.url.clone();
    let (glewlwyd, app) = setup.jwt_only_server().await;
    let token = glewlwyd.token_for(TestClient::NoScope, Some(&url)).await;
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&token)).await.status(),
        200
    );
    assert_eq!(
        app.get("/api/resource/v1/", Some(&token)).await.status(),
        403
    );
}

#[tokio::test]
async fn a_token_asked_for_another_server_is_refused_with_invalid_token() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let (glewlwyd, app) = setup.jwt_only_server().await;
    let token = glewlwyd.token_for(TestClient::Rw, Some(OTHER_API)).await;
    assert_eq!(decoded(&token).1["aud"], OTHER_API);
    assert_invalid_token(app.get("/api/resource/v1/", Some(&token)).await).await;
}

#[tokio::test]
async fn a_token_asked_for_no_resource_is_refused_with_invalid_token() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let (glewlwyd, app) = setup.jwt_only_server().await;
    // Its `aud` is the scope list, which names no server.
    let token = glewlwyd.token(TestClient::Rw).await;
    assert_invalid_token(app.get("/api/resource/v1/", Some(&token)).await).await;
}

#[tokio::test]
async fn glewlwyds_id_token_is_refused_as_a_bearer_token() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let url = setup.url.clone();
    let (glewlwyd, app) = setup.jwt_only_server().await;
    let tokens = glewlwyd.user_tokens_for("alice", Some(&url)).await;
    let id_token = tokens.id_token.unwrap();
    let (header, claims) = decoded(&id_token);
    assert_eq!(claims["iss"], glewlwyd.issuer.as_str(), "{claims}");
    assert_ne!(header["typ"], "at+jwt", "{header}");
    assert_invalid_token(app.get("/api/greeting/v3/", Some(&id_token)).await).await;
}

#[tokio::test]
async fn glewlwyds_refresh_token_is_refused_as_a_bearer_token() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let url = setup.url.clone();
    let (glewlwyd, app) = setup.jwt_only_server().await;
    let tokens = glewlwyd.user_tokens_for("alice", Some(&url)).await;
    let refresh_token = tokens.refresh_token.unwrap();
    assert_invalid_token(app.get("/api/greeting/v3/", Some(&refresh_token)).await).await;
}

#[tokio::test]
async fn a_server_with_a_client_and_an_audience_introspects_none_of_glewlwyds_jwts() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let url = setup.url.clone();
    let (glewlwyd, app) = setup.server(true).await;
    let token = glewlwyd.token_for(TestClient::Rw, Some(&url)).await;
    for _ in 0..3 {
        app.create_resource(&token, &unique_name()).await;
    }
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    // Every introspection call is timed: none was made.
    assert!(
        metrics
            .lines()
            .any(|l| l == "mrmat_api_introspection_duration_seconds_count 0"),
        "{metrics}"
    );
}

/// A name no other resource has.
fn unique_name() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("resource {}", N.fetch_add(1, Ordering::Relaxed))
}

// --- the client, end to end ----------------------------------------------------------------

#[tokio::test]
async fn the_cli_logs_in_creates_and_lists_against_a_server_checking_glewlwyds_jwts() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let (glewlwyd, app) = setup.jwt_only_server().await;
    let home = Home::new(&app.address);
    home.login(&glewlwyd, "alice").await;
    let (_, claims) = decoded(home.cached()["access_token"].as_str().unwrap());
    assert!(
        claims["aud"] == app.address.as_str() || claims["aud"] == format!("{}/", app.address),
        "the client asked for the server: {claims}"
    );
    let created = home.json(&["resource", "create", "via the cli"]).await;
    assert_eq!(created["owner"]["name"], claims["sub"]);
    assert_eq!(
        home.json(&["resource", "list"]).await["resources"][0]["name"],
        "via the cli"
    );
}
