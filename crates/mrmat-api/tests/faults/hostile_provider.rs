//! A provider that answers what no well-behaved one does: statuses that say nothing about
//! the token, a discovery document that sends the server's secret to another host, and a
//! slow introspection under a flood of made-up tokens. A small server of the test's own
//! plays it (it stands for a broken or hostile provider, which no real one can be made
//! into), on loopback; it counts what it is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use mrmat_api::settings::OidcSettings;
use mrmat_api_testkit::{Backend, TestApp};
use url::Url;

/// What the fake provider does and has seen.
#[derive(Debug, Default)]
struct Behaviour {
    /// Status of every introspection answer (200 answers `{"active": false}`).
    status: u16,
    /// An OAuth `error` in the body of an error answer; bodiless without.
    error: Option<&'static str>,
    /// Host named for the introspection endpoint in discovery (`127.0.0.1` by default).
    introspection_host: Option<String>,
    /// How long an introspection takes.
    delay: Duration,
    introspections: AtomicUsize,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

/// The fake provider, stopped when dropped.
struct FakeProvider {
    issuer: String,
    seen: Arc<Behaviour>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn discovery(req: HttpRequest, seen: web::Data<Behaviour>) -> HttpResponse {
    let own = format!("http://{}", req.connection_info().host());
    let port = own.rsplit(':').next().unwrap_or_default().to_owned();
    let introspection_host = seen
        .introspection_host
        .clone()
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    HttpResponse::Ok().json(serde_json::json!({
        "issuer": own,
        "authorization_endpoint": format!("{own}/auth"),
        "token_endpoint": format!("{own}/token"),
        "jwks_uri": format!("{own}/jwks"),
        "introspection_endpoint": format!("http://{introspection_host}:{port}/introspect"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn introspect(seen: web::Data<Behaviour>) -> HttpResponse {
    seen.introspections.fetch_add(1, Ordering::SeqCst);
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    if !seen.delay.is_zero() {
        tokio::time::sleep(seen.delay).await;
    }
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    match seen.status {
        200 => HttpResponse::Ok().json(serde_json::json!({"active": false})),
        status => {
            let mut answer = HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status).expect("a status"),
            );
            match seen.error {
                Some(error) => answer.json(serde_json::json!({"error": error})),
                None => answer.finish(),
            }
        }
    }
}

async fn token() -> HttpResponse {
    // The server's own token for readiness: refused, so readiness introspects a token
    // that cannot exist instead.
    HttpResponse::BadRequest().json(serde_json::json!({"error": "unauthorized_client"}))
}

fn start(behaviour: Behaviour) -> FakeProvider {
    let seen = Arc::new(behaviour);
    let data = web::Data::from(seen.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/.well-known/openid-configuration",
                web::get().to(discovery),
            )
            .route("/introspect", web::post().to(introspect))
            .route("/token", web::post().to(token))
    })
    .workers(2)
    .bind(("127.0.0.1", 0))
    .expect("bind the fake provider");
    let port = server.addrs()[0].port();
    // 127.0.0.2, on the same port, stands for "another host" in discovery.
    let server = server
        .bind(("127.0.0.2", port))
        .expect("bind the fake provider's other host")
        .run();
    let handle = server.handle();
    tokio::spawn(server);
    FakeProvider {
        issuer: format!("http://127.0.0.1:{port}"),
        seen,
        handle,
    }
}

fn settings(provider: &FakeProvider) -> OidcSettings {
    OidcSettings {
        timeout: Duration::from_secs(2),
        ..OidcSettings::new(
            Url::parse(&provider.issuer).expect("issuer"),
            "mrmat-api",
            "a-secret-of-the-test",
        )
    }
}

async fn an_answer_that_says_nothing_about_the_token_is_503_and_not_remembered(status: u16) {
    let provider = start(Behaviour {
        status,
        ..Behaviour::default()
    });
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings(&provider)).await;
    for _ in 0..2 {
        let response = app.get("/api/greeting/v3/", Some("made-up-token")).await;
        assert_eq!(response.status(), 503, "provider answered {status}");
        assert!(response.headers().contains_key("retry-after"));
    }
    assert_eq!(
        provider.seen.introspections.load(Ordering::SeqCst),
        2,
        "each request asks again: an answer that decides nothing is not cached"
    );
    let ready = app.get("/healthz/ready", None).await;
    assert_eq!(ready.status(), 503, "readiness is DEGRADED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_introspection_answered_429_is_503_and_not_remembered() {
    an_answer_that_says_nothing_about_the_token_is_503_and_not_remembered(429).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bodiless_introspection_answer_of_any_other_client_error_is_503_and_not_remembered() {
    for status in [400, 404, 405, 408, 413, 422, 451] {
        an_answer_that_says_nothing_about_the_token_is_503_and_not_remembered(status).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_active_false_makes_a_token_invalid() {
    let provider = start(Behaviour {
        status: 200,
        ..Behaviour::default()
    });
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings(&provider)).await;
    let response = app.get("/api/greeting/v3/", Some("made-up-token")).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_naming_the_introspection_endpoint_on_another_host_gets_no_secret() {
    let provider = start(Behaviour {
        status: 200,
        introspection_host: Some("127.0.0.2".to_owned()),
        ..Behaviour::default()
    });
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings(&provider)).await;
    let response = app.get("/api/greeting/v3/", Some("a-users-token")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        provider.seen.introspections.load(Ordering::SeqCst),
        0,
        "nothing was sent to the other host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_host_the_operator_allows_is_used() {
    let provider = start(Behaviour {
        status: 200,
        introspection_host: Some("127.0.0.2".to_owned()),
        ..Behaviour::default()
    });
    let settings = OidcSettings {
        endpoint_hosts: vec!["127.0.0.2".to_owned()],
        ..settings(&provider)
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings).await;
    let response = app.get("/api/greeting/v3/", Some("a-users-token")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(provider.seen.introspections.load(Ordering::SeqCst), 1);
}

/// Row 4 of issue 19: distinct made-up tokens, no credentials, a slow provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_tokens_never_has_more_than_the_cap_of_calls_in_flight() {
    let provider = start(Behaviour {
        status: 200,
        delay: Duration::from_millis(200),
        ..Behaviour::default()
    });
    let app = Arc::new(TestApp::spawn_with_auth(Backend::Sqlite, settings(&provider)).await);
    let requests = 600;
    let tasks: Vec<_> = (0..requests)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.get("/api/greeting/v3/", Some(&format!("made-up-{i}")))
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let peak = provider.seen.peak_in_flight.load(Ordering::SeqCst);
    let calls = provider.seen.introspections.load(Ordering::SeqCst);
    eprintln!(
        "{requests} requests: {} × 401, {} × 503; {calls} introspections, at most {peak} at once",
        statuses.iter().filter(|s| **s == 401).count(),
        statuses.iter().filter(|s| **s == 503).count(),
    );
    assert!(peak <= 32, "{peak} introspections in flight at once");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_error_naming_the_token_itself_makes_it_invalid() {
    // What the test provider answers for an ID token: a verdict on the token, not an
    // outage.
    let provider = start(Behaviour {
        status: 400,
        error: Some("unsupported_token_type"),
        ..Behaviour::default()
    });
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings(&provider)).await;
    let response = app.get("/api/greeting/v3/", Some("an-id-token")).await;
    let status = response.status();
    assert_eq!(status, 401, "{}", response.text().await.unwrap());
}
