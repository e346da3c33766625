//! OpenTelemetry traces: one server span per request, named by its route template; child
//! spans for database work and for every call to the identity provider, which carries
//! W3C `traceparent`/`tracestate`; exported over OTLP/HTTP (protobuf) by a batch processor
//! on a thread of its own.
//!
//! On only when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set, as every OpenTelemetry SDK does. Off, nothing is built: the middleware is not in
//! the chain and [`tracer`] is `None` (one atomic load where a span would start).
//!
//! A caller's `traceparent` is the parent of the server span only when the peer is trusted
//! the way `Forwarded` is: a configured `--trusted-proxy` or a peer on the unix socket,
//! the hops of the operator's own infrastructure. Anyone else's is recorded as a span link
//! and the trace starts here: an outside caller cannot force sampling (the default sampler
//! follows a parent's decision) or thread its spans into someone else's trace.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Link, Span, SpanKind, Status, TraceContextExt, TraceId, Tracer, TracerProvider,
};
use opentelemetry::{Context, ContextGuard, InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::forwarded::TrustedProxies;
use crate::settings::ConfigError;

/// The tracer of this process, once [`Telemetry::from_env`] started one.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// How long the last spans may take to leave at exit.
const FLUSH_BOUND: Duration = Duration::from_secs(5);

/// The running exporter; flushed by [`Telemetry::shutdown`].
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// The tracer, when tracing is on.
pub(crate) fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Telemetry {
    /// Tracing as the standard `OTEL_*` variables configure it, or `None` when no OTLP
    /// endpoint is set, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The SDK
    /// itself reads the rest: `OTEL_EXPORTER_OTLP_{,TRACES_}{HEADERS,TIMEOUT}`,
    /// `OTEL_TRACES_SAMPLER{,_ARG}`, `OTEL_BSP_*`, `OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`. Must be called within a Tokio runtime's reach or outside
    /// one alike: the exporter's client runs on threads of its own.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match var("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(ConfigError::invalid(
                    "OTEL_TRACES_EXPORTER",
                    format!("{other:?} is not built in; use otlp (or none)"),
                ));
            }
        }
        let Some((variable, endpoint)) = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|value| (name, value))) else {
            return Ok(None);
        };
        let invalid = |reason: String| ConfigError::invalid(variable, reason);
        match url::Url::parse(endpoint.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            Ok(_) => {
                return Err(invalid(
                    "an OTLP/HTTP endpoint is an http:// or https:// URL".into(),
                ));
            }
            Err(e) => return Err(invalid(format!("not a URL: {e}"))),
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = var(name)
                && protocol.trim() != "http/protobuf"
            {
                return Err(ConfigError::invalid(
                    name,
                    format!("{protocol:?} is not built in; use http/protobuf"),
                ));
            }
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|e| invalid(format!("cannot export there: {e}")))?;
        let mut resource = Resource::builder()
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        // The SDK's own default is `unknown_service`; a name the operator set wins.
        let named = var("OTEL_SERVICE_NAME").is_some()
            || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
        if !named {
            resource = resource.with_service_name(env!("CARGO_PKG_NAME"));
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let scope = InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        // A second server in one process (tests) keeps the first tracer.
        let _ = TRACER.set(provider.tracer_with_scope(scope));
        Ok(Some(Self { provider }))
    }

    /// Sends what is still queued, within a bound, and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(FLUSH_BOUND) {
            log::warn!("traces: the last spans may be lost: {e}");
        }
    }
}

/// W3C Trace Context's header.
const TRACEPARENT: header::HeaderName = header::HeaderName::from_static("traceparent");

/// Reads W3C trace context from actix's headers.
struct RequestHeaders<'a>(&'a HeaderMap);

impl Extractor for RequestHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Writes W3C trace context into reqwest's headers.
struct OutgoingHeaders<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for OutgoingHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The method as the HTTP semantic conventions name it: one of the standard ones, or
/// `_OTHER` (a client chooses the method; the attribute must stay a short list).
fn method_name(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "_OTHER",
    }
}

/// The server span of a request: started before anything else runs, made current for the
/// handlers (so database and provider spans are its children), named by the route
/// template once routing found one, ended with the status.
///
/// Started and ended by the request context itself, not by a middleware of its own: a
/// layer more (even one switched off by `Condition`) costs every request a future and a
/// body type around the handler's, traced or not.
pub(crate) struct ServerSpan {
    cx: Context,
    method: &'static str,
}

impl ServerSpan {
    /// The span of `req`, or `None` when tracing is off.
    pub(crate) fn start(req: &ServiceRequest) -> Option<Self> {
        let tracer = tracer()?;
        let method = method_name(req.method());
        let trusted = match req.app_data::<web::Data<TrustedProxies>>() {
            Some(proxies) => proxies.peer_is_trusted(req.request()),
            None => false,
        };
        // Most requests carry no trace context: the propagator's header lookups by string
        // cost more than this one by a constant name.
        let incoming = if req.headers().contains_key(&TRACEPARENT) {
            TraceContextPropagator::new().extract(&RequestHeaders(req.headers()))
        } else {
            Context::new()
        };
        let remote = incoming.span().span_context().clone();
        let (parent, links) = match (trusted, remote.is_valid()) {
            (true, _) => (incoming, Vec::new()),
            (false, true) => (Context::new(), vec![Link::with_context(remote)]),
            (false, false) => (Context::new(), Vec::new()),
        };
        let mut span = tracer
            .span_builder(method)
            .with_kind(SpanKind::Server)
            .with_links(links)
            .start_with_context(tracer, &parent);
        // Attributes only on a span the sampler kept: an unsampled request builds none (a
        // sampler that decides by attributes would not see them; the SDK's samplers do
        // not look). Each costs its export too, so the set is the semantic conventions'
        // required and the recommended ones that say something the trace does not already.
        if span.is_recording() {
            let mut attributes = Vec::with_capacity(9);
            attributes.extend([
                KeyValue::new("http.request.method", method),
                KeyValue::new("url.path", req.path().to_owned()),
                KeyValue::new("url.scheme", "http"),
                KeyValue::new("network.protocol.version", protocol_version(req.version())),
            ]);
            if let Some(proxies) = req.app_data::<web::Data<TrustedProxies>>() {
                attributes.push(KeyValue::new(
                    "client.address",
                    proxies.client_addr(req.request()).to_string(),
                ));
                // The peer, when it is a proxy and not the client itself.
                if let Some(peer) = req.peer_addr().filter(|_| trusted) {
                    attributes.push(KeyValue::new("network.peer.address", peer.ip().to_string()));
                }
            }
            if let Some(agent) = req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
            {
                attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
            }
            span.set_attributes(attributes);
        }
        Some(Self {
            cx: parent.with_span(span),
            method,
        })
    }

    /// The trace, for the access line.
    pub(crate) fn trace_id(&self) -> TraceId {
        self.cx.span().span_context().trace_id()
    }

    /// Makes this span current until the guard is dropped: the request context enters it
    /// for each poll of the answer, as `FutureExt::with_context` would.
    pub(crate) fn enter(&self) -> ContextGuard {
        self.cx.clone().attach()
    }

    /// Ends the span with the answer's `status` and, when routing found one, the route
    /// template `route`.
    pub(crate) fn end(&self, status: StatusCode, route: Option<&str>) {
        let span = self.cx.span();
        if !span.is_recording() {
            span.end();
            return;
        }
        if let Some(route) = route {
            span.update_name(format!("{} {route}", self.method));
            span.set_attribute(KeyValue::new("http.route", route.to_owned()));
        }
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        // Only a server error is the server's failure; a 4xx is the client's (semantic
        // conventions: server spans leave status unset for 4xx).
        if status.is_server_error() {
            span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
            span.set_status(Status::error(""));
        }
        span.end();
    }
}

fn protocol_version(version: actix_web::http::Version) -> &'static str {
    match version {
        actix_web::http::Version::HTTP_09 => "0.9",
        actix_web::http::Version::HTTP_10 => "1.0",
        actix_web::http::Version::HTTP_2 => "2",
        actix_web::http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// A span of this process, started as a child of the current one.
pub(crate) type ChildSpan = <SdkTracer as Tracer>::Span;

/// A client span for `request` to the identity provider (`what`: discovery, jwks,
/// introspection, token), with its trace context written into the request's headers.
/// `None` when tracing is off: the request goes out untouched.
pub(crate) fn provider_call(
    what: &'static str,
    request: &mut reqwest::Request,
) -> Option<ChildSpan> {
    let tracer = tracer()?;
    let parent = Context::current();
    let mut span = tracer
        .span_builder(request.method().as_str().to_owned())
        .with_kind(SpanKind::Client)
        .start_with_context(tracer, &parent);
    let cx = parent.with_remote_span_context(span.span_context().clone());
    TraceContextPropagator::new().inject_context(&cx, &mut OutgoingHeaders(request.headers_mut()));
    if !span.is_recording() {
        return Some(span);
    }
    let url = request.url();
    let mut attributes = vec![
        KeyValue::new("http.request.method", request.method().as_str().to_owned()),
        // Without the query: none of these calls has one, and a query could hold a secret.
        KeyValue::new(
            "url.full",
            format!("{}{}", url.origin().ascii_serialization(), url.path()),
        ),
        KeyValue::new("mrmat_api.provider.call", what),
    ];
    if let Some(host) = url.host_str() {
        attributes.push(KeyValue::new("server.address", host.to_owned()));
    }
    if let Some(port) = url.port_or_known_default() {
        attributes.push(KeyValue::new("server.port", i64::from(port)));
    }
    span.set_attributes(attributes);
    Some(span)
}

/// Ends a provider call's span with its outcome.
pub(crate) fn provider_answered(
    span: Option<ChildSpan>,
    outcome: Result<reqwest::StatusCode, &reqwest::Error>,
) {
    let Some(mut span) = span else { return };
    if !span.is_recording() {
        return span.end();
    }
    match outcome {
        Ok(status) => {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            // A client span fails on any 4xx or 5xx (semantic conventions).
            if status.is_client_error() || status.is_server_error() {
                span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
                span.set_status(Status::error(""));
            }
        }
        Err(error) => {
            let kind = if error.is_timeout() {
                "timeout"
            } else if error.is_connect() {
                "connect"
            } else {
                "transport"
            };
            span.set_attribute(KeyValue::new("error.type", kind));
            span.set_status(Status::error(kind));
        }
    }
    span.end();
}

/// Where the database is, as database spans describe it.
#[derive(Debug, Clone)]
pub(crate) struct DbTarget {
    /// `sqlite` or `postgresql`.
    pub(crate) system: &'static str,
    /// The PostgreSQL database name.
    pub(crate) namespace: Option<String>,
    /// The PostgreSQL host and port.
    pub(crate) server: Option<(String, u16)>,
}

/// A client span for one unit of database work (`operation` on `collection`), or `None`
/// when tracing is off.
pub(crate) fn db_call(
    target: &DbTarget,
    operation: &'static str,
    collection: Option<&'static str>,
) -> Option<ChildSpan> {
    let tracer = tracer()?;
    let name = match collection {
        Some(collection) => format!("{operation} {collection}"),
        None => operation.to_owned(),
    };
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .start_with_context(tracer, &Context::current());
    if !span.is_recording() {
        return Some(span);
    }
    let mut attributes = vec![
        KeyValue::new("db.system.name", target.system),
        KeyValue::new("db.operation.name", operation),
    ];
    if let Some(collection) = collection {
        attributes.push(KeyValue::new("db.collection.name", collection));
    }
    if let Some(namespace) = &target.namespace {
        attributes.push(KeyValue::new("db.namespace", namespace.clone()));
    }
    if let Some((host, port)) = &target.server {
        attributes.push(KeyValue::new("server.address", host.clone()));
        attributes.push(KeyValue::new("server.port", i64::from(*port)));
    }
    span.set_attributes(attributes);
    Some(span)
}

/// Ends a database span; `error` names the failure's kind, if it failed.
pub(crate) fn db_answered(span: Option<ChildSpan>, error: Option<&'static str>) {
    let Some(mut span) = span else { return };
    if let Some(kind) = error {
        span.set_attribute(KeyValue::new("error.type", kind));
        span.set_status(Status::error(""));
    }
    span.end();
}
