//! The cached session: refresh, retry, logout, environment tokens, damaged caches.

use std::time::Duration;

use mrmat_api_testkit::idp::{Idp, eventually};
use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient};

use crate::harness::{Home, stderr};

fn refresh_grants(stats: &mrmat_api_testkit::idp::Stats) -> usize {
    stats
        .token_requests
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token") && r.status == 200)
        .count()
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_transparently() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    let result = home
        .login_with(
            idp,
            &["--client-id", "mrmat-api-cli-short"],
            "alice",
            Some(mrmat_api_testkit::idp::Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    let first = home
        .ok(&["--client-id", "mrmat-api-cli-short", "token"])
        .await;
    // The access token lives 2 s: wait for the client to swap it.
    eventually(Duration::from_secs(10), || async {
        home.ok(&["--client-id", "mrmat-api-cli-short", "token"])
            .await
            != first
    })
    .await;
    assert!(refresh_grants(&idp.stats().await) >= 1);
    let greeting = home
        .json(&[
            "--client-id",
            "mrmat-api-cli-short",
            "greeting",
            "--api",
            "v3",
        ])
        .await;
    assert_eq!(greeting["message"], "Hello alice");
}

#[tokio::test]
async fn a_token_the_server_refuses_gets_one_refresh_and_retry() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    let file = home.cache_file().unwrap();
    let mut cached: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    cached["access_token"] = "not-a-valid-token".into();
    std::fs::write(&file, cached.to_string()).unwrap();

    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice"
    );
    assert_eq!(refresh_grants(&idp.stats().await), 1);
}

#[tokio::test]
async fn logout_revokes_so_the_server_refuses_the_old_token() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let mut settings = oidc.settings();
    settings.cache_ttl = Duration::from_secs(1);
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    let token = home.ok(&["token"]).await.trim().to_owned();
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&token)).await.status(),
        200
    );

    let output = home.run(&["logout"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(home.cache_file().is_none(), "the cache is deleted");
    assert!(idp.stats().await.revocations >= 1);
    eventually(Duration::from_secs(5), || async {
        app.get("/api/greeting/v3/", Some(&token)).await.status() == 401
    })
    .await;
    let whoami = home.run(&["whoami"]).await;
    assert_eq!(whoami.status.code(), Some(1));
    assert!(stderr(&whoami).contains("not logged in"));
}

#[tokio::test]
async fn the_environment_token_works_without_a_cache() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    let token = oidc.token(TestClient::Rw).await;
    let env = [("MRMAT_API_TOKEN", token.as_str())];
    let output = home
        .run_with_env(&["--output", "json", "resource", "create", "from ci"], &env)
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = home.run_with_env(&["token"], &env).await;
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), token);
    assert!(home.cache_file().is_none());
}

#[tokio::test]
async fn commands_without_a_login_say_how_to_log_in() {
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    let output = home.run(&["resource", "list"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim(),
        "error: not logged in; run `mrmat-api-client login`"
    );
}

#[tokio::test]
async fn a_damaged_cache_is_reported_and_replaced_by_the_next_login() {
    let Some(idp) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    let file = home.cache_file().unwrap();
    std::fs::write(&file, "garbage").unwrap();
    let output = home.run(&["whoami"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("login` to replace it"),
        "{}",
        stderr(&output)
    );

    home.login(idp, "bob").await;
    assert_eq!(home.json(&["whoami"]).await["subject"], "bob");
    assert_eq!(Home::mode(&file), 0o600);
}
