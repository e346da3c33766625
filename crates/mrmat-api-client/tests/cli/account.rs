//! Several accounts on one server: a login as another user keeps both, `auth switch` goes
//! between them, `logout` ends one (`--user`) or all (`--all`), and every command uses the
//! active one.

use mrmat_api_testkit::idp::{Approval, Idp};
use mrmat_api_testkit::{Backend, Oidc, TestApp};

use crate::harness::{Home, stderr};
use crate::terminal::Terminal;

/// The third user at the test provider, besides alice and bob.
pub const THIRD: &str = "mrmat-api-test-rw2";

/// The accounts `auth status` lists for this home's server: (name, active), in its order.
async fn accounts(home: &Home) -> Vec<(String, bool)> {
    let (status, _) = home.status(&[]).await;
    status["logins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["server"] == home.server.as_str())
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn owned(accounts: &[(&str, bool)]) -> Vec<(String, bool)> {
    accounts
        .iter()
        .map(|(n, a)| ((*n).to_owned(), *a))
        .collect()
}

/// Whether the client in a terminal has ended: the shell's `exit=` line, not the
/// command line typed (which holds `exit=$?` until `clear` runs).
fn ended(screen: &str) -> bool {
    screen.lines().any(|l| l.starts_with("exit="))
}

async fn greeting(home: &Home) -> String {
    home.json(&["greeting", "--api", "v3"]).await["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Whether the provider still honours `refresh_token`, by its introspection (as the
/// server's client): active until revoked.
async fn refresh_works(idp: &Idp, refresh_token: &str) -> bool {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(idp.url("/token/introspection"))
        .basic_auth("mrmat-api", Some("mrmat-api-secret"))
        .form(&[("token", refresh_token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["active"] == true
}

/// The active account's refresh token, from the cache file.
fn refresh_token(home: &Home) -> String {
    home.cached()["refresh_token"].as_str().unwrap().to_owned()
}

/// alice, then bob, each a bearer login: the tests try their refresh tokens at the
/// provider themselves, which a DPoP-bound one would refuse without a proof.
async fn two_accounts(idp: &Idp, home: &Home) {
    home.login_bearer(idp, "alice").await;
    home.login_bearer(idp, "bob").await;
}

#[tokio::test]
async fn a_login_as_another_user_keeps_both_and_makes_the_new_one_active() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    let alices = refresh_token(&home);
    idp.reset_stats().await;

    let result = home
        .login_with(idp, &[], "bob", Some(Approval::Approve), || async {})
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    assert!(
        result.stderr.contains(&format!(
            "alice stays logged in too: `mrmat-api-client --server {} auth switch` makes that account active again.",
            app.address
        )),
        "{}",
        result.stderr
    );
    assert_eq!(
        accounts(&home).await,
        owned(&[("bob", true), ("alice", false)])
    );
    assert_eq!(home.current_login().await["name"], "bob");
    assert_eq!(greeting(&home).await, "Hello bob");
    assert_eq!(idp.stats().await.revocations, 0, "alice's login is kept");
    assert!(refresh_works(idp, &alices).await, "and still works");
}

#[tokio::test]
async fn auth_switch_with_two_accounts_goes_to_the_other_and_every_command_follows() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    two_accounts(idp, &home).await;
    let bobs_token = home.ok(&["token"]).await;
    let terminal = Terminal::start("bash", 100, &home, &[]);
    terminal.run(&format!(
        "clear; mrmat-api-client --server {} auth status; echo exit=$?",
        app.address
    ));
    let (screen, _) = terminal.wait_for("the status", ended).await;
    println!("{screen}");
    let users: Vec<&str> = screen
        .lines()
        .filter(|l| l.starts_with("user:") || l.starts_with("to use it:"))
        .collect();
    assert_eq!(
        users,
        [
            "user:           bob  (active)",
            "user:           alice  (inactive)",
            &format!(
                "to use it:      `mrmat-api-client --server {} auth switch --user alice`",
                app.address
            ),
        ],
        "{screen}"
    );
    assert!(screen.contains("exit=0"), "{screen}");

    let output = home.run(&["auth", "switch"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!("Switched the active account on {} to alice.\n", app.address)
    );
    assert_eq!(
        accounts(&home).await,
        owned(&[("alice", true), ("bob", false)])
    );
    assert_eq!(home.current_login().await["name"], "alice");
    let whoami: serde_json::Value =
        serde_json::from_slice(&home.run(&["-o", "json", "whoami"]).await.stdout).unwrap();
    let current: Vec<_> = whoami["logins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{whoami}");
    assert_eq!(current[0]["name"], "alice");
    assert_eq!(greeting(&home).await, "Hello alice");
    let alices_token = home.ok(&["token"]).await;
    assert_ne!(alices_token, bobs_token, "each account has its own token");

    // And back, by name; naming the active one changes nothing.
    let output = home.run(&["auth", "switch", "--user", "bob"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(home.ok(&["token"]).await, bobs_token);
    let output = home.run(&["auth", "switch", "--user", "bob"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("bob is already the active account"),
        "{}",
        stderr(&output)
    );
    assert_eq!(greeting(&home).await, "Hello bob");
}

#[tokio::test]
async fn switching_to_an_unknown_user_exits_2_naming_the_accounts() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);

    let nobody = home.run(&["auth", "switch"]).await;
    assert_eq!(nobody.status.code(), Some(3), "{}", stderr(&nobody));
    home.login(idp, "alice").await;
    let alone = home.run(&["auth", "switch"]).await;
    assert_eq!(alone.status.code(), Some(2), "{}", stderr(&alone));
    assert!(
        stderr(&alone).starts_with(&format!(
            "error: only alice is logged in to {}: there is no other account to switch to; to add another, log in as that user: `mrmat-api-client --server {0} login`",
            app.address
        )),
        "{}",
        stderr(&alone)
    );
    home.login(idp, "bob").await;
    let before = std::fs::read(home.cache_file().unwrap()).unwrap();

    for args in [
        &["auth", "switch", "--user", "carol"][..],
        &["logout", "--user", "carol"][..],
    ] {
        let output = home.run(args).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(
            stderr(&output),
            format!(
                "error: no account carol is logged in to {}; its accounts: bob (active), alice\n",
                app.address
            )
        );
    }
    assert_eq!(std::fs::read(home.cache_file().unwrap()).unwrap(), before);
    assert_eq!(greeting(&home).await, "Hello bob");
}

#[tokio::test]
async fn logout_of_the_active_account_revokes_it_and_leaves_the_other_active() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    two_accounts(idp, &home).await;
    let bobs = refresh_token(&home);

    let output = home.run(&["logout"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "Logged out of {0} as bob; the tokens are revoked.\nalice is now the active account on {0}.\n",
            app.address
        )
    );
    assert!(!refresh_works(idp, &bobs).await, "bob's tokens are revoked");
    assert_eq!(accounts(&home).await, owned(&[("alice", true)]));
    assert_eq!(greeting(&home).await, "Hello alice");

    let output = home.run(&["logout"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("now the active"),
        "{}",
        stderr(&output)
    );
    assert!(home.cache_file().is_none(), "no account left, no file");
}

#[tokio::test]
async fn logout_user_ends_an_inactive_account_and_logout_all_ends_every_one() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    two_accounts(idp, &home).await;
    home.run(&["auth", "switch"]).await;
    let alices = refresh_token(&home);
    home.run(&["auth", "switch"]).await;

    let output = home.run(&["logout", "--user", "alice"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "Logged out of {} as alice; the tokens are revoked.\n",
            app.address
        ),
        "bob stays active, so nothing more is said"
    );
    assert!(!refresh_works(idp, &alices).await);
    assert_eq!(accounts(&home).await, owned(&[("bob", true)]));

    home.login_bearer(idp, "alice").await;
    let alices = refresh_token(&home);
    let output = home.run(&["auth", "switch"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let bobs = refresh_token(&home);
    idp.reset_stats().await;
    let output = home.run(&["logout", "--all"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("as bob; the tokens are revoked."),
        "{message}"
    );
    assert!(
        message.contains("as alice; the tokens are revoked."),
        "{message}"
    );
    assert!(idp.stats().await.revocations >= 2, "{message}");
    assert!(!refresh_works(idp, &alices).await && !refresh_works(idp, &bobs).await);
    assert!(home.cache_file().is_none());
    let status = home.run(&["auth", "status"]).await;
    assert_eq!(status.status.code(), Some(3), "{}", stderr(&status));
}

/// The keys a cache file had before there were accounts (one login per server and
/// client); `resource_indicator` and `dpop_key` only when the login had them.
const PREVIOUS_LAYOUT: [&str; 16] = [
    "version",
    "server",
    "issuer",
    "client_id",
    "token_endpoint",
    "revocation_endpoint",
    "access_token",
    "refresh_token",
    "expires_at",
    "lifetime",
    "scopes",
    "subject",
    "name",
    "ended",
    "resource_indicator",
    "dpop_key",
];

#[tokio::test]
async fn a_cache_written_before_accounts_is_one_account_and_needs_no_new_login() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    home.login(idp, "alice").await;
    // Written again exactly as the previous client wrote its one login.
    let file = home.cache_file().unwrap();
    let previous = home.cached();
    let fields = previous.as_object().unwrap();
    assert!(
        fields.keys().all(|k| PREVIOUS_LAYOUT.contains(&k.as_str())),
        "{fields:?}"
    );
    std::fs::write(&file, serde_json::to_vec_pretty(&previous).unwrap()).unwrap();
    idp.reset_stats().await;

    assert_eq!(accounts(&home).await, owned(&[("alice", true)]));
    assert_eq!(greeting(&home).await, "Hello alice");
    home.login(idp, "bob").await;
    assert_eq!(
        accounts(&home).await,
        owned(&[("bob", true), ("alice", false)])
    );
    let output = home.run(&["auth", "switch"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(greeting(&home).await, "Hello alice");
    assert_eq!(
        home.cached()["access_token"],
        previous["access_token"],
        "alice's login is the one from the old file, not a new one"
    );
    assert_eq!(crate::harness::mode(&file), 0o600);
}

#[tokio::test]
async fn auth_switch_with_three_accounts_asks_which_on_a_terminal_and_refuses_without_one() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    for user in ["alice", "bob", THIRD] {
        home.login(idp, user).await;
    }
    let output = home.run(&["auth", "switch"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "error: 3 accounts are logged in to {0} ({THIRD} (active), bob, alice): say which with --user; for example `mrmat-api-client --server {0} auth switch --user bob`\n",
            app.address
        )
    );

    let terminal = Terminal::start("bash", 100, &home, &[]);
    terminal.run(&format!(
        "clear; mrmat-api-client --server {} auth switch; echo exit=$?",
        app.address
    ));
    terminal
        .wait_for("the choice", |s| {
            s.contains("Switch to which account? [1-3]")
        })
        .await;
    terminal.run("3");
    let (screen, _) = terminal.wait_for("the client's end", ended).await;
    println!("{screen}");
    assert_eq!(
        screen.lines().take(7).collect::<Vec<_>>(),
        [
            format!("Accounts logged in to {}:", app.address).as_str(),
            &format!("  1  {THIRD}  (active)"),
            "  2  bob",
            "  3  alice",
            "Switch to which account? [1-3] 3",
            &format!("Switched the active account on {} to alice.", app.address),
            "exit=0",
        ]
    );
    assert_eq!(
        accounts(&home).await,
        owned(&[("alice", true), (THIRD, false), ("bob", false)])
    );
    assert_eq!(greeting(&home).await, "Hello alice");
}
