//! Greeting v1, v2 and v3.

use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient};
use serde_json::{Value, json};

use crate::helpers::{assert_problem, challenge};

async fn message(app: &TestApp, path: &str, token: Option<&str>) -> String {
    let response = app.get(path, token).await;
    assert_eq!(response.status(), 200, "{path}");
    let body: Value = response.json().await.unwrap();
    body["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn v1_greets_the_world_with_and_without_trailing_slash() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(
        message(&app, "/api/greeting/v1/", None).await,
        "Hello World"
    );
    assert_eq!(message(&app, "/api/greeting/v1", None).await, "Hello World");
}

#[tokio::test]
async fn v2_greets_the_given_name() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(
        message(&app, "/api/greeting/v2/?name=Eelyn", None).await,
        "Hello Eelyn"
    );
    assert_eq!(
        message(&app, "/api/greeting/v2?name=J%C3%BCrgen", None).await,
        "Hello Jürgen"
    );
}

#[tokio::test]
async fn v2_greets_the_world_without_or_with_an_empty_name() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(
        message(&app, "/api/greeting/v2/", None).await,
        "Hello World"
    );
    assert_eq!(
        message(&app, "/api/greeting/v2/?name=", None).await,
        "Hello World"
    );
}

#[tokio::test]
async fn v3_greets_the_user_of_the_token() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let Some(idp) = &oidc.idp else { return };
    let tokens = idp.user_tokens("mrmat-api-cli", "alice").await;
    assert_eq!(
        message(&app, "/api/greeting/v3/", Some(&tokens.access_token)).await,
        "Hello alice"
    );
}

#[tokio::test]
async fn v3_accepts_a_token_without_resource_scopes() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::NoScope).await;
    assert!(
        message(&app, "/api/greeting/v3", Some(&token))
            .await
            .starts_with("Hello ")
    );
}

#[tokio::test]
async fn v3_without_a_token_is_401_with_a_bearer_challenge() {
    let app = TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await;
    let response = app.get("/api/greeting/v3/", None).await;
    assert_eq!(challenge(&response), "Bearer realm=\"mrmat-api\"");
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn v3_without_oidc_configuration_is_503() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app.get("/api/greeting/v3/", None).await;
    assert!(
        !response.headers().contains_key("retry-after"),
        "retrying will not configure it"
    );
    let body = assert_problem(response, 503).await;
    assert!(body["detail"].as_str().unwrap().contains("not configured"));
    assert_eq!(
        body,
        json!({"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "authentication is not configured on this server"})
    );
}
