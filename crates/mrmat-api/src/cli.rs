//! The command line. Every option is also read from `MRMAT_API_<NAME>` (and the port from
//! `PORT`, as container platforms set it); `settings` merges them with the config file.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// mrmat-api: a production REST API boilerplate.
///
/// Serves versioned JSON APIs, keeps data in SQLite (default) or PostgreSQL and protects
/// endpoints with OIDC bearer tokens checked by token introspection.
#[derive(Debug, Parser)]
#[command(name = "mrmat-api", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Apply pending migrations (unless --no-migrate) and serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document and exit.
    Openapi,
}

/// Options shared by every command. Unset options fall back to the config file, then to
/// their defaults: flag > environment > file > default.
#[derive(Debug, Clone, Default, Args)]
pub struct Options {
    /// Configuration file (TOML, or JSON when it ends in .json).
    #[arg(long, global = true, env = "MRMAT_API_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Debug logging (RUST_LOG still wins when set).
    #[arg(short, long, global = true, env = "MRMAT_API_DEBUG")]
    pub debug: bool,

    /// Interface to bind [default: localhost].
    #[arg(long, global = true, env = "MRMAT_API_HOST")]
    pub host: Option<String>,

    /// Port to bind; 0 picks a free one [default: 8080; env: PORT too].
    #[arg(long, global = true, env = "MRMAT_API_PORT")]
    pub port: Option<u16>,

    /// Instance directory, created if missing; holds the default SQLite database
    /// [default: var/instance].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_INSTANCE_PATH",
        value_name = "DIR"
    )]
    pub instance_path: Option<PathBuf>,

    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB
    /// [default: sqlite://<instance-path>/mrmat-api.sqlite].
    #[arg(long, global = true, env = "MRMAT_API_DB", value_name = "URL")]
    pub db: Option<String>,

    /// OIDC registration in the Flask-OIDC client_secrets.json shape ({"web": {...}}).
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_SECRETS",
        value_name = "FILE"
    )]
    pub oidc_secrets: Option<PathBuf>,

    /// OIDC issuer URL; endpoints come from its discovery document.
    #[arg(long, global = true, env = "MRMAT_API_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,

    /// Client id the server introspects tokens with.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_CLIENT_ID",
        value_name = "ID"
    )]
    pub oidc_client_id: Option<String>,

    /// Client secret the server introspects tokens with.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub oidc_client_secret: Option<String>,

    /// Issuer URL as clients see it, when it differs from the one the server reaches.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_PUBLIC_ISSUER",
        value_name = "URL"
    )]
    pub oidc_public_issuer: Option<String>,

    /// Longest time an introspection result is trusted, in seconds; also how long a revoked
    /// token may still be accepted [default: 30].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_CACHE_TTL",
        value_name = "SECONDS"
    )]
    pub oidc_cache_ttl: Option<u64>,

    /// Timeout of each call to the identity provider, in seconds [default: 5].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub oidc_timeout: Option<u64>,

    /// Longest a request waits for the database (a free connection, a lock, a query), in
    /// seconds, before it is answered 503 [default: 5].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_DB_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub db_timeout: Option<f64>,

    /// HTTP worker threads [default: CPU count].
    #[arg(long, global = true, env = "MRMAT_API_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Serve without applying migrations; fails fast when the schema is behind.
    #[arg(long, global = true, env = "MRMAT_API_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Comma-separated proxy addresses whose Forwarded / X-Forwarded-* headers are trusted.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "IP"
    )]
    pub trusted_proxies: Option<Vec<IpAddr>>,
}
