//! CORS (`--cors-origins`), written here rather than taken from `actix-cors`: its
//! preflight answers one fixed method list for every path, and the routing here knows each
//! path's methods (the `Allow` of its 405), which is what a preflight should be told.
//!
//! **Origins.** Exact origins, compared as RFC 6454 serialises them
//! (`scheme://host[:port]`, lower-case host, default port left out): the configured ones
//! are serialised once at start, the browser sends its own serialised, so the comparison
//! is of bytes. `*` alone allows any origin.
//!
//! **Credentials.** Never: `Access-Control-Allow-Credentials` is never sent. The API's
//! credential is a token the page's own script puts in `Authorization` (listed in the
//! allowed headers), not a cookie the browser attaches on its own, so a page of another
//! origin has nothing to borrow, and `*` means "any origin may call with a token it
//! holds". Refused at start (exit 2): `*` with other origins, `null` (what sandboxed
//! frames, `data:` and `file:` pages send: anyone can be `null`), and anything that is not
//! an http(s) origin (a path, a query, user info, a fragment, another scheme).
//!
//! **Answers.** A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! from an allowed origin to a known path: 204 with `Access-Control-Allow-Methods` (the
//! path's methods), `-Allow-Headers` (`Authorization, Content-Type, DPoP`), `-Max-Age`.
//! Any other answer to an allowed origin carries `Access-Control-Allow-Origin` and
//! `-Expose-Headers`. A refused origin gets no CORS header at all: the server answers it
//! as if CORS were off, so its preflight is the 405 (with `Allow`) that any `OPTIONS` gets,
//! not a 403 that would tell a prober which origins are allowed; its browser sees a
//! network error. With a list of origins every answer carries `Vary: Origin`; with `*`
//! every answer carries the same headers, whatever the `Origin`.

use actix_web::body::EitherBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::rate_limit::is_preflight;
use crate::settings::CorsOrigins;

/// Headers a page's script may send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, DPoP";
/// Headers a page's script may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str =
    "Location, X-Request-Id, WWW-Authenticate, Retry-After, RateLimit, RateLimit-Policy";
/// How long a browser may keep a preflight's answer, in seconds (Chromium keeps at most
/// 7200, Firefox 86400).
const MAX_AGE: &str = "600";

/// The CORS policy the app shares, with its header values made once.
#[derive(Debug)]
pub(crate) struct Cors {
    origins: CorsOrigins,
    allow_headers: HeaderValue,
    expose_headers: HeaderValue,
    max_age: HeaderValue,
}

impl Cors {
    /// The policy of `origins`.
    pub(crate) fn new(origins: CorsOrigins) -> Self {
        Self {
            origins,
            allow_headers: HeaderValue::from_static(ALLOW_HEADERS),
            expose_headers: HeaderValue::from_static(EXPOSE_HEADERS),
            max_age: HeaderValue::from_static(MAX_AGE),
        }
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`, when it is allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.origins {
            CorsOrigins::Any => Some(HeaderValue::from_static("*")),
            CorsOrigins::List(list) => {
                // Bytes, not text: an origin with a byte outside ASCII matches none anyway.
                let origin = origin?;
                list.iter()
                    .any(|o| o.as_bytes() == origin.as_bytes())
                    .then(|| origin.clone())
            }
        }
    }
}

/// What CORS makes of one request: the policy (each worker has its own, so the clone
/// counts on no reference count another worker does), the `Access-Control-Allow-Origin`
/// to send when the origin is allowed, and whether it is a preflight of an allowed origin.
#[derive(Debug)]
pub(crate) struct CorsRequest {
    policy: web::Data<Cors>,
    allowed: Option<HeaderValue>,
    preflight: bool,
}

/// `req` as CORS sees it, or `None` when no [`Cors`] policy is registered.
pub(crate) fn inspect(req: &ServiceRequest) -> Option<CorsRequest> {
    let policy = req.app_data::<web::Data<Cors>>()?.clone();
    let allowed = policy.allow_origin(req.headers().get(header::ORIGIN));
    let preflight = allowed.is_some() && is_preflight(req.method(), req.headers());
    Some(CorsRequest {
        policy,
        allowed,
        preflight,
    })
}

impl CorsRequest {
    /// Whether `response` is the routing's 405 to an allowed origin's preflight, which
    /// [`Self::preflight`] turns into the preflight's answer.
    pub(crate) fn is_preflight_answer<B>(&self, response: &ServiceResponse<B>) -> bool {
        self.preflight
            && response.status() == StatusCode::METHOD_NOT_ALLOWED
            && response.headers().contains_key(header::ALLOW)
    }

    /// The answer to a preflight: it went through the routing too, whose resource answered
    /// `OPTIONS` with 405 and its `Allow`, which becomes the allowed methods of a 204 (an
    /// unknown path stays 404).
    pub(crate) fn preflight<B>(
        &self,
        response: ServiceResponse<EitherBody<B>>,
    ) -> ServiceResponse<EitherBody<B>> {
        let methods = response.headers().get(header::ALLOW).cloned();
        let (request, _) = response.into_parts();
        let mut answer = HttpResponse::NoContent();
        if let Some(methods) = methods {
            answer.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods));
        }
        let answer = answer
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                self.policy.allow_headers.clone(),
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, self.policy.max_age.clone()))
            .finish();
        ServiceResponse::new(request, answer).map_into_right_body()
    }

    /// Adds the CORS headers of the answer: `Vary: Origin` with a list of origins, and for
    /// an allowed origin the origin and the headers its script may read.
    pub(crate) fn label(&self, headers: &mut HeaderMap) {
        if matches!(self.policy.origins, CorsOrigins::List(_)) {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(origin) = &self.allowed {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                self.policy.expose_headers.clone(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<CorsOrigins, String> {
        CorsOrigins::parse(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn origins_are_serialised_as_rfc_6454_does() {
        assert_eq!(
            parse(&[
                "https://App.Example.com:443",
                "http://localhost:3000/",
                "https://bücher.example"
            ])
            .unwrap(),
            CorsOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into(),
                "https://xn--bcher-kva.example".into(),
            ])
        );
        assert_eq!(parse(&["*"]).unwrap(), CorsOrigins::Any);
    }

    #[test]
    fn unsafe_or_malformed_origins_are_refused() {
        for bad in [
            &["*", "https://a.example"][..],
            &["null"],
            &[""],
            &["https://a.example/app"],
            &["https://a.example?x=1"],
            &["https://user@a.example"],
            &["https://a.example#top"],
            &["file:///tmp/x.html"],
            &["ftp://a.example"],
            &["a.example"],
            &["https://a.example//"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn origins_match_exactly() {
        let cors = Cors::new(parse(&["https://a.example"]).unwrap());
        let yes = HeaderValue::from_static("https://a.example");
        assert_eq!(cors.allow_origin(Some(&yes)), Some(yes));
        for no in [
            "https://a.example.evil",
            "https://A.example",
            "http://a.example",
            "https://a.example:444",
            "null",
        ] {
            assert_eq!(
                cors.allow_origin(Some(&HeaderValue::from_static(no))),
                None,
                "{no}"
            );
        }
        assert_eq!(cors.allow_origin(None), None);
    }

    #[test]
    fn plain_http_origins_off_loopback_are_named() {
        let origins = parse(&[
            "http://app.example",
            "http://localhost:3000",
            "https://b.example",
        ])
        .unwrap();
        assert_eq!(origins.insecure(), vec!["http://app.example"]);
    }
}
