//! The API index, OpenAPI document, protected resource metadata, unknown paths and
//! methods, and request ids.

use mrmat_api_testkit::{Backend, Oidc, TestApp};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::assert_problem;

#[tokio::test]
async fn api_index_lists_every_mounted_version() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/api/", "/api"] {
        let body: Value = app.get(path, None).await.json().await.unwrap();
        let paths: Vec<&str> = body["apis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/api/greeting/v1/",
                "/api/greeting/v2/",
                "/api/greeting/v3/",
                "/api/resource/v1/"
            ]
        );
    }
}

#[tokio::test]
async fn openapi_document_describes_every_endpoint() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app.get("/api/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/healthz/",
        "/healthz/ready",
        "/api/",
        "/api/openapi.json",
        "/.well-known/oauth-protected-resource",
        "/api/greeting/v1/",
        "/api/greeting/v2/",
        "/api/greeting/v3/",
        "/api/resource/v1/",
        "/api/resource/v1/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let item = &paths["/api/resource/v1/{id}"];
    for method in ["get", "put", "delete"] {
        assert!(
            item.get(method).is_some(),
            "{method} /api/resource/v1/{{id}}"
        );
    }
}

#[tokio::test]
async fn protected_resource_metadata_names_the_issuer_and_scopes() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let body: Value = app
        .get("/.well-known/oauth-protected-resource", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["resource"], app.address);
    assert_eq!(
        body["authorization_servers"][0],
        oidc.issuer.trim_end_matches('/')
    );
    assert_eq!(
        body["scopes_supported"],
        serde_json::json!(["mrmat-api-resource-read", "mrmat-api-resource-write"])
    );
    assert_eq!(
        body["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
}

#[tokio::test]
async fn unknown_path_is_404_problem() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/nope", "/api/greeting/v9/", "/api/resource/v1/1/extra"] {
        assert_problem(app.get(path, None).await, 404).await;
    }
}

#[tokio::test]
async fn known_path_with_another_method_is_405_with_allow() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .request(Method::DELETE, "/api/greeting/v1/", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    assert_problem(response, 405).await;
    let response = app
        .request(Method::PATCH, "/api/resource/v1/1", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, HEAD, PUT, DELETE");
    assert_problem(response, 405).await;
}

#[tokio::test]
async fn head_is_answered_wherever_get_is() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in [
        "/healthz/",
        "/api/",
        "/api/greeting/v1/",
        "/api/openapi.json",
    ] {
        let response = app.request(Method::HEAD, path, None).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.bytes().await.unwrap().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn request_id_is_echoed_when_valid() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .request(Method::GET, "/healthz/", None)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn request_id_is_generated_when_missing_or_invalid_even_on_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let too_long = "x".repeat(129);
    for (path, sent) in [
        ("/healthz/", None),
        ("/nope", Some("has space")),
        ("/nope", Some(too_long.as_str())),
    ] {
        let mut request = app.request(Method::GET, path, None);
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        let response = request.send().await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!id.is_empty() && Some(id.as_str()) != sent, "{path}: {id}");
    }
}
