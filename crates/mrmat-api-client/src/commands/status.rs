//! `auth status` (and `whoami`): every cached login, every account of each server with
//! the active one marked, and whether it works. Without
//! `--check` that is judged from the cache (an expired access token with a refresh token
//! is "refreshable", not "expired"); with `--check` each login is refreshed once, which
//! is the only way to know the provider still honours it.

use chrono::{DateTime, Utc};
use mrmat_api_client::ClientError;
use mrmat_api_client::TokenSource;
use mrmat_api_client::authorized::TOKEN_ENV;
use mrmat_api_client::binding::DEFAULT_PARAM;
use mrmat_api_client::server_url::ServerUrl;
use mrmat_api_client::session::{Session, needs_refresh};
use mrmat_api_client::token_cache::{CachedSession, Loaded, TokenCache};
use serde::Serialize;

use super::{Context, TIME_FORMAT, quote};
use crate::cli::StatusArgs;
use crate::output::{self, Table};

/// Whether a login works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum State {
    /// Its access token is valid (or `--check` just refreshed it).
    Active,
    /// Its access token expired; the refresh token will get a new one on next use.
    Refreshable,
    /// It can get no more tokens: log in again.
    Ended,
    /// `--check` could not tell (the provider did not answer).
    Unknown,
    /// The cache file cannot be read.
    Unusable,
}

/// One login, as `auth status` shows it.
#[derive(Debug, Serialize)]
struct LoginStatus {
    server: Option<String>,
    /// The account its server's commands use.
    active: bool,
    /// The chosen server's active account (of the chosen client): the login commands use.
    current: bool,
    provider: Option<String>,
    client_id: Option<String>,
    subject: Option<String>,
    name: Option<String>,
    scopes: Vec<String>,
    /// What the login asked its tokens to be bound to (RFC 8707); `None` when it sent
    /// no indicator.
    resource: Option<String>,
    /// The parameter that carried it: `resource`, or the provider's name for it.
    resource_param: Option<String>,
    /// Whether the tokens are bound to the login's DPoP key (RFC 9449).
    dpop: bool,
    /// That key's RFC 7638 thumbprint (public: what the token's `cnf.jkt` names).
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    refresh_token: bool,
    state: State,
    /// Whether `--check` refreshed it to find out.
    checked: bool,
    /// Why it ended or is unknown or unusable.
    reason: Option<String>,
    /// The cache file, for unusable ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

/// What `auth status --output json` prints.
#[derive(Debug, Serialize)]
struct Status {
    server: String,
    logins: Vec<LoginStatus>,
}

impl LoginStatus {
    fn of(session: &CachedSession, active: bool, current: bool) -> Self {
        let (state, reason) = match &session.ended {
            Some(reason) => (State::Ended, Some(reason.clone())),
            None if !needs_refresh(session) => (State::Active, None),
            None if session.refresh_token.is_some() => (State::Refreshable, None),
            None => (
                State::Ended,
                Some("the access token expired and there is no refresh token".into()),
            ),
        };
        Self {
            server: Some(session.server.clone()),
            active,
            current,
            provider: Some(session.issuer.clone()),
            client_id: Some(session.client_id.clone()),
            subject: session.subject.clone(),
            name: session.name.clone(),
            scopes: session.scopes.clone(),
            resource: session.resource_indicator.as_ref().map(|r| r.value.clone()),
            resource_param: session.resource_indicator.as_ref().map(|r| r.param.clone()),
            dpop: session.dpop_key.is_some(),
            dpop_jkt: session.dpop_key.as_ref().map(|k| k.thumbprint().to_owned()),
            expires_at: session
                .expires_at
                .and_then(|at| DateTime::<Utc>::from_timestamp(at, 0)),
            refresh_token: session.refresh_token.is_some(),
            state,
            checked: false,
            reason,
            file: None,
        }
    }

    fn unusable(cache: &TokenCache, reason: String) -> Self {
        Self {
            server: None,
            active: false,
            current: false,
            provider: None,
            client_id: None,
            subject: None,
            name: None,
            scopes: Vec::new(),
            resource: None,
            resource_param: None,
            dpop: false,
            dpop_jkt: None,
            expires_at: None,
            refresh_token: false,
            state: State::Unusable,
            checked: false,
            reason: Some(reason),
            file: Some(cache.path().display().to_string()),
        }
    }
}

impl Context {
    pub(super) async fn status(&self, args: StatusArgs) -> Result<(), ClientError> {
        if matches!(self.tokens(), TokenSource::Fixed(_)) {
            self.note(format!(
                "Note: {TOKEN_ENV} is set; API commands send it instead of these logins."
            ));
        }
        let mut logins = Vec::new();
        for (cache, loaded) in TokenCache::all(&self.cache_dir)? {
            match loaded {
                Loaded::Found(accounts) => {
                    let chosen = cache.path() == self.session.cache().path()
                        && accounts.active.server == self.settings.server.as_str();
                    for (i, session) in accounts.iter().enumerate() {
                        let active = i == 0;
                        let mut status = LoginStatus::of(session, active, chosen && active);
                        if args.check && status.state != State::Ended {
                            self.check(session, &cache, &mut status).await;
                        }
                        logins.push(status);
                    }
                }
                Loaded::Unusable(reason) => logins.push(LoginStatus::unusable(&cache, reason)),
                Loaded::Missing => {}
            }
        }
        // The chosen server's accounts first; the others by server. Stable: each server's
        // active account stays ahead of its others.
        let chosen = Some(self.settings.server.as_str());
        logins.sort_by(|a, b| {
            (a.server.as_deref() != chosen, &a.server)
                .cmp(&(b.server.as_deref() != chosen, &b.server))
        });
        let status = Status {
            server: self.settings.server.to_string(),
            logins,
        };
        output::print(self.output, &status, |s| self.status_table(s))?;
        let current = status.logins.iter().find(|l| l.current);
        match current {
            None => Err(ClientError::NotLoggedIn {
                server: self.settings.server.to_string(),
            }),
            Some(login) if login.state == State::Ended => Err(ClientError::SessionEnded {
                server: self.settings.server.to_string(),
                reason: login.reason.clone().unwrap_or_default(),
            }),
            // A script asked to know: "cannot tell" must not read as "works".
            Some(login) if login.state == State::Unknown => Err(ClientError::Unchecked {
                server: self.settings.server.to_string(),
                reason: login.reason.clone().unwrap_or_default(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// Refreshes `session` once (with this client's secret when it is this client) and
    /// records what that proved.
    async fn check(&self, session: &CachedSession, cache: &TokenCache, status: &mut LoginStatus) {
        let Ok(server) = ServerUrl::parse("cache", &session.server) else {
            return;
        };
        let secret = (session.client_id == self.settings.client_id)
            .then(|| self.settings.client_secret.clone())
            .flatten();
        let checker = Session::new(
            self.http.clone(),
            server,
            session.client_id.clone(),
            secret,
            &self.cache_dir,
        );
        // Only a file this version would find for that login; others are left alone.
        if checker.cache().path() != cache.path() {
            return;
        }
        status.checked = true;
        match checker.check(session).await {
            Ok(Some(refreshed)) => {
                *status = LoginStatus::of(&refreshed, status.active, status.current);
                status.checked = true;
                status.state = State::Active;
            }
            Ok(None) => {}
            Err(ClientError::SessionEnded { reason, .. }) => {
                status.state = State::Ended;
                status.reason = Some(reason);
            }
            Err(e) => {
                status.state = State::Unknown;
                status.reason = Some(e.to_string());
            }
        }
    }

    fn status_table(&self, status: &Status) -> Table {
        let mut lines: Vec<(&str, String)> = Vec::new();
        for (i, login) in status.logins.iter().enumerate() {
            if i > 0 {
                lines.push(("", String::new()));
            }
            let Some(server) = &login.server else {
                lines.push((
                    "unusable",
                    format!(
                        "{} ({}); the next login replaces it",
                        login.file.as_deref().unwrap_or("?"),
                        login.reason.as_deref().unwrap_or("")
                    ),
                ));
                continue;
            };
            let this_server = server == status.server.as_str();
            let marker = if this_server { "  (this server)" } else { "" };
            lines.push(("server", format!("{server}{marker}")));
            let user = match (&login.name, &login.subject) {
                (Some(name), Some(subject)) if name != subject => {
                    format!("{name} (subject {subject})")
                }
                (Some(name), _) => name.clone(),
                (None, Some(subject)) => subject.clone(),
                (None, None) => "-".into(),
            };
            if login.active {
                lines.push(("user", format!("{user}  (active)")));
            } else {
                lines.push(("user", format!("{user}  (inactive)")));
                let name = login
                    .name
                    .as_deref()
                    .or(login.subject.as_deref())
                    .unwrap_or("");
                let args = format!(" auth switch --user {}", quote(name));
                let switch = if this_server {
                    self.command(&args)
                } else {
                    format!("`mrmat-api-client --server {server}{args}`")
                };
                lines.push(("to use it", switch));
            }
            lines.push(("provider", login.provider.clone().unwrap_or_default()));
            lines.push(("client", login.client_id.clone().unwrap_or_default()));
            lines.push(("scopes", login.scopes.join(" ")));
            lines.push(("tokens for", resource_text(login)));
            lines.push(("bound to", binding_text(login)));
            lines.push(("access token", access_text(login)));
            lines.push((
                "refresh token",
                if login.refresh_token { "held" } else { "none" }.into(),
            ));
            lines.push(("status", self.state_text(login, server)));
        }
        if lines.is_empty() {
            return Table::line("No logins.");
        }
        Table::fields(&lines)
    }

    fn state_text(&self, login: &LoginStatus, server: &str) -> String {
        let reason = login.reason.as_deref().unwrap_or("");
        let login_command = if server == self.settings.server.as_str() {
            self.command(" login")
        } else {
            format!("`mrmat-api-client --server {server} login`")
        };
        match (login.state, login.checked) {
            (State::Active, true) => "works (checked: refreshed just now)".into(),
            // "valid", not "active": beside an inactive account, "active" read as the
            // account's standing, not its token's.
            (State::Active, false) => "valid".into(),
            (State::Refreshable, _) => {
                "the access token is due for renewal; the refresh token renews it on next use (--check tries now)"
                    .into()
            }
            (State::Ended, _) => format!("ended ({reason}); log in again: {login_command}"),
            (State::Unknown, _) => format!("unknown ({reason})"),
            (State::Unusable, _) => format!("unusable ({reason})"),
        }
    }
}

/// What the login's tokens were asked for, for people.
fn resource_text(login: &LoginStatus) -> String {
    match (&login.resource, login.resource_param.as_deref()) {
        (Some(resource), Some(DEFAULT_PARAM) | None) => resource.clone(),
        (Some(resource), Some(param)) => format!("{resource} (asked as {param})"),
        (None, _) => "no server named (the login sent no resource indicator)".into(),
    }
}

/// Whether the login's tokens need its key, for people.
fn binding_text(login: &LoginStatus) -> String {
    match &login.dpop_jkt {
        Some(jkt) => format!("a DPoP key on this machine (thumbprint {jkt})"),
        None => "nothing: bearer tokens, usable by whoever holds them".into(),
    }
}

fn access_text(login: &LoginStatus) -> String {
    if login.state == State::Ended {
        // Its expiry no longer matters: the provider refuses the whole session.
        return "unusable: the session has ended".into();
    }
    match login.expires_at {
        Some(at) => {
            let left = at - Utc::now();
            if left.num_seconds() > 0 {
                format!(
                    "valid until {} (in {})",
                    at.format(TIME_FORMAT),
                    duration_words(left.num_seconds())
                )
            } else {
                format!("expired at {}", at.format(TIME_FORMAT))
            }
        }
        None => "expiry unknown".into(),
    }
}

/// "45 seconds", "59 minutes", "3 hours", "2 days".
fn duration_words(seconds: i64) -> String {
    mrmat_api_client::words::duration(u64::try_from(seconds).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_said_in_the_largest_whole_unit() {
        assert_eq!(duration_words(45), "45 seconds");
        assert_eq!(duration_words(3599), "59 minutes");
        assert_eq!(duration_words(3600), "1 hour");
        assert_eq!(duration_words(200_000), "2 days");
    }
}
