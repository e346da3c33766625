//! Request context: the `X-Request-Id` every response carries, the one log line of a
//! server-side failure's cause (with that id), and one access-log line per request. The
//! path is logged without its query string, where tokens could hide.
//!
//! Two refusals come before routing, authentication or anything else, because each makes
//! one request mean two things: a header that must appear once appearing twice (400; a
//! proxy and the server could each read another `Authorization`), and a path in a form
//! other than its one canonical form (404: `/api/resource/v1/%31` is not `/1`).

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::InternalError;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{ConnectionType, Method, StatusCode};
use actix_web::{Error, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use smallvec::SmallVec;

use crate::cors;
use crate::drain::Drain;
use crate::error::ApiError;
use crate::forwarded::{Client, TrustedProxies};
use crate::logging::{self, AccessRecord, Subject};
use crate::metrics::{self, RouteName, WorkerMetrics};
use crate::rate_limit::{self, Admission};
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::telemetry::ServerSpan;

/// What the request context needs of its worker, found with one lookup a request: each
/// `app_data` lookup is a walk of the request's data and a hash lookup, and there were
/// five (perf).
#[derive(Clone)]
pub(crate) struct WorkerContext(Rc<Worker>);

struct Worker {
    metrics: WorkerMetrics,
    proxies: web::Data<TrustedProxies>,
    drain: web::Data<Drain>,
    /// Whether a rate limit or CORS is configured: only then does [`edge`] run.
    edge: bool,
}

impl WorkerContext {
    /// One worker's context.
    pub(crate) fn new(
        metrics: WorkerMetrics,
        proxies: web::Data<TrustedProxies>,
        drain: web::Data<Drain>,
        edge: bool,
    ) -> Self {
        Self(Rc::new(Worker {
            metrics,
            proxies,
            drain,
            edge,
        }))
    }
}

/// The request context as a layer: tags the request with an id, echoes it on the response
/// and logs the outcome; when configured, the rate limit and CORS (see [`edge`]); while the
/// server drains, closes the connection with the answer.
///
/// One layer for all of it: each layer of the chain adds a future around the one inside
/// and a call through a pointer, about 500 instructions a request each (callgrind). A
/// layer of its own, not `from_fn`, which boxes the router as a service of unknown type
/// and so boxes its future once more: this one holds the router and its future as they
/// are, one allocation and 160 instructions less a request (callgrind; v1 used 1.6 % less
/// CPU a request in paired wrk runs).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestContext;

// For the outermost layer only: the app's router answers with boxed bodies, and its future
// is boxed, so `Answering` needs no pinning of its own.
impl<S> Transform<S, ServiceRequest> for RequestContext
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
    S::Future: Unpin,
{
    type Response = ServiceResponse<EitherBody<BoxBody>>;
    type Error = Error;
    type Transform = RequestContextService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestContextService {
            service: Rc::new(service),
        }))
    }
}

/// [`RequestContext`] around the router: shared with the [`edge`] futures, which call it
/// after the limit admits the request.
pub(crate) struct RequestContextService<S> {
    service: Rc<S>,
}

impl<S> Service<ServiceRequest> for RequestContextService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
    S::Future: Unpin,
{
    type Response = ServiceResponse<EitherBody<BoxBody>>;
    type Error = Error;
    type Future = Answering<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let span = ServerSpan::start(&req);
        let id = RequestId::for_request(req.headers().get(X_REQUEST_ID));
        let refusal = refusal(req.headers(), req.uri().path());
        let context = req.app_data::<WorkerContext>().cloned();
        // Gathered only when the access log is on.
        let access = logging::access_enabled().then(|| {
            let client = match &context {
                Some(context) => context.0.proxies.client_addr(req.request()),
                None => TrustedProxies::default().client_addr(req.request()),
            };
            (client, PathCopy::from_slice(req.path().as_bytes()))
        });
        let ledger = Ledger {
            started,
            span,
            id,
            method: req.method().clone(),
            context,
            access,
        };

        if let Some(error) = refusal {
            let mut response = req.error_response(error).map_into_right_body();
            close_if_draining(&mut response, ledger.context.as_ref());
            let id = ledger.close(response.status(), None, None);
            response.headers_mut().insert(X_REQUEST_ID, id);
            return Answering {
                answer: Answer::Boxed(Box::pin(ready(Ok(response)))),
                ledger: None,
            };
        }

        // The request is not cloned to keep for the error case: routing needs it unshared.
        // The handler's body passes through as it is (no boxing per request); the answers
        // made here are the other side of one `EitherBody`.
        let current = ledger.span.as_ref().map(ServerSpan::enter);
        let answer = if ledger.context.as_ref().is_some_and(|c| c.0.edge) {
            // Boxed: its future (the limit's and CORS's work) is large, and held inline
            // would make every request's future as large.
            Answer::Boxed(Box::pin(edge(req, Rc::clone(&self.service))))
        } else {
            Answer::Direct(self.service.call(req))
        };
        drop(current);
        Answering {
            answer,
            ledger: Some(ledger),
        }
    }
}

/// What the request context keeps of a request until its answer: the facts its metrics,
/// span and access line need.
struct Ledger {
    started: Instant,
    span: Option<ServerSpan>,
    id: RequestId,
    method: Method,
    context: Option<WorkerContext>,
    /// The client and the path, when the access log is on.
    access: Option<(Client, PathCopy)>,
}

/// A copy of the request's path for its access line, inline for most paths: when the
/// answer is an error that left the router without its request, the line is written after
/// the request is gone. A clone of the `Uri` shares its bytes, which the first clone moves
/// to a block of their own: an allocation a request, 350 instructions with its drop
/// (callgrind).
type PathCopy = SmallVec<[u8; 64]>;

impl Ledger {
    /// Counts, ends the span of and logs the request answered with `status`, and the cause
    /// of `error` when it is one the server logs. `request` is `None` when no route saw
    /// the request. Returns the request id for the answer's header, moved there once the
    /// log is done with it: no clone to count up and down.
    fn close(
        self,
        status: StatusCode,
        request: Option<&HttpRequest>,
        error: Option<&Error>,
    ) -> HeaderValue {
        let finished = Instant::now();
        let took = finished - self.started;
        if let Some(context) = &self.context {
            let route = request
                .and_then(|r| r.app_data::<RouteName>())
                .map_or(metrics::UNMATCHED, |name| name.0);
            context
                .0
                .metrics
                .request(route, &self.method, status.as_u16(), took);
        }
        if let Some((level, cause)) = error
            .and_then(|e| e.as_error::<ApiError>())
            .and_then(ApiError::log_cause)
        {
            log::log!(level, "request_id={} {cause}", self.id.as_str());
        }
        if let Some(span) = &self.span {
            let route = request.and_then(HttpRequest::match_pattern);
            span.end(status, route.as_deref());
        }
        if let Some((client, path)) = &self.access {
            let extensions = request.map(HttpRequest::extensions);
            logging::access(&AccessRecord {
                client,
                method: &self.method,
                // The request's own path when it is at hand; the copy (of a `&str`, so
                // UTF-8 always) only when the answer is an error that left without it.
                path: request.map_or_else(
                    || std::str::from_utf8(path).unwrap_or("-"),
                    HttpRequest::path,
                ),
                status: status.as_u16(),
                took,
                finished,
                request_id: self.id.as_bytes(),
                subject: extensions
                    .as_ref()
                    .and_then(|e| e.get::<Subject>())
                    .map(|s| &*s.0),
                trace_id: self.span.as_ref().map(ServerSpan::trace_id),
            });
        }
        self.id.into_header_value()
    }
}

/// The future of one request's answer.
enum Answer<F> {
    /// The router's.
    Direct(F),
    /// That of [`edge`], or a refusal's, answered already.
    Boxed(LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<BoxBody>>, Error>>),
}

/// [`RequestContextService`]'s future: the answer, then the request's ledger closed on it.
/// Its span is current while the answer is polled.
pub(crate) struct Answering<F> {
    answer: Answer<F>,
    /// `None` once closed (and for a refusal, closed when made).
    ledger: Option<Ledger>,
}

impl<F> Future for Answering<F>
where
    F: Future<Output = Result<ServiceResponse<BoxBody>, Error>> + Unpin,
{
    type Output = Result<ServiceResponse<EitherBody<BoxBody>>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let answered = {
            let _current = this
                .ledger
                .as_ref()
                .and_then(|l| l.span.as_ref())
                .map(ServerSpan::enter);
            match &mut this.answer {
                Answer::Direct(answer) => std::task::ready!(Pin::new(answer).poll(cx))
                    .map(ServiceResponse::map_into_left_body),
                Answer::Boxed(answer) => std::task::ready!(answer.as_mut().poll(cx)),
            }
        };
        let Some(ledger) = this.ledger.take() else {
            return Poll::Ready(answered);
        };
        Poll::Ready(match answered {
            Ok(mut response) => {
                close_if_draining(&mut response, ledger.context.as_ref());
                let id = ledger.close(
                    response.status(),
                    Some(response.request()),
                    response.response().error(),
                );
                response.headers_mut().insert(X_REQUEST_ID, id);
                Ok(response)
            }
            // An error that left the handler without an answer leaves without the drain's
            // header too: rare, as the handlers' errors are answers; the drain still ends
            // with the listener closing.
            Err(error) => {
                let mut response = error.error_response();
                let id = ledger.close(response.status(), None, Some(&error));
                response.headers_mut().insert(X_REQUEST_ID, id);
                Err(InternalError::from_response(error.to_string(), response).into())
            }
        })
    }
}

/// While the server drains, every answer closes its connection: a client or proxy
/// keeping connections alive opens its next one, which its balancer sends elsewhere. Asked
/// as the answer leaves: also when the drain began during the request.
fn close_if_draining<B>(response: &mut ServiceResponse<B>, context: Option<&WorkerContext>) {
    if context.is_some_and(|c| c.0.drain.is_draining()) {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
}

/// The most headers [`edge`] adds to an answer: `RateLimit-Policy`, `RateLimit`, `Vary`,
/// `Access-Control-Allow-Origin`, `Access-Control-Expose-Headers`.
const EDGE_HEADERS: usize = 5;

/// The rate limit, and CORS around it (so a 429 carries CORS headers and a page's script
/// can read it): run by [`RequestContextService`] only when either is configured.
async fn edge<S>(
    req: ServiceRequest,
    service: Rc<S>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error>,
{
    let cors = cors::inspect(&req);
    let mut response = match rate_limit::admit(&req).await {
        Admission::Refused(answer) => req.into_response(*answer).map_into_right_body(),
        admission => {
            let mut response = service.call(req).await?.map_into_left_body();
            // Room for the headers added below at once, not by growing the map twice.
            response.headers_mut().reserve(EDGE_HEADERS);
            admission.label(response.headers_mut());
            response
        }
    };
    if let Some(cors) = cors {
        if cors.is_preflight_answer(&response) {
            response = cors.preflight(response);
        }
        cors.label(response.headers_mut());
    }
    Ok(response)
}

/// Headers RFC 9110 defines as one value, not a list, whose second copy would change what
/// the request means here: which credentials (`Authorization`), how the body is read
/// (`Content-Type`, `Content-Length`), which host it is for (`Host`, which RFC 9112 section
/// 3.2 says a server answers 400 when repeated). List headers (`Forwarded`, `Accept`,
/// `X-Forwarded-For`) may repeat; `X-Request-Id` may too (a repeated one is not
/// "1..=128 visible characters" of one value, and the first is used, changing nothing but
/// the echo).
const SINGLETONS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::HOST,
];

/// Why the request is refused before anything else looks at it, if it is.
fn refusal(headers: &HeaderMap, path: &str) -> Option<ApiError> {
    // As many values as names: no header is repeated, and the four lookups are spared.
    if headers.len() != headers.len_keys()
        && let Some(name) = SINGLETONS
            .iter()
            .find(|name| headers.get_all(*name).nth(1).is_some())
    {
        return Some(ApiError::BadRequest(format!(
            "more than one {name} header; send it once"
        )));
    }
    if !is_canonical_path(path) {
        return Some(ApiError::NotFound(
            "no such path: a path is written in its canonical form (RFC 3986: no percent-encoded letter, digit, `-`, `.`, `_` or `~`; escapes in upper case, of UTF-8)"
                .into(),
        ));
    }
    None
}

/// Whether `path` is the one canonical spelling of itself (RFC 3986 section 6.2.2): only
/// characters a path may hold unencoded, and percent-escapes only where they must be,
/// upper-case, of valid UTF-8. The router decodes escapes before matching, so without this
/// `%31`, `%2e` and `%C3%A9` against `é` would be second URLs of one resource; and an
/// overlong or broken UTF-8 escape would reach the handlers decoded.
fn is_canonical_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    // Nearly every path has no escape: then it is canonical when every byte is one a path
    // holds unencoded, all ASCII, so there is nothing to decode (nor a buffer to decode
    // into, which cost each request an allocation). One pass: `%` is no such byte.
    if bytes.iter().all(|&b| is_path_char(b)) {
        return true;
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        if b == b'%' {
            let (Some(&high), Some(&low)) = (bytes.get(at + 1), bytes.get(at + 2)) else {
                return false;
            };
            let (Some(high), Some(low)) = (upper_hex(high), upper_hex(low)) else {
                return false;
            };
            let byte = high << 4 | low;
            if is_unreserved(byte) {
                return false;
            }
            decoded.push(byte);
            at += 3;
        } else if is_path_char(b) {
            decoded.push(b);
            at += 1;
        } else {
            return false;
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// A byte a path holds unencoded (RFC 3986 `pchar` and `/`, escapes aside).
fn is_path_char(b: u8) -> bool {
    PATH_CHARS[usize::from(b)]
}

/// [`is_path_char`] as a table: asked of every byte of every path, the test spelled out
/// cost about 40 instructions a byte (callgrind).
const PATH_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_unreserved(b as u8);
        b += 1;
    }
    let sub_delims_and_more = b"!$&'()*+,;=:@/";
    let mut i = 0;
    while i < sub_delims_and_more.len() {
        table[sub_delims_and_more[i] as usize] = true;
        i += 1;
    }
    table
};

/// RFC 3986 `unreserved`: never percent-encoded in a canonical URI.
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The value of an upper-case hex digit (RFC 3986 section 6.2.2.1: escapes are upper case).
fn upper_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    #[test]
    fn the_path_character_table_is_rfc_3986s_pchar_and_slash() {
        for b in 0..=u8::MAX {
            let rfc = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
            assert_eq!(is_path_char(b), rfc, "byte {b:#04x}");
        }
    }

    #[test]
    fn canonical_paths_pass() {
        for path in [
            "/",
            "/api/resource/v1/1",
            "/api/resource/v1/",
            "/.well-known/oauth-protected-resource",
            "/a%20b",
            "/a%2Fb",
            "/caf%C3%A9",
            "/a+b",
            "/a:b@c!$&'()*,;=",
        ] {
            assert!(is_canonical_path(path), "{path}");
        }
    }

    #[test]
    fn other_spellings_of_a_path_are_refused() {
        for path in [
            "/api/resource/v1/%31",
            "/api/greeting/v%31/",
            "/api/resource/v1/%2e%2e/",
            "/api/resource/v1/%2E",
            "/a%2fb",
            "/caf%c3%a9",
            "/%C0%AE",
            "/%C3",
            "/%",
            "/%4",
            "/%zz",
            "/caf\u{e9}",
            "/a\"b",
            "/a\\b",
            "/{id}",
        ] {
            assert!(!is_canonical_path(path), "{path}");
        }
    }

    #[test]
    fn a_second_authorization_or_content_type_is_refused() {
        for name in SINGLETONS {
            let mut headers = HeaderMap::new();
            headers.append(name.clone(), HeaderValue::from_static("a"));
            assert!(refusal(&headers, "/").is_none());
            headers.append(name.clone(), HeaderValue::from_static("a"));
            assert!(
                matches!(refusal(&headers, "/"), Some(ApiError::BadRequest(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn a_repeated_list_header_beside_single_ones_is_no_refusal() {
        let mut headers = HeaderMap::new();
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        headers.append(header::ACCEPT, HeaderValue::from_static("text/plain"));
        headers.append(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(refusal(&headers, "/").is_none());
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert!(matches!(
            refusal(&headers, "/"),
            Some(ApiError::BadRequest(_))
        ));
    }
}
