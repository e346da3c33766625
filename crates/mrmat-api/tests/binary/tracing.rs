//! OpenTelemetry traces from the real binary to a real OTLP/HTTP receiver on loopback: a
//! server span per request named by its route, database and provider spans as its
//! children, the trace passed on to the provider (`traceparent`), a trusted caller's trace
//! continued, anyone else's only linked, the trace id in the access line; nothing without
//! an endpoint; a bad `OTEL_*` value ends the start with exit 2.

use std::path::Path;
use std::time::Duration;

use mrmat_api_testkit::otlp::{OtlpReceiver, ReceivedSpan, kind};
use mrmat_api_testkit::server_process::ServerProcess;
use mrmat_api_testkit::{Idp, Oidc, TestClient};
use reqwest::StatusCode;

use crate::process::{assert_bad_config, start_on_loopback};

/// Spans leave the server's batch every this many milliseconds in these tests.
const EXPORT_EVERY_MS: &str = "100";

/// How long the spans of a request may take to arrive.
const ARRIVAL: Duration = Duration::from_secs(10);

/// The caller's trace: `traceparent` of a sampled span of trace [`TRACE_ID`].
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-01")
}

/// The server with its own test provider, exporting to `receiver`; `trusted` proxies
/// whose trace context it continues.
fn start(dir: &Path, oidc: &Oidc, receiver: &OtlpReceiver, trusted: Option<&str>) -> ServerProcess {
    let (client_id, secret) = oidc.server_credentials();
    let mut args = vec!["--oidc-issuer", &oidc.issuer, "--oidc-client-id", client_id];
    if let Some(trusted) = trusted {
        args.extend(["--trusted-proxies", trusted]);
    }
    let endpoint = receiver.endpoint();
    start_on_loopback(
        dir,
        &args,
        &[
            ("MRMAT_API_OIDC_CLIENT_SECRET", secret),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", EXPORT_EVERY_MS),
            ("OTEL_SERVICE_NAME", "orders-api"),
        ],
    )
}

async fn create(server: &ServerProcess, token: &str, traceparent: Option<&str>) -> String {
    let mut request = reqwest::Client::new()
        .post(server.url("/api/resource/v1/"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "name": "traced" }));
    if let Some(traceparent) = traceparent {
        request = request
            .header("traceparent", traceparent)
            .header("tracestate", "vendor=opaque");
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn server_span<'a>(spans: &'a [ReceivedSpan], name: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.kind == kind::SERVER && s.name == name)
}

fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
        .collect()
}

#[actix_web::test]
async fn a_trusted_callers_request_is_one_trace_with_database_and_provider_children() {
    let dir = tempfile::tempdir().unwrap();
    let oidc = Oidc::local(Idp::start());
    let receiver = OtlpReceiver::start();
    let server = start(dir.path(), &oidc, &receiver, Some("127.0.0.1"));
    let token = oidc.token(TestClient::Rw).await;
    let idp = oidc.idp.as_ref().unwrap();
    idp.reset_stats().await;

    let request_id = create(&server, &token, Some(&traceparent())).await;

    let spans = receiver
        .spans_when(ARRIVAL, |spans| {
            server_span(spans, "POST /api/resource/v1/")
                .is_some_and(|server| children(spans, server).len() >= 2)
        })
        .await;
    let request = server_span(&spans, "POST /api/resource/v1/").unwrap();
    assert_eq!(request.trace_id, TRACE_ID, "the caller's trace continues");
    assert_eq!(request.parent_span_id, PARENT_ID, "under the caller's span");
    assert_eq!(
        request.service.as_deref(),
        Some("orders-api"),
        "OTEL_SERVICE_NAME"
    );
    assert_eq!(request.attribute("http.request.method"), Some("POST"));
    assert_eq!(request.attribute("http.route"), Some("/api/resource/v1/"));
    assert_eq!(request.attribute("url.path"), Some("/api/resource/v1/"));
    assert_eq!(request.attribute("http.response.status_code"), Some("201"));
    assert_eq!(request.attribute("client.address"), Some("127.0.0.1"));

    let children = children(&spans, request);
    let insert = children
        .iter()
        .find(|s| s.name == "INSERT resources")
        .unwrap_or_else(|| panic!("a database span under the request: {children:#?}"));
    assert_eq!(insert.kind, kind::CLIENT);
    assert_eq!(insert.attribute("db.system.name"), Some("sqlite"));
    assert_eq!(insert.attribute("db.operation.name"), Some("INSERT"));
    assert_eq!(insert.attribute("db.collection.name"), Some("resources"));
    let introspection = children
        .iter()
        .find(|s| s.attribute("mrmat_api.provider.call") == Some("introspection"))
        .unwrap_or_else(|| panic!("an introspection span under the request: {children:#?}"));
    assert_eq!(introspection.kind, kind::CLIENT);
    assert_eq!(introspection.attribute("http.request.method"), Some("POST"));
    assert_eq!(
        introspection.attribute("http.response.status_code"),
        Some("200")
    );
    assert!(
        !introspection
            .attribute("url.full")
            .unwrap_or_default()
            .contains('?'),
        "no query in url.full"
    );

    // The provider saw the introspection span as the parent of its work.
    let seen = idp.stats().await.trace_contexts;
    let introspected = seen
        .iter()
        .find(|s| s.method == "POST" && s.path.contains("introspect"))
        .unwrap_or_else(|| panic!("traceparent on the introspection request: {seen:#?}"));
    assert_eq!(
        introspected.traceparent,
        format!("00-{TRACE_ID}-{}-01", introspection.span_id)
    );
    assert_eq!(introspected.tracestate.as_deref(), Some("vendor=opaque"));

    let line = server.access_line(&request_id).await;
    assert_eq!(line.trace_id.as_deref(), Some(TRACE_ID));
}

#[actix_web::test]
async fn a_request_read_from_the_database_has_a_select_span_and_errors_mark_server_spans_only_when_5xx()
 {
    let dir = tempfile::tempdir().unwrap();
    let oidc = Oidc::local(Idp::start());
    let receiver = OtlpReceiver::start();
    let server = start(dir.path(), &oidc, &receiver, None);
    let token = oidc.token(TestClient::Rw).await;

    let missing = reqwest::Client::new()
        .get(server.url("/api/resource/v1/999999"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let spans = receiver
        .spans_when(ARRIVAL, |spans| {
            server_span(spans, "GET /api/resource/v1/{id}").is_some_and(|server| {
                children(spans, server)
                    .iter()
                    .any(|c| c.name == "SELECT resources")
            })
        })
        .await;
    let request = server_span(&spans, "GET /api/resource/v1/{id}").unwrap();
    assert_eq!(
        request.attribute("http.route"),
        Some("/api/resource/v1/{id}")
    );
    assert_eq!(request.attribute("http.response.status_code"), Some("404"));
    assert_eq!(
        request.status_code, 0,
        "a 4xx leaves a server span's status unset"
    );
    assert_eq!(request.attribute("error.type"), None);
}

#[actix_web::test]
async fn an_untrusted_callers_trace_context_is_linked_not_continued() {
    let dir = tempfile::tempdir().unwrap();
    let oidc = Oidc::local(Idp::start());
    let receiver = OtlpReceiver::start();
    // No trusted proxies: the test's own connection is an outside caller.
    let server = start(dir.path(), &oidc, &receiver, None);
    let token = oidc.token(TestClient::Rw).await;

    let request_id = create(&server, &token, Some(&traceparent())).await;

    let spans = receiver
        .spans_when(ARRIVAL, |spans| {
            server_span(spans, "POST /api/resource/v1/").is_some()
        })
        .await;
    let request = server_span(&spans, "POST /api/resource/v1/").unwrap();
    assert_ne!(request.trace_id, TRACE_ID, "a trace of its own");
    assert_eq!(request.parent_span_id, "", "a root span");
    assert_eq!(
        request.links,
        vec![(TRACE_ID.to_owned(), PARENT_ID.to_owned())],
        "the caller's context as a link"
    );
    let line = server.access_line(&request_id).await;
    assert_eq!(line.trace_id.as_deref(), Some(request.trace_id.as_str()));
}

#[actix_web::test]
async fn without_an_endpoint_nothing_is_traced_or_sent_on() {
    let dir = tempfile::tempdir().unwrap();
    let oidc = Oidc::local(Idp::start());
    let (client_id, secret) = oidc.server_credentials();
    let server = start_on_loopback(
        dir.path(),
        &["--oidc-issuer", &oidc.issuer, "--oidc-client-id", client_id],
        &[("MRMAT_API_OIDC_CLIENT_SECRET", secret)],
    );
    let token = oidc.token(TestClient::Rw).await;
    let idp = oidc.idp.as_ref().unwrap();
    idp.reset_stats().await;

    let request_id = create(&server, &token, Some(&traceparent())).await;

    let line = server.access_line(&request_id).await;
    assert_eq!(line.trace_id, None, "no trace id logged");
    let seen = idp.stats().await.trace_contexts;
    assert!(seen.is_empty(), "no trace context passed on: {seen:#?}");
}

#[test]
fn an_unsupported_or_malformed_otel_setting_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (env, named) in [
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://127.0.0.1/x")],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            vec![("OTEL_TRACES_EXPORTER", "zipkin")],
            "OTEL_TRACES_EXPORTER",
        ),
    ] {
        assert_bad_config(dir.path(), &["--port", "0"], &env, named);
    }
}
