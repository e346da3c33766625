//! Keeping the logins to one server: its accounts' cached tokens, refreshed with rotation
//! before they expire, added to by a new login, switched between, ended by logout. A
//! session hands out the active account's tokens, and only ever those of a login made for
//! its own server.

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
use crate::revocation::{Revocation, RevokingClient, revoke};
use crate::server_url::ServerUrl;
use crate::token_cache::{Accounts, Added, CachedSession, Loaded, TokenCache, same_user};

/// What logging out did.
#[derive(Debug)]
pub enum Logout {
    /// Accounts logged out, each with what became of its tokens, and the account active
    /// afterwards, if any remains.
    Done {
        /// The accounts logged out, in the order they were.
        accounts: Vec<LoggedOut>,
        /// The active account now, when one remains.
        active: Option<Box<CachedSession>>,
        /// Whether the active account changed (it was logged out, another took over).
        active_changed: bool,
    },
    /// Nobody was logged in.
    NotLoggedIn,
    /// The cache file was unreadable; it was deleted, nothing could be revoked.
    Unreadable,
}

/// One account logged out.
#[derive(Debug)]
pub struct LoggedOut {
    /// The account.
    pub account: CachedSession,
    /// What became of its tokens.
    pub tokens: Tokens,
}

/// What became of a logged-out account's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    /// Revoked at the provider.
    Revoked,
    /// The provider has no revocation endpoint; they expire on their own.
    NotOffered,
    /// Asked to (`--local`): not revoked, only forgotten.
    Kept,
    /// The provider does not let this public client revoke; they stay valid until they
    /// expire.
    RefusedToPublicClient,
    /// The session had already ended; its tokens were dead.
    AlreadyEnded,
}

/// Which accounts to log out.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// The active one.
    Active,
    /// The one this names (its name or subject).
    User(&'a str),
    /// Every one.
    All,
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
    /// Revokes `session`'s tokens at the provider, as this session's client.
    pub async fn revoke(&self, session: &CachedSession) -> Result<Revocation, ClientError> {
        let client = RevokingClient {
            client_id: &self.client_id,
            client_secret: self.client_secret.as_ref(),
        };
        revoke(&self.http, client, session).await
    }

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

    /// The stored accounts, if any. An unusable cache file is an error a new login
    /// fixes; logins recorded for another server are never handed out.
    pub fn accounts(&self) -> Result<Option<Accounts>, ClientError> {
        match self.cache.load()? {
            Loaded::Missing => Ok(None),
            Loaded::Found(accounts) => {
                if let Some(other) = accounts.iter().find(|a| a.server != self.server.as_str()) {
                    return Err(ClientError::ServerMismatch {
                        login: other.server.clone(),
                        server: self.server.to_string(),
                    });
                }
                Ok(Some(*accounts))
            }
            Loaded::Unusable(reason) => Err(ClientError::CacheUnusable {
                path: self.cache.path().display().to_string(),
                reason,
            }),
        }
    }

    /// The active account's login, if any: the one commands use.
    pub fn current(&self) -> Result<Option<CachedSession>, ClientError> {
        Ok(self.accounts()?.map(|a| a.active))
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

    /// Refreshes `account` now, whatever its access token's expiry: whether it still
    /// works (`auth status --check`). `None` when that account is no longer logged in.
    pub async fn check(
        &self,
        account: &CachedSession,
    ) -> Result<Option<CachedSession>, ClientError> {
        let _guard = self.lock().await?;
        let Some(session) = self
            .accounts()?
            .and_then(|all| all.iter().find(|a| same_user(a, account)).cloned())
        else {
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
        self.put(&refreshed)?;
        Ok(refreshed)
    }

    /// Stores `updated` in the place of its account, the others as they are; the caller
    /// holds the lock, so no other process changed them since they were read.
    fn put(&self, updated: &CachedSession) -> Result<(), ClientError> {
        let mut accounts = match self.cache.load()? {
            Loaded::Found(accounts) => *accounts,
            // Not reached under the lock after a read that found the account; stored
            // all the same, as the old refresh token may already be dead.
            Loaded::Missing | Loaded::Unusable(_) => Accounts::new(updated.clone()),
        };
        accounts.replace(updated.clone());
        self.cache.store(&accounts)
    }

    /// Records that `session` ended, and the error that says so.
    fn end(&self, session: &CachedSession, reason: &str) -> ClientError {
        let mut ended = session.clone();
        ended.ended = Some(reason.to_owned());
        // Best effort: if the mark cannot be written, the next command asks again.
        let _ = self.put(&ended);
        self.ended(reason)
    }

    /// Stores `login`, a new login, as the active account. The same user's old tokens
    /// are replaced; another user's account stays, inactive, with its tokens.
    pub async fn adopt(&self, login: &CachedSession) -> Result<Added, ClientError> {
        let _guard = self.lock().await?;
        // An unusable file or logins recorded for another server are replaced as they are.
        let (accounts, added) = match self.accounts().ok().flatten() {
            Some(mut accounts) => {
                let added = accounts.add(login.clone());
                (accounts, added)
            }
            None => (Accounts::new(login.clone()), Added::First),
        };
        self.cache.store(&accounts)?;
        Ok(added)
    }

    /// Makes the account of `user` (as [`same_user`] tells) the active one; the accounts
    /// afterwards. Not logged in when there are none, and `None` when that account is no
    /// longer there (another process logged it out).
    pub async fn switch(&self, user: &CachedSession) -> Result<Option<Accounts>, ClientError> {
        let _guard = self.lock().await?;
        let mut accounts = self.accounts()?.ok_or_else(|| self.not_logged_in())?;
        if !accounts.activate(user) {
            return Ok(None);
        }
        self.cache.store(&accounts)?;
        Ok(Some(accounts))
    }

    /// Logs out `which` accounts: revokes their tokens at the provider and deletes them;
    /// when the active one goes, the most recently active other account takes over. When
    /// revocation fails the account stays, so logout can be tried again, and the error
    /// says so; `local` deletes without revoking.
    pub async fn logout(&self, which: Which<'_>, local: bool) -> Result<Logout, ClientError> {
        let _guard = self.lock().await?;
        let accounts = match self.cache.load()? {
            Loaded::Found(accounts) => *accounts,
            Loaded::Missing => return Ok(Logout::NotLoggedIn),
            Loaded::Unusable(_) => {
                self.cache.remove()?;
                return Ok(Logout::Unreadable);
            }
        };
        let chosen: Vec<CachedSession> = match which {
            Which::Active => vec![accounts.active.clone()],
            Which::User(user) => match accounts.named(user) {
                Some(account) => vec![account.clone()],
                None => {
                    return Err(ClientError::UnknownAccount {
                        server: self.server.to_string(),
                        user: user.to_owned(),
                        known: accounts.names(),
                    });
                }
            },
            Which::All => accounts.iter().cloned().collect(),
        };
        let was_active = accounts.active.clone();
        let mut remaining = Some(accounts);
        let mut done = Vec::new();
        for account in chosen {
            let tokens = if local {
                Tokens::Kept
            } else if account.ended.is_some() {
                Tokens::AlreadyEnded
            } else {
                match self.revoke(&account).await {
                    Ok(Revocation::Revoked) => Tokens::Revoked,
                    Ok(Revocation::NotOffered) => Tokens::NotOffered,
                    Ok(Revocation::RefusedToPublicClient) => Tokens::RefusedToPublicClient,
                    // Stops at the first failure: the accounts of one server share their
                    // provider, so the next would fail alike. Those logged out so far stay
                    // logged out.
                    Err(e) => {
                        self.keep(remaining.as_ref())?;
                        return Err(ClientError::LogoutIncomplete(Box::new(e)));
                    }
                }
            };
            remaining = remaining.and_then(|r| r.without(&account));
            done.push(LoggedOut { account, tokens });
        }
        self.keep(remaining.as_ref())?;
        let active_changed = remaining
            .as_ref()
            .is_none_or(|r| !same_user(&r.active, &was_active));
        Ok(Logout::Done {
            accounts: done,
            active: remaining.map(|r| Box::new(r.active)),
            active_changed,
        })
    }

    /// Stores what remains after a logout, or deletes the file when nothing does.
    fn keep(&self, remaining: Option<&Accounts>) -> Result<(), ClientError> {
        match remaining {
            Some(accounts) => self.cache.store(accounts),
            None => self.cache.remove(),
        }
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
