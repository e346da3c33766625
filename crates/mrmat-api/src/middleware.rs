//! Request context: the `X-Request-Id` every response carries, the one log line of a
//! server-side failure's cause (with that id), and one access-log line per request. The
//! path is logged without its query string, where tokens could hide.
//!
//! Two refusals come before routing, authentication or anything else, because each makes
//! one request mean two things: a header that must appear once appearing twice (400; a
//! proxy and the server could each read another `Authorization`), and a path in a form
//! other than its one canonical form (404: `/api/resource/v1/%31` is not `/1`).

use std::rc::Rc;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, web};

use crate::cors;
use crate::drain::Drain;
use crate::error::ApiError;
use crate::forwarded::TrustedProxies;
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

/// Tags the request with an id, echoes it on the response and logs the outcome; when
/// configured, the rate limit and CORS (see [`edge`]); while the server drains, closes the
/// connection with the answer.
///
/// One layer for all of it: each layer of the chain boxes the future of the one inside
/// (an allocation a request) and adds a call through a pointer, about 500 instructions a
/// request each (callgrind).
pub(crate) async fn request_context<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let started = Instant::now();
    let span = ServerSpan::start(&req);
    let id = RequestId::for_request(req.headers().get(X_REQUEST_ID));
    let refusal = refusal(req.headers(), req.uri().path());
    let method = req.method().clone();
    let context = req.app_data::<WorkerContext>().cloned();
    // Gathered only when the access log is on.
    let access = logging::access_enabled().then(|| {
        let client = match &context {
            Some(context) => context.0.proxies.client_addr(req.request()),
            None => TrustedProxies::default().client_addr(req.request()),
        };
        (client, req.uri().clone())
    });
    let finish = |status: StatusCode, request: Option<&HttpRequest>, error: Option<&Error>| {
        let finished = Instant::now();
        let took = finished - started;
        if let Some(context) = &context {
            let route = request
                .and_then(|r| r.app_data::<RouteName>())
                .map_or(metrics::UNMATCHED, |name| name.0);
            context
                .0
                .metrics
                .request(route, &method, status.as_u16(), took);
        }
        if let Some((level, cause)) = error
            .and_then(|e| e.as_error::<ApiError>())
            .and_then(ApiError::log_cause)
        {
            log::log!(level, "request_id={} {cause}", id.as_str());
        }
        if let Some(span) = &span {
            let route = request.and_then(HttpRequest::match_pattern);
            span.end(status, route.as_deref());
        }
        if let Some((client, uri)) = &access {
            let extensions = request.map(HttpRequest::extensions);
            logging::access(&AccessRecord {
                client,
                method: &method,
                path: uri.path(),
                status: status.as_u16(),
                took,
                finished,
                request_id: id.as_str(),
                subject: extensions
                    .as_ref()
                    .and_then(|e| e.get::<Subject>())
                    .map(|s| &*s.0),
                trace_id: span.as_ref().map(ServerSpan::trace_id),
            });
        }
    };

    if let Some(error) = refusal {
        let mut response = req.error_response(error).map_into_right_body();
        close_if_draining(&mut response, context.as_ref());
        finish(response.status(), None, None);
        response.headers_mut().insert(X_REQUEST_ID, id.0);
        return Ok(response);
    }

    // The request is not cloned to keep for the error case: routing needs it unshared.
    // The handler's body passes through as it is (no boxing per request); the answers
    // made here are the other side of one `EitherBody`.
    let answer = async {
        if context.as_ref().is_some_and(|c| c.0.edge) {
            // Boxed: its future (the limit's and CORS's work) is large. Held inline it made
            // this future 336 bytes, not 80, for every request, copied at each `.await`:
            // boxed, v1 took 0.1 to 0.35 us less CPU a request, and with CORS and the
            // limit on 0.43 us less (paired wrk runs).
            Box::pin(edge(req, next)).await
        } else {
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
    };
    let answered = match &span {
        Some(span) => span.around(answer).await,
        None => answer.await,
    };
    match answered {
        Ok(mut response) => {
            close_if_draining(&mut response, context.as_ref());
            finish(
                response.status(),
                Some(response.request()),
                response.response().error(),
            );
            // Moved in once the log is done with it: a clone of a new header value
            // allocates (its bytes become shared).
            response.headers_mut().insert(X_REQUEST_ID, id.0);
            Ok(response)
        }
        // An error that left the handler without an answer leaves without the drain's
        // header too: rare, as the handlers' errors are answers; the drain still ends with
        // the listener closing.
        Err(error) => {
            let mut response = error.error_response().map_into_right_body::<B>();
            finish(response.status(), None, Some(&error));
            response.headers_mut().insert(X_REQUEST_ID, id.0);
            Err(
                InternalError::from_response(error.to_string(), response.map_into_boxed_body())
                    .into(),
            )
        }
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
/// can read it): run by [`request_context`] only when either is configured.
async fn edge<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let cors = cors::inspect(&req);
    let mut response = match rate_limit::admit(&req).await {
        Admission::Refused(answer) => req.into_response(*answer).map_into_right_body(),
        admission => {
            let mut response = next.call(req).await?.map_into_left_body();
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
