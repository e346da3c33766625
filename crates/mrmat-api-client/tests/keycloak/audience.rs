//! The realm without the Audience mapper (`mrmat-noaud`): Keycloak answers the server's
//! introspection with `active: false` for a token whose `aud` does not name `mrmat-api`,
//! so the server refuses a token that is otherwise fine, and `mrmat-api doctor` (the real
//! binary) names the cause. `mrmat` beside it, with the mapper, is the control.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use mrmat_api_testkit::keycloak::{NOAUD_REALM, REALM};
use mrmat_api_testkit::process;
use mrmat_api_testkit::server_process::doctor_check as check;
use mrmat_api_testkit::{Backend, Keycloak, TestApp, TestClient, TestDb};
use serde_json::Value;

use crate::keycloak;

const CACHE_CEILING: Duration = Duration::from_secs(30);

/// How long building the server binary may take (a no-op when it is current).
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The `mrmat-api` binary. This test target belongs to the client crate, so cargo does
/// not build the server's binary for it: it is built here (a no-op when current) into the
/// same target directory, next to this test's own executable.
fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let built = process::output(
            Command::new(cargo)
                .args(["build", "--quiet", "-p", "mrmat-api", "--bin", "mrmat-api"])
                .arg("--manifest-path")
                .arg(&manifest),
            BUILD_TIMEOUT,
        );
        assert!(
            built.status.success(),
            "build mrmat-api: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        // target/<profile>/deps/keycloak-HASH -> target/<profile>/mrmat-api
        let exe = std::env::current_exe().expect("this test's path");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .join("mrmat-api")
    })
}

/// `mrmat-api doctor --output json` against `realm`, trying `token`: exit code and report.
async fn doctor(keycloak: &Keycloak, realm: &str, token: &str) -> (Option<i32>, Value) {
    let binary = tokio::task::spawn_blocking(server_binary).await.unwrap();
    let db = TestDb::new(Backend::Sqlite);
    let url = db.url_string();
    let server = keycloak.server_credentials();
    let issuer = keycloak.issuer(realm);
    let mut command =
        mrmat_api_testkit::server_process::command(binary.to_str().unwrap(), db.dir.path());
    command
        .args(["doctor", "--output", "json", "--db", &url])
        .args([
            "--oidc-issuer",
            &issuer,
            "--oidc-client-id",
            &server.client_id,
        ])
        // Secrets in the environment, as an operator would pass them, not in argv.
        .env("MRMAT_API_OIDC_CLIENT_SECRET", &server.client_secret)
        .env("MRMAT_API_DOCTOR_TOKEN", token);
    let output = process::output_async(command, process::COMMAND_TIMEOUT).await;
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    (output.status.code(), report)
}

#[tokio::test]
async fn without_the_audience_mapper_keycloak_introspects_a_fresh_token_inactive() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let token = keycloak.token(NOAUD_REALM, TestClient::Rw).await;
    assert_eq!(
        keycloak.introspect(NOAUD_REALM, &token).await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn without_the_audience_mapper_the_server_refuses_the_token_with_401() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let app = TestApp::spawn_with_auth(
        Backend::Sqlite,
        keycloak.server_settings(NOAUD_REALM, CACHE_CEILING, &[]),
    )
    .await;
    let token = keycloak.token(NOAUD_REALM, TestClient::Rw).await;
    let response = app.get("/api/resource/v1/", Some(&token)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="mrmat-api", error="invalid_token""#
    );
}

#[tokio::test]
async fn doctor_names_the_missing_audience_mapper_as_the_cause() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let token = keycloak.token(NOAUD_REALM, TestClient::Rw).await;
    let (code, report) = doctor(keycloak, NOAUD_REALM, &token).await;
    assert_eq!(code, Some(1), "{report}");
    let token_check = check(&report, "token");
    assert_eq!(token_check["status"], "fail", "{report}");
    let detail = token_check["detail"].as_str().unwrap();
    assert!(
        detail.contains("aud [] does not name mrmat-api"),
        "{detail}"
    );
    let fix = token_check["fix"].as_str().unwrap();
    assert!(fix.contains("Audience mapper"), "{fix}");
    assert!(
        fix.contains("mrmat-api-test"),
        "names the token's client: {fix}"
    );
    assert!(
        !report.to_string().contains(&token),
        "the token is never printed"
    );
}

#[tokio::test]
async fn doctor_accepts_the_same_clients_token_in_the_realm_with_the_mapper() {
    let Some(keycloak) = keycloak().await else {
        return;
    };
    let token = keycloak.token(REALM, TestClient::Rw).await;
    let (code, report) = doctor(keycloak, REALM, &token).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(check(&report, "token")["status"], "ok", "{report}");
    assert_eq!(check(&report, "introspection")["status"], "ok", "{report}");
}
