//! An API client that brings its own bearer token: `MRMAT_API_TOKEN` when set (for CI),
//! else the login [`Session`], refreshed when due and once more when the server refuses it.
//! A login's token only goes to the server the login was made for, and only that server's
//! refusal can make it refresh.

use std::future::Future;

use mrmat_api_types::secret::Secret;

use crate::api::ApiClient;
use crate::error::ClientError;
use crate::session::Session;

/// The environment variable whose token replaces the login, for scripts and CI.
pub const TOKEN_ENV: &str = "MRMAT_API_TOKEN";

/// Where bearer tokens come from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A token given from outside; never refreshed.
    Fixed(Secret),
    /// The cached login (boxed: a session is many times the size of a token).
    Session(Box<Session>),
}

impl TokenSource {
    /// `MRMAT_API_TOKEN` when it is set and not empty, else `session`.
    pub fn from_env_or(session: Session) -> Self {
        match std::env::var(TOKEN_ENV) {
            Ok(token) if !token.trim().is_empty() => Self::Fixed(Secret::new(token.trim())),
            _ => Self::Session(Box::new(session)),
        }
    }

    /// A token to send; `rejected` is one the server just refused.
    pub async fn token(&self, rejected: Option<&Secret>) -> Result<Secret, ClientError> {
        match self {
            Self::Fixed(token) => Ok(token.clone()),
            Self::Session(session) => session.valid_token(rejected).await,
        }
    }
}

/// An [`ApiClient`] with a [`TokenSource`].
#[derive(Debug, Clone)]
pub struct AuthorizedApi {
    api: ApiClient,
    tokens: TokenSource,
}

impl AuthorizedApi {
    /// Calls through `api` with tokens from `tokens`.
    pub fn new(api: ApiClient, tokens: TokenSource) -> Self {
        Self { api, tokens }
    }

    /// Runs `call` with a client carrying a valid token. When the server answers
    /// `invalid_token` to a token from the login (revoked, or expired early), the token is
    /// refreshed and `call` runs once more.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(ApiClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let session = match &self.tokens {
            TokenSource::Fixed(token) => {
                return match call(self.api.clone().with_token(token.clone())).await {
                    Err(ClientError::Api {
                        status: 401,
                        detail,
                        ..
                    }) => Err(ClientError::TokenRefused { detail }),
                    other => other,
                };
            }
            TokenSource::Session(session) => session,
        };
        if session.server() != self.api.base() {
            return Err(ClientError::ServerMismatch {
                login: session.server().to_string(),
                server: self.api.base().to_string(),
            });
        }
        let (token, key) = session.valid_access(None).await?;
        match call(self.api.clone().with_bound_token(token.clone(), key)).await {
            Err(ClientError::Api {
                invalid_token: true,
                ..
            }) => {
                let (token, key) = session.valid_access(Some(&token)).await?;
                call(self.api.clone().with_bound_token(token, key)).await
            }
            other => other,
        }
    }

    /// The API client, without a token.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_a_fixed_token() {
        let text = format!("{:?}", TokenSource::Fixed(Secret::new("hunter2-env")));
        assert!(!text.contains("hunter2-env"), "{text}");
    }
}
