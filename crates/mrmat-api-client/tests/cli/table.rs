//! Tables sized by display width: every line fits the terminal, whatever the script.

use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient};
use unicode_width::UnicodeWidthStr;

use crate::harness::{Home, stderr, stdout};

#[tokio::test]
async fn every_table_line_fits_the_terminal_with_long_cjk_and_emoji_names() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    let long = "n".repeat(255);
    let names = [
        long.clone(),
        "漢字の名前".repeat(40),
        "🦀🎉👩‍👩‍👧".repeat(30),
        "short".to_owned(),
    ];
    for name in &names {
        app.create_resource(&token, name).await;
    }
    let home = Home::new(&app.address);
    for columns in ["80", "40", "120"] {
        let mut command = home.command(&["--output", "table", "resource", "list"]);
        command
            .env("MRMAT_API_TOKEN", &token)
            .env("COLUMNS", columns);
        let output = crate::harness::finish(command, &["resource", "list"]).await;
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        let limit: usize = columns.parse().unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.starts_with("ID"), "{text}");
        for line in text.lines() {
            assert!(
                line.width() <= limit,
                "{} columns > {limit}: {line}",
                line.width()
            );
        }
        assert!(text.contains('…'), "long names are cut: {text}");
        if limit >= 80 {
            assert!(text.contains("short"), "short names stay whole: {text}");
        }
    }

    let json = home
        .run_with_env(
            &["--output", "json", "resource", "list"],
            &[("MRMAT_API_TOKEN", &token)],
        )
        .await;
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let full: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        full,
        names.iter().map(String::as_str).collect::<Vec<_>>(),
        "JSON keeps every name whole"
    );
}
