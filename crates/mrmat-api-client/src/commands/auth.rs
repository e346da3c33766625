//! `login`, `logout`, `auth switch` and `token`: getting, ending, choosing between and
//! handing out logins.

use std::io::IsTerminal;

use chrono::{DateTime, Utc};
use mrmat_api_client::ClientError;
use mrmat_api_client::TokenSource;
use mrmat_api_client::device_login::{DevicePrompt, expiry_words};
use mrmat_api_client::dpop;
use mrmat_api_client::provider::{self, Provider};
use mrmat_api_client::session::{LoggedOut, Logout, Tokens, Which};
use mrmat_api_client::token_cache::{Accounts, Added, CachedSession, same_user};

use super::{Context, TIME_FORMAT};
use crate::cli::{LoginArgs, LogoutArgs, OutputFormat, SwitchArgs};
use crate::output;

impl Context {
    /// The provider, the scopes to ask for, and whether to ask for DPoP-bound tokens.
    async fn provider(
        &self,
        chosen: &[String],
    ) -> Result<(Provider, Vec<String>, bool), ClientError> {
        let (provider, api_scopes, metadata) = match &self.settings.discovery_url {
            Some(url) => {
                self.trace(format!("discovery at {url}"));
                let provider = provider::discover(&self.http, url).await?;
                // Only to learn whether the server takes DPoP: a server that cannot say
                // gets bearer tokens, as before.
                let metadata = if self.settings.no_dpop {
                    None
                } else {
                    self.api().protected_resource_metadata().await.ok()
                };
                (provider, Vec::new(), metadata)
            }
            None => {
                self.trace(format!(
                    "finding the identity provider through {}",
                    self.settings.server
                ));
                let api = self.api();
                let metadata = api.protected_resource_metadata().await?;
                let (provider, scopes) =
                    provider::discover_named_by(&self.http, &api, &metadata).await?;
                (provider, scopes, Some(metadata))
            }
        };
        let api_scopes = choose_scopes(api_scopes, chosen)?;
        let scopes = provider::login_scopes(&provider, &api_scopes);
        let dpop = !self.settings.no_dpop
            && metadata.is_some_and(|m| dpop::supported(&m.dpop_signing_alg_values_supported));
        Ok((provider, scopes, dpop))
    }

    pub(super) async fn login(&self, args: LoginArgs) -> Result<(), ClientError> {
        let (provider, scopes, dpop) = self.provider(&args.scopes).await?;
        self.trace(format!("asking for the scopes {}", scopes.join(" ")));
        if dpop {
            self.trace(format!(
                "the server takes DPoP: asking for tokens bound to a new {} key",
                dpop::ALGORITHM
            ));
        }
        let session = self.session.clone().with_dpop(dpop);
        let login = session
            .device_login(&provider, &scopes, |prompt: &DevicePrompt| {
                self.show_prompt(prompt);
                if !args.no_browser {
                    self.open_browser(prompt);
                }
                self.progress
                    .start("Waiting for the login to be approved...");
            })
            .await;
        self.progress.clear();
        let login = login?;

        // Issued but not stored yet: Ctrl-C until it is revokes it.
        self.hold(Some(&login));
        let added = self.session.adopt(&login).await;
        self.hold(None);
        let added = match added {
            Ok(added) => added,
            Err(e) => {
                // Not stored, so nobody could use or log out of it: not left live.
                if let Err(revoking) = self.session.revoke(&login).await {
                    self.warn(format!(
                        "revoking the login that could not be stored failed: {revoking}"
                    ));
                }
                return Err(e);
            }
        };
        self.note(format!(
            "Logged in to {} as {}; the access token is valid until {}.",
            self.settings.server,
            login.who(),
            expiry_text(&login)
        ));
        if let Added::Another(previous) = added {
            self.note(format!(
                "{} stays logged in too: {} makes that account active again.",
                previous.who(),
                self.command(" auth switch")
            ));
        }
        if login.refresh_token.is_none() {
            self.note("The provider issued no refresh token: log in again when the token expires.");
        }
        Ok(())
    }

    /// Records `login` as issued but not kept (Ctrl-C revokes it), or, with `None`, that
    /// there is none.
    fn hold(&self, login: Option<&CachedSession>) {
        if let Ok(mut unkept) = self.unkept.lock() {
            *unkept = login.cloned();
        }
    }

    /// Asks `question` on stderr and reads the answer from stdin; `None` when there is no
    /// terminal to ask on, or nothing could be read.
    async fn ask(&self, question: &str) -> Option<String> {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return None;
        }
        self.progress
            .ask(&mrmat_api_client::sanitise::printable(question));
        // Off the runtime's thread, so Ctrl-C still cancels while the person thinks.
        let answer = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await;
        self.progress.asked();
        match answer {
            Ok(Ok(line)) => Some(line.trim().to_owned()),
            _ => None,
        }
    }

    pub(super) async fn switch(&self, args: SwitchArgs) -> Result<(), ClientError> {
        let server = self.settings.server.to_string();
        let accounts = self
            .session
            .accounts()?
            .ok_or_else(|| ClientError::NotLoggedIn {
                server: server.clone(),
            })?;
        let unknown = |user: &str, accounts: &Accounts| ClientError::UnknownAccount {
            server: server.clone(),
            user: user.to_owned(),
            known: accounts.names(),
        };
        let target = match (&args.user, accounts.inactive.as_slice()) {
            (Some(user), _) => accounts
                .named(user)
                .cloned()
                .ok_or_else(|| unknown(user, &accounts))?,
            (None, []) => {
                return Err(ClientError::NoOtherAccount {
                    server,
                    user: accounts.active.who().to_owned(),
                });
            }
            // Two accounts: the other one, as `cd -` goes back.
            (None, [other]) => other.clone(),
            (None, _) => self.choose_account(&accounts).await?,
        };
        if same_user(&accounts.active, &target) {
            self.note(format!(
                "{} is already the active account on {server}.",
                target.who()
            ));
            return Ok(());
        }
        match self.session.switch(&target).await? {
            Some(_) => {
                self.note(format!(
                    "Switched the active account on {server} to {}.",
                    target.who()
                ));
                Ok(())
            }
            // Logged out by another command meanwhile.
            None => {
                let now = self.session.accounts()?.unwrap_or(accounts);
                Err(unknown(target.who(), &now))
            }
        }
    }

    /// Asks a person at a terminal which of the accounts to switch to; without a terminal,
    /// the error that lists them.
    async fn choose_account(&self, accounts: &Accounts) -> Result<CachedSession, ClientError> {
        let server = self.settings.server.to_string();
        let all: Vec<&CachedSession> = accounts.iter().collect();
        let which = || ClientError::WhichAccount {
            server: server.clone(),
            known: accounts.names(),
        };
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(which());
        }
        // A line each, each made printable on its own: a name is the provider's text.
        self.progress
            .println(&mrmat_api_client::sanitise::printable(&format!(
                "Accounts logged in to {server}:"
            )));
        for (i, account) in all.iter().enumerate() {
            let marker = if i == 0 { "  (active)" } else { "" };
            self.progress
                .println(&mrmat_api_client::sanitise::printable(&format!(
                    "  {}  {}{marker}",
                    i + 1,
                    account.who()
                )));
        }
        let question = format!("Switch to which account? [1-{}] ", all.len());
        let answer = self.ask(&question).await.ok_or_else(which)?;
        let chosen = answer
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| all.get(i).copied())
            .or_else(|| accounts.named(&answer));
        chosen.cloned().ok_or_else(|| {
            ClientError::Config(format!(
                "{answer:?} is none of the accounts 1-{}; nothing was switched",
                all.len()
            ))
        })
    }

    /// Opens the login page for a person at a terminal, where there is a browser.
    fn open_browser(&self, prompt: &DevicePrompt) {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return;
        }
        let Some(command) = crate::browser::command() else {
            return;
        };
        let page = prompt
            .verification_uri_complete
            .as_deref()
            .unwrap_or(&prompt.verification_uri);
        match crate::browser::open(&command, page) {
            Ok(()) => self.note(format!(
                "Opened the page in your browser ({}); check that it shows the code {}.",
                command.join(" "),
                prompt.user_code
            )),
            Err(e) => self.warn(format!(
                "cannot open a browser ({}: {e}): open the page yourself",
                command.join(" ")
            )),
        }
    }

    fn show_prompt(&self, prompt: &DevicePrompt) {
        // Shown even with --quiet: there is no login without it.
        let mut text = String::from("\n");
        match &prompt.verification_uri_complete {
            Some(complete) => {
                text.push_str(&format!(
                    "To log in, open this page in a browser:\n\n    {complete}\n\n"
                ));
                text.push_str(&format!(
                    "or open {} and enter the code\n\n    {}\n\n",
                    prompt.verification_uri, prompt.user_code
                ));
            }
            // The code on a line of its own, where the eye finds it and a double click
            // selects it whole.
            None => text.push_str(&format!(
                "To log in, open {} in a browser and enter the code\n\n    {}\n\n",
                prompt.verification_uri, prompt.user_code
            )),
        }
        text.push_str(&format!(
            "(the code expires in {})\n",
            expiry_words(prompt.expires_in)
        ));
        self.progress.println(&text);
        // A clamped interval or code life, said once, even with --quiet.
        for adjusted in &prompt.adjusted {
            self.warn(adjusted);
        }
    }

    pub(super) async fn logout(&self, args: LogoutArgs) -> Result<(), ClientError> {
        let server = &self.settings.server;
        let which = match (&args.user, args.all) {
            (Some(user), _) => Which::User(user),
            (None, true) => Which::All,
            (None, false) => Which::Active,
        };
        let (accounts, active, active_changed) = match self
            .session
            .logout(which, args.local)
            .await?
        {
            Logout::Done {
                accounts,
                active,
                active_changed,
            } => (accounts, active, active_changed),
            Logout::NotLoggedIn => {
                self.note(format!("Not logged in to {server}."));
                return Ok(());
            }
            Logout::Unreadable => {
                self.note(
                    "Logged out; the cache was unreadable and is deleted, nothing could be revoked.",
                );
                return Ok(());
            }
        };
        for LoggedOut { account, tokens } in &accounts {
            let who = account.who();
            match tokens {
                Tokens::Revoked => {
                    self.note(format!("Logged out of {server} as {who}; the tokens are revoked."));
                }
                Tokens::NotOffered => self.note(format!(
                    "Logged out of {server} as {who}; the provider cannot revoke tokens, they expire on their own."
                )),
                Tokens::Kept => self.note(format!(
                    "Forgot the login of {who} to {server} on this machine; its tokens were not revoked and stay valid until they expire (the access token at {}).",
                    expiry_text(account)
                )),
                Tokens::RefusedToPublicClient => {
                    self.warn(format!(
                        "the identity provider does not let this client revoke its tokens: they stay valid until they expire (the access token at {})",
                        expiry_text(account)
                    ));
                    self.note(format!("Logged out of {server} as {who} on this machine."));
                }
                Tokens::AlreadyEnded => self.note(format!(
                    "Logged out of {server} as {who}; the session had already ended."
                )),
            }
        }
        if active_changed && let Some(active) = active {
            self.note(format!(
                "{} is now the active account on {server}.",
                active.who()
            ));
        }
        Ok(())
    }

    pub(super) async fn token(&self) -> Result<(), ClientError> {
        let (token, login) = match self.tokens() {
            TokenSource::Fixed(token) => (token, None),
            TokenSource::Session(session) => {
                let token = session.valid_token(None).await?;
                // The login the token came from, for its expiry and binding.
                let login = session.current().ok().flatten();
                (token, login)
            }
        };
        // Printing the token is this command's whole purpose.
        if !(self.output_asked && self.output == OutputFormat::Json) {
            return output::write(&format!("{}\n", token.expose()));
        }
        let login = login.filter(|l| l.access_token.expose() == token.expose());
        let json = serde_json::json!({
            "access_token": token.expose(),
            "token_type": if login.as_ref().is_some_and(|l| l.dpop_key.is_some()) { "DPoP" } else { "Bearer" },
            "expires_at": login
                .and_then(|l| l.expires_at)
                .and_then(|at| DateTime::<Utc>::from_timestamp(at, 0)),
        });
        output::write(&format!("{json:#}\n"))
    }
}

/// When the access token of `session` expires, for people.
pub(super) fn expiry_text(session: &CachedSession) -> String {
    match session
        .expires_at
        .and_then(|at| DateTime::<Utc>::from_timestamp(at, 0))
    {
        Some(at) => at.format(TIME_FORMAT).to_string(),
        None => "an unknown time".into(),
    }
}

/// The API scopes a login asks for: `chosen` when given (each one the server offers),
/// else all of `offered`.
fn choose_scopes(offered: Vec<String>, chosen: &[String]) -> Result<Vec<String>, ClientError> {
    let chosen: Vec<String> = chosen
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if chosen.is_empty() {
        return Ok(offered);
    }
    if let Some(unknown) = chosen
        .iter()
        .find(|s| !offered.is_empty() && !offered.contains(s))
    {
        return Err(ClientError::Config(format!(
            "--scopes: the server offers no scope {unknown}; it offers {}",
            offered.join(", ")
        )));
    }
    Ok(chosen)
}
