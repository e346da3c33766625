//! The commands: a thin layer over the library. This module holds what they share: the
//! [`Context`] built from the global options, the HTTP observer behind `-d` and the
//! "still waiting" line, and the hints that turn an error into a command to paste.

mod auth;
mod resource;
mod status;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mrmat_api_client::authorized::TOKEN_ENV;
use mrmat_api_client::binding::IndicatorOptions;
use mrmat_api_client::config::{ClientSettings, DEFAULT_CLIENT_ID, DEFAULT_SERVER, Overrides};
use mrmat_api_client::error::{Hint, display_url};
use mrmat_api_client::http::{DEFAULT_TIMEOUT, Http, HttpEvent, HttpOptions};
use mrmat_api_client::revocation::Revocation;
use mrmat_api_client::sanitise::printable;
use mrmat_api_client::server_url::ServerUrl;
use mrmat_api_client::session::Session;
use mrmat_api_client::token_cache::{self, CachedSession, Loaded, TokenCache};
use mrmat_api_client::{ApiClient, AuthorizedApi, ClientError, TokenSource};

use crate::cli::{AuthCommand, Cli, Command, Global, OutputFormat};
use crate::output;
use crate::progress::Progress;

/// How long Ctrl-C waits for the revocation of a login nobody kept.
const REVOKE_ON_CANCEL: std::time::Duration = std::time::Duration::from_millis(700);

/// How tables show times; JSON keeps RFC 3339.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S UTC";

/// Runs the command line; on failure, the one line to print and the exit code.
pub async fn run(cli: Cli) -> Result<(), (String, u8)> {
    if let Command::Completion { shell } = cli.command {
        // Before anything else: a broken config must not break completions.
        return output::write(&crate::cli::completion_script(shell))
            .map_err(|error| (error.to_string(), error.exit_code()));
    }
    let progress = Arc::new(Progress::new(cli.global.quiet));
    let context = match Context::new(cli.global, Arc::clone(&progress)) {
        Ok(context) => context,
        Err(error) => return Err((printable(&error.to_string()), error.exit_code())),
    };
    let what = cli.command.name();
    let result = tokio::select! {
        result = context.dispatch(cli.command) => result,
        _ = tokio::signal::ctrl_c() => Err(context.cancel(what).await),
    };
    progress.clear();
    result.map_err(|error| (context.explain(&error), error.exit_code()))
}

/// What every command needs.
pub struct Context {
    settings: ClientSettings,
    http: Http,
    quiet: bool,
    debug: bool,
    output: OutputFormat,
    /// `--output` (or its variable) was given: `token` prints JSON only when asked.
    output_asked: bool,
    cache_dir: PathBuf,
    progress: Arc<Progress>,
    /// The options a pasted command needs to reach the same login, for hints.
    prefix: String,
    session: Session,
    /// A login the provider issued that is not stored yet: Ctrl-C revokes it.
    unkept: Mutex<Option<CachedSession>>,
}

impl Context {
    fn new(global: Global, progress: Arc<Progress>) -> Result<Self, ClientError> {
        let prefix = command_prefix(&global);
        let http_options = HttpOptions {
            timeout: global
                .timeout
                .map_or(DEFAULT_TIMEOUT, std::time::Duration::from_secs),
            ca_file: global.ca_file.clone(),
            allow_insecure_http: global.allow_insecure_http,
        };
        if global.allow_insecure_http {
            // Every time, even with --quiet: it is a standing risk, not progress.
            output::write_err(
                "warning: --allow-insecure-http: tokens may cross the network over plain http, readable by anyone on the way\n",
            );
        }
        let settings = ClientSettings::load(
            global.config.as_deref(),
            Overrides {
                client_id: global.client_id,
                client_secret: global.client_secret,
                discovery_url: global.discovery_url,
                server: global.server,
                resource_indicator: IndicatorOptions {
                    param: global.resource_indicator_param,
                    value: global.resource_indicator,
                    none: global.no_resource_indicator,
                },
                http: http_options,
                no_dpop: global.no_dpop,
            },
        )?;
        let output_asked = global.output.is_some();
        let output = global.output.unwrap_or(if std::io::stdout().is_terminal() {
            OutputFormat::Table
        } else {
            OutputFormat::Json
        });
        let cache_dir = token_cache::default_dir().ok_or_else(|| {
            ClientError::Config("cannot find a cache directory (is HOME set?)".into())
        })?;
        let http = Http::new(&settings.http)?.with_observer(observer(
            global.debug,
            Arc::clone(&progress),
            &settings.server,
        ));
        let session = Session::new(
            http.clone(),
            settings.server.clone(),
            settings.client_id.clone(),
            settings.client_secret.clone(),
            &cache_dir,
        )
        .with_resource_indicator(settings.resource_indicator.clone());
        let context = Self {
            settings,
            http,
            quiet: global.quiet,
            debug: global.debug,
            output,
            output_asked,
            cache_dir,
            progress,
            prefix,
            session,
            unkept: Mutex::new(None),
        };
        context.trace(format!(
            "server {}, client {}, token cache {}",
            context.settings.server,
            context.settings.client_id,
            context.session.cache().path().display()
        ));
        context.trace(match &context.settings.resource_indicator {
            Some(indicator) => format!(
                "logins ask for tokens for {}={}",
                indicator.param, indicator.value
            ),
            None => "logins send no resource indicator".to_owned(),
        });
        Ok(context)
    }

    async fn dispatch(&self, command: Command) -> Result<(), ClientError> {
        match command {
            Command::Login(args) => self.login(args).await,
            Command::Logout(args) => self.logout(args).await,
            Command::Auth(AuthCommand::Status(args)) | Command::Whoami(args) => {
                self.status(args).await
            }
            Command::Token | Command::Auth(AuthCommand::Token) => self.token().await,
            Command::Auth(AuthCommand::Switch(args)) => self.switch(args).await,
            Command::Auth(AuthCommand::Login(args)) => self.login(args).await,
            Command::Auth(AuthCommand::Logout(args)) => self.logout(args).await,
            Command::Greeting { api, name } => self.greeting(api, name).await,
            Command::Resource(command) => self.resource(command).await,
            // Handled before a context exists.
            Command::Completion { .. } => Ok(()),
        }
    }

    /// Ctrl-C was pressed during `what`: the screen made ready for the last line, and
    /// a login issued but not kept revoked, in the time a person waits for a Ctrl-C
    /// (the process ends within a second).
    async fn cancel(&self, what: &'static str) -> ClientError {
        self.progress.cancelled();
        let unkept = self.unkept.lock().ok().and_then(|mut u| u.take());
        let aftermath = match unkept {
            None => String::new(),
            Some(login) => {
                let who = login.who().to_owned();
                match tokio::time::timeout(REVOKE_ON_CANCEL, self.session.revoke(&login)).await {
                    Ok(Ok(Revocation::Revoked)) => {
                        format!("; the new login of {who} is revoked and the previous login kept")
                    }
                    Ok(Ok(_)) => format!(
                        "; the new login of {who} is not kept (the provider cannot revoke it: it expires on its own)"
                    ),
                    Ok(Err(e)) => format!(
                        "; the new login of {who} is not kept, but revoking it failed ({e}): it expires on its own"
                    ),
                    Err(_) => format!(
                        "; the new login of {who} is not kept, but the provider did not confirm its revocation in time: it expires on its own"
                    ),
                }
            }
        };
        ClientError::Cancelled { what, aftermath }
    }

    /// A message for the person, on stderr, unless `--quiet`.
    fn note(&self, message: impl AsRef<str>) {
        if !self.quiet {
            self.progress.println(&printable(message.as_ref()));
        }
    }

    /// A warning: shown even with `--quiet`.
    fn warn(&self, message: impl AsRef<str>) {
        self.progress
            .println(&format!("warning: {}", printable(message.as_ref())));
    }

    fn trace(&self, message: impl AsRef<str>) {
        if self.debug {
            self.progress
                .println(&format!("debug: {}", printable(message.as_ref())));
        }
    }

    fn tokens(&self) -> TokenSource {
        let tokens = TokenSource::from_env_or(self.session.clone());
        if matches!(tokens, TokenSource::Fixed(_)) {
            self.trace(format!("using the token in {TOKEN_ENV}"));
        }
        tokens
    }

    fn api(&self) -> ApiClient {
        ApiClient::with_http(self.settings.server.clone(), self.http.clone())
    }

    fn authorized(&self) -> AuthorizedApi {
        AuthorizedApi::new(self.api(), self.tokens())
    }

    /// `mrmat-api-client [options] <args>`, ready to paste.
    fn command(&self, args: &str) -> String {
        format!("`{}{args}`", self.prefix)
    }

    /// The line to print for `error`: its message, sanitised, and what to do next.
    fn explain(&self, error: &ClientError) -> String {
        let mut message = error.to_string();
        if let ClientError::NotLoggedIn { .. } = error {
            message.push_str(&self.elsewhere());
        }
        let hint = match error.hint() {
            Some(Hint::Login) => match error {
                ClientError::ServerMismatch { server, .. } => {
                    format!("; to log in to {server}: {}", self.command(" login"))
                }
                ClientError::NotLoggedIn { .. } => {
                    format!("; to log in: {}", self.command(" login"))
                }
                ClientError::SessionEnded { .. } => format!(": {}", self.command(" login")),
                _ => format!("; log in again: {}", self.command(" login")),
            },
            Some(Hint::AddAccount) => format!(
                "; to add another, log in as that user: {}",
                self.command(" login")
            ),
            Some(Hint::NameAccount) => match error {
                ClientError::WhichAccount { known, .. } => known
                    .get(1)
                    .map(|other| {
                        format!(
                            "; for example {}",
                            self.command(&format!(" auth switch --user {}", quote(other)))
                        )
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            },
            Some(Hint::LogoutLocal) => format!(
                "; try again later with {}, or forget the login on this machine only (its tokens then stay valid until they expire) with {}",
                self.command(" logout"),
                self.command(" logout --local")
            ),
            Some(Hint::TokenEnv) => {
                format!("; set a valid token, or unset {TOKEN_ENV} to use your login")
            }
            None => String::new(),
        };
        printable(&format!("{message}{hint}"))
    }

    /// For "not logged in": the logins of this client to other servers, and what makes
    /// them other servers when it is only the name of this machine.
    fn elsewhere(&self) -> String {
        let Ok(all) = TokenCache::all(&self.cache_dir) else {
            return String::new();
        };
        let others: Vec<ServerUrl> = all
            .into_iter()
            .filter_map(|(_, loaded)| match loaded {
                Loaded::Found(a) if a.active.client_id == self.settings.client_id => {
                    ServerUrl::parse("cache", &a.active.server).ok()
                }
                _ => None,
            })
            .filter(|s| s != &self.settings.server)
            .collect();
        let Some(other) = others
            .iter()
            .find(|o| o.same_machine(&self.settings.server))
            .or(others.first())
        else {
            return String::new();
        };
        let same = if other.same_machine(&self.settings.server) {
            " (this machine under another name, but a login is only used with the URL it was made for)"
        } else {
            " (a login is only used with the server it was made for)"
        };
        format!(
            "; there is a login for {other}{same}: to use it, pass --server {}",
            quote(other.as_str())
        )
    }
}

/// Tells the person about calls: each one with `-d` (method, URL without query, status,
/// time: never a token), and a call that keeps them waiting, naming what it waits for.
fn observer(
    debug: bool,
    progress: Arc<Progress>,
    server: &ServerUrl,
) -> mrmat_api_client::http::Observer {
    let server = server.clone();
    Arc::new(move |event: &HttpEvent<'_>| match event {
        HttpEvent::Waiting { method, url } => {
            let who = if url.origin() == server.url().origin() {
                format!("the server at {server}")
            } else {
                format!(
                    "the identity provider at {}",
                    url.host_str().unwrap_or("(unknown host)")
                )
            };
            progress.waiting(&printable(&format!(
                "Waiting for {who} to answer {method} {}...",
                url.path()
            )));
        }
        HttpEvent::Finished {
            method,
            url,
            status,
            elapsed,
        } => {
            progress.answered();
            if debug {
                let status = status.map_or_else(|| "no answer".to_owned(), |s| s.to_string());
                progress.println(&printable(&format!(
                    "debug: {method} {} -> {status} ({} ms)",
                    display_url(url.as_str()),
                    elapsed.as_millis()
                )));
            }
        }
    })
}

/// `mrmat-api-client` and the options that choose the login (never a secret), as given.
fn command_prefix(global: &Global) -> String {
    let mut prefix = String::from("mrmat-api-client");
    let mut add = |option: &str, value: &str| {
        prefix.push_str(&format!(" {option} {}", quote(value)));
    };
    if let Some(config) = &global.config {
        add("--config", &config.display().to_string());
    }
    if let Some(server) = &global.server {
        match ServerUrl::parse("--server", server) {
            Ok(server) if server.as_str() != DEFAULT_SERVER => add("--server", server.as_str()),
            Ok(_) => {}
            Err(_) => add("--server", server),
        }
    }
    if let Some(id) = global
        .client_id
        .as_deref()
        .filter(|id| *id != DEFAULT_CLIENT_ID)
    {
        add("--client-id", id);
    }
    if let Some(url) = &global.discovery_url {
        add("--discovery-url", url);
    }
    // They decide what a new login's tokens are for, so a pasted `login` needs them.
    if let Some(param) = &global.resource_indicator_param {
        add("--resource-indicator-param", param);
    }
    if let Some(value) = &global.resource_indicator {
        add("--resource-indicator", value);
    }
    if let Some(file) = &global.ca_file {
        add("--ca-file", &file.display().to_string());
    }
    if global.no_resource_indicator {
        prefix.push_str(" --no-resource-indicator");
    }
    if global.allow_insecure_http {
        prefix.push_str(" --allow-insecure-http");
    }
    prefix
}

/// `value` as one shell word.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(quote("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(quote("/my dir/c.json"), "'/my dir/c.json'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
