//! Resolved configuration: the command line and environment ([`Options`], from clap) laid
//! over the config file (the same [`Options`], from serde), then the defaults. Every value
//! is checked here, so a bad one ends the process before anything starts, with one line
//! naming the option. `PORT` is read here too, as container platforms set it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mrmat_api_types::redact::without_values;
use mrmat_api_types::secret::Secret;
use oauth2::ClientSecret;
use serde::Deserialize;
use url::Url;

use crate::cli::{OidcOptions, Options, defaults};
use crate::cors::CorsOrigins;
use crate::forwarded::{ForwardedHeaders, TrustedProxy};
use crate::rate_limit::RateLimit;
use crate::trust;

/// Everything the server needs to start, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Debug logging.
    pub debug: bool,
    /// Interface to bind.
    pub host: String,
    /// Port to bind; 0 lets the OS pick.
    pub port: u16,
    /// A unix socket to listen on instead of `host`:`port`.
    pub unix_socket: Option<UnixSocket>,
    /// Where `/metrics` is served instead of the public port.
    pub metrics_addr: Option<(String, u16)>,
    /// Instance directory (default SQLite database lives here).
    pub instance_path: PathBuf,
    /// Where the data lives.
    pub database: DatabaseUrl,
    /// Longest a request waits for the database before it is answered 503.
    pub db_timeout: Duration,
    /// The identity providers; none runs without authentication. The first is the
    /// primary: opaque tokens are introspected there, and owners an older release stored
    /// without an issuer are its users.
    pub oidc: Vec<OidcSettings>,
    /// The URL clients use to reach this server: the RFC 9728 `resource`, and an audience
    /// tokens may name.
    pub public_url: Option<Url>,
    /// Only DPoP-bound tokens are accepted.
    pub require_dpop: bool,
    /// HTTP worker threads.
    pub workers: usize,
    /// On SIGTERM/SIGINT, how long the server drains (readiness 503, kept-alive
    /// connections closed) before it stops accepting.
    pub shutdown_delay: Duration,
    /// Apply pending migrations when serving.
    pub migrate: bool,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// The one header family read from them.
    pub forwarded_headers: ForwardedHeaders,
    /// Origins allowed by CORS; `None`: CORS off.
    pub cors_origins: Option<CorsOrigins>,
    /// Requests allowed per client; `None`: no limit.
    pub rate_limit: Option<RateLimit>,
}

/// A unix socket to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// Its path.
    pub path: PathBuf,
    /// Its file mode.
    pub mode: u32,
}

/// Default file mode of the unix socket.
pub use defaults::SOCKET_MODE as DEFAULT_SOCKET_MODE;

/// A database the server can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (it may hold a password: it does not print).
    Postgres(Secret),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH` (also `sqlite:PATH`) or `postgres://...` / `postgresql://...`.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::invalid("--db", reason);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Url::parse(url).map_err(|e| invalid(format!("not a valid PostgreSQL URL: {e}")))?;
            return Ok(Self::Postgres(Secret::new(url)));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() || path.contains(":memory:") || path.starts_with("file:") {
                return Err(invalid(
                    "sqlite:// needs a file path (an in-memory database cannot be pooled)".into(),
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
        Err(invalid(format!(
            "unsupported database URL scheme {scheme:?}; use sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }

    /// Which backend, for messages.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// How the server reaches the identity provider.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer the server reaches (discovery base).
    pub issuer: Url,
    /// The issuer clients see, when it differs (reported in metadata, accepted as `iss`).
    pub public_issuer: Option<Url>,
    /// The server's own client at the provider, to introspect opaque tokens; `None` for a
    /// provider whose JWT access tokens alone are accepted.
    pub credentials: Option<ClientCredentials>,
    /// Introspection endpoint given by a client_secrets.json; discovered when `None`.
    pub introspection_endpoint: Option<Url>,
    /// Token endpoint given by a client_secrets.json; discovered when `None`.
    pub token_endpoint: Option<Url>,
    /// Plain http to a provider that is not on this machine is allowed.
    pub allow_insecure_http: bool,
    /// Hosts besides the issuer's that discovery may name for the endpoints that receive
    /// secrets (introspection, token), lower case.
    pub endpoint_hosts: Vec<String>,
    /// PEM certificate authorities trusted besides the platform's and webpki's.
    pub ca_pem: Option<Vec<u8>>,
    /// Audiences accepted in `aud` (`--oidc-audience` and `--public-url`); empty accepts
    /// any introspected token. JWT access tokens are checked here only when this is not
    /// empty: a JWT that need not name this server could be anybody's.
    pub audiences: Vec<String>,
    /// Where a JWT access token holds its scopes.
    pub scope_claim: ScopeClaim,
    /// Introspect with a client-credentials token carrying this scope instead of Basic.
    pub introspection_token_scope: Option<String>,
    /// Ceiling on how long an introspection result is trusted.
    pub cache_ttl: Duration,
    /// Timeout of every call to the provider.
    pub timeout: Duration,
}

impl OidcSettings {
    /// Settings for `issuer` with the server's client `client_id`, everything else at its
    /// default: endpoints from discovery, HTTP Basic, any audience.
    pub fn new(
        issuer: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            credentials: Some(ClientCredentials {
                client_id: client_id.into(),
                client_secret: ClientSecret::new(client_secret.into()),
            }),
            ..Self::jwt_only(issuer, Vec::new())
        }
    }

    /// Settings for a provider whose JWT access tokens are checked here, naming one of
    /// `audiences`; no client of the server's own, so no introspection.
    pub fn jwt_only(issuer: Url, audiences: Vec<String>) -> Self {
        Self {
            issuer,
            public_issuer: None,
            credentials: None,
            introspection_endpoint: None,
            token_endpoint: None,
            allow_insecure_http: false,
            endpoint_hosts: Vec::new(),
            ca_pem: None,
            audiences,
            scope_claim: ScopeClaim::default(),
            introspection_token_scope: None,
            cache_ttl: DEFAULT_OIDC_CACHE_TTL,
            timeout: DEFAULT_OIDC_TIMEOUT,
        }
    }

    /// Whether the client secret is one of the well-known placeholders shipped in examples
    /// and exports, which anyone can read.
    pub fn has_placeholder_secret(&self) -> bool {
        let Some(credentials) = &self.credentials else {
            return false;
        };
        let secret = credentials
            .client_secret
            .secret()
            .trim()
            .to_ascii_lowercase();
        PLACEHOLDER_SECRETS.contains(&secret.as_str())
            || secret.starts_with("change-me")
            || secret.starts_with("changeme")
            || secret.chars().all(|c| c == '*')
    }

    /// The issuer to advertise to clients.
    pub fn advertised_issuer(&self) -> &Url {
        self.public_issuer.as_ref().unwrap_or(&self.issuer)
    }

    /// Whether this provider's JWT access tokens are checked here instead of introspected.
    pub fn checks_jwts(&self) -> bool {
        !self.audiences.is_empty()
    }

    /// The server's client id at this provider, for messages.
    pub fn client_id(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.client_id.as_str())
    }
}

/// The server's own client at a provider.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// Its client id.
    pub client_id: String,
    /// Its secret (redacted in `Debug`).
    pub client_secret: ClientSecret,
}

/// Where a JWT access token holds its scopes: a claim, or a path of claims into nested
/// objects (`realm_access.roles`). The value is a space-separated string (RFC 9068's
/// `scope`, Entra's `scp`) or an array of strings (Auth0's `permissions`, Keycloak roles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeClaim(Vec<String>);

impl Default for ScopeClaim {
    fn default() -> Self {
        Self(vec![defaults::OIDC_SCOPE_CLAIM.to_owned()])
    }
}

impl ScopeClaim {
    /// Parses `name` or `a.b.c`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let path: Vec<String> = text.trim().split('.').map(str::to_owned).collect();
        if path
            .iter()
            .any(|part| part.is_empty() || part.chars().any(char::is_whitespace))
        {
            return Err(ConfigError::invalid(
                "--oidc-scope-claim",
                format!("{text:?} is not a claim name or a dotted path such as realm_access.roles"),
            ));
        }
        Ok(Self(path))
    }

    /// The claim names, outermost first.
    pub fn path(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for ScopeClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A configuration value that cannot be used. Its `Display` is the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An option has a bad value.
    #[error("{option}: {reason}")]
    Invalid {
        /// The option as the user would type it.
        option: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl ConfigError {
    /// A bad value of `option`.
    pub fn invalid(option: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            option,
            reason: reason.into(),
        }
    }
}

/// Reads the config file: the same options as the command line, snake_case keys.
fn read_config_file(path: &Path) -> Result<Options, ConfigError> {
    let fail =
        |reason: String| ConfigError::invalid("--config", format!("{}: {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .map_err(|e| fail(format!("invalid JSON: {}", without_values(&e.to_string()))))
    } else {
        toml::from_str(&text)
            .map_err(|e| fail(format!("invalid TOML: {}", without_values(e.message()))))
    }
}

/// The Flask-OIDC `client_secrets.json` shape: `{"web": {...}}`.
#[derive(Debug, Deserialize)]
struct ClientSecretsFile {
    web: ClientSecretsWeb,
}

#[derive(Debug, Deserialize)]
struct ClientSecretsWeb {
    client_id: String,
    client_secret: Secret,
    issuer: Option<String>,
    token_introspection_uri: Option<String>,
    token_uri: Option<String>,
    introspection_endpoint: Option<String>,
}

/// Default bound on every wait for the database.
pub use defaults::DB_TIMEOUT as DEFAULT_DB_TIMEOUT;
/// Default drain on SIGTERM.
pub use defaults::SHUTDOWN_DELAY as DEFAULT_SHUTDOWN_DELAY;

/// Client secrets published in examples, exports and the test provider.
const PLACEHOLDER_SECRETS: &[&str] = &[
    "secret",
    "password",
    "client-secret",
    "mrmat-api-secret",
    "your-client-secret",
    "replace-me",
];

/// Default introspection-cache ceiling.
pub use defaults::OIDC_CACHE_TTL as DEFAULT_OIDC_CACHE_TTL;
/// Default timeout of calls to the identity provider.
pub use defaults::OIDC_TIMEOUT as DEFAULT_OIDC_TIMEOUT;

impl Settings {
    /// Lays the command line (which clap already merged with the environment) over the
    /// config file and the defaults, and checks every value.
    pub fn load(mut options: Options) -> Result<Self, ConfigError> {
        // `PORT` ranks with the environment: below the flag, above the file.
        if options.port.is_none() {
            options.port = port_from_env()?;
        }
        let options = match options.config.clone() {
            Some(path) => options.or(read_config_file(&path)?),
            None => options,
        };

        let instance_path = options
            .instance_path
            .unwrap_or_else(|| PathBuf::from(defaults::INSTANCE_PATH));
        let database = match &options.db {
            Some(url) => DatabaseUrl::parse(url.expose())?,
            None => DatabaseUrl::Sqlite(instance_path.join("mrmat-api.sqlite")),
        };
        let db_timeout = match options.db_timeout {
            None => DEFAULT_DB_TIMEOUT,
            Some(seconds) if seconds.is_finite() && (0.1..=3600.0).contains(&seconds) => {
                Duration::from_secs_f64(seconds)
            }
            Some(_) => {
                return Err(ConfigError::invalid(
                    "--db-timeout",
                    "must be a number of seconds from 0.1 to 3600",
                ));
            }
        };
        let shutdown_delay = match options.shutdown_delay {
            None => DEFAULT_SHUTDOWN_DELAY,
            Some(seconds) if seconds.is_finite() && (0.0..=3600.0).contains(&seconds) => {
                Duration::from_secs_f64(seconds)
            }
            Some(_) => {
                return Err(ConfigError::invalid(
                    "--shutdown-delay",
                    "must be a number of seconds from 0 to 3600",
                ));
            }
        };
        let workers = options
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        if workers == 0 {
            return Err(ConfigError::invalid("--workers", "must be at least 1"));
        }
        let host = options.host.unwrap_or_else(|| defaults::HOST.to_owned());
        if host.trim().is_empty() {
            return Err(ConfigError::invalid("--host", "must not be empty"));
        }
        let unix_socket = options
            .bind
            .as_deref()
            .map(|bind| parse_bind(bind, options.socket_mode.as_deref()))
            .transpose()?;
        if unix_socket.is_none() && options.socket_mode.is_some() {
            return Err(ConfigError::invalid(
                "--socket-mode",
                "applies only with --bind unix:PATH",
            ));
        }
        let metrics_addr = options
            .metrics_addr
            .as_deref()
            .map(parse_host_port)
            .transpose()?;
        let cors_origins = options
            .cors_origins
            .as_deref()
            .map(CorsOrigins::parse)
            .transpose()
            .map_err(|reason| ConfigError::invalid("--cors-origins", reason))?;
        let rate_limit = options
            .rate_limit
            .as_deref()
            .map(str::parse::<RateLimit>)
            .transpose()
            .map_err(|reason| ConfigError::invalid("--rate-limit", reason))?;
        let public_url = options
            .public_url
            .as_deref()
            .map(parse_public_url)
            .transpose()?;
        let require_dpop = options.oidc.oidc_require_dpop.unwrap_or(false);
        let oidc = resolve_oidc(options.oidc, public_url.as_ref())?;

        Ok(Self {
            debug: options.debug.unwrap_or(false),
            host,
            port: options.port.unwrap_or(defaults::PORT),
            unix_socket,
            metrics_addr,
            instance_path,
            database,
            db_timeout,
            oidc,
            public_url,
            require_dpop,
            workers,
            shutdown_delay,
            migrate: !options.no_migrate.unwrap_or(false),
            trusted_proxies: options.trusted_proxies.unwrap_or_default(),
            forwarded_headers: options.forwarded_headers.unwrap_or_default(),
            cors_origins,
            rate_limit,
        })
    }
}

impl Settings {
    /// The defaults, on `database`, without authentication: for embedding the server (the
    /// tests do) without a command line.
    pub fn with_database(database: DatabaseUrl) -> Self {
        Self {
            debug: false,
            host: defaults::HOST.to_owned(),
            port: defaults::PORT,
            unix_socket: None,
            metrics_addr: None,
            instance_path: PathBuf::from(defaults::INSTANCE_PATH),
            database,
            db_timeout: DEFAULT_DB_TIMEOUT,
            oidc: Vec::new(),
            public_url: None,
            require_dpop: false,
            workers: 1,
            // Embedded (the tests): stop at once.
            shutdown_delay: Duration::ZERO,
            migrate: true,
            trusted_proxies: Vec::new(),
            forwarded_headers: ForwardedHeaders::default(),
            cors_origins: None,
            rate_limit: None,
        }
    }

    /// One line describing the effective configuration, secrets left out.
    pub fn summary(&self) -> String {
        let database = match &self.database {
            DatabaseUrl::Sqlite(path) => format!("sqlite {}", path.display()),
            DatabaseUrl::Postgres(_) => "postgres".to_owned(),
        };
        let oidc = if self.oidc.is_empty() {
            "none".to_owned()
        } else {
            self.oidc
                .iter()
                .map(|o| {
                    let check = match o.client_id() {
                        Some(id) if o.checks_jwts() => {
                            format!("JWTs here, others introspected as client {id}")
                        }
                        Some(id) => format!("introspected as client {id}"),
                        None => "JWTs here".to_owned(),
                    };
                    format!(
                        "issuer {} ({check}, audiences {:?}, cache ceiling {:?})",
                        o.issuer, o.audiences, o.cache_ttl
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        format!(
            "configuration: {}:{}, {} workers, database {database} (timeout {:?}), migrate {}, oidc {oidc}, trusted proxies {:?}",
            self.host, self.port, self.workers, self.db_timeout, self.migrate, self.trusted_proxies
        )
    }
}

/// `unix:PATH` and an octal mode.
fn parse_bind(bind: &str, mode: Option<&str>) -> Result<UnixSocket, ConfigError> {
    let path = bind
        .strip_prefix("unix:")
        .filter(|path| !path.is_empty())
        .ok_or_else(|| {
            ConfigError::invalid(
                "--bind",
                "must be unix:PATH (for TCP use --host and --port)",
            )
        })?;
    let mode = match mode {
        None => DEFAULT_SOCKET_MODE,
        Some(text) => u32::from_str_radix(text.trim().trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| {
                ConfigError::invalid("--socket-mode", "must be an octal file mode such as 660")
            })?,
    };
    // Peers on the socket are trusted like --trusted-proxies (a unix peer has no address
    // to check): whoever may connect sets the client address, scheme and host the server
    // believes. A bit for others would hand that to every user on the machine.
    if mode & 0o007 != 0 {
        return Err(ConfigError::invalid(
            "--socket-mode",
            format!(
                "{mode:03o} lets other users on this machine connect, and peers on the socket are trusted as proxies (they name the client address and host); use 660 (the owner and the proxy's group) or 600"
            ),
        ));
    }
    Ok(UnixSocket {
        path: PathBuf::from(path),
        mode,
    })
}

/// `HOST:PORT`, with `[v6]:PORT` for IPv6.
fn parse_host_port(text: &str) -> Result<(String, u16), ConfigError> {
    let invalid = || {
        ConfigError::invalid(
            "--metrics-addr",
            format!("{text:?} is not HOST:PORT (e.g. 0.0.0.0:9090)"),
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host.to_owned(), port))
}

fn port_from_env() -> Result<Option<u16>, ConfigError> {
    match std::env::var("PORT") {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map(Some).map_err(|_| {
            ConfigError::invalid("PORT", format!("{value:?} is not a port (0-65535)"))
        }),
        _ => Ok(None),
    }
}

/// What every provider shares: how the server talks to providers and how long it trusts.
struct Shared {
    allow_insecure_http: bool,
    endpoint_hosts: Vec<String>,
    ca_pem: Option<Vec<u8>>,
    cache_ttl: Duration,
    timeout: Duration,
}

impl Shared {
    fn provider(&self, issuer: Url, credentials: Option<ClientCredentials>) -> OidcSettings {
        OidcSettings {
            credentials,
            allow_insecure_http: self.allow_insecure_http,
            endpoint_hosts: self.endpoint_hosts.clone(),
            ca_pem: self.ca_pem.clone(),
            cache_ttl: self.cache_ttl,
            timeout: self.timeout,
            ..OidcSettings::jwt_only(issuer, Vec::new())
        }
    }
}

/// The identity providers: the one the command line (or a client_secrets.json) names,
/// each further `--oidc-issuer`, then the config file's `oidc_providers`.
fn resolve_oidc(
    options: OidcOptions,
    public_url: Option<&Url>,
) -> Result<Vec<OidcSettings>, ConfigError> {
    let from_file = options
        .oidc_secrets
        .as_deref()
        .map(read_client_secrets)
        .transpose()?;
    let allow = options.oidc_allow_insecure_http.unwrap_or(false);
    let (file_issuer, file_id, file_secret, introspection, token) = match from_file {
        Some(web) => {
            let introspection = web
                .token_introspection_uri
                .or(web.introspection_endpoint)
                .map(|uri| provider_url("--oidc-secrets", "token_introspection_uri", &uri, allow))
                .transpose()?;
            let token = web
                .token_uri
                .map(|uri| provider_url("--oidc-secrets", "token_uri", &uri, allow))
                .transpose()?;
            (
                web.issuer,
                Some(web.client_id),
                Some(web.client_secret),
                introspection,
                token,
            )
        }
        None => (None, None, None, None, None),
    };
    let mut issuers = options
        .oidc_issuer
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty());
    // Explicit options override the corresponding fields of the secrets file.
    let issuer = issuers.next().or(file_issuer);
    let client_id = options.oidc_client_id.or(file_id);
    let client_secret = options.oidc_client_secret.or(file_secret);

    let shared = Shared {
        allow_insecure_http: allow,
        endpoint_hosts: options
            .oidc_endpoint_hosts
            .unwrap_or_default()
            .iter()
            .map(|host| host.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|host| !host.is_empty())
            .collect(),
        ca_pem: options
            .oidc_ca_file
            .as_deref()
            .map(read_ca_file)
            .transpose()?,
        cache_ttl: options
            .oidc_cache_ttl
            .map_or(DEFAULT_OIDC_CACHE_TTL, Duration::from_secs),
        timeout: match options.oidc_timeout {
            Some(0) => {
                return Err(ConfigError::invalid(
                    "--oidc-timeout",
                    "must be at least 1 second",
                ));
            }
            Some(seconds) => Duration::from_secs(seconds),
            None => DEFAULT_OIDC_TIMEOUT,
        },
    };
    let with_public_url = |audiences: Vec<String>| -> Vec<String> {
        let mut audiences: Vec<String> = audiences
            .into_iter()
            .map(|audience| audience.trim().to_owned())
            .filter(|audience| !audience.is_empty())
            .collect();
        if let Some(url) = public_url {
            audiences.push(url.as_str().to_owned());
        }
        audiences
    };
    let audiences = with_public_url(options.oidc_audience.unwrap_or_default());
    let scope_claim = options
        .oidc_scope_claim
        .as_deref()
        .map(ScopeClaim::parse)
        .transpose()?
        .unwrap_or_default();
    let trimmed = |scope: Option<String>| {
        scope
            .map(|scope| scope.trim().to_owned())
            .filter(|scope| !scope.is_empty())
    };
    let mut providers = Vec::new();

    if issuer.is_some() || client_id.is_some() || client_secret.is_some() {
        let issuer = issuer.ok_or_else(|| {
            ConfigError::invalid(
                "--oidc-issuer",
                "missing: give the issuer URL (or an \"issuer\" in --oidc-secrets)",
            )
        })?;
        let issuer = provider_url("--oidc-issuer", "issuer", &issuer, allow)?;
        let credentials = credentials(client_id, client_secret, !audiences.is_empty())?;
        providers.push(OidcSettings {
            // Clients reach the provider there, so the same rule holds for it.
            public_issuer: options
                .oidc_public_issuer
                .map(|url| provider_url("--oidc-public-issuer", "issuer", &url, allow))
                .transpose()?,
            introspection_endpoint: introspection,
            token_endpoint: token,
            audiences: audiences.clone(),
            scope_claim: scope_claim.clone(),
            introspection_token_scope: trimmed(options.oidc_introspection_token_scope),
            ..shared.provider(issuer, credentials)
        });
    }
    for issuer in issuers {
        let issuer = provider_url("--oidc-issuer", "issuer", &issuer, allow)?;
        require_audience(&audiences, "--oidc-issuer", &issuer)?;
        providers.push(OidcSettings {
            audiences: audiences.clone(),
            scope_claim: scope_claim.clone(),
            ..shared.provider(issuer, None)
        });
    }
    for provider in options.oidc_providers.unwrap_or_default() {
        let issuer = provider_url(
            "--config",
            "an oidc_providers issuer",
            &provider.issuer,
            allow,
        )?;
        let audiences = with_public_url(provider.audience);
        let credentials = credentials(
            provider.client_id,
            provider.client_secret,
            !audiences.is_empty(),
        )
        .map_err(|e| ConfigError::invalid("--config", format!("oidc_providers {issuer}: {e}")))?;
        providers.push(OidcSettings {
            public_issuer: provider
                .public_issuer
                .map(|url| provider_url("--config", "an oidc_providers public_issuer", &url, allow))
                .transpose()?,
            audiences,
            scope_claim: provider
                .scope_claim
                .as_deref()
                .map(ScopeClaim::parse)
                .transpose()?
                .unwrap_or_else(|| scope_claim.clone()),
            introspection_token_scope: trimmed(provider.introspection_token_scope),
            ..shared.provider(issuer, credentials)
        });
    }
    // A token is judged by the provider its `iss` names: two entries for one issuer would
    // make that ambiguous.
    for (i, provider) in providers.iter().enumerate() {
        let name = provider.issuer.as_str().trim_end_matches('/');
        if providers[..i]
            .iter()
            .any(|p| p.issuer.as_str().trim_end_matches('/') == name)
        {
            return Err(ConfigError::invalid(
                "--oidc-issuer",
                format!("{name} is configured twice"),
            ));
        }
    }
    Ok(providers)
}

/// The server's client at a provider: both halves or neither. Neither is allowed only
/// when the provider's JWTs can be checked here, i.e. an audience is set: a JWT that
/// need not name this server could be any application's token.
fn credentials(
    client_id: Option<String>,
    client_secret: Option<Secret>,
    has_audience: bool,
) -> Result<Option<ClientCredentials>, ConfigError> {
    let client_id = client_id.filter(|id| !id.is_empty());
    let client_secret = client_secret.filter(|secret| !secret.expose().is_empty());
    match (client_id, client_secret) {
        (Some(client_id), Some(secret)) => Ok(Some(ClientCredentials {
            client_id,
            client_secret: ClientSecret::new(secret.expose().to_owned()),
        })),
        (None, None) if has_audience => Ok(None),
        (None, None) => Err(ConfigError::invalid(
            "--oidc-client-id",
            "missing: give the server's own client (--oidc-client-id, --oidc-client-secret) to introspect tokens, or --public-url or --oidc-audience to check JWT access tokens here",
        )),
        (None, Some(_)) => Err(ConfigError::invalid(
            "--oidc-client-id",
            "missing: the server needs its own client id to introspect tokens",
        )),
        (Some(_), None) => Err(ConfigError::invalid(
            "--oidc-client-secret",
            "missing: only confidential clients may introspect tokens",
        )),
    }
}

/// A further `--oidc-issuer` has no client of the server's: its JWTs alone are checked,
/// and they must name this server.
fn require_audience(
    audiences: &[String],
    option: &'static str,
    issuer: &Url,
) -> Result<(), ConfigError> {
    if audiences.is_empty() {
        return Err(ConfigError::invalid(
            option,
            format!(
                "{issuer} has no client credentials, so its JWT access tokens are checked here, and they must name this server: give --public-url or --oidc-audience"
            ),
        ));
    }
    Ok(())
}

/// `--public-url`: where clients reach this server, an http(s) URL without user, query or
/// fragment (it is compared with the `aud` of tokens and published as it is).
fn parse_public_url(text: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::invalid("--public-url", reason);
    let url =
        Url::parse(text.trim()).map_err(|e| invalid(format!("{text:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http:// or https:// URL".to_owned()));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(
            "must not carry a user, password, query or fragment".to_owned(),
        ));
    }
    Ok(url)
}

fn read_client_secrets(path: &Path) -> Result<ClientSecretsWeb, ConfigError> {
    let fail = |reason: String| {
        ConfigError::invalid("--oidc-secrets", format!("{}: {reason}", path.display()))
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let file: ClientSecretsFile = serde_json::from_str(&text).map_err(|e| {
        fail(format!(
            "not a client_secrets.json ({{\"web\": {{client_id, client_secret, issuer, ...}}}}): {}",
            without_values(&e.to_string())
        ))
    })?;
    Ok(file.web)
}

/// A URL of the identity provider: https (or http to this machine), no user or password.
fn provider_url(
    option: &'static str,
    what: &str,
    value: &str,
    allow_insecure_http: bool,
) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::invalid(option, format!("{what} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            option,
            format!("{what} must be an http:// or https:// URL"),
        ));
    }
    // A user or password in the URL would be logged and published in the metadata.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            option,
            format!(
                "{what} must not carry a user or password; give credentials with --oidc-client-id and --oidc-client-secret"
            ),
        ));
    }
    trust::require_https(&url, allow_insecure_http)
        .map_err(|reason| ConfigError::invalid(option, format!("{what}: {reason}")))?;
    Ok(url)
}

fn read_ca_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let fail = |reason: String| {
        ConfigError::invalid("--oidc-ca-file", format!("{}: {reason}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(pem),
        Ok(_) => Err(fail("holds no PEM certificate".to_owned())),
        Err(e) => Err(fail(format!("not a PEM certificate bundle: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_url_with_relative_path() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://var/x.sqlite").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("var/x.sqlite"))
        );
    }

    #[test]
    fn sqlite_url_with_absolute_path() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.sqlite").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/tmp/x.sqlite"))
        );
    }

    #[test]
    fn in_memory_sqlite_is_refused() {
        assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
    }

    #[test]
    fn postgres_url_is_accepted() {
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
    }

    #[test]
    fn unknown_scheme_names_the_option_and_the_fix() {
        let message = DatabaseUrl::parse("mysql://h/db").unwrap_err().to_string();
        assert!(message.starts_with("--db: "), "{message}");
        assert!(message.contains("\"mysql\""), "{message}");
    }

    fn options(args: &[&str]) -> Options {
        let mut argv = vec!["mrmat-api"];
        argv.extend_from_slice(args);
        crate::cli::Cli::try_parse_from(argv).unwrap().options
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let settings = Settings::load(options(&[
            "--db",
            "postgres://u:pg-password@h/db",
            "--oidc-issuer",
            "http://127.0.0.1:1",
            "--oidc-client-id",
            "id",
            "--oidc-client-secret",
            "hunter2",
        ]))
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("pg-password"), "{debug}");
        let debug = format!("{:?}", options(&["--oidc-client-secret", "hunter2"]));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn a_provider_without_credentials_or_audience_is_refused_naming_both_ways() {
        let error = Settings::load(options(&["--oidc-issuer", "http://127.0.0.1:1"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("--oidc-client-id"), "{error}");
        assert!(error.contains("--public-url"), "{error}");
        assert!(error.contains("--oidc-audience"), "{error}");
    }

    #[test]
    fn a_provider_with_an_audience_needs_no_credentials() {
        let settings = Settings::load(options(&[
            "--oidc-issuer",
            "http://127.0.0.1:1",
            "--public-url",
            "https://api.example",
        ]))
        .unwrap();
        let provider = &settings.oidc[0];
        assert!(provider.credentials.is_none());
        assert!(provider.checks_jwts());
        assert_eq!(provider.audiences, ["https://api.example/"]);
    }

    #[test]
    fn the_public_url_joins_the_configured_audiences() {
        let settings = Settings::load(options(&[
            "--oidc-issuer",
            "http://127.0.0.1:1",
            "--oidc-audience",
            "api://mrmat",
            "--public-url",
            "https://api.example/v",
        ]))
        .unwrap();
        assert_eq!(
            settings.oidc[0].audiences,
            ["api://mrmat", "https://api.example/v"]
        );
    }

    #[test]
    fn a_public_url_with_a_query_or_a_user_is_refused() {
        for url in [
            "https://api.example/?x=1",
            "https://u@api.example",
            "ftp://api.example",
        ] {
            let error = Settings::load(options(&["--public-url", url]))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("--public-url: "), "{error}");
        }
    }

    #[test]
    fn further_issuers_are_jwt_only_providers() {
        let settings = Settings::load(options(&[
            "--oidc-issuer",
            "http://127.0.0.1:1,http://127.0.0.1:2",
            "--oidc-client-id",
            "id",
            "--oidc-client-secret",
            "s",
            "--public-url",
            "https://api.example",
        ]))
        .unwrap();
        assert_eq!(settings.oidc.len(), 2);
        assert!(settings.oidc[0].credentials.is_some());
        assert!(settings.oidc[1].credentials.is_none());
    }

    #[test]
    fn one_issuer_configured_twice_is_refused() {
        let error = Settings::load(options(&[
            "--oidc-issuer",
            "http://127.0.0.1:1",
            "--oidc-issuer",
            "http://127.0.0.1:1/",
            "--public-url",
            "https://api.example",
        ]))
        .unwrap_err()
        .to_string();
        assert!(error.contains("configured twice"), "{error}");
    }

    #[test]
    fn the_config_file_lists_providers_each_with_its_own_rules() {
        let file: Options = toml::from_str(
            r#"
            oidc_issuer = "http://127.0.0.1:1"
            oidc_client_id = "id"
            oidc_client_secret = "s"

            [[oidc_providers]]
            issuer = "http://127.0.0.1:2"
            audience = "api://two"
            scope_claim = "scp"
            "#,
        )
        .unwrap();
        let settings = Settings::load(options(&[]).or(file)).unwrap();
        assert_eq!(settings.oidc.len(), 2);
        let second = &settings.oidc[1];
        assert_eq!(second.audiences, ["api://two"]);
        assert_eq!(second.scope_claim.to_string(), "scp");
        assert!(second.credentials.is_none());
    }

    #[test]
    fn a_bad_scope_claim_is_refused() {
        let error = Settings::load(options(&["--oidc-scope-claim", "a..b"]))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("--oidc-scope-claim: "), "{error}");
    }

    #[test]
    fn command_line_beats_the_file_field_by_field() {
        let file = Options {
            host: Some("file-host".into()),
            port: Some(1),
            ..Options::default()
        };
        let merged = options(&["--port", "2"]).or(file);
        assert_eq!(merged.port, Some(2));
        assert_eq!(merged.host.as_deref(), Some("file-host"));
    }

    #[test]
    fn boolean_flags_take_an_optional_value() {
        assert_eq!(options(&["-d"]).debug, Some(true));
        assert_eq!(options(&["--debug=false"]).debug, Some(false));
        assert_eq!(options(&[]).debug, None);
        assert_eq!(options(&["--no-migrate"]).no_migrate, Some(true));
    }
}
