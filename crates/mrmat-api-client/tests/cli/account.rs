//! Logging in as someone else: never silent, and the replaced login is revoked.

use mrmat_api_testkit::idp::{Approval, Idp};
use mrmat_api_testkit::{Backend, Oidc, TestApp};

use crate::harness::Home;

#[tokio::test]
async fn logging_in_as_someone_else_without_a_terminal_is_refused_and_keeps_the_old_login() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "bob").await;
    idp.reset_stats().await;

    let result = home
        .login_with(idp, &[], "alice", Some(Approval::Approve), || async {})
        .await;
    assert_eq!(result.code, Some(1), "{}", result.stderr);
    assert!(
        result.stderr.ends_with(&format!(
            "error: you are logged in to {0} as bob, and this login is alice: the login of bob is kept and the new one revoked; to switch accounts, log in again with `mrmat-api-client --server {0} login --switch-account`\n",
            app.address
        )),
        "{}",
        result.stderr
    );
    assert_eq!(home.current_login().await["name"], "bob");
    assert!(
        idp.stats().await.revocations >= 1,
        "alice's unwanted login was revoked"
    );
    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello bob"
    );
}

#[tokio::test]
async fn switching_accounts_revokes_the_old_refresh_token() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "bob").await;
    let bobs = home.cached()["refresh_token"].as_str().unwrap().to_owned();
    idp.reset_stats().await;

    let result = home
        .login_with(
            idp,
            &["--switch-account"],
            "alice",
            Some(Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("The login of bob is replaced and its tokens revoked."),
        "{}",
        result.stderr
    );
    assert!(
        idp.stats().await.revocations >= 1,
        "revocations counted at the provider"
    );
    assert_eq!(home.current_login().await["name"], "alice");

    let refresh = reqwest::Client::new()
        .post(idp.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "mrmat-api-cli"),
            ("refresh_token", bobs.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 400, "bob's refresh token is dead");
    let body: serde_json::Value = refresh.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice",
        "and alice's login lives"
    );
}
