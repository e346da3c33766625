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

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};
use url::Url;

use crate::rate_limit::is_preflight;

/// Headers a page's script may send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, DPoP";
/// Headers a page's script may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str =
    "Location, X-Request-Id, WWW-Authenticate, Retry-After, RateLimit, RateLimit-Policy";
/// How long a browser may keep a preflight's answer, in seconds (Chromium keeps at most
/// 7200, Firefox 86400).
const MAX_AGE: &str = "600";

/// The allowed origins: the value of `--cors-origins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin, never with credentials.
    Any,
    /// These serialised origins.
    List(Vec<String>),
}

impl CorsOrigins {
    /// The origins of `--cors-origins`, each checked; why not, naming the bad one.
    pub fn parse(values: &[String]) -> Result<Self, String> {
        let values: Vec<&str> = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err("name at least one origin (https://app.example.com) or *".into());
        }
        if values.contains(&"*") {
            if values.len() > 1 {
                return Err(
                    "* allows every origin and stands alone: list origins, or give * only".into(),
                );
            }
            return Ok(Self::Any);
        }
        let mut origins = Vec::new();
        for value in values {
            let origin = serialise(value)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self::List(origins))
    }

    /// Whether some allowed origin is plain http on a host other than loopback: a script
    /// injected on the way could call the API as that origin.
    pub fn insecure(&self) -> Vec<&str> {
        match self {
            Self::Any => Vec::new(),
            Self::List(list) => list
                .iter()
                .map(String::as_str)
                .filter(|o| {
                    o.starts_with("http://")
                        && !["http://localhost", "http://127.", "http://[::1]"]
                            .iter()
                            .any(|p| o.starts_with(p))
                })
                .collect(),
        }
    }
}

/// `value` as RFC 6454 serialises an origin, or why it is not one.
fn serialise(value: &str) -> Result<String, String> {
    if value.eq_ignore_ascii_case("null") {
        return Err(
            "null is the origin of sandboxed frames and data: and file: pages, which anyone can make; it is never allowed".into(),
        );
    }
    let url = Url::parse(value)
        .map_err(|e| format!("{value:?} is not an origin (scheme://host[:port]): {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{value:?}: only http and https origins are allowed"
        ));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || url.path() != "/"
        || value.trim_end_matches('/').len() + 1 < value.len()
    {
        return Err(format!(
            "{value:?} is not an origin: write scheme://host[:port] only, without a path, query, user or fragment"
        ));
    }
    let origin = url.origin();
    if !origin.is_tuple() {
        return Err(format!("{value:?} is not an origin"));
    }
    Ok(origin.ascii_serialization())
}

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
                let origin = origin?;
                let text = origin.to_str().ok()?;
                list.iter().any(|o| o == text).then(|| origin.clone())
            }
        }
    }
}

/// The middleware: a no-op unless a [`Cors`] is registered.
pub(crate) async fn cors<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let Some(cors) = req.app_data::<web::Data<Cors>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let allowed = cors.allow_origin(req.headers().get(header::ORIGIN));
    let preflight = allowed.is_some() && is_preflight(req.method(), req.headers());
    // A preflight goes through the routing too: the path's resource answers OPTIONS with
    // 405 and its `Allow`, which becomes the allowed methods; an unknown path stays 404.
    let response = next.call(req).await?;
    let allow = response
        .headers()
        .get(header::ALLOW)
        .filter(|_| preflight && response.status() == StatusCode::METHOD_NOT_ALLOWED)
        .cloned();
    let mut response = match allow {
        Some(methods) => {
            let (request, _) = response.into_parts();
            let answer = HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods))
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    cors.allow_headers.clone(),
                ))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone()))
                .finish();
            ServiceResponse::new(request, answer).map_into_right_body()
        }
        None => response.map_into_left_body(),
    };
    let headers = response.headers_mut();
    if matches!(cors.origins, CorsOrigins::List(_)) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            cors.expose_headers.clone(),
        );
    }
    Ok(response)
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
