//! Shell completions and help.

use crate::harness::{Home, bounded, stderr, stdout};

#[tokio::test]
async fn completions_generate_for_every_shell_even_with_a_broken_config() {
    let home = Home::new("http://127.0.0.1:9");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let output = home
            .run_with_env(
                &["completion", shell],
                &[("MRMAT_API_CLIENT_CONFIG", "/nonexistent/config.json")],
            )
            .await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{shell}: {}",
            stderr(&output)
        );
        let script = stdout(&output);
        assert!(script.contains("mrmat-api-client"), "{shell}");
        assert!(
            script.contains("switch-account"),
            "{shell}: subcommand options"
        );
        assert!(
            script.contains("allow-insecure-http"),
            "{shell}: global options"
        );
    }
    // The bash script at least parses.
    let bash = stdout(&home.run(&["completion", "bash"]).await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("completion.bash");
    std::fs::write(&path, bash).unwrap();
    let checked = bounded(
        "bash -n",
        tokio::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(checked.status.success(), "{}", stderr(&checked));
}

#[tokio::test]
async fn help_shows_global_options_once_and_examples() {
    let home = Home::new("http://127.0.0.1:9");
    let top = stdout(&home.run(&["--help"]).await);
    assert_eq!(top.matches("--client-secret").count(), 1, "{top}");
    assert!(top.contains("Global options:"), "{top}");
    assert!(top.contains("Exit codes: 0 ok"), "{top}");

    let login = stdout(&home.run(&["login", "--help"]).await);
    assert!(!login.contains("--client-secret"), "{login}");
    assert!(login.contains("--switch-account"), "{login}");
    assert!(login.contains("Examples:"), "{login}");
    assert!(login.lines().count() < 25, "{login}");
    assert!(login.contains("see `mrmat-api-client --help`"), "{login}");
}
