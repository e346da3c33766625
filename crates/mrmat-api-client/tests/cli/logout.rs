//! `logout` never dead-ends: `--local`, and a provider that will not revoke.

use mrmat_api_testkit::idp::{Idp, IdpOptions};
use mrmat_api_testkit::{Backend, Oidc, TestApp};

use crate::harness::{Home, stderr};

#[tokio::test]
async fn logout_local_forgets_the_login_without_revoking_it() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    // A bearer login: the test presents the token itself, without a DPoP proof.
    home.login_bearer(idp, "alice").await;
    let token = home.cached()["access_token"].as_str().unwrap().to_owned();
    idp.reset_stats().await;

    let output = home.run(&["logout", "--local"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("its tokens were not revoked and stay valid until they expire"),
        "{}",
        stderr(&output)
    );
    assert!(home.cache_file().is_none());
    assert_eq!(
        idp.stats().await.revocations,
        0,
        "nothing was sent to the provider"
    );
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&token)).await.status(),
        200,
        "the token still works: it was only forgotten"
    );
}

#[tokio::test]
async fn a_public_client_refused_revocation_drops_the_login_with_a_warning() {
    let oidc = Oidc::local(Idp::start_with(IdpOptions {
        env: vec![("IDP_REFUSE_REVOCATION".into(), "mrmat-api-cli".into())],
        ..IdpOptions::default()
    }));
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    // A bearer login: the test presents the token itself, without a DPoP proof.
    home.login_bearer(idp, "alice").await;
    let token = home.cached()["access_token"].as_str().unwrap().to_owned();

    let output = home.run(&["logout"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(
            "warning: the identity provider does not let this client revoke its tokens: they stay valid until they expire"
        ),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "Logged out of {} as alice on this machine.",
            app.address
        )),
        "{message}"
    );
    assert!(
        home.cache_file().is_none(),
        "no dead end: the login is gone"
    );
    assert!(idp.stats().await.revocations >= 1, "revocation was tried");
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&token)).await.status(),
        200
    );
}
