//! The served OpenAPI document: valid by openapi-spec-validator, and true to the running
//! server by schemathesis (every check, bounded examples, a read+write token).

use std::process::Command;
use std::time::Duration;

use mrmat_api_testkit::process::run_with_deadline;
use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient, backend_tests, tools};

/// Examples per operation and phase: enough to reach every constraint of the schema,
/// few enough to finish in well under a minute per backend.
const MAX_EXAMPLES: &str = "100";

#[tokio::test]
async fn the_served_openapi_document_passes_openapi_spec_validator() {
    let Some(validator) = tools::from_env(
        "MRMAT_TEST_OPENAPI_SPEC_VALIDATOR",
        "the openapi-spec-validator CLI",
    ) else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let document = app.get("/api/openapi.json", None).await;
    assert_eq!(document.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, document.bytes().await.unwrap()).unwrap();

    let checked = run_with_deadline(
        Command::new(&validator).arg(&path).current_dir(dir.path()),
        Duration::from_secs(120),
    );
    assert!(
        checked.success,
        "openapi-spec-validator rejects the served document:\n{}",
        checked.output
    );
}

backend_tests! {
    async fn schemathesis_finds_no_failures_against_the_running_server(backend) {
        let Some(schemathesis) = tools::from_env("MRMAT_TEST_SCHEMATHESIS", "the schemathesis CLI")
        else {
            return;
        };
        let oidc = Oidc::shared();
        let app = TestApp::spawn_with_auth(backend, oidc.settings()).await;
        let token = oidc.token(TestClient::Rw).await;
        let dir = tempfile::tempdir().unwrap();

        let mut command = Command::new(&schemathesis);
        command
            .arg("run")
            .arg(app.url("/api/openapi.json"))
            .args(["--checks", "all"])
            .args(["--max-examples", MAX_EXAMPLES])
            // The same cases on every run, so a failure is not a matter of luck (and no example
            // database: nothing carried over from an earlier run).
            .arg("--generation-deterministic")
            .arg("--continue-on-failure")
            .args(["--workers", "1"])
            .args(["--request-timeout", "10"])
            .arg("--no-color")
            .arg("--header")
            .arg(format!("Authorization: Bearer {token}"))
            // Wide enough that reproductions are printed whole.
            .env("COLUMNS", "200")
            .current_dir(dir.path());
        // The command line holds the token: never print it. Schemathesis's own output
        // filters the Authorization header. The server runs on a thread of its own, so
        // this blocking wait holds nothing up.
        let finished = run_with_deadline(&mut command, Duration::from_secs(600));
        let report = finished.output;
        let cases = report
            .lines()
            .skip_while(|l| !l.starts_with("Test cases:"))
            .nth(1)
            .unwrap_or("(no summary)")
            .trim();
        eprintln!("schemathesis ({backend:?}): {cases}");
        assert!(
            finished.success,
            "schemathesis found failures ({backend:?}): {cases}\n{report}"
        );
    }
}
