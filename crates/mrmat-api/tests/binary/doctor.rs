//! `mrmat-api doctor`: every check ok/warn/fail with a fix, non-zero exit on a failure,
//! JSON for automation, and a real token tried when given.

use mrmat_api_testkit::server_process::doctor_check as check;
use mrmat_api_testkit::{Backend, Oidc, TestClient, TestDb};
use mrmat_api_types::scope::Scope;
use serde_json::Value;

use crate::process::run;

fn doctor(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Value) {
    let db = TestDb::new(Backend::Sqlite);
    let url = db.url_string();
    // A database that exists and is current, so the provider checks decide.
    let migrated = run(db.dir.path(), &["migrate", "--db", &url], &[]);
    assert_eq!(migrated.status.code(), Some(0));
    let mut all = vec!["doctor", "--output", "json", "--db", &url];
    all.extend_from_slice(args);
    let output = run(db.dir.path(), &all, env);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    (output.status.code(), report)
}

fn oidc_args(oidc: &Oidc) -> Vec<String> {
    let (id, _) = oidc.server_credentials();
    vec![
        "--oidc-issuer".into(),
        oidc.issuer.clone(),
        "--oidc-client-id".into(),
        id.into(),
    ]
}

#[tokio::test]
async fn doctor_passes_a_good_set_up_and_tries_the_token() {
    let oidc = Oidc::shared();
    let token = oidc.token(TestClient::Rw).await;
    let (_, secret) = oidc.server_credentials();
    let args = oidc_args(oidc);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, report) = doctor(
        &args,
        &[
            ("MRMAT_API_OIDC_CLIENT_SECRET", secret),
            ("MRMAT_API_DOCTOR_TOKEN", &token),
        ],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["ok"], true);
    for name in [
        "configuration",
        "database",
        "schema",
        "discovery",
        "introspection",
        "token",
    ] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report}");
    }
    assert!(
        check(&report, "token")["detail"]
            .as_str()
            .unwrap()
            .contains(Scope::ResourceWrite.as_str())
    );
    assert!(
        !report.to_string().contains(&token),
        "the token is never printed"
    );
}

#[test]
fn doctor_fails_a_wrong_client_secret_and_names_the_option() {
    let oidc = Oidc::shared();
    let args = oidc_args(oidc);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, report) = doctor(&args, &[("MRMAT_API_OIDC_CLIENT_SECRET", "wrong-secret")]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["ok"], false);
    let introspection = check(&report, "introspection");
    assert_eq!(introspection["status"], "fail");
    assert!(
        introspection["fix"]
            .as_str()
            .unwrap()
            .contains("--oidc-client-secret")
    );
}

#[tokio::test]
async fn doctor_fails_a_token_for_another_audience() {
    let oidc = Oidc::shared();
    if !Oidc::is_local() {
        return eprintln!("skipped: the test provider's audiences are known, another's are not");
    }
    let token = oidc.token(TestClient::NoScope).await;
    let (_, secret) = oidc.server_credentials();
    let mut args = oidc_args(oidc);
    args.extend(["--oidc-audience".to_owned(), "mrmat-api".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, report) = doctor(
        &args,
        &[
            ("MRMAT_API_OIDC_CLIENT_SECRET", secret),
            ("MRMAT_API_DOCTOR_TOKEN", &token),
        ],
    );
    assert_eq!(code, Some(1), "{report}");
    let token_check = check(&report, "token");
    assert_eq!(token_check["status"], "fail");
    assert!(
        token_check["fix"].as_str().unwrap().contains("aud"),
        "{report}"
    );
}

#[test]
fn doctor_fails_an_unreachable_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/none",
        crate::process::free_port()
    );
    let output = run(dir.path(), &["doctor", "--db", &url], &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("database")),
        "{text}"
    );
    assert!(text.contains("fix: "), "{text}");
}

/// A provider that issues JWT access tokens, and the doctor's arguments for a server at
/// `public_url` that checks them (no client of its own: a JWT-only provider).
fn jwt_provider(public_url: &str) -> (Oidc, Vec<String>) {
    let idp = mrmat_api_testkit::Idp::start_with(
        mrmat_api_testkit::idp::IdpOptions::default()
            .jwt(public_url)
            .jwt_when_asked(),
    );
    let oidc = Oidc::local(idp);
    let args = vec![
        "--oidc-issuer".into(),
        oidc.issuer.clone(),
        "--public-url".into(),
        public_url.into(),
    ];
    (oidc, args)
}

#[tokio::test]
async fn doctor_checks_the_keys_and_the_audience_of_a_jwt_provider() {
    let (oidc, args) = jwt_provider("https://api.example");
    let token = oidc.token(TestClient::Rw).await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, report) = doctor(&args, &[("MRMAT_API_DOCTOR_TOKEN", &token)]);
    assert_eq!(code, Some(0), "{report}");
    for name in ["discovery", "audience", "keys", "token"] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report}");
    }
    assert!(
        check(&report, "token")["detail"]
            .as_str()
            .unwrap()
            .contains("a JWT checked here"),
        "{report}"
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "introspection"),
        "no introspection check without the server's client: {report}"
    );
}

#[tokio::test]
async fn doctor_says_which_rule_refuses_a_jwt_for_another_server() {
    let (oidc, args) = jwt_provider("https://api.example");
    let token = oidc
        .token_for(TestClient::Rw, Some("https://other.example"))
        .await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, report) = doctor(&args, &[("MRMAT_API_DOCTOR_TOKEN", &token)]);
    assert_eq!(code, Some(1), "{report}");
    let token_check = check(&report, "token");
    assert_eq!(token_check["status"], "fail");
    assert!(
        token_check["detail"]
            .as_str()
            .unwrap()
            .contains("not meant for this server"),
        "{report}"
    );
    assert!(
        token_check["fix"].as_str().unwrap().contains("resource"),
        "{report}"
    );
}

#[tokio::test]
async fn doctor_warns_when_no_audience_binds_tokens_to_this_server() {
    let oidc = Oidc::shared();
    let (_, secret) = oidc.server_credentials();
    let args = oidc_args(oidc);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, report) = doctor(&args, &[("MRMAT_API_OIDC_CLIENT_SECRET", secret)]);
    let audience = check(&report, "audience");
    assert_eq!(audience["status"], "warn", "{report}");
    assert!(
        audience["fix"].as_str().unwrap().contains("--public-url"),
        "{report}"
    );
}
