//! Shell completions and help.

use crate::harness::{Home, bounded, stderr, stdout};
use crate::terminal::Terminal;

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
        assert!(script.contains("no-browser"), "{shell}: subcommand options");
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
    assert!(login.contains("--no-browser"), "{login}");
    assert!(login.contains("Examples:"), "{login}");
    assert!(login.lines().count() < 25, "{login}");
    assert!(login.contains("see `mrmat-api-client --help`"), "{login}");
}

/// The four completions, each typed as a person would (a word's start, then Tab)
/// with the line expected after the Tab.
const COMPLETIONS: [(&str, &str); 4] = [
    ("mrmat-api-client reso", "mrmat-api-client resource"),
    (
        "mrmat-api-client resource l",
        "mrmat-api-client resource list",
    ),
    ("mrmat-api-client auth st", "mrmat-api-client auth status"),
    (
        "mrmat-api-client resource list --li",
        "mrmat-api-client resource list --limit",
    ),
];

/// In a real `shell` in a terminal: load the client's completions with `load`, then Tab
/// after each of [`COMPLETIONS`] must give its line.
async fn completes_in(shell: &str, setup: &[&str]) -> Terminal {
    let home = Home::new("http://127.0.0.1:9");
    let terminal = Terminal::start(shell, 100, &home, &[]);
    for line in setup {
        terminal.run(line);
    }
    terminal.run("echo ready");
    terminal
        .wait_for("the shell", |s| s.lines().any(|l| l == "ready"))
        .await;
    for (typed, completed) in COMPLETIONS {
        terminal.type_text(typed);
        terminal.press("Tab");
        terminal
            .wait_for(&format!("{shell}: {typed}<Tab>"), |s| {
                // zsh ends an option that takes a value with `=`.
                let last = s.lines().last().unwrap_or("");
                last == format!("$ {completed}") || last == format!("$ {completed}=")
            })
            .await;
        terminal.press("C-c");
        terminal
            .wait_for("a fresh prompt", |s| s.lines().last() == Some("$"))
            .await;
    }
    terminal
}

#[tokio::test]
async fn bash_completes_commands_options_and_values_past_the_first_word() {
    let terminal = completes_in(
        "bash",
        &["source <(mrmat-api-client completion bash)", "clear"],
    )
    .await;
    // A value: Tab twice lists the choices.
    terminal.type_text("mrmat-api-client greeting --api v");
    terminal.press("Tab");
    terminal.press("Tab");
    let (screen, _) = terminal
        .wait_for("the --api values", |s| {
            s.lines()
                .any(|l| l.split_whitespace().eq(["v1", "v2", "v3"]))
        })
        .await;
    println!("{screen}");
}

#[tokio::test]
async fn zsh_completes_commands_and_options_past_the_first_word() {
    completes_in(
        "zsh",
        &[
            "PS1='$ '",
            "autoload -U compinit && compinit -u",
            "source <(mrmat-api-client completion zsh)",
            "clear",
        ],
    )
    .await;
}

#[tokio::test]
async fn fish_completes_commands_and_options_past_the_first_word() {
    completes_in(
        "fish",
        &[
            "function fish_prompt; echo -n '$ '; end",
            "mrmat-api-client completion fish | source",
            "clear",
        ],
    )
    .await;
}
