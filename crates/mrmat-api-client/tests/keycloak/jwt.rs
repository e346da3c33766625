//! Keycloak's own JWT access tokens (header `typ: JWT`, claim `typ: Bearer`, `azp`, a
//! JWKS that also publishes an RSA-OAEP encryption key) checked by the server itself,
//! against Keycloak's keys: a server without any client at Keycloak, so it cannot
//! introspect, and an audience (`mrmat-api`, what the realm's Audience mapper adds).

use mrmat_api_testkit::keycloak::{NOAUD_REALM, REALM, SERVER_CLIENT};
use mrmat_api_testkit::{Backend, Keycloak, TestApp, TestClient};
use serde_json::json;

use crate::keycloak;

/// A server that checks `realm`'s JWTs itself and has no client to introspect with.
async fn jwt_only_app(keycloak: &Keycloak, realm: &str) -> TestApp {
    TestApp::spawn_with_auth(
        Backend::Sqlite,
        keycloak.jwt_server_settings(realm, &[SERVER_CLIENT]),
    )
    .await
}

#[tokio::test]
async fn keycloaks_jwks_publishes_an_encryption_key_beside_its_signing_key() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let jwks: serde_json::Value = reqwest::get(keycloak.endpoint(REALM, "certs"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uses: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["use"].as_str())
        .collect();
    assert!(uses.contains(&"sig") && uses.contains(&"enc"), "{jwks}");
}

#[tokio::test]
async fn a_keycloak_jwt_is_checked_here_without_any_client_at_keycloak() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = jwt_only_app(keycloak, REALM).await;
    let token = keycloak.token(REALM, TestClient::Rw).await;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "JWT", "Keycloak's plain JWT access token");
    let response = app
        .post_json(
            "/api/resource/v1/",
            Some(&token),
            &json!({"name": "kc-jwt"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["owner"]["client_id"], "mrmat-api-test");
}

#[tokio::test]
async fn a_read_only_keycloak_jwt_may_read_but_not_write() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = jwt_only_app(keycloak, REALM).await;
    let token = keycloak.token(REALM, TestClient::Ro).await;
    assert_eq!(
        app.get("/api/resource/v1/", Some(&token)).await.status(),
        200
    );
    let response = app
        .post_json("/api/resource/v1/", Some(&token), &json!({"name": "nope"}))
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn a_keycloak_jwt_without_the_servers_audience_is_refused() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = jwt_only_app(keycloak, NOAUD_REALM).await;
    let token = keycloak.token(NOAUD_REALM, TestClient::Rw).await;
    let response = app.get("/api/greeting/v3/", Some(&token)).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

#[tokio::test]
async fn keycloaks_refresh_and_id_tokens_are_refused_as_bearers() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = jwt_only_app(keycloak, REALM).await;
    let tokens = keycloak.user_tokens(REALM, "alice").await;
    let access = app
        .get("/api/greeting/v3/", Some(&tokens.access_token))
        .await;
    assert_eq!(access.status(), 200, "alice's access token is fine");
    for (what, token) in [("refresh", &tokens.refresh_token), ("ID", &tokens.id_token)] {
        let token = token
            .as_deref()
            .unwrap_or_else(|| panic!("Keycloak gave no {what} token"));
        let response = app.get("/api/greeting/v3/", Some(token)).await;
        assert_eq!(response.status(), 401, "{what} token");
    }
}
