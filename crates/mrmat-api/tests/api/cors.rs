//! `--cors-origins` over HTTP: preflights answered with the path's methods, allowed
//! origins given the CORS headers, refused ones none (their preflight the plain 405).

use mrmat_api::CorsOrigins;
use mrmat_api_testkit::{Backend, TestApp};
use reqwest::{Method, Response};

const ALLOWED: &str = "https://app.example";

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn cors_headers(response: &Response) -> Vec<String> {
    response
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn varies_on_origin(response: &Response) -> bool {
    response
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("origin"))
        })
}

async fn app(origins: &[&str]) -> TestApp {
    let origins =
        CorsOrigins::parse(&origins.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>()).unwrap();
    TestApp::spawn_with(Backend::Sqlite, move |s| s.cors_origins = Some(origins)).await
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Response {
    app.request(Method::OPTIONS, path, None)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_gets_the_paths_methods() {
    let app = app(&[ALLOWED, "http://localhost:3000"]).await;
    let response = preflight(&app, "/api/resource/v1/", ALLOWED, "POST").await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    assert_eq!(
        header(&response, "access-control-allow-methods").as_deref(),
        Some("GET, HEAD, POST")
    );
    assert_eq!(
        header(&response, "access-control-allow-headers").as_deref(),
        Some("Authorization, Content-Type, DPoP")
    );
    assert_eq!(
        header(&response, "access-control-max-age").as_deref(),
        Some("600")
    );
    assert!(header(&response, "access-control-allow-credentials").is_none());
    assert!(varies_on_origin(&response));
    assert!(response.headers().contains_key("x-request-id"));

    let response = preflight(
        &app,
        "/api/resource/v1/7",
        "http://localhost:3000",
        "DELETE",
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        header(&response, "access-control-allow-methods").as_deref(),
        Some("GET, HEAD, PUT, DELETE")
    );
    // No such path: no preflight answer, the 404 it is.
    let response = preflight(&app, "/no/such/path", ALLOWED, "GET").await;
    assert_eq!(response.status(), 404);
    assert!(header(&response, "access-control-allow-methods").is_none());
}

#[tokio::test]
async fn a_refused_origin_gets_no_cors_headers_and_its_preflight_the_plain_405() {
    let app = app(&[ALLOWED]).await;
    for origin in [
        "https://evil.example",
        "https://app.example.evil",
        "null",
        "http://app.example",
    ] {
        let response = preflight(&app, "/api/resource/v1/", origin, "POST").await;
        assert_eq!(response.status(), 405, "{origin}");
        assert_eq!(
            header(&response, "allow").as_deref(),
            Some("GET, HEAD, POST")
        );
        assert!(
            cors_headers(&response).is_empty(),
            "{origin}: {:?}",
            cors_headers(&response)
        );
        assert!(varies_on_origin(&response), "{origin}");

        let response = app
            .request(Method::GET, "/api/greeting/v1/", None)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(cors_headers(&response).is_empty(), "{origin}");
        assert!(varies_on_origin(&response));
    }
}

#[tokio::test]
async fn answers_to_an_allowed_origin_carry_and_expose_the_headers() {
    let app = app(&[ALLOWED]).await;
    for path in ["/api/greeting/v1/", "/api/resource/v1/", "/no/such/path"] {
        let response = app
            .request(Method::GET, path, None)
            .header("origin", ALLOWED)
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&response, "access-control-allow-origin").as_deref(),
            Some(ALLOWED)
        );
        let exposed = header(&response, "access-control-expose-headers").unwrap_or_default();
        for name in [
            "Location",
            "X-Request-Id",
            "WWW-Authenticate",
            "Retry-After",
            "RateLimit",
            "RateLimit-Policy",
        ] {
            assert!(
                exposed.split(", ").any(|e| e == name),
                "{name} in {exposed}"
            );
        }
        assert!(varies_on_origin(&response));
    }
    // Without an Origin: no CORS headers, still Vary.
    let response = app.get("/api/greeting/v1/", None).await;
    assert!(cors_headers(&response).is_empty());
    assert!(varies_on_origin(&response));
}

#[tokio::test]
async fn any_origin_is_star_without_credentials() {
    let app = app(&["*"]).await;
    let response = preflight(&app, "/api/greeting/v3/", "https://anywhere.example", "GET").await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(
        header(&response, "access-control-allow-methods").as_deref(),
        Some("GET, HEAD")
    );
    assert!(header(&response, "access-control-allow-credentials").is_none());
}

#[tokio::test]
async fn a_429_carries_the_cors_headers_so_a_page_can_read_retry_after() {
    let origins = CorsOrigins::parse(&[ALLOWED.to_owned()]).unwrap();
    let app = TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.cors_origins = Some(origins);
        s.rate_limit = Some("1/min".parse().unwrap());
    })
    .await;
    let send = || {
        app.request(Method::GET, "/api/greeting/v1/", None)
            .header("origin", ALLOWED)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    let response = send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    assert!(header(&response, "retry-after").is_some());
    // Preflights do not spend the allowance.
    let response = preflight(&app, "/api/greeting/v1/", ALLOWED, "GET").await;
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn without_the_option_there_is_no_cors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = preflight(&app, "/api/greeting/v1/", ALLOWED, "GET").await;
    assert_eq!(response.status(), 405);
    assert!(cors_headers(&response).is_empty());
}
