//! What the server logs: an access line per request, and never a token or a secret.

use std::time::Duration;

use mrmat_api_testkit::{Oidc, TestClient};

use crate::process::{get, start_on_loopback};

#[tokio::test]
async fn tokens_and_secrets_never_appear_in_logs() {
    let oidc = Oidc::shared();
    let dir = tempfile::tempdir().unwrap();
    let (client_id, secret) = oidc.server_credentials();
    let issuer = oidc.issuer.clone();
    let server = start_on_loopback(
        dir.path(),
        &[
            "-d",
            "--oidc-issuer",
            &issuer,
            "--oidc-client-id",
            client_id,
        ],
        &[
            ("MRMAT_API_OIDC_CLIENT_SECRET", secret),
            ("RUST_LOG", "trace"),
        ],
    );
    let token = oidc.token(TestClient::Rw).await;
    assert_eq!(
        get(&server.url("/api/greeting/v3/"), Some(&token))
            .await
            .status(),
        200
    );
    assert_eq!(
        get(
            &server.url("/api/greeting/v3/"),
            Some("invalid-token-value")
        )
        .await
        .status(),
        401
    );
    get(
        &server.url(&format!("/api/greeting/v3/?access_token={token}")),
        None,
    )
    .await;
    // All three access lines, so the checks below see everything those requests logged.
    let log = server.log_when(Duration::from_secs(5), |log| {
        log.matches("\"GET /api/greeting/v3/\"").count() >= 3
    });
    drop(server);
    assert!(
        log.contains("\"GET /api/greeting/v3/\" 200"),
        "access log line missing:\n{log}"
    );
    assert!(!log.contains(&token), "token in the log");
    assert!(!log.contains("invalid-token-value"), "token in the log");
    assert!(!log.contains(secret), "client secret in the log");
}

#[tokio::test]
async fn flask_oidc_client_secrets_file_configures_authentication() {
    let oidc = Oidc::shared();
    let dir = tempfile::tempdir().unwrap();
    let (client_id, secret) = oidc.server_credentials();
    let secrets = serde_json::json!({"web": {
        "issuer": oidc.issuer, "client_id": client_id, "client_secret": secret,
        "token_introspection_uri": format!("{}/token/introspection", oidc.issuer),
        "auth_uri": format!("{}/auth", oidc.issuer), "token_uri": format!("{}/token", oidc.issuer),
        "redirect_uris": ["http://localhost/oidc_callback"]
    }});
    std::fs::write(dir.path().join("client_secrets.json"), secrets.to_string()).unwrap();
    let server = start_on_loopback(dir.path(), &["--oidc-secrets", "client_secrets.json"], &[]);
    let token = oidc.token(TestClient::Rw).await;
    assert_eq!(
        get(&server.url("/api/greeting/v3/"), Some(&token))
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&server.url("/api/greeting/v3/"), None).await.status(),
        401
    );
}
