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
    /// Logout could not revoke the tokens; they stay cached so it can be tried again.
    #[error(
        "{0}; the tokens were not revoked and stay cached: run `mrmat-api-client logout` again"
    )]
    LogoutIncomplete(Box<ClientError>),
    /// Results could not be written.
    #[error("cannot write the output: {0}")]
    Output(String),
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

    /// An HTTP client failure while calling `what` at `url`.
    pub(crate) fn unreachable(what: &'static str, url: &str, error: &reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "cannot connect"
        } else if error.is_decode() {
            "unreadable answer"
        } else {
            "request failed"
        };
        let cause = root_cause(error);
        Self::Unreachable {
            what,
            url: display_url(url),
            reason: if cause.contains("://") {
                kind.to_owned()
            } else {
                format!("{kind}: {cause}")
            },
        }
    }
}

/// The innermost cause of `error`: the one that says what really happened ("Connection
/// refused"), where the outer ones only say which layer noticed.
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// A URL fit to show a person: without user, password, query or fragment.
pub(crate) fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

/// Text from a server, safe to print: no control characters that could break the one-line
/// error or drive the terminal.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_query() {
        assert_eq!(
            display_url("http://u:pw@host:8080/p?access_token=x#f"),
            "http://host:8080/p"
        );
    }

    #[test]
    fn server_text_loses_control_characters() {
        assert_eq!(printable("a\nb\u{1b}[31m"), "a b [31m");
    }
}
