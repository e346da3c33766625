//! The real server checking Glewlwyd's tokens. Glewlwyd here refuses HTTP Basic at its
//! introspection endpoint, so the server introspects with a client-credentials token
//! carrying the introspection scope (`--oidc-introspection-token-scope`).

use std::time::{Duration, Instant};

use mrmat_api_testkit::glewlwyd::ClientAuth;
use mrmat_api_testkit::idp::eventually;
use mrmat_api_testkit::{Backend, Glewlwyd, TestApp, TestClient};
use mrmat_api_types::scope::Scope;
use serde_json::json;

use crate::glewlwyd;

/// The server's default introspection cache ceiling.
const DEFAULT_OIDC_CACHE_TTL: Duration = Duration::from_secs(30);

async fn app(glewlwyd: &Glewlwyd, cache_ttl: Duration) -> TestApp {
    TestApp::spawn_with_auth(Backend::Sqlite, glewlwyd.server_settings(cache_ttl)).await
}

#[tokio::test]
async fn greeting_v3_says_hello_to_alice_from_the_username_claim() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = app(&glewlwyd, DEFAULT_OIDC_CACHE_TTL).await;
    let tokens = glewlwyd.user_tokens("alice").await;
    let response = app
        .get("/api/greeting/v3/", Some(&tokens.access_token))
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Hello alice");
}

#[tokio::test]
async fn a_user_with_the_write_scope_creates_reads_updates_and_deletes_a_resource() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = app(&glewlwyd, DEFAULT_OIDC_CACHE_TTL).await;
    let token = glewlwyd.user_tokens("alice").await.access_token;
    let created = app.create_resource(&token, "from glewlwyd").await;
    assert_eq!(created["owner"]["name"], "alice");
    let path = format!("/api/resource/v1/{}", created["id"]);

    let read: serde_json::Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert_eq!(read["name"], "from glewlwyd");
    let updated = app
        .put_json(&path, Some(&token), &json!({"name": "renamed"}))
        .await;
    assert_eq!(updated.status(), 200);
    assert_eq!(app.delete(&path, Some(&token)).await.status(), 204);
    assert_eq!(app.get(&path, Some(&token)).await.status(), 404);
}

#[tokio::test]
async fn bob_cannot_change_alices_resource() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = app(&glewlwyd, DEFAULT_OIDC_CACHE_TTL).await;
    let alice = glewlwyd.user_tokens("alice").await.access_token;
    let bob = glewlwyd.user_tokens("bob").await.access_token;
    let created = app.create_resource(&alice, "alice's").await;
    let path = format!("/api/resource/v1/{}", created["id"]);
    assert_eq!(app.delete(&path, Some(&bob)).await.status(), 403);
}

#[tokio::test]
async fn a_read_only_client_gets_403_insufficient_scope_on_create() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = app(&glewlwyd, DEFAULT_OIDC_CACHE_TTL).await;
    let token = glewlwyd.token(TestClient::Ro).await;
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
async fn a_client_without_resource_scopes_is_greeted_but_gets_403_on_the_list() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = app(&glewlwyd, DEFAULT_OIDC_CACHE_TTL).await;
    let token = glewlwyd.token(TestClient::NoScope).await;
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
async fn a_revoked_access_token_is_refused_within_the_cache_ceiling() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let ceiling = Duration::from_secs(2);
    let app = app(&glewlwyd, ceiling).await;
    let token = glewlwyd.user_tokens("alice").await.access_token;
    // Cached as active first, so the refusal has to wait for the ceiling.
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&token)).await.status(),
        200
    );
    let revoked = glewlwyd
        .revoke(&ClientAuth::Bearer(glewlwyd.server_token().await), &token)
        .await;
    assert_eq!(revoked.status(), 200);
    let since = Instant::now();
    eventually(ceiling + Duration::from_secs(3), || async {
        app.get("/api/greeting/v3/", Some(&token)).await.status() == 401
    })
    .await;
    assert!(
        since.elapsed() <= ceiling + Duration::from_secs(1),
        "refused after {:?}",
        since.elapsed()
    );
}

#[tokio::test]
async fn refresh_and_id_tokens_are_not_bearer_tokens() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = app(&glewlwyd, DEFAULT_OIDC_CACHE_TTL).await;
    let tokens = glewlwyd.user_tokens("alice").await;
    for token in [tokens.refresh_token.unwrap(), tokens.id_token.unwrap()] {
        let response = app.get("/api/greeting/v3/", Some(&token)).await;
        assert_eq!(response.status(), 401);
    }
}

#[tokio::test]
async fn readiness_is_ok_with_glewlwyd() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = app(&glewlwyd, DEFAULT_OIDC_CACHE_TTL).await;
    let response = app.get("/healthz/ready", None).await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "OK");
}

/// Glewlwyd refuses HTTP Basic at introspection with a bare 401 (no `invalid_client`
/// body): a server left on Basic must call that a configuration fault naming its options,
/// not an unreachable provider, and say so in readiness.
#[tokio::test]
async fn a_server_on_basic_against_a_bare_401_is_misconfigured_not_unreachable() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = TestApp::spawn_with_auth(
        Backend::Sqlite,
        glewlwyd.server_settings_basic(DEFAULT_OIDC_CACHE_TTL),
    )
    .await;
    let token = glewlwyd.user_tokens("alice").await.access_token;
    let response = app.get("/api/greeting/v3/", Some(&token)).await;
    assert_eq!(response.status(), 503);
    let ready = app.get("/healthz/ready", None).await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["oidc"], "MISCONFIGURED", "{body}");
}
