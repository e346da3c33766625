//! `--rate-limit`: 429 after the burst with `Retry-After`, `RateLimit` and
//! `RateLimit-Policy`; one allowance per token holder, another per address; probes and
//! scrapes never limited; refusals counted in /metrics.

use mrmat_api::RateLimit;
use mrmat_api_testkit::idp::Idp;
use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient};
use reqwest::Response;

use crate::helpers::assert_problem;

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn limit(text: &str) -> Option<RateLimit> {
    Some(text.parse().unwrap())
}

#[tokio::test]
async fn past_the_burst_the_answer_is_429_with_consistent_headers() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.rate_limit = limit("3/min")).await;
    for left in [2, 1, 0] {
        let response = app.get("/api/greeting/v1/", None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "ratelimit-policy"),
            r#""default";q=3;w=60"#
        );
        let ratelimit = header(&response, "ratelimit");
        assert!(
            ratelimit.starts_with(&format!("\"default\";r={left};t=")),
            "{ratelimit}"
        );
    }
    let response = app.get("/api/greeting/v1/", None).await;
    // 3 a minute: the next is allowed 20 s after the first.
    let retry: u64 = header(&response, "retry-after").parse().unwrap();
    assert!((19..=20).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        header(&response, "ratelimit"),
        format!("\"default\";r=0;t={retry}")
    );
    assert_eq!(
        header(&response, "ratelimit-policy"),
        r#""default";q=3;w=60"#
    );
    let body = assert_problem(response, 429).await;
    assert_eq!(body["title"], "Too Many Requests");
    // Every path that is not a probe shares the address's allowance.
    let response = app.get("/api/", None).await;
    assert_eq!(response.status(), 429);
}

#[tokio::test]
async fn probes_and_metrics_are_never_limited_and_refusals_are_counted() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.rate_limit = limit("1/min")).await;
    assert_eq!(app.get("/api/greeting/v1/", None).await.status(), 200);
    assert_eq!(app.get("/api/greeting/v1/", None).await.status(), 429);
    assert_eq!(app.get("/api/greeting/v2/", None).await.status(), 429);
    for path in ["/healthz/", "/healthz", "/healthz/ready", "/metrics"] {
        for _ in 0..3 {
            let response = app.get(path, None).await;
            assert_eq!(response.status(), 200, "{path}");
            assert!(!response.headers().contains_key("ratelimit"), "{path}");
        }
    }
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        text.contains(r#"mrmat_api_rate_limited_total{key="address"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn each_token_holder_has_an_allowance_of_their_own() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.oidc = vec![oidc.settings()];
        s.rate_limit = limit("2/min");
    })
    .await;
    let first = oidc.token(TestClient::Rw).await;
    let second = oidc.token(TestClient::Rw2).await;
    for _ in 0..2 {
        assert_eq!(
            app.get("/api/greeting/v3/", Some(&first)).await.status(),
            200
        );
    }
    let refused = app.get("/api/greeting/v3/", Some(&first)).await;
    assert_problem(refused, 429).await;
    // Another subject, from the same address: untouched by the first one's use.
    for left in [1, 0] {
        let response = app.get("/api/greeting/v3/", Some(&second)).await;
        assert_eq!(response.status(), 200);
        assert!(header(&response, "ratelimit").starts_with(&format!("\"default\";r={left};")));
    }
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&second)).await.status(),
        429
    );
    // A new token of the first holder is the same holder.
    let again = oidc.token(TestClient::Rw).await;
    assert_eq!(
        app.get("/api/greeting/v3/", Some(&again)).await.status(),
        429
    );
    // Without a valid token the address's allowance counts: made-up tokens share it.
    assert_eq!(app.get("/api/greeting/v1/", None).await.status(), 200);
    assert_eq!(
        app.get("/api/greeting/v1/", Some("made-up-1"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get("/api/greeting/v1/", Some("made-up-2"))
            .await
            .status(),
        429
    );
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        text.contains(r#"mrmat_api_rate_limited_total{key="subject"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"mrmat_api_rate_limited_total{key="address"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn without_the_option_nothing_is_limited() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for _ in 0..20 {
        let response = app.get("/api/greeting/v1/", None).await;
        assert_eq!(response.status(), 200);
        assert!(!response.headers().contains_key("ratelimit"));
    }
}

#[tokio::test]
async fn a_malformed_token_is_never_sent_to_the_provider_to_find_its_holder() {
    // A provider of its own: its introspection count is this test's alone.
    let oidc = Oidc::local(Idp::start());
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.oidc = vec![oidc.settings()];
        s.rate_limit = limit("100/min");
    })
    .await;
    let idp = oidc.idp.as_ref().expect("the local test provider");
    idp.reset_stats().await;
    // Characters RFC 6750 does not allow in a token: the limit counts the address, and
    // the route that asks for a token refuses it, each without asking the provider.
    for token in ["not*a*token", "a=b", "tok\"en"] {
        assert_eq!(
            app.get("/api/greeting/v1/", Some(token)).await.status(),
            200
        );
        let response = app.get("/api/greeting/v3/", Some(token)).await;
        assert_problem(response, 401).await;
    }
    assert_eq!(idp.stats().await.introspections, 0);
}
