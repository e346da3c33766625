//! The commands: a thin layer over the library's [`AuthorizedApi`] and [`Session`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use mrmat_api_client::api::{GreetingVersion, http_client};
use mrmat_api_client::authorized::TOKEN_ENV;
use mrmat_api_client::config::{ClientSettings, Overrides};
use mrmat_api_client::provider::{self, Provider};
use mrmat_api_client::session::{DevicePrompt, Logout, Session};
use mrmat_api_client::token_cache::{self, CachedSession, TokenCache};
use mrmat_api_client::{ApiClient, AuthorizedApi, ClientError, TokenSource};
use mrmat_api_types::resource::{Resource, ResourceList};
use serde::Serialize;

use crate::cli::{ApiVersion, Cli, Command, Global, OutputFormat, ResourceCommand};
use crate::output::{self, Table};

/// How tables show times; JSON keeps RFC 3339.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S UTC";

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
            let token = context.tokens().token(None).await?;
            output::write(&format!("{token}\n"))
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

    fn tokens(&self) -> TokenSource {
        let tokens = TokenSource::from_env_or(self.session());
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

    /// The provider, and the scopes to ask for.
    async fn provider(&self) -> Result<(Provider, Vec<String>), ClientError> {
        let (provider, api_scopes) = match &self.settings.discovery_url {
            Some(url) => {
                self.trace(format!("discovery at {url}"));
                (provider::discover(&self.http, url).await?, Vec::new())
            }
            None => {
                self.trace(format!(
                    "finding the identity provider through {}",
                    self.settings.server
                ));
                provider::discover_via_server(&self.http, &self.api()).await?
            }
        };
        let scopes = provider::login_scopes(&provider, &api_scopes);
        Ok((provider, scopes))
    }

    async fn login(&self) -> Result<(), ClientError> {
        let (provider, scopes) = self.provider().await?;
        self.trace(format!("asking for the scopes {}", scopes.join(" ")));
        let spinner = ProgressBar::new_spinner();
        let quiet = self.quiet;
        let stored = self
            .session()
            .login(&provider, &scopes, |prompt: &DevicePrompt| {
                show_prompt(prompt);
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
        Ok(())
    }

    async fn logout(&self) -> Result<(), ClientError> {
        match self.session().logout().await? {
            Logout::Revoked => self.note("Logged out; the tokens are revoked."),
            Logout::CacheOnly => self
                .note("Logged out; the provider cannot revoke tokens, they expire on their own."),
            Logout::Unreadable => self.note(
                "Logged out; the cache was unreadable and is deleted, nothing could be revoked.",
            ),
            Logout::NotLoggedIn => self.note("Not logged in."),
        }
        Ok(())
    }

    fn whoami(&self) -> Result<(), ClientError> {
        if matches!(self.tokens(), TokenSource::Fixed(_)) {
            self.note(format!(
                "Note: {TOKEN_ENV} is set; API commands send it instead of the login below."
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
        })
    }

    async fn greeting(&self, api: ApiVersion, name: Option<String>) -> Result<(), ClientError> {
        if name.is_some() && api != ApiVersion::V2 {
            return Err(ClientError::Config(
                "--name only applies to --api v2".into(),
            ));
        }
        let greeting = match api {
            ApiVersion::V1 => self.api().greeting(GreetingVersion::V1, None).await?,
            ApiVersion::V2 => {
                self.api()
                    .greeting(GreetingVersion::V2, name.as_deref())
                    .await?
            }
            ApiVersion::V3 => {
                self.authorized()
                    .call(|api| async move { api.greeting(GreetingVersion::V3, None).await })
                    .await?
            }
        };
        output::print(self.output, &greeting, |g| Table::line(&g.message))
    }

    async fn resource(&self, command: ResourceCommand) -> Result<(), ClientError> {
        let api = self.authorized();
        match command {
            ResourceCommand::List { limit, offset } => {
                let list = api
                    .call(|api| async move { api.list_resources(limit, offset).await })
                    .await?;
                output::print(self.output, &list, resource_table)
            }
            ResourceCommand::Get { id } => {
                let resource = api
                    .call(|api| async move { api.get_resource(id).await })
                    .await?;
                output::print(self.output, &resource, resource_fields)
            }
            ResourceCommand::Create { name } => {
                let resource = api
                    .call(|api| {
                        let name = name.clone();
                        async move { api.create_resource(&name).await }
                    })
                    .await?;
                output::print(self.output, &resource, resource_fields)
            }
            ResourceCommand::Update { id, name } => {
                let resource = api
                    .call(|api| {
                        let name = name.clone();
                        async move { api.update_resource(id, &name).await }
                    })
                    .await?;
                output::print(self.output, &resource, resource_fields)
            }
            ResourceCommand::Delete { id } => {
                api.call(|api| async move { api.delete_resource(id).await })
                    .await?;
                self.note(format!("Deleted resource {id}."));
                Ok(())
            }
        }
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
        Some(at) if at <= Utc::now() => format!("{} (expired)", at.format(TIME_FORMAT)),
        Some(at) => at.format(TIME_FORMAT).to_string(),
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
            r.updated_at.format(TIME_FORMAT).to_string(),
        ]);
    }
    table
}

fn resource_fields(r: &Resource) -> Table {
    Table::fields(&[
        ("id", r.id.to_string()),
        ("name", r.name.clone()),
        ("owner", format!("{} ({})", r.owner.name, r.owner.client_id)),
        ("created", r.created_at.format(TIME_FORMAT).to_string()),
        ("updated", r.updated_at.format(TIME_FORMAT).to_string()),
    ])
}
