//! The API index, OpenAPI document, protected resource metadata, unknown paths and
//! methods, and request ids.

use mrmat_api_testkit::{Backend, Oidc, TestApp};
use mrmat_api_types::scope::Scope;
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
        let mounted: Vec<String> = mrmat_api::mounted_apis()
            .iter()
            .map(|api| format!("{}/", api.prefix))
            .collect();
        assert_eq!(paths, mounted);
        assert!(paths.contains(&"/api/resource/v1/"), "{paths:?}");
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
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    for api in mrmat_api::mounted_apis() {
        assert!(!api.paths.is_empty(), "{} serves nothing", api.prefix);
        for path in &api.paths {
            assert!(paths.contains_key(path.as_str()), "{path} missing");
        }
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
    assert_eq!(body["scopes_supported"], serde_json::json!(Scope::ALL));
    assert_eq!(
        body["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
}

/// Each scope of the list belongs to an API the server mounts: a scope left behind by a
/// removed API, or a typo in its API name, would be offered to clients for nothing.
#[test]
fn every_scope_belongs_to_a_mounted_api() {
    let apis = mrmat_api::mounted_apis();
    for scope in Scope::ALL {
        assert!(
            apis.iter().any(|api| api.name == scope.api()),
            "{scope} names the API {:?}, which is not mounted",
            scope.api()
        );
    }
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

/// The document's security requirements are what the server enforces: an operation that
/// names scopes refuses no token with 401 and a token without its scope with 403; one that
/// names none serves without a token. A handler whose extractor changed without the
/// document noticing would fail here.
#[tokio::test]
async fn openapi_security_matches_what_the_server_enforces() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let no_scope = oidc.token(mrmat_api_testkit::TestClient::NoScope).await;
    let doc: Value = app
        .get("/api/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // Any id will do: authentication is decided before the id is read.
        let path = path.replace("{id}", "1");
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let scopes = operation["security"][0]["bearer"].as_array().cloned();
            let status = app
                .request(method.clone(), &path, None)
                .send()
                .await
                .unwrap()
                .status();
            match &scopes {
                None => assert_ne!(status, 401, "{method} {path} is open in the document"),
                Some(_) => assert_eq!(status, 401, "{method} {path} is secured in the document"),
            }
            if let Some(scopes) = scopes.filter(|s| !s.is_empty()) {
                let status = app
                    .request(method.clone(), &path, Some(&no_scope))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 403, "{method} {path} needs {scopes:?}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 11, "only {checked} operations checked");
}
