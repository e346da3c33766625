//! The real server checking Keycloak's tokens with its confidential client `mrmat-api`
//! (HTTP Basic at the introspection endpoint), in the realm as shipped.

use std::time::Duration;

use mrmat_api_testkit::keycloak::REALM;
use mrmat_api_testkit::{Backend, Keycloak, TestApp, TestClient};
use mrmat_api_types::scope::Scope;
use serde_json::json;

use crate::keycloak;

const CACHE_CEILING: Duration = Duration::from_secs(30);

async fn app(keycloak: &Keycloak) -> TestApp {
    TestApp::spawn_with_auth(
        Backend::Sqlite,
        keycloak.server_settings(REALM, CACHE_CEILING, &[]),
    )
    .await
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_read_write_client_creates_a_resource_it_owns() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let token = keycloak.token(REALM, TestClient::Rw).await;
    let response = app
        .post_json("/api/resource/v1/", Some(&token), &json!({"name": "kc"}))
        .await;
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["owner"]["client_id"], "mrmat-api-test");
    assert_eq!(created["owner"]["name"], "service-account-mrmat-api-test");
}

#[tokio::test]
async fn another_client_cannot_update_or_delete_a_resource_it_does_not_own() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let owner = keycloak.token(REALM, TestClient::Rw).await;
    let other = keycloak.token(REALM, TestClient::Rw2).await;
    let created = app.create_resource(&owner, "owned").await;
    let path = format!("/api/resource/v1/{}", created["id"]);
    let put = app
        .put_json(&path, Some(&other), &json!({"name": "taken"}))
        .await;
    assert_eq!(put.status(), 403);
    assert_eq!(app.delete(&path, Some(&other)).await.status(), 403);
    assert_eq!(app.delete(&path, Some(&owner)).await.status(), 204);
}

#[tokio::test]
async fn a_read_only_client_lists_but_gets_403_insufficient_scope_on_create() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let token = keycloak.token(REALM, TestClient::Ro).await;
    assert_eq!(
        app.get("/api/resource/v1/", Some(&token)).await.status(),
        200
    );
    let response = app
        .post_json("/api/resource/v1/", Some(&token), &json!({"name": "no"}))
        .await;
    assert_eq!(response.status(), 403);
    let challenge = challenge(&response);
    assert!(
        challenge.contains(&format!(
            r#"error="insufficient_scope", scope="{}""#,
            Scope::ResourceWrite
        )),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_client_without_resource_scopes_is_greeted_but_gets_403_on_the_list() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let token = keycloak.token(REALM, TestClient::NoScope).await;
    let greeting = app.get("/api/greeting/v3/", Some(&token)).await;
    assert_eq!(greeting.status(), 200);
    let body: serde_json::Value = greeting.json().await.unwrap();
    assert_eq!(body["message"], "Hello service-account-mrmat-api-test-none");
    let list = app.get("/api/resource/v1/", Some(&token)).await;
    assert_eq!(list.status(), 403);
    assert!(challenge(&list).contains("insufficient_scope"));
}

#[tokio::test]
async fn no_token_is_401_with_the_realm_and_no_error() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let response = app.get("/api/resource/v1/", None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(challenge(&response), r#"Bearer realm="mrmat-api""#);
}

#[tokio::test]
async fn a_token_keycloak_never_issued_is_401_invalid_token() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let response = app
        .get("/api/greeting/v3/", Some("not-a-keycloak-token"))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenge(&response),
        r#"Bearer realm="mrmat-api", error="invalid_token""#
    );
}

#[tokio::test]
async fn keycloak_introspects_a_test_clients_token_active_with_the_server_in_aud() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let token = keycloak.token(REALM, TestClient::Rw).await;
    let answer = keycloak.introspect(REALM, &token).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["aud"], "mrmat-api");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["client_id"], "mrmat-api-test");
}

#[tokio::test]
async fn readiness_is_ok_with_keycloak() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let response = app.get("/healthz/ready", None).await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["oidc"], "OK", "{body}");
}
