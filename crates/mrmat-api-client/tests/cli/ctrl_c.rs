//! Ctrl-C in a real terminal, at each prompt and during each wait: the client ends with
//! 130 within a second, the screen keeps no spinner (nor the `^C` the terminal echoed
//! over it), the shell gets the next line typed, and nothing changes that the person did
//! not choose.

use std::time::Duration;

use mrmat_api_testkit::idp::Idp;
use mrmat_api_testkit::{Backend, Oidc, TestApp};

use crate::harness::{Home, SilentServer};
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
    let silent = SilentServer::start().await;
    let address = silent.address.clone();
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
}

#[tokio::test]
async fn ctrl_c_at_the_account_choice_exits_130_and_changes_nothing() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    for user in ["alice", "bob", crate::account::THIRD] {
        home.login(idp, user).await;
    }
    let before = std::fs::read(home.cache_file().unwrap()).unwrap();
    let terminal = Terminal::start("bash", 100, &home, &[]);
    terminal.run(&format!(
        "clear; mrmat-api-client --server {} auth switch; echo exit=$?",
        app.address
    ));
    terminal
        .wait_for("the choice", |s| s.contains("[1-3]"))
        .await;

    let screen = ctrl_c(&terminal).await;
    println!("{screen}");
    let tail = from(&screen, "[1-3]");
    assert!(tail[0].ends_with("[1-3] ^C"), "{screen}");
    assert_eq!(
        tail[1..3],
        ["error: auth switch cancelled", "exit=130"],
        "{screen}"
    );
    assert_eq!(
        std::fs::read(home.cache_file().unwrap()).unwrap(),
        before,
        "the accounts as they were"
    );
    assert_eq!(home.current_login().await["name"], crate::account::THIRD);
}
