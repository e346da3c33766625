//! The cached session: refresh, retry, logout, environment tokens, damaged caches.

use std::time::Duration;

use mrmat_api_testkit::idp::{Idp, IdpOptions, eventually};
use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient};

use crate::harness::{Home, mode, stderr};

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
    // A bearer login: the test presents the token itself, without a DPoP proof.
    home.login_bearer(idp, "alice").await;
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
    assert_eq!(whoami.status.code(), Some(3));
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
async fn commands_without_a_login_exit_3_and_say_how_to_log_in_to_that_server() {
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    let output = home.run(&["resource", "list"]).await;
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        stderr(&output).trim(),
        format!(
            "error: not logged in to {0}; to log in: `mrmat-api-client --server {0} login`",
            app.address
        )
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
    let output = home.run(&["token"]).await;
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains(&format!(
            "not valid JSON (expected value at line 1 column 1); log in again: `mrmat-api-client --server {} login`",
            app.address
        )),
        "{}",
        stderr(&output)
    );
    let (status, _) = home.status(&[]).await;
    assert_eq!(status["logins"][0]["state"], "unusable");

    home.login(idp, "bob").await;
    assert_eq!(home.current_login().await["subject"], "bob");
    assert_eq!(mode(&file), 0o600);
}

/// Logs `home` in through the 2-second client and waits until its access token expired.
async fn short_login_expired(home: &Home, idp: &Idp) {
    let result = home
        .login_with(
            idp,
            &["--client-id", SHORT],
            "alice",
            Some(mrmat_api_testkit::idp::Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    eventually(Duration::from_secs(10), || async {
        let (status, _) = home.status(&["--client-id", SHORT]).await;
        status["logins"][0]["state"] == "refreshable"
    })
    .await;
}

const SHORT: &str = "mrmat-api-cli-short";

#[tokio::test]
async fn two_processes_refreshing_at_once_spend_one_refresh_token() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    short_login_expired(&home, idp).await;

    let (a, b) = tokio::join!(
        home.run(&["--client-id", SHORT, "token"]),
        home.run(&["--client-id", SHORT, "token"])
    );
    assert!(
        a.status.success() && b.status.success(),
        "{} {}",
        stderr(&a),
        stderr(&b)
    );
    assert_eq!(
        a.stdout, b.stdout,
        "the second process used the first one's new token"
    );
    assert_eq!(refresh_grants(&idp.stats().await), 1);
    let greeting = home
        .json(&["--client-id", SHORT, "greeting", "--api", "v3"])
        .await;
    assert_eq!(greeting["message"], "Hello alice", "the login survived");
}

#[tokio::test]
async fn a_refused_refresh_asks_to_log_in_again() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    short_login_expired(&home, idp).await;
    let cached: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.cache_file().unwrap()).unwrap())
            .unwrap();
    let revoked = reqwest::Client::new()
        .post(idp.url("/token/revocation"))
        .basic_auth("mrmat-api", Some("mrmat-api-secret"))
        .form(&[("token", cached["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());

    let output = home.run(&["--client-id", SHORT, "token"]).await;
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(message.contains("the session has ended ("), "{message}");
    assert!(
        message.ends_with(&format!(
            "log in again: `mrmat-api-client --server {} --client-id {SHORT} login`\n",
            app.address
        )),
        "{message}"
    );
}

#[tokio::test]
async fn debug_output_never_shows_a_token() {
    let Some(idp) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "bob").await;
    let cached: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.cache_file().unwrap()).unwrap())
            .unwrap();
    for args in [
        &["-d", "greeting", "--api", "v3"][..],
        &["-d", "resource", "list"],
        &["-d", "whoami"],
    ] {
        let output = home.run(args).await;
        assert!(output.status.success());
        let text = format!(
            "{}{}",
            stderr(&output),
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(text.contains("debug: "), "{args:?} printed no debug line");
        for secret in [&cached["access_token"], &cached["refresh_token"]] {
            assert!(
                !text.contains(secret.as_str().unwrap()),
                "{args:?} printed a token"
            );
        }
    }
}

#[tokio::test]
async fn logout_with_the_provider_down_keeps_the_tokens_to_try_again() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    idp.stop();
    let output = home.run(&["logout"]).await;
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with("error: cannot reach the identity provider"),
        "{message}"
    );
    assert!(message.contains("the login is kept"), "{message}");
    assert!(
        message.contains(&format!(
            "`mrmat-api-client --server {} logout --local`",
            app.address
        )),
        "{message}"
    );
    assert!(home.cache_file().is_some());
}

#[tokio::test]
async fn a_reader_closing_the_pipe_early_is_not_a_crash() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    let home = Home::new(&app.address);
    for i in 0..50 {
        home.run_with_env(
            &["resource", "create", &format!("r{i}")],
            &[("MRMAT_API_TOKEN", &token)],
        )
        .await;
    }
    let script = format!(
        "set -o pipefail; '{}' --server '{}' --output table resource list | true",
        env!("CARGO_BIN_EXE_mrmat-api-client"),
        app.address
    );
    let output = tokio::process::Command::new("bash")
        .args(["-c", &script])
        .env("MRMAT_API_TOKEN", &token)
        .output()
        .await
        .unwrap();
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    // 141 (128 + SIGPIPE), as `cat` or `gh` give under pipefail: see output.rs.
    assert_eq!(output.status.code(), Some(141));
    assert_eq!(stderr(&output), "");
}

#[tokio::test]
async fn a_refresh_refused_with_an_empty_400_ends_the_session_with_exit_3() {
    let oidc = Oidc::local(Idp::start_with(IdpOptions {
        env: vec![("IDP_REFUSE_REFRESH".into(), "empty".into())],
        ..IdpOptions::default()
    }));
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    short_login_expired(&home, idp).await;

    let output = home
        .run(&["--client-id", SHORT, "greeting", "--api", "v3"])
        .await;
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        stderr(&output),
        format!(
            "error: the session has ended (the provider refused the refresh); log in again: `mrmat-api-client --server {} --client-id {SHORT} login`\n",
            app.address
        )
    );
    let refreshes = |stats: &mrmat_api_testkit::idp::Stats| {
        stats
            .token_requests
            .iter()
            .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
            .count()
    };
    assert_eq!(refreshes(&idp.stats().await), 1);
    let again = home.run(&["--client-id", SHORT, "token"]).await;
    assert_eq!(again.status.code(), Some(3));
    assert_eq!(
        refreshes(&idp.stats().await),
        1,
        "the ended session is remembered"
    );
}

#[tokio::test]
async fn hints_leave_out_the_server_only_when_it_is_the_default() {
    let home = Home::new("HTTP://LOCALHOST:8080/");
    let output = home.run(&["token"]).await;
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        stderr(&output),
        "error: not logged in to http://localhost:8080; to log in: `mrmat-api-client login`\n"
    );
    let other = Home::new("http://127.0.0.1:8080");
    let output = other.run(&["token"]).await;
    assert_eq!(
        stderr(&output),
        "error: not logged in to http://127.0.0.1:8080; to log in: `mrmat-api-client --server http://127.0.0.1:8080 login`\n"
    );
}

#[tokio::test]
async fn a_refused_environment_token_is_named_as_the_cause() {
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    let output = home
        .run_with_env(
            &["greeting", "--api", "v3"],
            &[("MRMAT_API_TOKEN", "not-a-valid-token")],
        )
        .await;
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(
        message.starts_with("error: the server refused the token in MRMAT_API_TOKEN: "),
        "{message}"
    );
    assert!(
        message.ends_with("; set a valid token, or unset MRMAT_API_TOKEN to use your login\n"),
        "{message}"
    );
    assert!(!message.contains("not-a-valid-token"), "{message}");
}
