//! The command line and the config file: one [`Options`] struct that clap fills from flags
//! and `MRMAT_API_<NAME>` variables, and serde fills from the config file (TOML or JSON,
//! snake_case keys). `settings` merges the two and checks every value.
//!
//! Reads: `MRMAT_API_CONFIG`, `MRMAT_API_DEBUG`, `MRMAT_API_HOST`, `MRMAT_API_PORT` (and
//! `PORT`, through `settings`), `MRMAT_API_BIND`, `MRMAT_API_SOCKET_MODE`,
//! `MRMAT_API_METRICS_ADDR`, `MRMAT_API_INSTANCE_PATH`, `MRMAT_API_DB`,
//! `MRMAT_API_DB_TIMEOUT`, `MRMAT_API_OIDC_SECRETS`, `MRMAT_API_OIDC_ISSUER`,
//! `MRMAT_API_PUBLIC_URL`, `MRMAT_API_OIDC_SCOPE_CLAIM`, `MRMAT_API_OIDC_ENDPOINT_HOSTS`,
//! `MRMAT_API_OIDC_REQUIRE_DPOP`,
//! `MRMAT_API_OIDC_CLIENT_ID`, `MRMAT_API_OIDC_CLIENT_SECRET`, `MRMAT_API_OIDC_PUBLIC_ISSUER`,
//! `MRMAT_API_OIDC_CACHE_TTL`, `MRMAT_API_OIDC_ALLOW_INSECURE_HTTP`,
//! `MRMAT_API_OIDC_CA_FILE`, `MRMAT_API_OIDC_AUDIENCE`,
//! `MRMAT_API_OIDC_INTROSPECTION_TOKEN_SCOPE`, `MRMAT_API_OIDC_TIMEOUT`, `MRMAT_API_WORKERS`,
//! `MRMAT_API_NO_MIGRATE`, `MRMAT_API_TRUSTED_PROXIES`, `MRMAT_API_FORWARDED_HEADERS`,
//! `MRMAT_API_CORS_ORIGINS`, `MRMAT_API_RATE_LIMIT`.

use std::path::PathBuf;

use clap::builder::FalseyValueParser;
use clap::{Args, Parser, Subcommand};
use mrmat_api_types::secret::Secret;
use serde::Deserialize;

use crate::forwarded::{ForwardedHeaders, TrustedProxy};

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
    /// Check the set-up: configuration, database and schema, the identity provider, and a
    /// token from MRMAT_API_DOCTOR_TOKEN when set. Exits non-zero when a check fails.
    Doctor {
        /// How to print the checks.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
    },
    /// Apply pending migrations (unless --no-migrate) and serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document and exit.
    Openapi,
}

/// How `doctor` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A line a check, for people.
    Text,
    /// One JSON document, for automation.
    Json,
}

/// Declares [`Options`] once: every field optional, so "not given" is visible and the
/// command line (with the environment) can be laid over the config file field by field.
macro_rules! options {
    ($( $(#[$attr:meta])* $field:ident : $ty:ty, )*) => {
        /// Options of every command: flag > environment > config file > default. A value
        /// that is not given is `None`; `settings` supplies the defaults.
        #[derive(Debug, Clone, Default, Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Options {
            $( $(#[$attr])* pub $field: Option<$ty>, )*
        }

        impl Options {
            /// These options, with the gaps filled from `fallback`.
            pub fn or(self, fallback: Self) -> Self {
                Self { $( $field: self.$field.or(fallback.$field), )* }
            }
        }
    };
}

options! {
    /// Configuration file (TOML, or JSON when it ends in .json).
    #[arg(long, global = true, env = "MRMAT_API_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    config: PathBuf,

    /// Debug logging (RUST_LOG still wins when set).
    #[arg(
        short,
        long,
        global = true,
        env = "MRMAT_API_DEBUG",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = FalseyValueParser::new()
    )]
    debug: bool,

    /// Interface to bind [default: localhost].
    #[arg(long, global = true, env = "MRMAT_API_HOST")]
    host: String,

    /// Port to bind; 0 picks a free one [default: 8080; env: PORT too].
    #[arg(long, global = true, env = "MRMAT_API_PORT")]
    port: u16,

    /// Listen on a unix socket instead of --host/--port: `unix:/path/to/socket`. Peers on
    /// the socket are trusted like --trusted-proxies: its file mode decides who connects.
    #[arg(long, global = true, env = "MRMAT_API_BIND", value_name = "unix:PATH")]
    bind: String,

    /// File mode of the unix socket, in octal [default: 660].
    #[arg(long, global = true, env = "MRMAT_API_SOCKET_MODE", value_name = "OCTAL")]
    socket_mode: String,

    /// Serve GET /metrics (Prometheus) on this HOST:PORT instead of the public port, e.g.
    /// 0.0.0.0:9090 in a cluster [default: /metrics on the public port].
    #[arg(long, global = true, env = "MRMAT_API_METRICS_ADDR", value_name = "HOST:PORT")]
    metrics_addr: String,

    /// Instance directory, created if missing; holds the default SQLite database
    /// [default: var/instance].
    #[arg(long, global = true, env = "MRMAT_API_INSTANCE_PATH", value_name = "DIR")]
    instance_path: PathBuf,

    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB
    /// [default: sqlite://<instance-path>/mrmat-api.sqlite].
    #[arg(long, global = true, env = "MRMAT_API_DB", value_name = "URL", hide_env_values = true)]
    db: Secret,

    /// Longest a request waits for the database (a turn to write, a free connection, a
    /// lock, a query), in seconds, before it is answered 503 [default: 5].
    #[arg(long, global = true, env = "MRMAT_API_DB_TIMEOUT", value_name = "SECONDS")]
    db_timeout: f64,

    /// OIDC registration in the Flask-OIDC client_secrets.json shape ({"web": {...}}).
    #[arg(long, global = true, env = "MRMAT_API_OIDC_SECRETS", value_name = "FILE")]
    oidc_secrets: PathBuf,

    /// OIDC issuer URL; endpoints come from its discovery document. Repeatable or
    /// comma-separated: the first is the provider the client options below belong to,
    /// each further one a provider whose JWT access tokens are checked here (no
    /// credentials needed). A token is judged only by the provider its `iss` names.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_ISSUER",
        value_delimiter = ',',
        value_name = "URL"
    )]
    #[serde(default, deserialize_with = "one_or_many")]
    oidc_issuer: Vec<String>,

    /// Identity providers from the config file only, each with its own client,
    /// audiences and scope claim: `[[oidc_providers]]` tables in TOML.
    #[arg(skip)]
    oidc_providers: Vec<ProviderOptions>,

    /// The URL clients use to reach this server, e.g. https://api.example.com. It is the
    /// `resource` of the RFC 9728 metadata, and an audience a token must name
    /// (besides --oidc-audience): a token issued for another server is refused here.
    #[arg(long, global = true, env = "MRMAT_API_PUBLIC_URL", value_name = "URL")]
    public_url: String,

    /// Accept only DPoP-bound tokens (RFC 9449): a token sent as a plain bearer token is
    /// refused, so a stolen token is worth nothing without its key.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_REQUIRE_DPOP",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = FalseyValueParser::new()
    )]
    oidc_require_dpop: bool,

    /// The claim of a JWT access token that holds its scopes: a name or a dotted path
    /// (Entra ID: scp; Auth0: permissions; Keycloak roles: realm_access.roles), a
    /// space-separated string or an array [default: scope].
    #[arg(long, global = true, env = "MRMAT_API_OIDC_SCOPE_CLAIM", value_name = "CLAIM")]
    oidc_scope_claim: String,

    /// Client id the server introspects tokens with.
    #[arg(long, global = true, env = "MRMAT_API_OIDC_CLIENT_ID", value_name = "ID")]
    oidc_client_id: String,

    /// Client secret the server introspects tokens with.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    oidc_client_secret: Secret,

    /// Issuer URL as clients see it, when it differs from the one the server reaches.
    #[arg(long, global = true, env = "MRMAT_API_OIDC_PUBLIC_ISSUER", value_name = "URL")]
    oidc_public_issuer: String,

    /// Longest time an introspection result is trusted, in seconds; also how long a revoked
    /// token may still be accepted [default: 30].
    #[arg(long, global = true, env = "MRMAT_API_OIDC_CACHE_TTL", value_name = "SECONDS")]
    oidc_cache_ttl: u64,

    /// Allow plain http:// to an identity provider that is not on this machine. Tokens and
    /// the client secret then cross the network in clear: never in production.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_ALLOW_INSECURE_HTTP",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = FalseyValueParser::new()
    )]
    oidc_allow_insecure_http: bool,

    /// Hosts besides the issuer's (and the public issuer's) that discovery may name for the
    /// introspection and token endpoints, which receive the server's client secret and
    /// users' tokens, repeatable or comma-separated [default: none: such a document is
    /// refused]. The key set (`jwks_uri`) receives nothing and may be anywhere.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_ENDPOINT_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    oidc_endpoint_hosts: Vec<String>,

    /// PEM file of certificate authorities to trust for the identity provider, besides the
    /// platform's and the built-in (webpki) ones: for a provider behind a private CA.
    #[arg(long, global = true, env = "MRMAT_API_OIDC_CA_FILE", value_name = "FILE")]
    oidc_ca_file: PathBuf,

    /// Audiences the server accepts, repeatable or comma-separated: a token's `aud` must
    /// name one of them or --public-url [default: any, for introspected tokens only; a
    /// JWT access token is checked here only when an audience is set]. Recent Keycloak
    /// needs an Audience mapper for this.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_AUDIENCE",
        value_delimiter = ',',
        value_name = "AUDIENCE"
    )]
    oidc_audience: Vec<String>,

    /// Authenticate introspection with a bearer token instead of HTTP Basic: a
    /// client-credentials token of the server's own client carrying this scope (RFC 7662
    /// section 2.1), for providers that let only such tokens introspect others' tokens
    /// (Glewlwyd).
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_OIDC_INTROSPECTION_TOKEN_SCOPE",
        value_name = "SCOPE"
    )]
    oidc_introspection_token_scope: String,

    /// Timeout of each call to the identity provider, in seconds [default: 5].
    #[arg(long, global = true, env = "MRMAT_API_OIDC_TIMEOUT", value_name = "SECONDS")]
    oidc_timeout: u64,

    /// On SIGTERM/SIGINT, how long the server keeps accepting, answering readiness 503
    /// and closing kept-alive connections, before it stops accepting and lets the requests
    /// in flight finish; in seconds, 0 to 3600 [default: 5].
    #[arg(long, global = true, env = "MRMAT_API_SHUTDOWN_DELAY", value_name = "SECONDS")]
    shutdown_delay: f64,

    /// HTTP worker threads [default: CPU count].
    #[arg(long, global = true, env = "MRMAT_API_WORKERS", value_name = "N")]
    workers: usize,

    /// Serve without applying migrations; fails fast when the schema is behind.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_NO_MIGRATE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = FalseyValueParser::new()
    )]
    no_migrate: bool,

    /// Comma-separated proxies (addresses or CIDR ranges) whose Forwarded /
    /// X-Forwarded-* headers are trusted.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "IP[/BITS]"
    )]
    trusted_proxies: Vec<TrustedProxy>,

    /// Which forwarding headers are read from the trusted proxies: `x-forwarded`
    /// (X-Forwarded-For, -Proto, -Host) or `forwarded` (RFC 7239), never both: a proxy
    /// passes the family it does not set on from the client untouched [default:
    /// x-forwarded].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_FORWARDED_HEADERS",
        value_name = "FAMILY"
    )]
    forwarded_headers: ForwardedHeaders,

    /// Origins whose pages' scripts may call the API (CORS), repeatable or
    /// comma-separated: exact origins such as https://app.example.com, or * alone for
    /// any (never with credentials: the API reads tokens from Authorization, not
    /// cookies) [default: none, CORS off].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    #[serde(default, deserialize_with = "one_or_many")]
    cors_origins: Vec<String>,

    /// Requests allowed per client, N/s or N/min, with a burst of N: a valid token's
    /// holder (issuer and subject) is a client, else the client address; /healthz and
    /// /metrics are not limited. Each instance counts on its own [default: off].
    #[arg(long, global = true, env = "MRMAT_API_RATE_LIMIT", value_name = "N/s|N/min")]
    rate_limit: String,
}

/// One identity provider of the config file's `oidc_providers` list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderOptions {
    /// Its issuer URL.
    pub issuer: String,
    /// The issuer as clients see it, when it differs.
    #[serde(default)]
    pub public_issuer: Option<String>,
    /// The server's client at this provider, to introspect opaque tokens; without one,
    /// only its JWT access tokens are accepted.
    #[serde(default)]
    pub client_id: Option<String>,
    /// That client's secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Audiences its tokens may name, besides --public-url.
    #[serde(default, deserialize_with = "one_or_many_list")]
    pub audience: Vec<String>,
    /// Where its JWTs hold their scopes [default: scope].
    #[serde(default)]
    pub scope_claim: Option<String>,
    /// Introspect with a client-credentials token carrying this scope (Glewlwyd).
    #[serde(default)]
    pub introspection_token_scope: Option<String>,
}

/// A string or a list of strings: a config file written for one issuer keeps working.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for Vec<String> {
    fn from(value: OneOrMany) -> Self {
        match value {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Option::<OneOrMany>::deserialize(d).map(|v| v.map(Vec::from))
}

fn one_or_many_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    OneOrMany::deserialize(d).map(Vec::from)
}
