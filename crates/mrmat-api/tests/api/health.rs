//! `/healthz/` and `/healthz/ready`.

use mrmat_api_testkit::{Backend, Oidc, TestApp, backend_tests};
use serde_json::{Value, json};

backend_tests! {
    async fn liveness_answers_ok_with_and_without_trailing_slash(backend) {
        let app = TestApp::spawn(backend).await;
        for path in ["/healthz/", "/healthz"] {
            let response = app.get(path, None).await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.json::<Value>().await.unwrap(), json!({"status": "OK"}));
        }
    }

    async fn readiness_is_ok_when_the_database_answers_and_oidc_is_not_configured(backend) {
        let app = TestApp::spawn(backend).await;
        let response = app.get("/healthz/ready", None).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "OK");
        assert_eq!(body["checks"]["database"], "OK");
        assert_eq!(body["checks"]["oidc"], "NOT_CONFIGURED");
    }

    async fn readiness_checks_the_identity_provider(backend) {
        let app = TestApp::spawn_with_auth(backend, Oidc::shared().settings()).await;
        let body: Value = app.get("/healthz/ready", None).await.json().await.unwrap();
        assert_eq!(body, json!({"status": "OK", "checks": {"database": "OK", "oidc": "OK"}}));
    }

    async fn readiness_is_degraded_when_the_provider_refuses_the_server_secret(backend) {
        let mut settings = Oidc::shared().settings();
        if let Some(credentials) = &mut settings.credentials {
            credentials.client_secret = oauth2::ClientSecret::new("wrong".into());
        }
        let app = TestApp::spawn_with_auth(backend, settings).await;
        let response = app.get("/healthz/ready", None).await;
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "DEGRADED");
        assert_eq!(body["checks"]["oidc"], "MISCONFIGURED");
    }
}

#[tokio::test]
async fn readiness_is_degraded_when_the_provider_is_unreachable() {
    let idp = mrmat_api_testkit::Idp::start();
    let oidc = Oidc::local(idp);
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    oidc.idp.as_ref().unwrap().stop();
    let response = app.get("/healthz/ready", None).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["oidc"], "UNREACHABLE");
}

/// Readiness is shared for 2 s, but never past what a request saw: the probe right after a
/// request got 503 because the provider is down says so, and the probe right after the
/// first request that worked again says OK.
#[tokio::test]
async fn readiness_changes_with_the_first_request_that_sees_the_provider_fail_or_return() {
    use mrmat_api_testkit::{Idp, TestClient};

    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    let ready = app.get("/healthz/ready", None).await;
    assert_eq!(ready.status(), 200, "a verdict of OK, now shared");

    idp.stop();
    let refused = app.get("/api/greeting/v3/", Some(&token)).await;
    assert_eq!(refused.status(), 503);
    let probe = app.get("/healthz/ready", None).await;
    assert_eq!(
        probe.status(),
        503,
        "the shared OK outlived the outage a request saw"
    );
    let body: Value = probe.json().await.unwrap();
    assert_eq!(body["status"], "DEGRADED");
    assert_eq!(body["checks"]["oidc"], "UNREACHABLE");

    idp.restart();
    // The restarted provider forgot its tokens.
    let token = oidc.token(TestClient::Rw).await;
    let served = app.get("/api/greeting/v3/", Some(&token)).await;
    assert_eq!(served.status(), 200);
    let probe = app.get("/healthz/ready", None).await;
    assert_eq!(
        probe.status(),
        200,
        "the shared DEGRADED outlived the recovery a request saw"
    );
    let body: Value = probe.json().await.unwrap();
    assert_eq!(body["checks"]["oidc"], "OK");
}
