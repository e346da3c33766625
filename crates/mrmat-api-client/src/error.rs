//! What can go wrong, each as one line a person can act on, with the exit code that tells
//! a script which kind of failure it was and the [`Hint`] a command line turns into a
//! command to paste.

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
    /// No login is cached for this server.
    #[error("not logged in to {server}")]
    NotLoggedIn {
        /// The server asked for.
        server: String,
    },
    /// The login can no longer get tokens: its refresh token expired, was revoked or
    /// refused, or there is none and the access token expired.
    #[error("the session has ended ({reason}); log in again")]
    SessionEnded {
        /// The server of the login.
        server: String,
        /// Why it ended, as far as the provider said.
        reason: String,
    },
    /// A cached login was about to be used with a server it was not made for.
    #[error(
        "the cached login is for {login}, not {server}: a login is only ever sent to the server it was made for"
    )]
    ServerMismatch {
        /// The server the login belongs to.
        login: String,
        /// The server asked for.
        server: String,
    },
    /// The server refused the token given in `MRMAT_API_TOKEN`.
    #[error("the server refused the token in MRMAT_API_TOKEN: {detail}")]
    TokenRefused {
        /// The server's reason.
        detail: String,
    },
    /// The server's RFC 9728 metadata names another resource than the server it came
    /// from, or none: tokens asked for through it could be meant for another server.
    #[error("{}", resource_mismatch(server, resource.as_deref()))]
    ResourceMismatch {
        /// The server asked.
        server: String,
        /// The `resource` its metadata names, if any.
        resource: Option<String>,
    },
    /// The person refused the login.
    #[error("login denied: the request was not approved{}", .0.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    AccessDenied(Option<String>),
    /// The device code expired before approval.
    #[error("login expired: the code was not approved in time")]
    LoginExpired,
    /// `auth status --check` could not learn whether the login still works: the
    /// provider did not answer.
    #[error("cannot tell whether the login to {server} still works: {reason}")]
    Unchecked {
        /// The server of the login.
        server: String,
        /// Why the check failed.
        reason: String,
    },
    /// `--user` names no account logged in to the server.
    #[error(
        "no account {user} is logged in to {server}; its accounts: {}",
        list(known)
    )]
    UnknownAccount {
        /// The server.
        server: String,
        /// The name given.
        user: String,
        /// Who is logged in there, the active account first.
        known: Vec<String>,
    },
    /// `auth switch` without `--user`, more than two accounts, and nobody to ask.
    #[error("{} accounts are logged in to {server} ({}): say which with --user", known.len(), list(known))]
    WhichAccount {
        /// The server.
        server: String,
        /// Who is logged in there, the active account first.
        known: Vec<String>,
    },
    /// `auth switch` with one account: there is no other.
    #[error("only {user} is logged in to {server}: there is no other account to switch to")]
    NoOtherAccount {
        /// The server.
        server: String,
        /// The one account.
        user: String,
    },
    /// The identity provider refused a request.
    #[error("the identity provider refused the request: {0}")]
    Provider(String),
    /// A configuration problem.
    #[error("{0}")]
    Config(String),
    /// A URL is plain http to another machine and insecure http was not allowed.
    #[error(
        "{what} {url} is plain http to another machine, where tokens can be read on the way: use https, or accept the risk with --allow-insecure-http"
    )]
    InsecureUrl {
        /// Which URL (`--server`, "the token endpoint", ...).
        what: String,
        /// The URL, without query.
        url: String,
    },
    /// The server answered, but it is not an mrmat-api server.
    #[error("{url} is not an mrmat-api server ({reason}); check --server")]
    NotMrmatApi {
        /// The server URL tried.
        url: String,
        /// What gave it away.
        reason: String,
    },
    /// Logout could not revoke the tokens; they stay cached so it can be tried again.
    #[error("{0}; the tokens were not revoked and the login is kept")]
    LogoutIncomplete(Box<ClientError>),
    /// The person pressed Ctrl-C.
    #[error("{what} cancelled{aftermath}")]
    Cancelled {
        /// The command, as typed: `login`, `resource list`.
        what: &'static str,
        /// What was undone, as `; ...`, or nothing.
        aftermath: String,
    },
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
    /// The token cache file is damaged or of another version; a login replaces it.
    #[error("token cache {path}: {reason}")]
    CacheUnusable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// What the person can do next; the command line makes it a command to paste.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// Log in (again).
    Login,
    /// Log in as another user, to have an account to switch to.
    AddAccount,
    /// Name the account to switch to.
    NameAccount,
    /// Log out again, or remove the login without revoking.
    LogoutLocal,
    /// Fix or unset `MRMAT_API_TOKEN`.
    TokenEnv,
}

/// Accounts for messages: `alice (active), bob`.
fn list(known: &[String]) -> String {
    known
        .iter()
        .enumerate()
        .map(|(i, who)| {
            if i == 0 {
                format!("{who} (active)")
            } else {
                who.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl ClientError {
    /// The process exit code: 2 usage or configuration, 3 not logged in or session ended,
    /// 4 not found, 5 forbidden, 6 a login that could not be checked, 130 cancelled,
    /// 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::InsecureUrl { .. }
            | Self::NotMrmatApi { .. }
            | Self::UnknownAccount { .. }
            | Self::WhichAccount { .. }
            | Self::NoOtherAccount { .. } => 2,
            Self::NotLoggedIn { .. }
            | Self::SessionEnded { .. }
            | Self::ServerMismatch { .. }
            | Self::TokenRefused { .. }
            | Self::CacheUnusable { .. }
            | Self::Api { status: 401, .. } => 3,
            Self::Api { status: 404, .. } => 4,
            Self::Api { status: 403, .. } => 5,
            Self::Unchecked { .. } => 6,
            Self::Cancelled { .. } => 130,
            _ => 1,
        }
    }

    /// What to do about it, if there is something to do.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::NotLoggedIn { .. }
            | Self::SessionEnded { .. }
            | Self::ServerMismatch { .. }
            | Self::LoginExpired
            | Self::CacheUnusable { .. }
            | Self::Api { status: 401, .. } => Some(Hint::Login),
            Self::NoOtherAccount { .. } => Some(Hint::AddAccount),
            Self::WhichAccount { .. } => Some(Hint::NameAccount),
            Self::LogoutIncomplete(_) => Some(Hint::LogoutLocal),
            Self::TokenRefused { .. } => Some(Hint::TokenEnv),
            _ => None,
        }
    }

    /// A transport failure while calling `what` at `url`.
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
        // rustls's words for a TLS handshake answered in plain HTTP.
        if cause.contains("InvalidContentType")
            && let Ok(mut plain) = url::Url::parse(url)
            && plain.scheme() == "https"
            && plain.set_scheme("http").is_ok()
        {
            plain.set_path("");
            plain.set_query(None);
            return Self::Unreachable {
                what,
                url: display_url(url),
                reason: format!(
                    "it answers in plain HTTP, not HTTPS; try {}",
                    plain.as_str().trim_end_matches('/')
                ),
            };
        }
        Self::Unreachable {
            what,
            url: display_url(url),
            reason: if cause.contains("://") || kind == "timed out" {
                kind.to_owned()
            } else {
                format!("{kind}: {cause}")
            },
        }
    }
}

/// The line for [`ClientError::ResourceMismatch`].
fn resource_mismatch(server: &str, resource: Option<&str>) -> String {
    const PATH: &str = mrmat_api_types::paths::PROTECTED_RESOURCE_METADATA;
    match resource {
        Some(resource) => format!(
            "the server at {server} says it is {resource} (the resource its {PATH} names): no login is started, as tokens for {resource} must not go to {server} (RFC 9728 section 3.3); check --server"
        ),
        None => format!(
            "the server at {server} names no resource in its {PATH}, which RFC 9728 requires: no login is started, as nothing ties its provider's tokens to it; check --server"
        ),
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
pub fn display_url(url: &str) -> String {
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
    fn exit_codes_tell_the_kind_of_failure() {
        let api = |status| ClientError::Api {
            status,
            detail: String::new(),
            invalid_token: false,
        };
        assert_eq!(ClientError::Config(String::new()).exit_code(), 2);
        assert_eq!(
            ClientError::NotLoggedIn {
                server: String::new()
            }
            .exit_code(),
            3
        );
        assert_eq!(api(401).exit_code(), 3);
        assert_eq!(api(404).exit_code(), 4);
        assert_eq!(api(403).exit_code(), 5);
        assert_eq!(api(409).exit_code(), 1);
        let cancelled = ClientError::Cancelled {
            what: "login",
            aftermath: String::new(),
        };
        assert_eq!(cancelled.exit_code(), 130);
        // A server that lies about what it is, not the person's configuration.
        assert_eq!(
            ClientError::ResourceMismatch {
                server: String::new(),
                resource: None
            }
            .exit_code(),
            1
        );
    }
}
