//! What a person used to gh and az tries on the first day: variables for every option,
//! gh's spellings, `-o json` for a token, https to a plain HTTP server, a misspelt config.

use mrmat_api_testkit::{Backend, Oidc, TestApp};

use crate::harness::{Home, stderr, stdout};

#[tokio::test]
async fn quiet_and_debug_are_read_from_their_variables() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let home = Home::new(&app.address);
    let debug = home
        .run_with_env(&["greeting"], &[("MRMAT_API_CLIENT_DEBUG", "true")])
        .await;
    assert!(
        stderr(&debug).contains(&format!("debug: GET {}/api/greeting/v1/", app.address)),
        "{}",
        stderr(&debug)
    );
    let loud = home.run(&["logout"]).await;
    assert!(
        stderr(&loud).starts_with("Not logged in to"),
        "{}",
        stderr(&loud)
    );
    let quiet = home
        .run_with_env(&["logout"], &[("MRMAT_API_CLIENT_QUIET", "1")])
        .await;
    assert_eq!(quiet.status.code(), Some(0));
    assert_eq!(stderr(&quiet), "");
}

#[tokio::test]
async fn auth_login_logout_and_token_are_the_same_as_the_top_level_commands() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let home = Home::new(&app.address);
    let logout = home.run(&["auth", "logout"]).await;
    assert_eq!(logout.status.code(), Some(0), "{}", stderr(&logout));
    assert!(stderr(&logout).starts_with("Not logged in to"));
    let token = home
        .run_with_env(&["auth", "token"], &[("MRMAT_API_TOKEN", "given-token")])
        .await;
    assert_eq!(stdout(&token), "given-token\n");
    let help = stdout(&home.run(&["auth", "login", "--help"]).await);
    assert!(help.contains("--no-browser"), "{help}");
}

#[tokio::test]
async fn token_with_output_json_gives_the_token_its_type_and_expiry() {
    let Some(idp) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    let plain = home.run(&["token"]).await;
    let token = stdout(&plain).trim().to_owned();
    assert!(!token.contains('{'), "plain unless asked, even into a pipe");

    let json: serde_json::Value =
        serde_json::from_slice(&home.run(&["token", "-o", "json"]).await.stdout).unwrap();
    assert_eq!(json["access_token"], token.as_str());
    assert_eq!(json["token_type"], "DPoP");
    assert_eq!(
        json["expires_at"],
        home.current_login().await["expires_at"],
        "{json}"
    );
}

#[tokio::test]
async fn https_to_a_plain_http_server_says_so_and_what_to_use() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let https = app.address.replacen("http://", "https://", 1);
    let home = Home::new(&https);
    let output = home.run(&["greeting"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: cannot reach the server at {https}/api/greeting/v1/: it answers in plain HTTP, not HTTPS; try {}\n",
            app.address
        )
    );
}

#[tokio::test]
async fn a_misspelt_config_key_is_refused_with_the_right_one() {
    let home = Home::new("http://127.0.0.1:9");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"sever": "http://127.0.0.1:9"}"#).unwrap();
    let output = home
        .run(&["--config", config.to_str().unwrap(), "greeting"])
        .await;
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("unknown field `sever`"), "{message}");
    assert!(
        message.trim_end().ends_with("(did you mean \"server\"?)"),
        "{message}"
    );
}
