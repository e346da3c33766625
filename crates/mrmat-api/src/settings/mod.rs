//! Resolved configuration: the command line and environment ([`Options`], from clap) laid
//! over the config file (the same [`Options`], from serde), then the defaults. Every value
//! is checked here, so a bad one ends the process before anything starts, with one line
//! naming the option.
//!
//! One file per concern: `config_file` reads `--config`, `client_secrets` a Flask-OIDC
//! `client_secrets.json`, `url_policy` decides which URLs are acceptable, `ca_file`
//! reads extra certificate authorities, `listen` the addresses and the unix socket,
//! `placeholder` knows the published secrets, `database` the database URL, `cors_origins` and `rate_limit` those options, `oidc`
//! what a checked provider looks like and `providers` makes them from the options.

mod ca_file;
mod client_secrets;
mod config_file;
mod cors_origins;
mod database;
mod error;
mod listen;
mod oidc;
mod placeholder;
mod providers;
mod rate_limit;
mod url_policy;

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use cors_origins::CorsOrigins;
pub use database::DatabaseUrl;
pub use error::ConfigError;
pub use listen::{DEFAULT_SOCKET_MODE, UnixSocket};
pub use oidc::{ClientCredentials, OidcSettings, ScopeClaim};
pub use rate_limit::RateLimit;

use crate::cli::{Options, defaults};
use crate::forwarded::{ForwardedHeaders, TrustedProxy};
use config_file::read_config_file;
use listen::{parse_bind, parse_host_port, port_from_env};
use providers::resolve_oidc;
use url_policy::parse_public_url;

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
    /// Most connections the pool holds to the database.
    pub db_pool_size: u32,
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

/// Default bound on every wait for the database.
pub use defaults::DB_TIMEOUT as DEFAULT_DB_TIMEOUT;

/// The largest `--db-pool-size`: far above what a database serves well, so only a typo
/// meets it.
const MAX_POOL_SIZE: u32 = 10_000;

/// `--db-pool-size` when not given: two connections a worker, so a worker's requests can
/// wait on the database side by side, and at least 8.
fn default_pool_size(workers: usize) -> u32 {
    u32::try_from(workers.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .max(8)
}
/// Default introspection-cache ceiling.
pub use defaults::OIDC_CACHE_TTL as DEFAULT_OIDC_CACHE_TTL;
/// Default timeout of calls to the identity provider.
pub use defaults::OIDC_TIMEOUT as DEFAULT_OIDC_TIMEOUT;
/// Default drain on SIGTERM.
pub use defaults::SHUTDOWN_DELAY as DEFAULT_SHUTDOWN_DELAY;

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
        let db_timeout = seconds("--db-timeout", options.db_timeout, DEFAULT_DB_TIMEOUT, 0.1)?;
        let shutdown_delay = seconds(
            "--shutdown-delay",
            options.shutdown_delay,
            DEFAULT_SHUTDOWN_DELAY,
            0.0,
        )?;
        let workers = options
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        if workers == 0 {
            return Err(ConfigError::invalid("--workers", "must be at least 1"));
        }
        let db_pool_size = match options.db_pool_size {
            None => default_pool_size(workers),
            Some(size) if (1..=MAX_POOL_SIZE).contains(&size) => size,
            Some(_) => {
                return Err(ConfigError::invalid(
                    "--db-pool-size",
                    format!("must be a number of connections from 1 to {MAX_POOL_SIZE}"),
                ));
            }
        };
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
            db_pool_size,
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
            db_pool_size: default_pool_size(1),
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
            "configuration: {}:{}, {} workers, database {database} (timeout {:?}, pool {}), migrate {}, oidc {oidc}, trusted proxies {:?}",
            self.host,
            self.port,
            self.workers,
            self.db_timeout,
            self.db_pool_size,
            self.migrate,
            self.trusted_proxies
        )
    }
}

/// A duration option given in seconds, from `least` to an hour; `default` when not given.
fn seconds(
    option: &'static str,
    given: Option<f64>,
    default: Duration,
    least: f64,
) -> Result<Duration, ConfigError> {
    match given {
        None => Ok(default),
        Some(seconds) if seconds.is_finite() && (least..=3600.0).contains(&seconds) => {
            Ok(Duration::from_secs_f64(seconds))
        }
        Some(_) => Err(ConfigError::invalid(
            option,
            format!("must be a number of seconds from {least} to 3600"),
        )),
    }
}

#[cfg(test)]
mod tests;
