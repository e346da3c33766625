//! The one error type of the HTTP layer and its one mapping to RFC 9457 problem+json.
//!
//! Client errors say what was wrong with the request. Server errors carry a fixed detail:
//! their cause goes to the log, never to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use mrmat_api_types::Problem;
use mrmat_api_types::problem::PROBLEM_JSON;

use mrmat_api_types::scope::Scope;

/// The realm every bearer challenge names.
pub(crate) const REALM: &str = "mrmat-api";

/// The error code of a DPoP challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DpopError {
    /// The proof is not acceptable.
    InvalidProof,
    /// The token is not acceptable as presented.
    InvalidToken,
}

/// `DPoP algs="..."`, and the error when there is one: the challenge that tells a client
/// DPoP-bound tokens are accepted here, and with which algorithms.
fn dpop_challenge(error: Option<DpopError>) -> String {
    let algs = mrmat_api_types::metadata::SIGNING_ALGORITHMS.join(" ");
    match error {
        None => format!("DPoP algs=\"{algs}\""),
        Some(DpopError::InvalidProof) => {
            format!("DPoP error=\"invalid_dpop_proof\", algs=\"{algs}\"")
        }
        Some(DpopError::InvalidToken) => format!("DPoP error=\"invalid_token\", algs=\"{algs}\""),
    }
}

/// Seconds a client should wait before retrying when a dependency is down.
pub(crate) const RETRY_AFTER_SECONDS: &str = "5";

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// Malformed request: bad JSON syntax, bad query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// A body of a type other than `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body did not arrive in time.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// A body over the size limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Well-formed JSON that breaks the rules of the body; names the field.
    #[error("{0}")]
    Unprocessable(String),
    /// No such path or resource.
    #[error("{0}")]
    NotFound(String),
    /// A known path with a method it does not have.
    #[error("this path does not support the {method} method")]
    MethodNotAllowed {
        /// The method that was used.
        method: String,
        /// The `Allow` header value.
        allow: String,
    },
    /// The request would break a uniqueness rule.
    #[error("{0}")]
    Conflict(String),
    /// Authenticated, but not allowed to do this (e.g. not the owner).
    #[error("{0}")]
    Forbidden(String),
    /// No usable bearer token. `invalid_token` is false when none was sent at all.
    #[error("{}", if *.invalid_token { "the bearer token is not valid" } else { "a bearer token is required" })]
    Unauthenticated {
        /// A token was sent but it is malformed, unknown, expired or revoked.
        invalid_token: bool,
    },
    /// A DPoP failure (RFC 9449 section 7.1): a proof missing, malformed, replayed or not
    /// for this request, key or token (`invalid_dpop_proof`); or a token presented in a
    /// way its binding forbids (`invalid_token`). 401 with a `DPoP` challenge.
    #[error("{reason}")]
    Dpop {
        /// Which error code the challenge names.
        error: DpopError,
        /// What was wrong, for the client.
        reason: String,
    },
    /// A valid token without the scope the route needs.
    #[error("the token lacks the scope {0}")]
    InsufficientScope(Scope),
    /// The server runs without OIDC configuration, so it cannot serve protected data.
    #[error("authentication is not configured on this server")]
    AuthNotConfigured,
    /// A dependency (identity provider, database) did not answer; worth retrying.
    #[error("{dependency} is unavailable")]
    Unavailable {
        /// Which dependency.
        dependency: Dependency,
        /// The cause, for the log only.
        cause: String,
    },
    /// The disk or the database is full: nothing was stored.
    #[error("storage is full")]
    StorageFull(String),
    /// Anything unexpected. The cause is logged, the client gets a generic answer.
    #[error("internal error")]
    Internal(String),
}

/// Something the server depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dependency {
    /// The database.
    Database,
    /// The OIDC identity provider.
    IdentityProvider,
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Database => "the database",
            Self::IdentityProvider => "the identity provider",
        })
    }
}

impl ApiError {
    /// An unexpected failure; `cause` is logged, never sent.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// What the log must say about this error, and how loud: the cause of a server-side
    /// failure, which the client never sees. Logged once, at the edge, with the request id.
    pub(crate) fn log_cause(&self) -> Option<(log::Level, String)> {
        match self {
            Self::Internal(cause) => Some((log::Level::Error, format!("internal error: {cause}"))),
            Self::StorageFull(cause) => {
                Some((log::Level::Error, format!("storage is full: {cause}")))
            }
            // The outage itself is logged once, where it is noticed (see `outage`).
            Self::Unavailable { dependency, cause } => Some((
                log::Level::Debug,
                format!("{dependency} is unavailable: {cause}"),
            )),
            _ => None,
        }
    }

    /// The problem detail shown to the client.
    fn detail(&self) -> String {
        match self {
            Self::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            Self::Unavailable { dependency, .. } => {
                format!("{dependency} is unavailable at the moment; retry later")
            }
            Self::StorageFull(_) => {
                "storage is full; nothing was stored, retry once space has been freed".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Forbidden(_) | Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::Unauthenticated { .. } | Self::Dpop { .. } => StatusCode::UNAUTHORIZED,
            Self::AuthNotConfigured | Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let problem = Problem::new(
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error"),
            self.detail(),
        );
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_JSON);
        match self {
            Self::Unauthenticated { invalid_token } => {
                let challenge = if *invalid_token {
                    format!("Bearer realm=\"{REALM}\", error=\"invalid_token\"")
                } else {
                    format!("Bearer realm=\"{REALM}\"")
                };
                response.insert_header((header::WWW_AUTHENTICATE, challenge));
                response.append_header((header::WWW_AUTHENTICATE, dpop_challenge(None)));
            }
            Self::Dpop { error, .. } => {
                response.insert_header((header::WWW_AUTHENTICATE, dpop_challenge(Some(*error))));
            }
            Self::InsufficientScope(scope) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!(
                        "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
                        scope.as_str()
                    ),
                ));
            }
            Self::MethodNotAllowed { allow, .. } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    response.insert_header((header::ALLOW, value));
                }
            }
            // Not for AuthNotConfigured: retrying will not configure it.
            Self::Unavailable { .. } => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
            }
            _ => {}
        }
        // Not `.json()`: that would reset the content type to application/json.
        let body = serde_json::to_string(&problem).unwrap_or_default();
        response.body(body)
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        Self::internal(format!("blocking task failed: {error}"))
    }
}
