//! The client binary against Glewlwyd: a device login approved on its pages, refresh with
//! rotation, logout with a provider that refuses a public client's revocation, and the
//! server's APIs through the client.
//!
//! A login needs only the server's protected-resource metadata, so the tests of login,
//! refresh and logout run the server with its default (HTTP Basic) introspection; the tests
//! that call protected APIs need the server to introspect with a bearer token.

use std::time::Duration;

use mrmat_api_testkit::idp::eventually;
use mrmat_api_testkit::{Backend, Glewlwyd, GlewlwydOptions, TestApp};

use crate::glewlwyd;
use crate::home::{Home, stderr};
use mrmat_api_types::scope::Scope;

const CACHE_CEILING: Duration = Duration::from_secs(30);

/// A server that only has to point the client at Glewlwyd.
async fn metadata_only(glewlwyd: &Glewlwyd) -> TestApp {
    TestApp::spawn_with_auth(
        Backend::Sqlite,
        glewlwyd.server_settings_basic(CACHE_CEILING),
    )
    .await
}

/// A server that checks Glewlwyd's tokens.
async fn checking(glewlwyd: &Glewlwyd) -> TestApp {
    TestApp::spawn_with_auth(Backend::Sqlite, glewlwyd.server_settings(CACHE_CEILING)).await
}

/// A Glewlwyd whose access tokens live two seconds.
async fn short_lived() -> Option<Glewlwyd> {
    Glewlwyd::start_or_skip(GlewlwydOptions {
        access_token_ttl: 2,
        ..GlewlwydOptions::default()
    })
    .await
}

#[tokio::test]
async fn login_on_glewlwyds_pages_says_alice_logged_in() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = metadata_only(&glewlwyd).await;
    let home = Home::new(&app.address);
    let (code, stderr) = home.login_as(&glewlwyd, "alice").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("Logged in to {} as alice", app.address)),
        "{stderr}"
    );
}

#[tokio::test]
async fn whoami_after_login_shows_alices_name_scopes_and_a_live_token() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = metadata_only(&glewlwyd).await;
    let home = Home::new(&app.address);
    home.login(&glewlwyd, "alice").await;
    let status = home.json(&["whoami"]).await;
    let me = &status["logins"][0];
    assert_eq!(me["name"], "alice");
    assert_eq!(me["state"], "active");
    let scopes = me["scopes"].as_array().unwrap();
    for scope in Scope::ALL.iter().map(|s| s.as_str()) {
        assert!(scopes.iter().any(|s| s == scope), "{scope} in {scopes:?}");
    }
    assert!(
        home.cached()["refresh_token"].is_string(),
        "offline_access brought a refresh token"
    );
}

#[tokio::test]
async fn an_expiring_access_token_is_refreshed_and_the_refresh_token_rotated() {
    let Some(glewlwyd) = short_lived().await else {
        return;
    };
    let app = metadata_only(&glewlwyd).await;
    let home = Home::new(&app.address);
    home.login(&glewlwyd, "alice").await;
    let first_refresh = home.cached()["refresh_token"].clone();
    let first = home.ok(&["token"]).await;
    eventually(Duration::from_secs(10), || async {
        home.ok(&["token"]).await != first
    })
    .await;
    assert_ne!(home.cached()["refresh_token"], first_refresh);
}

#[tokio::test]
async fn a_refresh_glewlwyd_refuses_with_an_empty_400_asks_to_log_in_again() {
    let Some(glewlwyd) = short_lived().await else {
        return;
    };
    let app = metadata_only(&glewlwyd).await;
    let home = Home::new(&app.address);
    home.login_bearer(&glewlwyd, "alice").await;
    // Spend the cached refresh token behind the client's back: its next refresh is refused.
    let cached = home.cached()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(glewlwyd.refresh(&cached).await.status(), 200);
    eventually(Duration::from_secs(10), || async {
        home.json(&["whoami"]).await["logins"][0]["state"] == "refreshable"
    })
    .await;

    let output = home.run(&["token"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "error: the session has ended (the provider refused the refresh); log in again: `mrmat-api-client --server {} login`\n",
            app.address
        )
    );
}

#[tokio::test]
async fn logout_ends_the_local_session_though_glewlwyd_refuses_a_public_client_revocation() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = metadata_only(&glewlwyd).await;
    let home = Home::new(&app.address);
    home.login(&glewlwyd, "alice").await;
    let output = home.run(&["logout"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(home.cache_file().is_none(), "the session is deleted");
    assert!(
        stderr(&output).contains("expire"),
        "says the tokens stay valid until they expire: {}",
        stderr(&output)
    );
}

#[tokio::test]
async fn logout_local_deletes_the_session_without_calling_glewlwyd() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = metadata_only(&glewlwyd).await;
    let home = Home::new(&app.address);
    home.login(&glewlwyd, "alice").await;
    let output = home.run(&["logout", "--local"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(home.cache_file().is_none(), "the session is deleted");
}

#[tokio::test]
async fn the_cli_greets_alice_and_manages_her_resources() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let app = checking(&glewlwyd).await;
    let home = Home::new(&app.address);
    home.login(&glewlwyd, "alice").await;
    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice"
    );
    let created = home.json(&["resource", "create", "via glewlwyd"]).await;
    assert_eq!(created["owner"]["name"], "alice");
    let id = created["id"].as_i64().unwrap().to_string();
    assert_eq!(
        home.json(&["resource", "list"]).await["resources"][0]["name"],
        "via glewlwyd"
    );
    let updated = home.json(&["resource", "update", &id, "renamed"]).await;
    assert_eq!(updated["name"], "renamed");
    home.ok(&["resource", "delete", &id]).await;
    assert!(!home.run(&["resource", "get", &id]).await.status.success());
}

#[tokio::test]
async fn a_refreshed_access_token_is_accepted_by_the_server() {
    let Some(glewlwyd) = short_lived().await else {
        return;
    };
    let app = checking(&glewlwyd).await;
    let home = Home::new(&app.address);
    home.login(&glewlwyd, "alice").await;
    let first = home.ok(&["token"]).await;
    eventually(Duration::from_secs(10), || async {
        home.ok(&["token"]).await != first
    })
    .await;
    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice"
    );
}
