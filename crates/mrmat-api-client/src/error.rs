//! What can go wrong, each as one line a person can act on.

/// A failure of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A server or provider did not answer.
    #[error("cannot reach {what} at {url}: {reason}")]
    Unreachable {
        /// What was called.
        what: &'static str,
        /// Where.
        url: String,
        /// Why, in the HTTP client's words.
        reason: String,
    },
    /// The API answered with an error; `detail` is its problem detail.
    #[error("{detail} ({status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The problem's detail, or its title.
        detail: String,
        /// The answer was 401 with `error="invalid_token"`: a refresh may help.
        invalid_token: bool,
    },
    /// An answer that makes no sense.
    #[error("unexpected answer from {what}: {reason}")]
    Protocol {
        /// What answered.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// No token is cached.
    #[error("not logged in; run `mrmat-api-client login`")]
    NotLoggedIn,
    /// The refresh token no longer works.
    #[error("the session has ended ({0}); run `mrmat-api-client login` again")]
    LoginAgain(String),
    /// The person refused the login.
    #[error("login denied: the request was not approved")]
    AccessDenied,
    /// The device code expired before approval.
    #[error("login expired: the code was not approved in time; run `mrmat-api-client login` again")]
    LoginExpired,
    /// The identity provider refused a request.
    #[error("the identity provider refused the request: {0}")]
    Provider(String),
    /// A configuration problem: exit code 2.
    #[error("{0}")]
    Config(String),
    /// The token cache cannot be used.
    #[error("token cache {path}: {reason}")]
    Cache {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl ClientError {
    /// The process exit code for this error: 2 for configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            _ => 1,
        }
    }

    /// An HTTP client failure while calling `what` at `url`, without the URL's query.
    pub(crate) fn unreachable(what: &'static str, url: &str, error: &reqwest::Error) -> Self {
        let mut reason = error.without_url_ref();
        if let Some(source) = std::error::Error::source(error) {
            reason = format!("{reason}: {source}");
        }
        Self::Unreachable {
            what,
            url: url.split('?').next().unwrap_or(url).to_owned(),
            reason,
        }
    }
}

/// `reqwest::Error::without_url` consumes; this renders without the URL from a reference.
trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        if self.is_timeout() {
            "timed out".to_owned()
        } else if self.is_connect() {
            "connection failed".to_owned()
        } else if self.is_decode() {
            "unreadable answer".to_owned()
        } else {
            "request failed".to_owned()
        }
    }
}
