//! DPoP (RFC 9449) from the client's side, the real binary against the real server and
//! provider: a login to a server that takes DPoP gets tokens bound to a key of its own,
//! kept owner-only with the login, and every call, refresh and revocation carries a proof
//! by it; `--no-dpop` and servers that do not take DPoP get bearer logins.

use mrmat_api_testkit::idp::{Idp, IdpOptions};
use mrmat_api_testkit::{Backend, Oidc, TestApp};
use mrmat_api_types::scope::Scope;
use serde_json::json;

use crate::harness::{Home, mode, stderr};
use crate::hostile::{Body, Fake, Reply};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A provider of the test's own (its statistics are the test's), and the server on it.
async fn setup(options: IdpOptions) -> (Oidc, TestApp) {
    let oidc = Oidc::local(Idp::start_with(options));
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    (oidc, app)
}

fn idp(oidc: &Oidc) -> &Idp {
    oidc.idp.as_ref().expect("the local provider")
}

fn access_token(home: &Home) -> String {
    home.cached()["access_token"]
        .as_str()
        .expect("a cached access token")
        .to_owned()
}

#[tokio::test]
async fn a_login_to_a_server_that_takes_dpop_is_bound_to_the_logins_own_key() {
    let (oidc, app) = setup(IdpOptions::default()).await;
    let home = Home::new(&app.address);
    home.login(idp(&oidc), "alice").await;

    let login = home.current_login().await;
    assert_eq!(login["dpop"], true, "{login}");
    let jkt = login["dpop_jkt"].as_str().expect("a thumbprint").to_owned();
    let introspection = oidc.introspect(&access_token(&home)).await;
    assert_eq!(introspection["token_type"], "DPoP", "{introspection}");
    assert_eq!(introspection["cnf"]["jkt"], jkt, "{introspection}");
    // Every poll for the login's tokens carried a proof.
    let polls: Vec<_> = idp(&oidc)
        .stats()
        .await
        .token_requests
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some(DEVICE_GRANT))
        .collect();
    assert!(
        !polls.is_empty() && polls.iter().all(|r| r.dpop),
        "{polls:?}"
    );
    let table = home.ok(&["--output", "table", "auth", "status"]).await;
    assert!(table.contains(&format!("thumbprint {jkt}")), "{table}");
}

#[tokio::test]
async fn api_calls_of_a_bound_login_carry_a_proof_and_work() {
    let (oidc, app) = setup(IdpOptions::default()).await;
    let home = Home::new(&app.address);
    home.login(idp(&oidc), "alice").await;
    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice"
    );
    let created = home.json(&["resource", "create", "bound"]).await;
    assert_eq!(created["name"], "bound");
    let listed = home.json(&["resource", "list"]).await;
    assert!(listed.to_string().contains("bound"), "{listed}");
    // The same token without its key is refused: it is no bearer token.
    let stolen = app
        .get("/api/greeting/v3/", Some(&access_token(&home)))
        .await;
    assert_eq!(stolen.status(), 401);
}

#[tokio::test]
async fn a_refresh_keeps_the_binding_to_the_same_key() {
    let (oidc, app) = setup(IdpOptions::default()).await;
    let home = Home::new(&app.address);
    home.login(idp(&oidc), "alice").await;
    let jkt = home.current_login().await["dpop_jkt"].clone();
    let before = access_token(&home);

    let (status, code) = home.status(&["--check"]).await;
    assert_eq!(code, Some(0), "{status}");
    let after = access_token(&home);
    assert_ne!(before, after, "--check refreshed");
    assert_eq!(home.current_login().await["dpop_jkt"], jkt);
    let introspection = oidc.introspect(&after).await;
    assert_eq!(introspection["cnf"]["jkt"], jkt, "{introspection}");
    let refreshes: Vec<_> = idp(&oidc)
        .stats()
        .await
        .token_requests
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .collect();
    assert!(
        !refreshes.is_empty() && refreshes.iter().all(|r| r.dpop && r.status == 200),
        "{refreshes:?}"
    );
    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice"
    );
}

#[tokio::test]
async fn logout_of_a_bound_login_revokes_with_a_proof() {
    let (oidc, app) = setup(IdpOptions::default()).await;
    let home = Home::new(&app.address);
    home.login(idp(&oidc), "alice").await;
    let token = access_token(&home);
    idp(&oidc).reset_stats().await;

    let output = home.run(&["logout"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(home.cache_file().is_none());
    let stats = idp(&oidc).stats().await;
    assert!(
        stats.revocations >= 1 && stats.dpop_revocations == stats.revocations,
        "{stats:?}"
    );
    assert_eq!(oidc.introspect(&token).await["active"], false);
}

#[tokio::test]
async fn no_dpop_asks_for_a_bearer_token() {
    let (oidc, app) = setup(IdpOptions::default()).await;
    let home = Home::new(&app.address);
    let result = home
        .login_with(
            idp(&oidc),
            &["--no-dpop"],
            "alice",
            Some(mrmat_api_testkit::idp::Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    assert_eq!(home.current_login().await["dpop"], false);
    assert!(home.cached().get("dpop_key").is_none());
    let introspection = oidc.introspect(&access_token(&home)).await;
    assert_eq!(introspection["token_type"], "Bearer", "{introspection}");
    assert!(introspection.get("cnf").is_none(), "{introspection}");
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&access_token(&home)))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn no_dpop_in_the_config_file_asks_for_a_bearer_token_too() {
    let (oidc, app) = setup(IdpOptions::default()).await;
    let home = Home::new(&app.address);
    let dir = tempfile::tempdir().expect("a config directory");
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"no_dpop": true}"#).expect("write the config");
    let config = config.to_str().expect("a UTF-8 path");
    let result = home
        .login_with(
            idp(&oidc),
            &["--config", config],
            "alice",
            Some(mrmat_api_testkit::idp::Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    assert_eq!(home.current_login().await["dpop"], false);
}

#[tokio::test]
async fn the_key_is_kept_owner_only_with_the_login_and_never_printed() {
    let (oidc, app) = setup(IdpOptions::default()).await;
    let home = Home::new(&app.address);
    let result = home
        .login_with(
            idp(&oidc),
            &["-d"],
            "alice",
            Some(mrmat_api_testkit::idp::Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    let file = home.cache_file().expect("the login's file");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().expect("its directory")), 0o700);
    let seed = home.cached()["dpop_key"]["d"]
        .as_str()
        .expect("the key in the login's file")
        .to_owned();
    let status = home
        .ok(&["-d", "--output", "table", "auth", "status"])
        .await;
    let json = home.ok(&["--output", "json", "auth", "status"]).await;
    for text in [&result.stderr, &status, &json] {
        assert!(!text.contains(&seed), "the private key was printed");
    }
}

#[tokio::test]
async fn a_provider_that_wants_its_nonce_gets_it_on_the_second_try() {
    let (oidc, app) = setup(IdpOptions::default().dpop_nonce()).await;
    let home = Home::new(&app.address);
    home.login(idp(&oidc), "alice").await;
    let introspection = oidc.introspect(&access_token(&home)).await;
    assert_eq!(introspection["token_type"], "DPoP", "{introspection}");
    let requests = idp(&oidc).stats().await.token_requests;
    assert!(
        requests
            .iter()
            .any(|r| r.error.as_deref() == Some("use_dpop_nonce")),
        "the provider asked for its nonce: {requests:?}"
    );
    assert!(requests.iter().any(|r| r.status == 200 && r.dpop));
    // Refreshes and calls go on with the nonce it gave.
    let (status, code) = home.status(&["--check"]).await;
    assert_eq!(code, Some(0), "{status}");
    assert_eq!(
        home.json(&["greeting", "--api", "v3"]).await["message"],
        "Hello alice"
    );
}

#[tokio::test]
async fn a_server_that_does_not_advertise_dpop_gets_a_bearer_login() {
    let oidc = Oidc::local(Idp::start());
    let issuer = oidc.issuer.clone();
    // A server from before DPoP: its metadata names the provider and nothing of DPoP.
    let server = Fake::start(move |base, _| {
        Reply(
            200,
            Body::Json(json!({
                "resource": base,
                "authorization_servers": [issuer],
                "scopes_supported": Scope::ALL,
                "bearer_methods_supported": ["header"],
            })),
        )
    })
    .await;
    let home = Home::new(&server.url);
    home.login(idp(&oidc), "alice").await;
    assert_eq!(home.current_login().await["dpop"], false);
    assert!(home.cached().get("dpop_key").is_none());
    let introspection = oidc.introspect(&access_token(&home)).await;
    assert_eq!(introspection["token_type"], "Bearer", "{introspection}");
}
