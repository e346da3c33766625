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
//!   person waiting, so the CLI can say what it waits for.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use url::Url;

use crate::error::{ClientError, display_url};
use crate::server_url::is_loopback;

/// How long a call may go unanswered before the observer hears that the person waits.
pub const WAITING_AFTER: Duration = Duration::from_millis(1500);

/// The default bound on one HTTP call, connection and answer together.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// Sends `request`, after checking its URL, telling the observer.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, HttpError> {
        let request = request.build()?;
        if !self.permits(request.url()) {
            return Err(HttpError::Insecure(request.url().clone()));
        }
        let method = request.method().clone();
        let url = request.url().clone();
        let started = Instant::now();
        let call = self.client.execute(request);
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
            status: result.as_ref().ok().map(Response::status),
            elapsed: started.elapsed(),
        });
        Ok(result?)
    }

    fn tell(&self, event: &HttpEvent<'_>) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }

    /// This client for `oauth2`'s requests; the status of the last answer lands in
    /// `status`, because `oauth2` drops it from errors with an empty or unreadable body.
    pub fn for_oauth<'a>(&'a self, status: &'a StatusCell) -> OAuthHttp<'a> {
        OAuthHttp { http: self, status }
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

/// The status of the last answer `oauth2` got through [`OAuthHttp`].
#[derive(Debug, Default)]
pub struct StatusCell(Mutex<Option<StatusCode>>);

impl StatusCell {
    /// The last status seen, if any.
    pub fn get(&self) -> Option<StatusCode> {
        self.0.lock().ok().and_then(|s| *s)
    }

    fn set(&self, status: StatusCode) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(status);
        }
    }
}

/// [`Http`] as `oauth2`'s HTTP client.
#[derive(Debug)]
pub struct OAuthHttp<'a> {
    http: &'a Http,
    status: &'a StatusCell,
}

impl<'c> AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = self
                .http
                .send(RequestBuilder::from_parts(
                    self.http.client.clone(),
                    request,
                ))
                .await?;
            self.status.set(response.status());
            let mut builder = oauth2::http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response.bytes().await?;
            builder
                .body(body.to_vec())
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
