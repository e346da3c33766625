//! A provider that answers far more than any real answer: refused unread, 503 +
//! Retry-After, and the server goes on.

use std::time::{Duration, Instant};

use mrmat_api_testkit::idp::{Idp, IdpOptions};
use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient};

/// Ten MiB: far over the 64 KiB cap, small enough to send quickly.
const PADDING: &str = "10485760";

async fn greet_through_padded(variable: &str) {
    let idp = Idp::start_with(IdpOptions {
        env: vec![(variable.to_owned(), PADDING.to_owned())],
        ..IdpOptions::default()
    });
    let oidc = Oidc::local(idp);
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    let started = Instant::now();
    let response = app.get("/api/greeting/v3/", Some(&token)).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.get("/healthz/", None).await.status(),
        200,
        "the server goes on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_introspection_answer_is_503() {
    greet_through_padded("IDP_PAD_INTROSPECTION").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_discovery_document_is_503() {
    greet_through_padded("IDP_PAD_DISCOVERY").await;
}
