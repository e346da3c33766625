//! Assertions shared by the API tests.

use reqwest::Response;
use serde_json::Value;

/// Asserts a problem+json answer of `status` and returns its body.
pub async fn assert_problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    assert!(
        response.headers().contains_key("x-request-id"),
        "x-request-id"
    );
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], "about:blank");
    assert!(body["title"].is_string());
    body
}

/// The `WWW-Authenticate` header.
pub fn challenge(response: &Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
