//! The commands: a thin layer over the library's [`ApiClient`] and [`Session`].

use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use mrmat_api_client::api::{GreetingVersion, http_client};
use mrmat_api_client::config::{ClientSettings, Overrides};
use mrmat_api_client::provider::{self, Provider};
use mrmat_api_client::session::{DevicePrompt, Logout, Session};
use mrmat_api_client::token_cache::{self, CachedSession, TokenCache};
use mrmat_api_client::{ApiClient, ClientError};
use mrmat_api_types::resource::{Resource, ResourceList};
use serde::Serialize;

use crate::cli::{ApiVersion, Cli, Command, Global, OutputFormat, ResourceCommand};
use crate::output::{self, Table};

/// A token given by the environment, for CI: used instead of the cache.
const TOKEN_ENV: &str = "MRMAT_API_TOKEN";

/// The scopes of the API when the server does not say.
const API_SCOPES: [&str; 2] = ["mrmat-api-resource-read", "mrmat-api-resource-write"];

struct Context {
    settings: ClientSettings,
    http: reqwest::Client,
    quiet: bool,
    debug: bool,
    output: OutputFormat,
    cache_dir: PathBuf,
}

/// Runs the command line.
pub async fn run(cli: Cli) -> Result<(), ClientError> {
    let context = Context::new(cli.global)?;
    match cli.command {
        Command::Login => context.login().await,
        Command::Logout => context.logout().await,
        Command::Whoami => context.whoami(),
        Command::Token => {
            println!("{}", context.token(None).await?);
            Ok(())
        }
        Command::Greeting { api, name } => context.greeting(api, name).await,
        Command::Resource(command) => context.resource(command).await,
    }
}

impl Context {
    fn new(global: Global) -> Result<Self, ClientError> {
        let settings = ClientSettings::load(
            global.config.as_deref(),
            Overrides {
                client_id: global.client_id,
                client_secret: global.client_secret,
                discovery_url: global.discovery_url,
                server: global.server,
            },
        )?;
        let output = global.output.unwrap_or(if std::io::stdout().is_terminal() {
            OutputFormat::Table
        } else {
            OutputFormat::Json
        });
        let cache_dir = token_cache::default_dir().ok_or_else(|| {
            ClientError::Config("cannot find a cache directory (is HOME set?)".into())
        })?;
        Ok(Self {
            settings,
            http: http_client()?,
            quiet: global.quiet,
            debug: global.debug,
            output,
            cache_dir,
        })
    }

    fn note(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", message.as_ref());
        }
    }

    fn trace(&self, message: impl AsRef<str>) {
        if self.debug {
            eprintln!("debug: {}", message.as_ref());
        }
    }

    /// One cache per provider (or server, when the provider is found through it) and client.
    fn session(&self) -> Session {
        let source = match &self.settings.discovery_url {
            Some(url) => url.to_string(),
            None => format!("server:{}", self.settings.server),
        };
        let cache = TokenCache::new(
            &self.cache_dir,
            &format!("{source}|{}", self.settings.client_id),
        );
        self.trace(format!("token cache {}", cache.path().display()));
        Session::new(
            self.http.clone(),
            self.settings.client_id.clone(),
            self.settings.client_secret.clone(),
            cache,
        )
    }

    fn api(&self) -> Result<ApiClient, ClientError> {
        ApiClient::new(self.settings.server.clone())
    }

    /// The provider, and the scopes to ask for.
    async fn provider(&self) -> Result<(Provider, Vec<String>), ClientError> {
        let (discovery_url, api_scopes) = match &self.settings.discovery_url {
            Some(url) => (url.clone(), Vec::new()),
            None => {
                self.trace(format!(
                    "finding the identity provider through {}",
                    self.settings.server
                ));
                provider::from_server(&self.api()?).await?
            }
        };
        self.trace(format!("discovery at {discovery_url}"));
        let provider = provider::discover(&self.http, &discovery_url).await?;
        let supported = |scope: &str| {
            provider.scopes_supported.is_empty()
                || provider.scopes_supported.iter().any(|s| s == scope)
        };
        let mut scopes: Vec<String> = vec!["openid".into(), "profile".into()];
        // offline_access brings the refresh token, where the provider offers it.
        if supported("offline_access") {
            scopes.push("offline_access".into());
        }
        if api_scopes.is_empty() {
            scopes.extend(API_SCOPES.iter().map(|s| (*s).to_owned()));
        } else {
            scopes.extend(api_scopes);
        }
        Ok((provider, scopes))
    }

    async fn login(&self) -> Result<(), ClientError> {
        let (provider, scopes) = self.provider().await?;
        let session = self.session();
        let spinner = ProgressBar::new_spinner();
        let started = std::cell::Cell::new(None::<Instant>);
        let quiet = self.quiet;
        let stored = session
            .login(&provider, &scopes, |prompt: &DevicePrompt| {
                show_prompt(prompt);
                started.set(Some(Instant::now()));
                if !quiet {
                    spinner.set_style(
                        ProgressStyle::with_template("{spinner} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    spinner.set_message("Waiting for the login to be approved...");
                    spinner.enable_steady_tick(Duration::from_millis(100));
                }
            })
            .await;
        spinner.finish_and_clear();
        let stored = stored?;
        let who = stored
            .name
            .clone()
            .or(stored.subject.clone())
            .unwrap_or_else(|| "unknown".into());
        self.note(format!(
            "Logged in as {who}; the access token is valid until {}.",
            expiry_text(&stored)
        ));
        if stored.refresh_token.is_none() {
            self.note("The provider issued no refresh token: log in again when the token expires.");
        }
        if let Some(at) = started.get() {
            self.trace(format!(
                "login completed {:.1}s after the code was shown",
                at.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }

    async fn logout(&self) -> Result<(), ClientError> {
        match self.session().logout().await? {
            Logout::Revoked => self.note("Logged out; the tokens are revoked."),
            Logout::CacheOnly => self
                .note("Logged out; the provider cannot revoke tokens, they expire on their own."),
            Logout::NotLoggedIn => self.note("Not logged in."),
        }
        Ok(())
    }

    fn whoami(&self) -> Result<(), ClientError> {
        if std::env::var_os(TOKEN_ENV).is_some() {
            self.note(format!(
                "Using the token in {TOKEN_ENV}; the cache is not consulted."
            ));
        }
        let session = self.session().current()?.ok_or(ClientError::NotLoggedIn)?;
        let identity = Identity::from(&session);
        output::print(self.output, &identity, |i| {
            Table::fields(&[
                ("subject", i.subject.clone().unwrap_or_else(|| "-".into())),
                ("name", i.name.clone().unwrap_or_else(|| "-".into())),
                ("client", i.client_id.clone()),
                ("issuer", i.issuer.clone()),
                ("scopes", i.scopes.join(" ")),
                ("expires", expiry_text(&session)),
            ])
        });
        Ok(())
    }

    /// The bearer token: `MRMAT_API_TOKEN`, or the cached one (refreshed when needed).
    async fn token(&self, rejected: Option<&str>) -> Result<String, ClientError> {
        if let Ok(token) = std::env::var(TOKEN_ENV)
            && !token.is_empty()
        {
            return Ok(token);
        }
        self.session().valid_token(rejected).await
    }

    /// Calls the API with a token; an `invalid_token` answer to a cached token gets one
    /// refresh and one retry.
    async fn authorized<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(ApiClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let token = self.token(None).await?;
        match call(self.api()?.with_token(token.clone())).await {
            Err(ClientError::Api {
                invalid_token: true,
                ..
            }) if std::env::var_os(TOKEN_ENV).is_none() => {
                self.trace("the server refused the token; refreshing once");
                let token = self.token(Some(&token)).await?;
                call(self.api()?.with_token(token)).await
            }
            other => other,
        }
    }

    async fn greeting(&self, api: ApiVersion, name: Option<String>) -> Result<(), ClientError> {
        let greeting = match api {
            ApiVersion::V1 => self.api()?.greeting(GreetingVersion::V1, None).await?,
            ApiVersion::V2 => {
                self.api()?
                    .greeting(GreetingVersion::V2, name.as_deref())
                    .await?
            }
            ApiVersion::V3 => {
                self.authorized(|api| async move { api.greeting(GreetingVersion::V3, None).await })
                    .await?
            }
        };
        output::print(self.output, &greeting, |g| Table::line(g.message.clone()));
        Ok(())
    }

    async fn resource(&self, command: ResourceCommand) -> Result<(), ClientError> {
        match command {
            ResourceCommand::List { limit, offset } => {
                let list = self
                    .authorized(|api| async move { api.list_resources(limit, offset).await })
                    .await?;
                output::print(self.output, &list, resource_table);
            }
            ResourceCommand::Get { id } => {
                let resource = self
                    .authorized(|api| async move { api.get_resource(id).await })
                    .await?;
                output::print(self.output, &resource, resource_fields);
            }
            ResourceCommand::Create { name } => {
                let resource = self
                    .authorized(|api| {
                        let name = name.clone();
                        async move { api.create_resource(&name).await }
                    })
                    .await?;
                output::print(self.output, &resource, resource_fields);
            }
            ResourceCommand::Update { id, name } => {
                let resource = self
                    .authorized(|api| {
                        let name = name.clone();
                        async move { api.update_resource(id, &name).await }
                    })
                    .await?;
                output::print(self.output, &resource, resource_fields);
            }
            ResourceCommand::Delete { id } => {
                self.authorized(|api| async move { api.delete_resource(id).await })
                    .await?;
                self.note(format!("Deleted resource {id}."));
            }
        }
        Ok(())
    }
}

fn show_prompt(prompt: &DevicePrompt) {
    eprintln!();
    match &prompt.verification_uri_complete {
        Some(complete) => {
            eprintln!("To log in, open this page in a browser:\n\n    {complete}\n");
            eprintln!(
                "or open {} and enter the code {}",
                prompt.verification_uri, prompt.user_code
            );
        }
        None => eprintln!(
            "To log in, open {} in a browser and enter the code {}",
            prompt.verification_uri, prompt.user_code
        ),
    }
    eprintln!(
        "(the code expires in {} minutes)\n",
        prompt.expires_in.as_secs().div_ceil(60)
    );
}

fn expiry_text(session: &CachedSession) -> String {
    match session
        .expires_at
        .and_then(|at| DateTime::<Utc>::from_timestamp(at, 0))
    {
        Some(at) if at <= Utc::now() => format!("{} (expired)", at.format("%Y-%m-%d %H:%M:%S UTC")),
        Some(at) => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => "unknown".into(),
    }
}

/// What `whoami` shows.
#[derive(Debug, Serialize)]
struct Identity {
    subject: Option<String>,
    name: Option<String>,
    client_id: String,
    issuer: String,
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    expired: bool,
}

impl From<&CachedSession> for Identity {
    fn from(session: &CachedSession) -> Self {
        let expires_at = session
            .expires_at
            .and_then(|at| DateTime::<Utc>::from_timestamp(at, 0));
        Self {
            subject: session.subject.clone(),
            name: session.name.clone(),
            client_id: session.client_id.clone(),
            issuer: session.issuer.clone(),
            scopes: session.scopes.clone(),
            expired: expires_at.is_some_and(|at| at <= Utc::now()),
            expires_at,
        }
    }
}

fn resource_table(list: &ResourceList) -> Table {
    let mut table = Table::with_header(&["ID", "NAME", "OWNER", "UPDATED"]);
    for r in &list.resources {
        table.row(vec![
            r.id.to_string(),
            r.name.clone(),
            r.owner.name.clone(),
            r.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        ]);
    }
    table
}

fn resource_fields(r: &Resource) -> Table {
    Table::fields(&[
        ("id", r.id.to_string()),
        ("name", r.name.clone()),
        ("owner", format!("{} ({})", r.owner.name, r.owner.client_id)),
        ("created", r.created_at.to_rfc3339()),
        ("updated", r.updated_at.to_rfc3339()),
    ])
}
