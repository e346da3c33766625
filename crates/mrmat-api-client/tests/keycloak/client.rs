//! The client binary against Keycloak: a device login approved on Keycloak's own login
//! and consent pages, the server's APIs through the client, a transparent refresh (the
//! test realms give the CLI client short-lived access tokens) and logout with revocation.

use std::time::Duration;

use mrmat_api_testkit::client_home::{ClientHome, stderr};
use mrmat_api_testkit::idp::eventually;
use mrmat_api_testkit::keycloak::{CLI_ACCESS_TOKEN_LIFESPAN, DeviceApproval, REALM};
use mrmat_api_testkit::{Backend, Keycloak, TestApp};

use crate::keycloak;

const CACHE_CEILING: Duration = Duration::from_secs(30);

async fn app(keycloak: &Keycloak) -> TestApp {
    TestApp::spawn_with_auth(
        Backend::Sqlite,
        keycloak.server_settings(REALM, CACHE_CEILING, &[]),
    )
    .await
}

/// A home logged in as `username`, approved on Keycloak's pages once the URI is shown.
async fn logged_in(app: &TestApp, keycloak: &Keycloak, username: &str) -> ClientHome {
    let home = ClientHome::new(env!("CARGO_BIN_EXE_mrmat-api-client"), &app.address);
    let result = home
        .login_answered(
            &[],
            // Keycloak's complete URI is `<issuer>/device?user_code=XXXX-XXXX`.
            |word| word.starts_with("http") && word.contains("user_code="),
            |uri| async move {
                let approval = keycloak
                    .approve(&uri, username, &Keycloak::password(username))
                    .await;
                assert_eq!(approval, DeviceApproval::Approved, "{uri}");
            },
        )
        .await;
    assert_eq!(result.code, Some(0), "login: {}", result.stderr);
    assert!(
        result
            .stderr
            .contains(&format!("Logged in to {} as {username}", app.address)),
        "{}",
        result.stderr
    );
    home
}

#[tokio::test]
async fn alice_logs_in_on_keycloaks_pages_and_creates_and_lists_a_resource() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let home = logged_in(&app, keycloak, "alice").await;
    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice"
    );
    let created = home.json(&["resource", "create", "via keycloak"]).await;
    assert_eq!(created["owner"]["name"], "alice");
    assert_eq!(created["owner"]["client_id"], "mrmat-api-cli");
    let list = home.json(&["resource", "list"]).await;
    assert_eq!(list["resources"][0]["name"], "via keycloak");
    assert_eq!(list["resources"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_password_on_keycloaks_login_page_is_rejected() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let authorization = keycloak
        .device_authorization(REALM, mrmat_api_testkit::keycloak::USER_SCOPES)
        .await;
    let uri = authorization.verification_uri_complete.unwrap();
    assert_eq!(
        keycloak.approve(&uri, "alice", "not-her-password").await,
        DeviceApproval::LoginRejected
    );
}

#[tokio::test]
async fn an_expiring_access_token_is_refreshed_and_still_accepted_by_the_server() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let home = logged_in(&app, keycloak, "alice").await;
    let first = home.ok(&["token"]).await;
    eventually(Duration::from_secs(CACHE_CEILING.as_secs()), || async {
        home.ok(&["token"]).await != first
    })
    .await;
    assert!(CLI_ACCESS_TOKEN_LIFESPAN < CACHE_CEILING.as_secs());
    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice"
    );
}

#[tokio::test]
async fn logout_revokes_the_login_at_keycloak() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = app(keycloak).await;
    let home = logged_in(&app, keycloak, "alice").await;
    let cached = home.cached();
    let access_token = cached["access_token"].as_str().unwrap().to_owned();
    let refresh_token = cached["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        keycloak.introspect(REALM, &access_token).await["active"],
        true
    );

    let output = home.run(&["logout"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(home.cache_file().is_none(), "the session is deleted");

    let refused = keycloak.refresh(REALM, &refresh_token).await;
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(
        keycloak.introspect(REALM, &access_token).await["active"],
        false
    );
}
