//! An OTLP/HTTP trace receiver on loopback: `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest`, decoded and kept, answered as a collector answers. The
//! server under test exports to it through its real exporter, over a real socket.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message;

/// Span kinds as OTLP numbers them.
pub mod kind {
    /// `SPAN_KIND_SERVER`.
    pub const SERVER: i32 = 2;
    /// `SPAN_KIND_CLIENT`.
    pub const CLIENT: i32 = 3;
}

/// One span as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// `service.name` of its resource.
    pub service: Option<String>,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root span.
    pub parent_span_id: String,
    /// Its name.
    pub name: String,
    /// See [`kind`].
    pub kind: i32,
    /// Attributes, each value in its text form.
    pub attributes: BTreeMap<String, String>,
    /// `(trace_id, span_id)` of each link.
    pub links: Vec<(String, String)>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i32,
}

impl ReceivedSpan {
    /// An attribute's text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// A running receiver; stopped when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    port: u16,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Export requests whose body was not a valid `ExportTraceServiceRequest`.
    rejected: Arc<Mutex<Vec<String>>>,
    handle: actix_web::dev::ServerHandle,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// The spans of one export request.
fn spans_of(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| attributes(&r.attributes).remove("service.name"));
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    status_code: span.status.map_or(0, |s| s.code),
                });
            }
        }
    }
    spans
}

#[derive(Clone)]
struct Kept {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    rejected: Arc<Mutex<Vec<String>>>,
}

async fn export(req: HttpRequest, body: web::Bytes, kept: web::Data<Kept>) -> HttpResponse {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/x-protobuf" {
        kept.rejected
            .lock()
            .unwrap()
            .push(format!("content-type {content_type:?}"));
        return HttpResponse::UnsupportedMediaType().finish();
    }
    match ExportTraceServiceRequest::decode(body.as_ref()) {
        Ok(request) => {
            kept.spans.lock().unwrap().extend(spans_of(request));
            HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .body(ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(e) => {
            kept.rejected.lock().unwrap().push(e.to_string());
            HttpResponse::BadRequest().finish()
        }
    }
}

impl OtlpReceiver {
    /// A receiver on a free loopback port, serving from a thread of its own.
    pub fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let rejected = Arc::new(Mutex::new(Vec::new()));
        let kept = web::Data::new(Kept {
            spans: spans.clone(),
            rejected: rejected.clone(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let (sent, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(kept.clone())
                        .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                        .route("/v1/traces", web::post().to(export))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listening")
                .run();
                let _ = sent.send(server.handle());
                let _ = server.await;
            });
        });
        let handle = received
            .recv_timeout(Duration::from_secs(10))
            .expect("the OTLP receiver started");
        Self {
            port,
            spans,
            rejected,
            handle,
        }
    }

    /// The value of `OTEL_EXPORTER_OTLP_ENDPOINT` that reaches it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// What it refused to decode.
    pub fn rejected(&self) -> Vec<String> {
        self.rejected.lock().unwrap().clone()
    }

    /// The spans once `complete` says they are all there; panics after `timeout`.
    pub async fn spans_when(
        &self,
        timeout: Duration,
        mut complete: impl FnMut(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if complete(&spans) {
                return spans;
            }
            assert!(
                started.elapsed() < timeout,
                "spans still incomplete after {timeout:?}: {spans:#?}; refused: {:?}",
                self.rejected()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        // Stops accepting; the thread ends with its system.
        drop(self.handle.stop(false));
    }
}
