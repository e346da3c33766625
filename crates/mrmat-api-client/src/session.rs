//! Keeping a login to one server: the cached tokens, refreshed with rotation before they
//! expire, replaced by a new login, ended by logout. A session only ever hands out tokens
//! of a login made for its own server.

use std::sync::Arc;

use chrono::Utc;
use mrmat_api_types::secret::Secret;
use oauth2::basic::BasicErrorResponseType;
use oauth2::{RefreshToken, RequestTokenError};
use reqwest::StatusCode;
use url::Url;

use crate::binding::ResourceIndicator;
use crate::dpop::{Dpop, DpopKey};
use crate::error::ClientError;
use crate::http::{Http, StatusCell};
use crate::oauth::{Origin, oauth_client, provider_text, session_from, token_error};
use crate::revocation::Revocation;
use crate::server_url::ServerUrl;
use crate::token_cache::{CachedSession, Loaded, TokenCache};

/// What logging out did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logout {
    /// Tokens revoked at the provider and the login deleted.
    Revoked,
    /// The provider has no revocation endpoint; only the login was deleted.
    CacheOnly,
    /// Asked to: the login was deleted without revoking.
    Local(CachedSession),
    /// The provider does not let this public client revoke; the login was deleted, its
    /// tokens stay valid until they expire.
    RefusedToPublicClient(CachedSession),
    /// The session had already ended; its tokens were dead, the login was deleted.
    AlreadyEnded,
    /// Nobody was logged in.
    NotLoggedIn,
    /// The cache file was unreadable; it was deleted, nothing could be revoked.
    Unreadable,
}

/// What storing a new login did to the one before it.
#[derive(Debug)]
pub enum Adopted {
    /// There was none (or it had ended).
    First,
    /// The same user logged in again; the old tokens were dropped without revoking,
    /// because providers that tie both logins to one browser session would end the new
    /// one too.
    SameUser,
    /// Another user's login was replaced; this is what revoking it came to.
    Switched {
        /// The login replaced.
        previous: Box<CachedSession>,
        /// Revoking its tokens.
        revocation: Result<Revocation, ClientError>,
    },
}

/// A client's login to one server.
#[derive(Debug, Clone)]
pub struct Session {
    pub(crate) http: Http,
    pub(crate) server: ServerUrl,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
    /// What a new login asks its tokens to be bound to; refreshes send what their login
    /// recorded instead. Shared, as it never changes: it keeps the session small.
    pub(crate) resource_indicator: Option<Arc<ResourceIndicator>>,
    /// Whether new logins ask for DPoP-bound tokens (RFC 9449); refreshes keep what their
    /// login has.
    pub(crate) dpop: bool,
    cache: TokenCache,
    /// Serialises writers within this process; the cache's file lock does it across
    /// processes, but blocks a whole thread, so tasks queue here first.
    writers: Arc<tokio::sync::Mutex<()>>,
}

/// Held while a session is written: in-process and cross-process exclusion together.
struct WriteGuard {
    _file: std::fs::File,
    _task: tokio::sync::OwnedMutexGuard<()>,
}

/// Refresh this long before expiry, at most: a token about to expire fails mid-request.
const REFRESH_MARGIN_SECONDS: i64 = 30;

/// Whether the access token has expired or is about to.
pub fn needs_refresh(session: &CachedSession) -> bool {
    let Some(expires_at) = session.expires_at else {
        return false;
    };
    // Short-lived tokens get half their life as margin, so they are not refreshed at birth.
    let margin = session.lifetime.map_or(REFRESH_MARGIN_SECONDS, |life| {
        (i64::try_from(life).unwrap_or(i64::MAX) / 2).min(REFRESH_MARGIN_SECONDS)
    });
    expires_at.saturating_sub(Utc::now().timestamp()) <= margin
}

fn parse_url(value: &str) -> Result<Url, ClientError> {
    Url::parse(value).map_err(|e| ClientError::Protocol {
        what: "the token cache",
        reason: format!("an endpoint is not a URL: {e}"),
    })
}

impl Session {
    /// The login of `client_id` (with `client_secret` when confidential) to `server`,
    /// kept in `cache_dir`.
    pub fn new(
        http: Http,
        server: ServerUrl,
        client_id: String,
        client_secret: Option<Secret>,
        cache_dir: &std::path::Path,
    ) -> Self {
        let cache = TokenCache::for_login(cache_dir, server.as_str(), &client_id);
        Self {
            http,
            server,
            client_id,
            client_secret,
            resource_indicator: None,
            dpop: false,
            cache,
            writers: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The same session, with new logins asking for tokens bound by `indicator` (RFC
    /// 8707); `None` asks for unbound tokens, for providers that refuse indicators.
    pub fn with_resource_indicator(mut self, indicator: Option<ResourceIndicator>) -> Self {
        self.resource_indicator = indicator.map(Arc::new);
        self
    }

    /// The same session, with new logins asking for tokens bound to a DPoP key of their
    /// own (RFC 9449) when `dpop` is true.
    pub fn with_dpop(mut self, dpop: bool) -> Self {
        self.dpop = dpop;
        self
    }

    /// Whether new logins ask for DPoP-bound tokens.
    pub fn asks_for_dpop(&self) -> bool {
        self.dpop
    }

    /// What new logins ask their tokens to be bound to.
    pub fn resource_indicator(&self) -> Option<&ResourceIndicator> {
        self.resource_indicator.as_deref()
    }

    /// The server this login is for.
    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    /// The OAuth client.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The cache behind this session.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// Exclusive right to change the cache, across tasks and processes.
    async fn lock(&self) -> Result<WriteGuard, ClientError> {
        let task = Arc::clone(&self.writers).lock_owned().await;
        let cache = self.cache.clone();
        let file = tokio::task::spawn_blocking(move || cache.lock())
            .await
            .map_err(|e| ClientError::Cache {
                path: self.cache.path().display().to_string(),
                reason: format!("locking failed: {e}"),
            })??;
        Ok(WriteGuard {
            _file: file,
            _task: task,
        })
    }

    /// The stored login, if any. An unusable cache file is an error a new login fixes; a
    /// login recorded for another server is never handed out.
    pub fn current(&self) -> Result<Option<CachedSession>, ClientError> {
        match self.cache.load()? {
            Loaded::Missing => Ok(None),
            Loaded::Found(session) if session.server != self.server.as_str() => {
                Err(ClientError::ServerMismatch {
                    login: session.server.clone(),
                    server: self.server.to_string(),
                })
            }
            Loaded::Found(session) => Ok(Some(*session)),
            Loaded::Unusable(reason) => Err(ClientError::CacheUnusable {
                path: self.cache.path().display().to_string(),
                reason,
            }),
        }
    }

    fn not_logged_in(&self) -> ClientError {
        ClientError::NotLoggedIn {
            server: self.server.to_string(),
        }
    }

    fn ended(&self, reason: &str) -> ClientError {
        ClientError::SessionEnded {
            server: self.server.to_string(),
            reason: reason.to_owned(),
        }
    }

    /// A valid access token: the cached one, or a refreshed one when it has expired, is
    /// about to, or is `rejected` (the server answered `invalid_token` to it).
    pub async fn valid_token(&self, rejected: Option<&Secret>) -> Result<Secret, ClientError> {
        let stale = |s: &CachedSession| needs_refresh(s) || Some(&s.access_token) == rejected;
        let session = self.current()?.ok_or_else(|| self.not_logged_in())?;
        if let Some(reason) = &session.ended {
            return Err(self.ended(reason));
        }
        if !stale(&session) {
            return Ok(session.access_token);
        }
        // One refresh at a time across tasks and processes; the loser finds the winner's
        // new token instead of spending a refresh token that was just rotated away.
        let _guard = self.lock().await?;
        let session = self.current()?.ok_or_else(|| self.not_logged_in())?;
        if let Some(reason) = &session.ended {
            return Err(self.ended(reason));
        }
        if !stale(&session) {
            return Ok(session.access_token);
        }
        let refreshed = self.refresh(&session).await?;
        Ok(refreshed.access_token)
    }

    /// A valid access token, as [`Session::valid_token`], with the DPoP key it is bound
    /// to, if it is.
    pub async fn valid_access(
        &self,
        rejected: Option<&Secret>,
    ) -> Result<(Secret, Option<DpopKey>), ClientError> {
        let token = self.valid_token(rejected).await?;
        let key = self
            .current()?
            .filter(|s| s.access_token == token)
            .and_then(|s| s.dpop_key);
        Ok((token, key))
    }

    /// Refreshes now, whatever the access token's expiry: whether the session still works
    /// (`auth status --check`). `None` when nobody is logged in.
    pub async fn check(&self) -> Result<Option<CachedSession>, ClientError> {
        let _guard = self.lock().await?;
        let Some(session) = self.current()? else {
            return Ok(None);
        };
        if let Some(reason) = &session.ended {
            return Err(self.ended(reason));
        }
        self.refresh(&session).await.map(Some)
    }

    /// Refreshes `session`; the caller holds the lock. A refusal that means the grant is
    /// over is recorded in the cache, so later commands say so without asking again.
    async fn refresh(&self, session: &CachedSession) -> Result<CachedSession, ClientError> {
        let Some(refresh_token) = &session.refresh_token else {
            return Err(self.end(
                session,
                "the access token expired and there is no refresh token",
            ));
        };
        let client = oauth_client(
            &self.client_id,
            self.client_secret.as_ref(),
            parse_url(&session.token_endpoint)?,
            None,
        );
        let status = StatusCell::default();
        let refresh_token = RefreshToken::new(refresh_token.expose().to_owned());
        let mut request = client.exchange_refresh_token(&refresh_token);
        // The login's own binding, not today's options: a refresh may only narrow what
        // was granted (RFC 8707 section 2.2), and the token must stay for its server.
        if let Some(indicator) = &session.resource_indicator {
            request = request.add_extra_param(indicator.param.as_str(), indicator.value.as_str());
        }
        // A bound login refreshes with a proof by its key: the provider binds the refresh
        // token to it, and the new access token to it again.
        let dpop = session.dpop_key.clone().map(Dpop::new);
        let result = request
            .request_async(&self.http.for_oauth_dpop(&status, dpop.as_ref()))
            .await;
        // An answer refused for its size says nothing about the grant: not ended.
        if result.is_err()
            && let Some(oversized) = status.oversized()
        {
            return Err(oversized);
        }
        let token = match result {
            Ok(token) => token,
            // The grant is over (expired, revoked, or a rotated token reused): only a new
            // login helps.
            Err(RequestTokenError::ServerResponse(response))
                if *response.error() == BasicErrorResponseType::InvalidGrant =>
            {
                return Err(self.end(session, &provider_text(&response)));
            }
            // A refusal without a readable reason (Glewlwyd: 400 and no body). The token
            // endpoint says no to this refresh token; nothing but a new login will help.
            Err(RequestTokenError::Other(_) | RequestTokenError::Parse(..))
                if matches!(
                    status.get(),
                    Some(StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED)
                ) =>
            {
                return Err(self.end(session, "the provider refused the refresh"));
            }
            // Other refusals are configuration faults or outages, said as such.
            Err(other) => return Err(token_error(other, &session.token_endpoint, &status)),
        };
        let origin = Origin {
            server: self.server.as_str(),
            issuer: &session.issuer,
            client_id: &self.client_id,
            token_endpoint: &session.token_endpoint,
            revocation_endpoint: session.revocation_endpoint.as_deref(),
            requested: &session.scopes,
            resource_indicator: session.resource_indicator.as_ref(),
            dpop_key: session.dpop_key.as_ref(),
        };
        let refreshed = session_from(&token, Some(session), &origin)?;
        // Store first: the old refresh token is already dead if the provider rotates them.
        self.cache.store(&refreshed)?;
        Ok(refreshed)
    }

    /// Records that `session` ended, and the error that says so.
    fn end(&self, session: &CachedSession, reason: &str) -> ClientError {
        let mut ended = session.clone();
        ended.ended = Some(reason.to_owned());
        // Best effort: if the mark cannot be written, the next command asks again.
        let _ = self.cache.store(&ended);
        self.ended(reason)
    }

    /// Stores `login`, a new login, in place of the cached one. A previous login of
    /// another user has its tokens revoked once the new one is stored.
    pub async fn adopt(&self, login: &CachedSession) -> Result<Adopted, ClientError> {
        let previous = {
            let _guard = self.lock().await?;
            // An unusable file or a login recorded for another server is replaced as is.
            let previous = self.current().ok().flatten();
            self.cache.store(login)?;
            previous
        };
        match previous {
            Some(previous) if previous.ended.is_none() => {
                if same_user(&previous, login) {
                    Ok(Adopted::SameUser)
                } else {
                    let revocation = self.revoke(&previous).await;
                    Ok(Adopted::Switched {
                        previous: Box::new(previous),
                        revocation,
                    })
                }
            }
            _ => Ok(Adopted::First),
        }
    }

    /// Revokes the tokens at the provider and deletes the login. When revocation fails the
    /// login stays, so logout can be tried again; `local` deletes it without revoking.
    pub async fn logout(&self, local: bool) -> Result<Logout, ClientError> {
        let _guard = self.lock().await?;
        let session = match self.cache.load()? {
            Loaded::Found(session) => *session,
            Loaded::Missing => return Ok(Logout::NotLoggedIn),
            Loaded::Unusable(_) => {
                self.cache.remove()?;
                return Ok(Logout::Unreadable);
            }
        };
        if local {
            self.cache.remove()?;
            return Ok(Logout::Local(session));
        }
        if session.ended.is_some() {
            self.cache.remove()?;
            return Ok(Logout::AlreadyEnded);
        }
        let outcome = self
            .revoke(&session)
            .await
            .map_err(|e| ClientError::LogoutIncomplete(Box::new(e)))?;
        self.cache.remove()?;
        Ok(match outcome {
            Revocation::Revoked => Logout::Revoked,
            Revocation::NotOffered => Logout::CacheOnly,
            Revocation::RefusedToPublicClient => Logout::RefusedToPublicClient(session),
        })
    }
}

/// Whether two logins are the same person, as far as can be told.
pub fn same_user(a: &CachedSession, b: &CachedSession) -> bool {
    match (&a.subject, &b.subject) {
        (Some(x), Some(y)) => x == y && a.issuer == b.issuer,
        // Without subjects, the names decide; without those either, nothing tells them
        // apart and nothing is asked.
        _ => match (&a.name, &b.name) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token_cache::CACHE_VERSION;

    fn session(expires_in: i64, lifetime: u64) -> CachedSession {
        CachedSession {
            version: CACHE_VERSION,
            server: String::new(),
            issuer: String::new(),
            client_id: String::new(),
            token_endpoint: String::new(),
            revocation_endpoint: None,
            access_token: Secret::new(""),
            refresh_token: None,
            expires_at: Some(Utc::now().timestamp() + expires_in),
            lifetime: Some(lifetime),
            scopes: Vec::new(),
            subject: None,
            name: None,
            ended: None,
            resource_indicator: None,
            dpop_key: None,
        }
    }

    #[test]
    fn fresh_token_is_kept_and_nearly_expired_one_is_refreshed() {
        assert!(!needs_refresh(&session(3000, 3600)));
        assert!(needs_refresh(&session(20, 3600)));
        assert!(needs_refresh(&session(-5, 3600)));
    }

    #[test]
    fn short_lived_tokens_get_half_their_life_as_margin() {
        assert!(!needs_refresh(&session(9, 10)));
        assert!(needs_refresh(&session(4, 10)));
    }

    #[test]
    fn users_are_told_apart_by_subject_then_name() {
        let user = |subject: Option<&str>, name: Option<&str>| CachedSession {
            subject: subject.map(str::to_owned),
            name: name.map(str::to_owned),
            ..session(0, 0)
        };
        assert!(same_user(
            &user(Some("a"), None),
            &user(Some("a"), Some("x"))
        ));
        assert!(!same_user(&user(Some("a"), None), &user(Some("b"), None)));
        assert!(!same_user(
            &user(None, Some("bob")),
            &user(None, Some("alice"))
        ));
        assert!(same_user(&user(None, None), &user(Some("b"), None)));
    }

    #[test]
    fn debug_output_hides_the_client_secret() {
        let dir = tempfile::tempdir().unwrap();
        let session = Session::new(
            Http::new(&crate::http::HttpOptions::default()).unwrap(),
            ServerUrl::parse("test", "http://localhost:8080").unwrap(),
            "cli".into(),
            Some(Secret::new("hunter2-session")),
            dir.path(),
        );
        let text = format!("{session:?}");
        assert!(!text.contains("hunter2-session"), "{text}");
    }
}
