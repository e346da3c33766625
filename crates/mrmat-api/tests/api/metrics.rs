//! `GET /metrics`: Prometheus text with requests by route template, introspection and pool
//! figures; bounded labels whatever the client sends.

use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient};

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_not_by_path() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    for id in ["1", "2", "3"] {
        app.get(&format!("/api/resource/v1/{id}"), Some(&token))
            .await;
    }
    app.get("/no/such/path/9f8e7d", None).await;
    let text = scrape(&app).await;
    assert!(
        text.contains(
            r#"mrmat_api_http_requests_total{route="/api/resource/v1/{id}",method="GET",status="404"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(!text.contains("9f8e7d"), "raw paths never become labels");
    assert!(
        text.contains("mrmat_api_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_show_introspection_cache_hits_and_misses() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    for _ in 0..3 {
        assert_eq!(
            app.get("/api/greeting/v3/", Some(&token)).await.status(),
            200
        );
    }
    let text = scrape(&app).await;
    assert!(
        text.contains("mrmat_api_introspection_cache_misses_total 1"),
        "{text}"
    );
    assert!(
        text.contains("mrmat_api_introspection_cache_hits_total 2"),
        "{text}"
    );
    assert!(
        text.contains(r#"mrmat_api_introspection_requests_total{outcome="active"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_show_the_pool_and_the_build() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let text = scrape(&app).await;
    assert!(
        text.contains(r#"mrmat_api_db_pool_connections{state="idle"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"mrmat_api_db_pool_connections{state="in_use"}"#),
        "{text}"
    );
    assert!(
        text.contains("mrmat_api_db_pool_wait_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("mrmat_api_build_info{version="), "{text}");
}
