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
