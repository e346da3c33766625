//! The login as a person at a terminal meets it: the page opened in their browser
//! ($BROWSER), or not (`--no-browser`), the code where the eye finds it; and a login that
//! asks for less (`--scopes`).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use mrmat_api_testkit::idp::{Approval, eventually};
use mrmat_api_testkit::{Backend, Oidc, TestApp};

use crate::harness::{Home, stderr};
use crate::terminal::Terminal;
use mrmat_api_types::scope::Scope;

/// A `BROWSER` that writes the page it is given to `opened` instead of showing it.
fn recording_browser(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let opened = dir.join("opened");
    let script = dir.join("browser");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script.display().to_string(), opened)
}

#[tokio::test]
async fn login_on_a_terminal_opens_browser_and_shows_the_code_on_its_own_line() {
    let Some(idp) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    let dir = tempfile::tempdir().unwrap();
    let (browser, opened) = recording_browser(dir.path());
    let terminal = Terminal::start("bash", 100, &home, &[("BROWSER", &browser)]);
    terminal.run(&format!(
        "clear; mrmat-api-client --server {} login; echo exit=$?",
        app.address
    ));
    // Written, not only created: the shell makes the file before printf fills it.
    eventually(Duration::from_secs(15), || async {
        std::fs::read_to_string(&opened).is_ok_and(|page| !page.is_empty())
    })
    .await;
    let page = std::fs::read_to_string(&opened).unwrap();
    assert!(page.contains("user_code="), "{page}");
    let (screen, _) = terminal
        .wait_for("the prompt", |s| s.contains("the code expires in"))
        .await;
    let code = page.rsplit('=').next().unwrap();
    assert!(
        screen.lines().any(|l| l == format!("    {code}")),
        "the code on its own line:\n{screen}"
    );
    assert!(
        screen.contains(&format!(
            "Opened the page in your browser ({browser}); check that it shows the code {code}."
        )),
        "{screen}"
    );
    assert_eq!(
        idp.approve(&page, "alice", "alice-password", Approval::Approve)
            .await,
        0
    );
    let (screen, _) = terminal
        .wait_for("the login's end", |s| s.contains("exit="))
        .await;
    println!("{screen}");
    assert!(screen.contains("exit=0"), "{screen}");
    assert!(screen.contains("Logged in to"), "{screen}");
}

#[tokio::test]
async fn login_with_no_browser_opens_nothing() {
    let Some(_) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    let dir = tempfile::tempdir().unwrap();
    let (browser, opened) = recording_browser(dir.path());
    let terminal = Terminal::start("bash", 100, &home, &[("BROWSER", &browser)]);
    terminal.run(&format!(
        "clear; mrmat-api-client --server {} login --no-browser; echo exit=$?",
        app.address
    ));
    terminal
        .wait_for("the spinner", |s| s.contains("Waiting for the login"))
        .await;
    terminal.press("C-c");
    terminal
        .wait_for("the client's end", |s| s.contains("exit=130"))
        .await;
    assert!(!opened.exists(), "no browser was started");
}

#[tokio::test]
async fn login_with_scopes_asks_only_for_those_and_the_login_is_read_only() {
    let Some(idp) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    let result = home
        .login_with(
            idp,
            &["--scopes", Scope::ResourceRead.as_str()],
            "alice",
            Some(Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    let scopes = home.current_login().await["scopes"].clone();
    let scopes: Vec<&str> = scopes
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(scopes.contains(&Scope::ResourceRead.as_str()), "{scopes:?}");
    assert!(
        !scopes.contains(&Scope::ResourceWrite.as_str()),
        "{scopes:?}"
    );
    assert!(home.run(&["resource", "list"]).await.status.success());
    let create = home.run(&["resource", "create", "not allowed"]).await;
    assert_eq!(create.status.code(), Some(5), "{}", stderr(&create));

    let unknown = home
        .run(&["login", "--scopes", "mrmat-api-everything"])
        .await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).starts_with(
            "error: --scopes: the server offers no scope mrmat-api-everything; it offers "
        ),
        "{}",
        stderr(&unknown)
    );
}
