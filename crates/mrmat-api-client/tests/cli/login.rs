//! `login`: the device flow as a person lives it.

use std::time::{Duration, Instant};

use mrmat_api_testkit::idp::{Approval, Idp, IdpOptions, eventually};
use mrmat_api_testkit::{Backend, Oidc, TestApp};

use mrmat_api_types::scope::Scope;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::{Home, bounded, mode, stderr};

async fn app_with(oidc: &Oidc) -> TestApp {
    TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await
}

fn local() -> Option<&'static Idp> {
    Oidc::shared().idp.as_ref()
}

#[tokio::test]
async fn login_then_whoami_greeting_and_resource_commands_work_as_the_user() {
    let Some(idp) = local() else { return };
    let app = app_with(Oidc::shared()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;

    let me = home.current_login().await;
    assert_eq!(me["subject"], "alice");
    assert_eq!(me["name"], "alice");
    assert_eq!(me["state"], "active");
    assert!(
        me["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == Scope::ResourceWrite.as_str())
    );

    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice"
    );
    assert_eq!(
        home.json(&["greeting", "--api", "v2", "--name", "Eelyn"])
            .await["message"],
        "Hello Eelyn"
    );

    let created = home.json(&["resource", "create", "from the cli"]).await;
    let id = created["id"].as_i64().unwrap().to_string();
    assert_eq!(created["owner"]["name"], "alice");
    let listed = home.json(&["resource", "list"]).await;
    assert_eq!(listed["resources"][0]["name"], "from the cli");
    let updated = home.json(&["resource", "update", &id, "renamed"]).await;
    assert_eq!(updated["name"], "renamed");
    assert_eq!(
        home.json(&["resource", "get", &id]).await["name"],
        "renamed"
    );
    home.ok(&["resource", "delete", &id]).await;
    let gone = home.run(&["resource", "get", &id]).await;
    assert_eq!(gone.status.code(), Some(4), "not found");
    let message = stderr(&gone);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("error: no resource with id"),
        "{message}"
    );
}

#[tokio::test]
async fn table_output_is_aligned_text() {
    let Some(idp) = local() else { return };
    let app = app_with(Oidc::shared()).await;
    let home = Home::new(&app.address);
    home.login(idp, "bob").await;
    home.ok(&["resource", "create", "tabled"]).await;
    let table = home.ok(&["--output", "table", "resource", "list"]).await;
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ID  NAME"), "{table}");
    assert!(lines.next().unwrap().contains("tabled"));
}

#[tokio::test]
async fn the_token_cache_is_readable_by_its_owner_only() {
    let Some(idp) = local() else { return };
    let app = app_with(Oidc::shared()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    let file = home.cache_file().expect("cache file");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("id_token"), "the ID token is not kept");
}

#[tokio::test]
async fn login_prints_the_code_on_stderr_and_keeps_stdout_clean() {
    let Some(idp) = local() else { return };
    let app = app_with(Oidc::shared()).await;
    let home = Home::new(&app.address);
    let result = home
        .login_with(idp, &[], "alice", Some(Approval::Approve), || async {})
        .await;
    assert_eq!(result.code, Some(0));
    assert!(result.stderr.contains("/device"), "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains(&format!("Logged in to {} as alice", app.address)),
        "{}",
        result.stderr
    );
}

#[tokio::test]
async fn denial_ends_with_a_clear_message_and_a_non_zero_exit() {
    let Some(idp) = local() else { return };
    let app = app_with(Oidc::shared()).await;
    let home = Home::new(&app.address);
    let result = home
        .login_with(idp, &[], "alice", Some(Approval::Deny), || async {})
        .await;
    assert_eq!(result.code, Some(1));
    assert!(
        result.stderr.contains("error: login denied"),
        "{}",
        result.stderr
    );
    assert!(home.cache_file().is_none());
}

#[tokio::test]
async fn an_expired_device_code_ends_with_a_clear_message() {
    let oidc = Oidc::local(Idp::start_with(IdpOptions {
        env: vec![("IDP_DEVICE_CODE_TTL".into(), "2".into())],
        ..IdpOptions::default()
    }));
    let app = app_with(&oidc).await;
    let home = Home::new(&app.address);
    let idp = oidc.idp.as_ref().unwrap();
    let result = home.login_with(idp, &[], "alice", None, || async {}).await;
    assert_eq!(result.code, Some(1));
    assert!(
        result.stderr.contains("(the code expires in 2 seconds)"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains(&format!(
            "error: login expired: the code was not approved in time; log in again: `mrmat-api-client --server {} login`",
            app.address
        )),
        "{}",
        result.stderr
    );
}

#[tokio::test]
async fn polling_waits_the_interval_and_stops_at_the_first_success() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = app_with(&oidc).await;
    let home = Home::new(&app.address);
    let polls = || async {
        idp.stats()
            .await
            .token_requests
            .into_iter()
            .filter(|r| {
                r.grant_type.as_deref() == Some("urn:ietf:params:oauth:grant-type:device_code")
            })
            .collect::<Vec<_>>()
    };
    let mut approved_at = None;
    let result = home
        .login_with(idp, &[], "alice", Some(Approval::Approve), || async {
            // Let the client poll a few times before the person answers.
            eventually(Duration::from_secs(15), || async {
                polls().await.len() >= 3
            })
            .await;
            approved_at = Some(Instant::now());
        })
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    let stored_after = approved_at.unwrap().elapsed();
    let polls = polls().await;
    eprintln!(
        "{} token-endpoint polls; token stored within {stored_after:?} of the approval",
        polls.len()
    );
    assert_eq!(polls.last().unwrap().status, 200, "the last poll succeeded");
    assert_eq!(
        polls.iter().filter(|p| p.status == 200).count(),
        1,
        "no poll after the success"
    );
    for pair in polls.windows(2) {
        let gap = pair[1].at_ms - pair[0].at_ms;
        assert!(
            gap >= 950,
            "polled {gap} ms after the previous poll; the interval is 1 s"
        );
    }
}

#[tokio::test]
async fn login_fails_clearly_when_the_provider_is_down() {
    let oidc = Oidc::local(Idp::start());
    let app = app_with(&oidc).await;
    oidc.idp.as_ref().unwrap().stop();
    let home = Home::new(&app.address);
    let output = home.run(&["login"]).await;
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with("error: cannot reach the identity provider"),
        "{message}"
    );
}

#[tokio::test]
async fn login_against_a_server_without_oidc_says_what_to_configure() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let home = Home::new(&app.address);
    let output = home.run(&["login"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--discovery-url"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn commands_fail_clearly_when_the_server_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = Home::new(&format!("http://127.0.0.1:{port}"));
    let output = home.run(&["greeting"]).await;
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("error: cannot reach the server"),
        "{message}"
    );
}

#[tokio::test]
async fn a_bad_config_file_exits_2_with_one_line() {
    let home = Home::new("http://127.0.0.1:9");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.json");
    std::fs::write(&path, "{not json").unwrap();
    let output = home
        .run(&["--config", path.to_str().unwrap(), "auth", "status"])
        .await;
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.starts_with("error: --config"), "{message}");
}

#[tokio::test]
async fn a_config_file_in_the_original_shape_is_used() {
    let Some(idp) = local() else { return };
    let app = app_with(Oidc::shared()).await;
    let home = Home::new(&app.address);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.json");
    let config = serde_json::json!({
        "client_id": "mrmat-api-cli",
        "client_secret": null,
        "discovery_url": format!("{}/.well-known/openid-configuration", idp.issuer),
    });
    std::fs::write(&path, config.to_string()).unwrap();
    let config_arg = path.to_str().unwrap();
    let result = home
        .login_with(
            idp,
            &["--config", config_arg],
            "bob",
            Some(Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    let greeting = home
        .ok(&[
            "--config", config_arg, "--output", "json", "greeting", "--api", "v3",
        ])
        .await;
    assert!(greeting.contains("Hello bob"));
}

#[tokio::test]
async fn ctrl_c_during_login_says_the_login_was_cancelled_and_exits_130() {
    let Some(_) = local() else { return };
    let app = app_with(Oidc::shared()).await;
    let home = Home::new(&app.address);
    let mut child = home
        .command(&["login"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    while !seen.contains("the code expires in") {
        let line = bounded("the login prompt", lines.next_line())
            .await
            .unwrap()
            .expect("the prompt before the end of stderr");
        seen.push_str(&line);
        seen.push('\n');
    }
    let pid = child.id().unwrap().to_string();
    let kill = bounded(
        "kill -INT",
        tokio::process::Command::new("kill")
            .args(["-INT", &pid])
            .status(),
    )
    .await
    .unwrap();
    assert!(kill.success());
    let mut rest = Vec::new();
    while let Some(line) = bounded("the login's last words", lines.next_line())
        .await
        .unwrap()
    {
        if !line.is_empty() {
            rest.push(line);
        }
    }
    let status = bounded("the cancelled login", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest:?}");
    assert_eq!(rest, ["error: login cancelled"], "{seen}");
    assert!(home.cache_file().is_none());
}
