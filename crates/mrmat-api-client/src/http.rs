//! The one HTTP client every request of this crate goes through, to the API server and to
//! the identity provider alike, so the rules are kept in one place:
//!
//! - bounded in time (`timeout`), never following redirects (a redirect could carry the
//!   bearer token to another host);
//! - plain `http://` only to this machine (`localhost`, 127.0.0.0/8, `::1`) unless the
//!   person explicitly allows it: elsewhere the tokens would cross the network readable;
//! - trusting the platform's certificate store and webpki's roots, plus an optional PEM
//!   file for a private CA;
//! - telling an observer about every call (for `-d`) and about a call that keeps the
//!   person waiting, so the CLI can say what it waits for;
//! - bounded in what it reads: every answer is read here, and only here, up to a cap of
//!   its kind ([`MAX_PROVIDER_ANSWER`], [`MAX_API_ANSWER`]); a longer one is refused
//!   unread, so a hostile server, proxy or provider cannot make the client buffer
//!   hundreds of megabytes. No [`reqwest::Response`] leaves this module.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mrmat_api_types::urls::is_loopback;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use url::Url;

use crate::dpop::{Dpop, nonce_challenge};
use crate::error::{ClientError, display_url};
use crate::words::size_words;

/// How long a call may go unanswered before the observer hears that the person waits.
pub const WAITING_AFTER: Duration = Duration::from_millis(1500);

/// The default bound on one HTTP call, connection and answer together.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read from the identity provider (discovery, device authorization,
/// token, refresh, revocation, userinfo) and from the server's RFC 9728 metadata and
/// index, as the server caps what it reads from providers. Real ones are a few KiB.
pub const MAX_PROVIDER_ANSWER: usize = 64 * 1024;

/// The largest API answer read: a page of the resource list may legitimately be large
/// (1,000 resources with 255-character names, escaped, are about 2 MiB).
pub const MAX_API_ANSWER: usize = 4 * 1024 * 1024;

/// The longest a connection attempt may take (less when the whole call is bounded lower).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the client's HTTP traffic may do.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Bound on each call.
    pub timeout: Duration,
    /// Also trust the certificates in this PEM file.
    pub ca_file: Option<PathBuf>,
    /// Allow plain http to hosts other than this machine.
    pub allow_insecure_http: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            ca_file: None,
            allow_insecure_http: false,
        }
    }
}

/// Something the observer hears about a call. URLs are whole: the observer shows them
/// through [`display_url`], which drops the query.
#[derive(Debug)]
pub enum HttpEvent<'a> {
    /// No answer after [`WAITING_AFTER`]; the call goes on.
    Waiting {
        /// The method.
        method: &'a Method,
        /// Where to.
        url: &'a Url,
    },
    /// The call ended.
    Finished {
        /// The method.
        method: &'a Method,
        /// Where to.
        url: &'a Url,
        /// The answer's status; `None` when there was no answer.
        status: Option<StatusCode>,
        /// How long it took.
        elapsed: Duration,
    },
}

/// Hears about every call.
pub type Observer = Arc<dyn Fn(&HttpEvent<'_>) + Send + Sync>;

/// Why a call was not made or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is plain http to another machine and that is not allowed.
    #[error("{} is plain http to another machine", display_url(.0.as_str()))]
    Insecure(Url),
    /// The transport failed: no connection, a timeout, a broken answer.
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
    /// The answer could not be handed on (a header the HTTP types refuse).
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The answer is longer than the cap of its kind; the rest was not read.
    #[error("the answer is larger than {}, the most this client reads; refused", size_words(*.limit))]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
}

// Here, not in error.rs: errors sit below this module (it returns them), so the
// conversion from its own error lives with it and the imports stay one-way.
impl ClientError {
    /// A failure of the HTTP client while calling `what` at `url`.
    pub(crate) fn http(what: &'static str, url: &str, error: &HttpError) -> Self {
        match error {
            HttpError::Insecure(url) => Self::InsecureUrl {
                what: what.to_owned(),
                url: display_url(url.as_str()),
            },
            HttpError::Transport(error) => Self::unreachable(what, url, error),
            HttpError::Malformed(reason) => Self::Protocol {
                what,
                reason: reason.clone(),
            },
            HttpError::TooLarge { limit } => Self::Protocol {
                what,
                reason: format!(
                    "its answer from {} is larger than {}, the most this client reads; refused",
                    display_url(url),
                    size_words(*limit)
                ),
            },
        }
    }
}

/// An answer, read whole (up to its cap).
#[derive(Debug)]
pub struct Answer {
    status: StatusCode,
    version: reqwest::Version,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// Its status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Its body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// The body of `response`, unless it is longer than `limit`: a declared length over the
/// cap is refused before a byte of the body is read, an undeclared one as soon as it
/// passes the cap.
async fn read_capped(mut response: Response, limit: usize) -> Result<Vec<u8>, HttpError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(HttpError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(HttpError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The HTTP client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    allow_insecure_http: bool,
    observer: Option<Observer>,
}

// By hand, not derived: the observer is a closure, which has no `Debug`. Nothing here
// is secret; the tokens travel in the requests, never in this struct.
impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// A client with `options`. An unreadable or invalid `ca_file` is a configuration
    /// error.
    pub fn new(options: &HttpOptions) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT.min(options.timeout))
            .timeout(options.timeout)
            .user_agent(concat!("mrmat-api-client/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &options.ca_file {
            for certificate in read_certificates(path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            allow_insecure_http: options.allow_insecure_http,
            observer: None,
        })
    }

    /// The same client reporting to `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Whether plain http to other machines is allowed.
    pub fn allows_insecure_http(&self) -> bool {
        self.allow_insecure_http
    }

    /// Refuses `url` when it is plain http to another machine and that is not allowed;
    /// `what` names the URL in the error (`--server`, "the token endpoint", ...).
    pub fn check_url(&self, what: &str, url: &Url) -> Result<(), ClientError> {
        check_url(what, url, self.allow_insecure_http)
    }

    fn permits(&self, url: &Url) -> bool {
        permits(url, self.allow_insecure_http)
    }

    /// A request to build on; send it with [`Http::send`].
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `request`, after checking its URL, telling the observer, and reads the
    /// answer whole, refusing one longer than `limit` bytes ([`MAX_PROVIDER_ANSWER`],
    /// [`MAX_API_ANSWER`]).
    pub async fn send(&self, request: RequestBuilder, limit: usize) -> Result<Answer, HttpError> {
        let request = request.build()?;
        if !self.permits(request.url()) {
            return Err(HttpError::Insecure(request.url().clone()));
        }
        let method = request.method().clone();
        let url = request.url().clone();
        let started = Instant::now();
        let status = Mutex::new(None);
        let call = async {
            let response = self.client.execute(request).await?;
            if let Ok(mut slot) = status.lock() {
                *slot = Some(response.status());
            }
            let (status, version) = (response.status(), response.version());
            let headers = response.headers().clone();
            let body = read_capped(response, limit).await?;
            Ok::<_, HttpError>(Answer {
                status,
                version,
                headers,
                body,
            })
        };
        tokio::pin!(call);
        let result = tokio::select! {
            result = &mut call => result,
            () = tokio::time::sleep(WAITING_AFTER) => {
                self.tell(&HttpEvent::Waiting { method: &method, url: &url });
                call.await
            }
        };
        self.tell(&HttpEvent::Finished {
            method: &method,
            url: &url,
            status: status.lock().ok().and_then(|s| *s),
            elapsed: started.elapsed(),
        });
        result
    }

    fn tell(&self, event: &HttpEvent<'_>) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }

    /// This client for `oauth2`'s requests; the status of the last answer lands in
    /// `status`, because `oauth2` drops it from errors with an empty or unreadable body.
    pub fn for_oauth<'a>(&'a self, status: &'a StatusCell) -> OAuthHttp<'a> {
        OAuthHttp {
            http: self,
            status,
            dpop: None,
        }
    }

    /// [`Http::for_oauth`] for token requests of a DPoP login: each request carries a
    /// fresh proof by `dpop`'s key, and a `use_dpop_nonce` answer is retried once with
    /// the nonce it gave (RFC 9449 section 8).
    pub fn for_oauth_dpop<'a>(
        &'a self,
        status: &'a StatusCell,
        dpop: Option<&'a Dpop>,
    ) -> OAuthHttp<'a> {
        OAuthHttp {
            http: self,
            status,
            dpop,
        }
    }
}

/// Refuses `url` when it is plain http to another machine and `allow_insecure_http` is
/// off; `what` names the URL in the error.
pub fn check_url(what: &str, url: &Url, allow_insecure_http: bool) -> Result<(), ClientError> {
    if permits(url, allow_insecure_http) {
        return Ok(());
    }
    Err(ClientError::InsecureUrl {
        what: what.to_owned(),
        url: display_url(url.as_str()),
    })
}

fn permits(url: &Url, allow_insecure_http: bool) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => allow_insecure_http || is_loopback(url),
        _ => false,
    }
}

/// The status of the last answer `oauth2` got through [`OAuthHttp`], and the answer it
/// refused as too large, if any.
#[derive(Debug, Default)]
pub struct StatusCell {
    status: Mutex<Option<StatusCode>>,
    /// The URL and cap of an answer refused for its size.
    oversized: Mutex<Option<(String, usize)>>,
}

impl StatusCell {
    /// The last status seen, if any.
    pub fn get(&self) -> Option<StatusCode> {
        self.status.lock().ok().and_then(|s| *s)
    }

    fn set(&self, status: StatusCode) {
        if let Ok(mut slot) = self.status.lock() {
            *slot = Some(status);
        }
    }

    /// The error to report when an answer was refused for its size: it, rather than what
    /// `oauth2` made of the empty answer that stood in for it.
    pub(crate) fn oversized(&self) -> Option<ClientError> {
        let (url, limit) = self.oversized.lock().ok()?.clone()?;
        Some(ClientError::http(
            "the identity provider",
            &url,
            &HttpError::TooLarge { limit },
        ))
    }
}

/// [`Http`] as `oauth2`'s HTTP client.
#[derive(Debug)]
pub struct OAuthHttp<'a> {
    http: &'a Http,
    status: &'a StatusCell,
    dpop: Option<&'a Dpop>,
}

/// `request` again, with a `DPoP` header holding `proof` (replacing any it had).
fn with_proof(request: &HttpRequest, proof: Option<String>) -> Result<reqwest::Request, HttpError> {
    let mut builder = oauth2::http::Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version());
    for (name, value) in request.headers() {
        if name != "dpop" {
            builder = builder.header(name, value);
        }
    }
    if let Some(proof) = proof {
        builder = builder.header("DPoP", proof);
    }
    let copy = builder
        .body(request.body().clone())
        .map_err(|e| HttpError::Malformed(e.to_string()))?;
    Ok(reqwest::Request::try_from(copy)?)
}

impl<'c> AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let proof = || -> Result<Option<String>, HttpError> {
                self.dpop
                    .map(|dpop| {
                        dpop.provider_proof(
                            request.method().as_str(),
                            &request.uri().to_string(),
                            None,
                        )
                    })
                    .transpose()
                    .map_err(|e| HttpError::Malformed(e.to_string()))
            };
            let first = with_proof(&request, proof()?)?;
            let url = first.url().to_string();
            let send = |built: reqwest::Request| {
                self.http.send(
                    RequestBuilder::from_parts(self.http.client.clone(), built),
                    MAX_PROVIDER_ANSWER,
                )
            };
            let mut sent = send(first).await;
            // The provider wants its nonce in the proof: once more, with it.
            if let (Some(dpop), Ok(answer)) = (self.dpop, &sent) {
                if nonce_challenge(dpop, answer.status, &answer.headers, &answer.body) {
                    sent = send(with_proof(&request, proof()?)?).await;
                }
                if let Ok(answer) = &sent {
                    dpop.remember_nonce(&answer.headers);
                }
            }
            let answer = match sent {
                Ok(answer) => answer,
                // oauth2 takes a failed call while polling for a device login as a
                // network fault and polls on; an answer far too large is no such thing.
                // It gets a bodiless 502, which ends any request, and the cell says why.
                Err(HttpError::TooLarge { limit }) => {
                    if let Ok(mut slot) = self.status.oversized.lock() {
                        *slot = Some((url, limit));
                    }
                    self.status.set(StatusCode::BAD_GATEWAY);
                    return oauth2::http::Response::builder()
                        .status(StatusCode::BAD_GATEWAY)
                        .body(Vec::new())
                        .map_err(|e| HttpError::Malformed(e.to_string()));
                }
                Err(other) => return Err(other),
            };
            self.status.set(answer.status);
            let mut builder = oauth2::http::Response::builder()
                .status(answer.status)
                .version(answer.version);
            for (name, value) in &answer.headers {
                builder = builder.header(name, value);
            }
            builder
                .body(answer.body)
                .map_err(|e| HttpError::Malformed(e.to_string()))
        })
    }
}

/// The certificates in the PEM file at `path`.
fn read_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let fail =
        |reason: String| ClientError::Config(format!("--ca-file {}: {reason}", path.display()));
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| fail(format!("not a PEM certificate file: {e}")))?;
    if certificates.is_empty() {
        return Err(fail("holds no PEM certificate".into()));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(url: &str, allow_insecure_http: bool) -> bool {
        check_url("x", &Url::parse(url).unwrap(), allow_insecure_http).is_ok()
    }

    #[test]
    fn plain_http_is_for_this_machine_only() {
        assert!(allowed("http://127.0.0.1:8080/token", false));
        assert!(allowed("http://localhost/token", false));
        assert!(allowed("http://[::1]/token", false));
        assert!(allowed("https://idp.example.com/token", false));
        assert!(!allowed("http://idp.example.com/token", false));
        assert!(!allowed("http://0.0.0.0:8080/", false));
    }

    #[test]
    fn the_explicit_flag_allows_plain_http_elsewhere() {
        assert!(allowed("http://idp.example.com/token", true));
        assert!(!allowed("ftp://idp.example.com/", true));
    }

    #[test]
    fn a_refused_url_is_a_configuration_error_that_names_it() {
        let error = check_url(
            "the token endpoint",
            &Url::parse("http://idp.example.com/t?x=1").unwrap(),
            false,
        )
        .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let message = error.to_string();
        assert!(
            message.starts_with("the token endpoint http://idp.example.com/t "),
            "{message}"
        );
        assert!(message.contains("--allow-insecure-http"), "{message}");
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let options = HttpOptions {
            ca_file: Some(path),
            ..HttpOptions::default()
        };
        assert_eq!(Http::new(&options).unwrap_err().exit_code(), 2);
    }
}
