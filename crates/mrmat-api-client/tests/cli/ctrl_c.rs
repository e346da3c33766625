//! Ctrl-C in a real terminal, at each prompt and during each wait: the client ends with
//! 130 within a second, the screen keeps no spinner (nor the `^C` the terminal echoed
//! over it), the shell gets the next line typed, and a login nobody agreed to keep is
//! revoked.

use std::time::Duration;

use mrmat_api_testkit::idp::{Approval, Idp};
use mrmat_api_testkit::{Backend, Oidc, TestApp};

use crate::harness::Home;
use crate::terminal::Terminal;

/// The longest a cancelled client may take to end.
const WITHIN: Duration = Duration::from_secs(1);

/// Presses Ctrl-C and waits for the shell's `exit=` line; the screen, after checking
/// the client ended with 130 within [`WITHIN`] and left no spinner.
async fn ctrl_c(terminal: &Terminal) -> String {
    terminal.press("C-c");
    let (screen, took) = terminal
        .wait_for("the client's end", |s| s.contains("exit="))
        .await;
    assert!(screen.contains("exit=130"), "{screen}");
    assert!(took < WITHIN, "ended after {took:?}:\n{screen}");
    assert!(!screen.contains("Waiting for"), "spinner left:\n{screen}");
    for frame in ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"] {
        assert!(!screen.contains(frame), "spinner frame left:\n{screen}");
    }
    // The shell reads the next line itself: nothing is left reading the terminal.
    terminal.run("echo next-command");
    terminal
        .wait_for("the next command", |s| {
            s.lines().any(|l| l == "next-command")
        })
        .await;
    screen
}

/// The lines from the one holding `from` to the end.
fn from<'a>(screen: &'a str, from: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = screen.lines().collect();
    let start = lines.iter().position(|l| l.contains(from)).unwrap_or(0);
    lines[start..].to_vec()
}

async fn ctrl_c_while_the_login_waits_for_approval(width: u16) {
    let Some(_) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let home = Home::new(&app.address);
    let terminal = Terminal::start("bash", width, &home, &[]);
    terminal.run(&format!(
        "clear; mrmat-api-client --server {} login; echo exit=$?",
        app.address
    ));
    terminal
        .wait_for("the spinner", |s| s.contains("Waiting for the login"))
        .await;
    let screen = ctrl_c(&terminal).await;
    println!("{screen}");
    let tail = from(&screen, "the code expires in");
    // The prompt's own blank line, then the message where the spinner was.
    assert_eq!(
        tail[1..4],
        ["", "error: login cancelled", "exit=130"],
        "nothing between the prompt and the message:\n{screen}"
    );
    assert!(!screen.contains("^C"), "{screen}");
    assert!(home.cache_file().is_none());
}

#[tokio::test]
async fn ctrl_c_while_the_login_waits_for_approval_at_100_columns_leaves_only_the_message() {
    ctrl_c_while_the_login_waits_for_approval(100).await;
}

#[tokio::test]
async fn ctrl_c_while_the_login_waits_for_approval_at_40_columns_leaves_only_the_message() {
    ctrl_c_while_the_login_waits_for_approval(40).await;
}

#[tokio::test]
async fn ctrl_c_during_a_slow_call_ends_at_once_and_leaves_only_the_message() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let home = Home::new(&address);
    for width in [100, 40] {
        let terminal = Terminal::start("bash", width, &home, &[]);
        terminal.run(&format!(
            "clear; mrmat-api-client --server {address} greeting; echo exit=$?"
        ));
        terminal
            .wait_for("the spinner", |s| s.contains("Waiting for the server"))
            .await;
        let screen = ctrl_c(&terminal).await;
        println!("{screen}");
        // The whole screen, after `clear`: the spinner's line became the message.
        assert_eq!(
            screen.lines().take(2).collect::<Vec<_>>(),
            ["error: greeting cancelled", "exit=130"],
            "{screen}"
        );
    }
    holder.abort();
}

/// Logs `alice` in, then starts a login in `terminal` that `bob` approves, and waits for
/// the question whether bob replaces alice.
async fn bob_asks_to_replace_alice(idp: &Idp, home: &Home, terminal: &Terminal) {
    home.login(idp, "alice").await;
    terminal.run(&format!(
        "clear; mrmat-api-client --server {} login; echo exit=$?",
        home.server
    ));
    let (screen, _) = terminal
        .wait_for("the login prompt", |s| s.contains("user_code="))
        .await;
    let uri = screen
        .split_whitespace()
        .find(|w| w.contains("user_code="))
        .unwrap()
        .to_owned();
    assert_eq!(
        idp.approve(&uri, "bob", "bob-password", Approval::Approve)
            .await,
        0
    );
    terminal
        .wait_for("the question", |s| s.contains("[y/N]"))
        .await;
    idp.reset_stats().await;
}

#[tokio::test]
async fn ctrl_c_at_the_replace_question_revokes_the_new_login_and_keeps_the_old() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    let terminal = Terminal::start("bash", 100, &home, &[]);
    bob_asks_to_replace_alice(idp, &home, &terminal).await;

    let screen = ctrl_c(&terminal).await;
    println!("{screen}");
    let tail = from(&screen, "[y/N]");
    assert!(tail[0].ends_with("[y/N] ^C"), "{screen}");
    assert_eq!(
        tail[1..3],
        [
            "error: login cancelled; the new login of bob is revoked and the previous login kept",
            "exit=130"
        ],
        "{screen}"
    );
    assert!(
        idp.stats().await.revocations >= 1,
        "bob's new tokens revoked at the provider"
    );
    assert_eq!(home.current_login().await["name"], "alice");
}

#[tokio::test]
async fn answering_no_at_the_replace_question_revokes_the_new_login_and_keeps_the_old() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    let terminal = Terminal::start("bash", 100, &home, &[]);
    bob_asks_to_replace_alice(idp, &home, &terminal).await;

    terminal.run("n");
    let (screen, _) = terminal
        .wait_for("the client's end", |s| s.contains("exit="))
        .await;
    assert!(screen.contains("exit=1"), "{screen}");
    assert!(idp.stats().await.revocations >= 1, "{screen}");
    assert_eq!(home.current_login().await["name"], "alice");
}
