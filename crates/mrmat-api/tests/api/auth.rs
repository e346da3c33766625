//! Bearer tokens: which count, 401 versus 403 versus 503, and the introspection cache.

use std::time::Duration;

use mrmat_api_testkit::idp::{Idp, IdpOptions, eventually};
use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient, backend_tests};
use mrmat_api_types::scope::Scope;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, challenge};

const INVALID_TOKEN: &str = "Bearer realm=\"mrmat-api\", error=\"invalid_token\"";
const NO_TOKEN: &str = "Bearer realm=\"mrmat-api\"";

async fn app() -> TestApp {
    TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await
}

#[tokio::test]
async fn another_scheme_or_an_empty_bearer_counts_as_no_token() {
    let app = app().await;
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Digest x"] {
        let response = app
            .request(Method::GET, "/api/greeting/v3/", None)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(challenge(&response), NO_TOKEN, "{header}");
        assert_problem(response, 401).await;
    }
}

#[tokio::test]
async fn unknown_token_is_401_invalid_token() {
    let app = app().await;
    let response = app.get("/api/resource/v1/", Some("not-a-real-token")).await;
    assert_eq!(challenge(&response), INVALID_TOKEN);
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn malformed_token_is_401_invalid_token() {
    let app = app().await;
    let response = app
        .request(Method::GET, "/api/greeting/v3/", None)
        .header("authorization", "Bearer a b c")
        .send()
        .await
        .unwrap();
    assert_eq!(challenge(&response), INVALID_TOKEN);
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn token_in_the_query_string_is_ignored() {
    let oidc = Oidc::shared();
    let app = app().await;
    let token = oidc.token(TestClient::Rw).await;
    let response = app
        .get(&format!("/api/greeting/v3/?access_token={token}"), None)
        .await;
    assert_eq!(challenge(&response), NO_TOKEN);
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn refresh_token_sent_as_bearer_is_refused() {
    let oidc = Oidc::shared();
    let Some(idp) = &oidc.idp else { return };
    let app = app().await;
    let tokens = idp.user_tokens("mrmat-api-cli", "bob").await;
    let refresh = tokens.refresh_token.expect("refresh token");
    let response = app.get("/api/greeting/v3/", Some(&refresh)).await;
    assert_eq!(challenge(&response), INVALID_TOKEN);
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn id_token_sent_as_bearer_is_refused() {
    let oidc = Oidc::shared();
    let Some(idp) = &oidc.idp else { return };
    let app = app().await;
    let tokens = idp.user_tokens("mrmat-api-cli", "bob").await;
    let id_token = tokens.id_token.expect("id token");
    let response = app.get("/api/greeting/v3/", Some(&id_token)).await;
    assert_eq!(challenge(&response), INVALID_TOKEN);
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn token_without_the_scope_is_403_insufficient_scope() {
    let oidc = Oidc::shared();
    let app = app().await;
    let none = oidc.token(TestClient::NoScope).await;
    let response = app.get("/api/resource/v1/", Some(&none)).await;
    assert_eq!(
        challenge(&response),
        format!(
            "Bearer realm=\"mrmat-api\", error=\"insufficient_scope\", scope=\"{}\"",
            Scope::ResourceRead
        )
    );
    assert_problem(response, 403).await;

    let read_only = oidc.token(TestClient::Ro).await;
    let response = app
        .post_json("/api/resource/v1/", Some(&read_only), &json!({"name": "x"}))
        .await;
    assert!(challenge(&response).contains(&format!("scope=\"{}\"", Scope::ResourceWrite)));
    assert_problem(response, 403).await;
}

backend_tests! {
    async fn authentication_runs_before_the_body_is_read(backend) {
        let oidc = Oidc::shared();
        let app = TestApp::spawn_with_auth(backend, oidc.settings()).await;
        let broken = |token: Option<&str>| {
            app.request(Method::POST, "/api/resource/v1/", token)
                .header("content-type", "application/json")
                .body("{not json")
        };
        assert_problem(broken(None).send().await.unwrap(), 401).await;
        let read_only = oidc.token(TestClient::Ro).await;
        assert_problem(broken(Some(&read_only)).send().await.unwrap(), 403).await;
        let writer = oidc.token(TestClient::Rw).await;
        assert_problem(broken(Some(&writer)).send().await.unwrap(), 400).await;
    }

    async fn authentication_runs_before_the_id_is_checked(backend) {
        let app = TestApp::spawn_with_auth(backend, Oidc::shared().settings()).await;
        assert_problem(app.get("/api/resource/v1/not-an-id", None).await, 401).await;
    }
}

#[tokio::test]
async fn protected_endpoints_without_oidc_configuration_are_503_never_data() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (method, path) in [
        (Method::GET, "/api/resource/v1/"),
        (Method::GET, "/api/resource/v1/1"),
        (Method::POST, "/api/resource/v1/"),
        (Method::DELETE, "/api/resource/v1/1"),
    ] {
        let response = app
            .request(method, path, Some("whatever"))
            .send()
            .await
            .unwrap();
        assert_problem(response, 503).await;
    }
}

#[tokio::test]
async fn one_token_is_introspected_once_per_cache_life() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    idp.reset_stats().await;
    for _ in 0..50 {
        assert_eq!(
            app.get("/api/greeting/v3/", Some(&token)).await.status(),
            200
        );
    }
    assert_eq!(idp.stats().await.introspections, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_new_token_make_one_introspection() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    idp.reset_stats().await;
    let requests = (0..20).map(|_| app.get("/api/greeting/v3/", Some(&token)));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(idp.stats().await.introspections, 1);
}

#[tokio::test]
async fn unknown_tokens_are_remembered_briefly() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    idp.reset_stats().await;
    for _ in 0..5 {
        assert_eq!(
            app.get("/api/greeting/v3/", Some("bogus")).await.status(),
            401
        );
    }
    assert_eq!(idp.stats().await.introspections, 1);
}

#[tokio::test]
async fn revoked_token_is_refused_once_its_cache_entry_ends() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let mut settings = oidc.settings();
    settings.cache_ttl = Duration::from_secs(1);
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings).await;
    let tokens = idp.user_tokens("mrmat-api-cli", "alice").await;
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&tokens.access_token))
            .await
            .status(),
        200
    );

    let revoked = reqwest::Client::new()
        .post(idp.url("/token/revocation"))
        .basic_auth("mrmat-api", Some("mrmat-api-secret"))
        .form(&[("token", tokens.access_token.as_str())])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());

    eventually(Duration::from_secs(5), || async {
        app.get("/api/greeting/v3/", Some(&tokens.access_token))
            .await
            .status()
            == 401
    })
    .await;
}

#[tokio::test]
async fn expired_token_is_refused() {
    let oidc = Oidc::local(Idp::start_with(IdpOptions {
        env: vec![("IDP_ACCESS_TOKEN_TTL".into(), "1".into())],
        ..IdpOptions::default()
    }));
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    eventually(Duration::from_secs(5), || async {
        app.get("/api/greeting/v3/", Some(&token)).await.status() == 401
    })
    .await;
}

#[tokio::test]
async fn provider_down_is_503_with_retry_after_and_recovers_when_it_returns() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let before = oidc.token(TestClient::Rw).await;
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&before)).await.status(),
        200
    );

    idp.stop();
    let response = app
        .get("/api/greeting/v3/", Some("a-token-never-seen"))
        .await;
    assert!(response.headers().contains_key("retry-after"));
    let body = assert_problem(response, 503).await;
    assert!(
        !body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "no internals in the detail"
    );

    idp.restart();
    let after = oidc.token(TestClient::Rw).await;
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&after)).await.status(),
        200
    );
}

#[tokio::test]
async fn wrong_server_secret_is_503_not_401() {
    let oidc = Oidc::shared();
    let mut settings = oidc.settings();
    if let Some(credentials) = &mut settings.credentials {
        credentials.client_secret = oauth2::ClientSecret::new("wrong".into());
    }
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings).await;
    let token = oidc.token(TestClient::Rw).await;
    assert_problem(app.get("/api/greeting/v3/", Some(&token)).await, 503).await;
}

#[tokio::test]
async fn unreachable_provider_at_start_does_not_stop_the_server() {
    let mut settings = Oidc::shared().settings();
    settings.issuer = url::Url::parse("http://127.0.0.1:9").unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings).await;
    assert_eq!(app.get("/api/greeting/v1/", None).await.status(), 200);
    assert_problem(app.get("/api/greeting/v3/", Some("token")).await, 503).await;
}

#[tokio::test]
async fn provider_that_never_answers_is_503_after_the_timeout() {
    // Accepts connections (the kernel's backlog) but never reads or answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = Oidc::shared().settings();
    settings.issuer = url::Url::parse(&format!("http://{}", silent.local_addr().unwrap())).unwrap();
    settings.timeout = Duration::from_secs(1);
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings).await;
    let response = app.get("/api/greeting/v3/", Some("token")).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503).await;
}
