//! `login`, `logout` and `token`: getting, ending and handing out a login.

use std::io::IsTerminal;

use chrono::{DateTime, Utc};
use mrmat_api_client::ClientError;
use mrmat_api_client::TokenSource;
use mrmat_api_client::device_login::{DevicePrompt, expiry_words};
use mrmat_api_client::dpop;
use mrmat_api_client::provider::{self, Provider};
use mrmat_api_client::revocation::Revocation;
use mrmat_api_client::session::{Adopted, Logout, same_user};
use mrmat_api_client::token_cache::CachedSession;

use super::{Context, TIME_FORMAT};
use crate::cli::{LoginArgs, LogoutArgs, OutputFormat};
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

        if let Ok(mut unkept) = self.unkept.lock() {
            *unkept = Some(login.clone());
        }
        let refused = match self.session.current().ok().flatten() {
            Some(previous)
                if previous.ended.is_none()
                    && !same_user(&previous, &login)
                    && !args.switch_account =>
            {
                (!self.confirm_switch(&previous, &login).await).then_some(previous)
            }
            _ => None,
        };
        // Kept from here on, or revoked below: Ctrl-C no longer needs to revoke it.
        if let Ok(mut unkept) = self.unkept.lock() {
            unkept.take();
        }
        if let Some(previous) = refused {
            // The unwanted login is not left live at the provider.
            if let Err(e) = self.session.revoke(&login).await {
                self.warn(format!("revoking the new login failed: {e}"));
            }
            return Err(ClientError::AccountSwitch {
                server: self.settings.server.to_string(),
                old: previous.who().to_owned(),
                new: login.who().to_owned(),
            });
        }

        let adopted = self.session.adopt(&login).await?;
        self.note(format!(
            "Logged in to {} as {}; the access token is valid until {}.",
            self.settings.server,
            login.who(),
            expiry_text(&login)
        ));
        if let Adopted::Switched {
            previous,
            revocation,
        } = adopted
        {
            let who = previous.who();
            match revocation {
                Ok(Revocation::Revoked) => {
                    self.note(format!("The login of {who} is replaced and its tokens revoked."));
                }
                Ok(Revocation::NotOffered) => self.note(format!(
                    "The login of {who} is replaced; the provider cannot revoke tokens, they expire on their own."
                )),
                Ok(Revocation::RefusedToPublicClient) => self.warn(format!(
                    "the login of {who} is replaced, but the provider does not let this client revoke its tokens: they stay valid until they expire"
                )),
                Err(e) => self.warn(format!(
                    "the login of {who} is replaced, but revoking its tokens failed ({e}): they stay valid until they expire"
                )),
            }
        }
        if login.refresh_token.is_none() {
            self.note("The provider issued no refresh token: log in again when the token expires.");
        }
        Ok(())
    }

    /// Asks, on a terminal, whether `new` may replace `previous`. Without a terminal
    /// nobody can answer: no.
    async fn confirm_switch(&self, previous: &CachedSession, new: &CachedSession) -> bool {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return false;
        }
        let question = mrmat_api_client::sanitise::printable(&format!(
            "You are logged in to {} as {}. Replace that login with {} (and revoke its tokens)? [y/N] ",
            self.settings.server,
            previous.who(),
            new.who()
        ));
        self.progress.ask(&question);
        // Off the runtime's thread, so Ctrl-C still cancels while the person thinks.
        let answer = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await;
        self.progress.asked();
        matches!(answer, Ok(Ok(line)) if matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
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
        match self.session.logout(args.local).await? {
            Logout::Revoked => self.note(format!("Logged out of {server}; the tokens are revoked.")),
            Logout::CacheOnly => self.note(format!(
                "Logged out of {server}; the provider cannot revoke tokens, they expire on their own."
            )),
            Logout::Local(session) => self.note(format!(
                "Forgot the login to {server} on this machine; its tokens were not revoked and stay valid until they expire (the access token at {}).",
                expiry_text(&session)
            )),
            Logout::RefusedToPublicClient(session) => {
                self.warn(format!(
                    "the identity provider does not let this client revoke its tokens: they stay valid until they expire (the access token at {})",
                    expiry_text(&session)
                ));
                self.note(format!("Logged out of {server} on this machine."));
            }
            Logout::AlreadyEnded => self.note(format!(
                "Logged out of {server}; the session had already ended."
            )),
            Logout::NotLoggedIn => self.note(format!("Not logged in to {server}.")),
            Logout::Unreadable => self.note(
                "Logged out; the cache was unreadable and is deleted, nothing could be revoked.",
            ),
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
