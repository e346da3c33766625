//! `auth status` (and `whoami`): every login, whether it works, and the exit code that
//! says so for the chosen server.

use std::time::Duration;

use mrmat_api_testkit::idp::{Approval, Idp, Stats, eventually};
use mrmat_api_testkit::{Backend, Oidc, TestApp};

use crate::harness::{Home, stderr, stdout};
use mrmat_api_types::scope::Scope;

const SHORT: &str = "mrmat-api-cli-short";

fn refresh_grants(stats: &Stats) -> usize {
    stats
        .token_requests
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .count()
}

async fn revoke_at_the_provider(idp: &Idp, refresh_token: &str) {
    let revoked = reqwest::Client::new()
        .post(idp.url("/token/revocation"))
        .basic_auth("mrmat-api", Some("mrmat-api-secret"))
        .form(&[("token", refresh_token)])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
}

#[tokio::test]
async fn auth_status_of_a_working_login_says_who_where_and_active_and_exits_0() {
    let Some(idp) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;

    let (status, code) = home.status(&[]).await;
    assert_eq!(code, Some(0));
    assert_eq!(status["server"], app.address.as_str());
    let login = &status["logins"][0];
    assert_eq!(login["current"], true);
    assert_eq!(login["server"], app.address.as_str());
    assert_eq!(login["provider"], idp.issuer.as_str());
    assert_eq!(login["client_id"], "mrmat-api-cli");
    assert_eq!(login["name"], "alice");
    assert_eq!(login["refresh_token"], true);
    assert_eq!(login["state"], "active");
    assert!(
        login["scopes"]
            .to_string()
            .contains(Scope::ResourceWrite.as_str())
    );

    let table = home.run(&["--output", "table", "whoami"]).await;
    assert_eq!(table.status.code(), Some(0));
    let text = stdout(&table);
    assert!(
        text.contains(&format!("{}  (this server)", app.address)),
        "{text}"
    );
    assert!(text.contains("status:         valid"), "{text}");
    assert!(text.contains("refresh token:  held"), "{text}");
}

#[tokio::test]
async fn an_expired_but_refreshable_login_is_not_called_expired_and_check_refreshes_it() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    let result = home
        .login_with(
            idp,
            &["--client-id", SHORT],
            "alice",
            Some(Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);

    eventually(Duration::from_secs(10), || async {
        home.status(&["--client-id", SHORT]).await.0["logins"][0]["state"] == "refreshable"
    })
    .await;
    let (_, code) = home.status(&["--client-id", SHORT]).await;
    assert_eq!(code, Some(0), "a refreshable login is usable");
    let text = stdout(
        &home
            .run(&["--client-id", SHORT, "--output", "table", "auth", "status"])
            .await,
    );
    assert!(
        text.contains("the refresh token renews it on next use"),
        "{text}"
    );

    let before = refresh_grants(&idp.stats().await);
    let (status, code) = home.status(&["--client-id", SHORT, "--check"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(status["logins"][0]["state"], "active");
    assert_eq!(status["logins"][0]["checked"], true);
    assert_eq!(
        refresh_grants(&idp.stats().await),
        before + 1,
        "one refresh"
    );
}

#[tokio::test]
async fn an_ended_session_is_found_by_check_and_exits_3_with_the_login_command() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    revoke_at_the_provider(idp, home.cached()["refresh_token"].as_str().unwrap()).await;

    let (status, code) = home.status(&[]).await;
    assert_eq!(code, Some(0), "without --check the cache cannot know");
    assert_eq!(status["logins"][0]["state"], "active");

    let output = home
        .run(&["--output", "json", "auth", "status", "--check"])
        .await;
    assert_eq!(output.status.code(), Some(3));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["logins"][0]["state"], "ended");
    let message = stderr(&output);
    assert!(
        message.starts_with("error: the session has ended ("),
        "{message}"
    );
    assert!(
        message.ends_with(&format!(
            "log in again: `mrmat-api-client --server {} login`\n",
            app.address
        )),
        "{message}"
    );

    // The table does not call the access token of an ended session valid.
    let table = stdout(&home.run(&["--output", "table", "auth", "status"]).await);
    assert!(
        table.contains("access token:   unusable: the session has ended"),
        "{table}"
    );
    assert!(!table.contains("valid until"), "{table}");

    // Remembered: the next command says so without asking the provider again.
    let before = refresh_grants(&idp.stats().await);
    let (status, code) = home.status(&[]).await;
    assert_eq!(code, Some(3));
    assert_eq!(status["logins"][0]["state"], "ended");
    let token = home.run(&["token"]).await;
    assert_eq!(token.status.code(), Some(3));
    assert_eq!(refresh_grants(&idp.stats().await), before);
}

#[tokio::test]
async fn status_for_a_server_without_a_login_lists_the_others_and_explains_localhost() {
    let Some(idp) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "bob").await;
    let by_name = format!("http://localhost:{}", app.port);

    let output = home
        .run_on(&by_name, &["--output", "json", "auth", "status"])
        .await;
    assert_eq!(output.status.code(), Some(3));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["server"], by_name.as_str());
    assert_eq!(status["logins"][0]["server"], app.address.as_str());
    assert_eq!(status["logins"][0]["current"], false);
    let message = stderr(&output);
    assert_eq!(
        message,
        format!(
            "error: not logged in to {by_name}; there is a login for {0} (this machine under another name, but a login is only used with the URL it was made for): to use it, pass --server {0}; to log in: `mrmat-api-client --server {by_name} login`\n",
            app.address
        )
    );
}

#[tokio::test]
async fn check_with_the_provider_down_says_unknown_and_exits_6() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    idp.stop();

    let output = home
        .run(&["--output", "json", "auth", "status", "--check"])
        .await;
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["logins"][0]["state"], "unknown");
    let message = stderr(&output);
    assert!(
        message.starts_with(&format!(
            "error: cannot tell whether the login to {} still works: cannot reach the identity provider",
            app.address
        )),
        "{message}"
    );
    // Without --check nothing is asked of the provider, and the cache says active.
    assert_eq!(home.status(&[]).await.1, Some(0));
}
