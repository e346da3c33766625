//! The command line and the config file: one [`Options`] struct (with its identity
//! provider part, [`OidcOptions`]) that clap fills from flags and `MRMAT_API_<NAME>`
//! variables, and serde fills from the config file (TOML or JSON, snake_case keys).
//! `settings` merges the two, applies the [`defaults`] and checks every value.
//!
//! Reads: `MRMAT_API_CONFIG`, `MRMAT_API_DEBUG`, `MRMAT_API_HOST`, `MRMAT_API_PORT` (and
//! `PORT`, through `settings`), `MRMAT_API_BIND`, `MRMAT_API_SOCKET_MODE`,
//! `MRMAT_API_METRICS_ADDR`, `MRMAT_API_INSTANCE_PATH`, `MRMAT_API_DB`,
//! `MRMAT_API_DB_TIMEOUT`, `MRMAT_API_DB_POOL_SIZE`, `MRMAT_API_OIDC_SECRETS`, `MRMAT_API_OIDC_ISSUER`,
//! `MRMAT_API_PUBLIC_URL`, `MRMAT_API_OIDC_SCOPE_CLAIM`, `MRMAT_API_OIDC_ENDPOINT_HOSTS`,
//! `MRMAT_API_OIDC_REQUIRE_DPOP`,
//! `MRMAT_API_OIDC_CLIENT_ID`, `MRMAT_API_OIDC_CLIENT_SECRET`, `MRMAT_API_OIDC_PUBLIC_ISSUER`,
//! `MRMAT_API_OIDC_CACHE_TTL`, `MRMAT_API_OIDC_ALLOW_INSECURE_HTTP`,
//! `MRMAT_API_OIDC_CA_FILE`, `MRMAT_API_OIDC_AUDIENCE`,
//! `MRMAT_API_OIDC_INTROSPECTION_TOKEN_SCOPE`, `MRMAT_API_OIDC_TIMEOUT`, `MRMAT_API_WORKERS`,
//! `MRMAT_API_SHUTDOWN_DELAY`, `MRMAT_API_NO_MIGRATE`, `MRMAT_API_TRUSTED_PROXIES`,
//! `MRMAT_API_FORWARDED_HEADERS`, `MRMAT_API_CORS_ORIGINS`, `MRMAT_API_RATE_LIMIT`
//! (a test holds this list to the options).

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::FalseyValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
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

impl Cli {
    /// The command line of this process, as [`Cli::try_parse_from`] reads it; on an error
    /// clap's message and exit code (2), as `Parser::parse` would.
    pub fn parse() -> Self {
        Self::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the program name first) and the environment. Named like the
    /// `Parser` methods, so that `Cli::parse()` is this one: clap fills every option with
    /// a default from [`defaults`] so that `--help` shows it, and those values are
    /// dropped here again, because a value not given on the command line must still be
    /// taken from the config file, which ranks above the default.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = <Self as CommandFactory>::command().try_get_matches_from(args)?;
        let mut cli = <Self as FromArgMatches>::from_arg_matches(&matches)?;
        cli.options.forget_defaults(&matches);
        Ok(cli)
    }
}

/// The defaults of the options that have a value of their own when not given: stated once,
/// shown by `--help` (clap reads them from here) and applied by `settings`. Options whose
/// default is no value, or depends on another option, say so in their help instead.
pub mod defaults {
    use super::Duration;

    /// `--host`.
    pub const HOST: &str = "localhost";
    /// `--port` (and `PORT`).
    pub const PORT: u16 = 8080;
    /// `--socket-mode`: the owner and its group (the proxy's) connect.
    pub const SOCKET_MODE: u32 = 0o660;
    /// `--instance-path`.
    pub const INSTANCE_PATH: &str = "var/instance";
    /// `--db-timeout`: the bound on every wait for the database.
    pub const DB_TIMEOUT: Duration = Duration::from_secs(5);
    /// `--shutdown-delay`: long enough for a balancer that polls readiness every few
    /// seconds, or a platform removing the endpoint, to stop sending new requests.
    pub const SHUTDOWN_DELAY: Duration = Duration::from_secs(5);
    /// `--oidc-scope-claim`: RFC 9068's claim.
    pub const OIDC_SCOPE_CLAIM: &str = "scope";
    /// `--oidc-cache-ttl`: how long a revoked token may still be accepted.
    pub const OIDC_CACHE_TTL: Duration = Duration::from_secs(30);
    /// `--oidc-timeout`: of each call to the identity provider.
    pub const OIDC_TIMEOUT: Duration = Duration::from_secs(5);
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

/// Whether clap took the value of `id` from its default. Only ids with a value are
/// asked: clap panics on ids it does not know (`#[arg(skip)]` fields).
fn from_default(matches: &ArgMatches, id: &str) -> bool {
    matches.ids().any(|known| known.as_str() == id)
        && matches.value_source(id) == Some(ValueSource::DefaultValue)
}

/// Declares an options struct once: every field optional, so "not given" is visible and
/// the command line (with the environment) can be laid over the config file field by
/// field. Groups of options (`flatten`) are structs declared the same way.
macro_rules! options {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$attr:meta])* $field:ident : $ty:ty, )*
        }
        $( flatten { $( $(#[$group_attr:meta])* $group:ident : $group_ty:ty, )* } )?
    ) => {
        #[derive(Debug, Clone, Default, Args, Deserialize)]
        $(#[$meta])*
        pub struct $name {
            $( $(#[$attr])* pub $field: Option<$ty>, )*
            $($(
                $(#[$group_attr])*
                #[command(flatten)]
                #[serde(flatten)]
                pub $group: $group_ty,
            )*)?
        }

        impl $name {
            /// These options, with the gaps filled from `fallback`.
            pub fn or(self, fallback: Self) -> Self {
                Self {
                    $( $field: self.$field.or(fallback.$field), )*
                    $($( $group: self.$group.or(fallback.$group), )*)?
                }
            }

            /// Drops the values clap took from an option's default (see [`Cli::try_parse_from`]).
            fn forget_defaults(&mut self, matches: &ArgMatches) {
                $(
                    if from_default(matches, stringify!($field)) {
                        self.$field = None;
                    }
                )*
                $($( self.$group.forget_defaults(matches); )*)?
            }
        }
    };
}

options! {
    /// Options of every command: flag > environment > config file > default. A value
    /// that is not given is `None`; `settings` supplies the defaults.
    #[serde(deny_unknown_fields)]
    pub struct Options {
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

        /// Interface to bind.
        #[arg(long, global = true, env = "MRMAT_API_HOST", default_value = defaults::HOST)]
        host: String,

        /// Port to bind; 0 picks a free one. The variable PORT is read too, below this one.
        #[arg(long, global = true, env = "MRMAT_API_PORT", default_value = defaults::PORT.to_string())]
        port: u16,

        /// Listen on a unix socket instead of --host/--port: `unix:/path/to/socket`. Peers on
        /// the socket are trusted like --trusted-proxies: its file mode decides who connects.
        #[arg(long, global = true, env = "MRMAT_API_BIND", value_name = "unix:PATH")]
        bind: String,

        /// File mode of the unix socket, in octal.
        #[arg(
            long,
            global = true,
            env = "MRMAT_API_SOCKET_MODE",
            value_name = "OCTAL",
            default_value = format!("{:o}", defaults::SOCKET_MODE)
        )]
        socket_mode: String,

        /// Serve GET /metrics (Prometheus) on this HOST:PORT instead of the public port, e.g.
        /// 0.0.0.0:9090 in a cluster [default: /metrics on the public port].
        #[arg(long, global = true, env = "MRMAT_API_METRICS_ADDR", value_name = "HOST:PORT")]
        metrics_addr: String,

        /// Instance directory, created if missing; holds the default SQLite database.
        #[arg(
            long,
            global = true,
            env = "MRMAT_API_INSTANCE_PATH",
            value_name = "DIR",
            default_value = defaults::INSTANCE_PATH
        )]
        instance_path: PathBuf,

        /// Database URL: sqlite://PATH or postgres://USER@HOST/DB
        /// [default: sqlite://<instance-path>/mrmat-api.sqlite].
        #[arg(long, global = true, env = "MRMAT_API_DB", value_name = "URL", hide_env_values = true)]
        db: Secret,

        /// Longest a request waits for the database (a turn to write, a free connection, a
        /// lock, a query), in seconds, before it is answered 503.
        #[arg(
            long,
            global = true,
            env = "MRMAT_API_DB_TIMEOUT",
            value_name = "SECONDS",
            default_value = defaults::DB_TIMEOUT.as_secs_f64().to_string()
        )]
        db_timeout: f64,

        /// Most connections the pool holds to the database, from 1 to 10000 (SQLite
        /// writes take turns on one writer whatever the pool)
        /// [default: twice --workers, at least 8].
        #[arg(long, global = true, env = "MRMAT_API_DB_POOL_SIZE", value_name = "N")]
        db_pool_size: u32,

        /// The URL clients use to reach this server, e.g. https://api.example.com. It is the
        /// `resource` of the RFC 9728 metadata, and an audience a token must name
        /// (besides --oidc-audience): a token issued for another server is refused here.
        #[arg(long, global = true, env = "MRMAT_API_PUBLIC_URL", value_name = "URL")]
        public_url: String,

        /// On SIGTERM/SIGINT, how long the server keeps accepting, answering readiness 503
        /// and closing kept-alive connections, before it stops accepting and lets the requests
        /// in flight finish; in seconds, 0 to 3600.
        #[arg(
            long,
            global = true,
            env = "MRMAT_API_SHUTDOWN_DELAY",
            value_name = "SECONDS",
            default_value = defaults::SHUTDOWN_DELAY.as_secs_f64().to_string()
        )]
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
        /// passes the family it does not set on from the client untouched.
        #[arg(
            long,
            global = true,
            env = "MRMAT_API_FORWARDED_HEADERS",
            value_name = "FAMILY",
            default_value = ForwardedHeaders::default().to_string()
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
    flatten {
        /// How tokens are checked: the identity providers.
        oidc: OidcOptions,
    }
}

options! {
    /// The identity provider options, a part of [`Options`] (the same flat names in the
    /// config file): `settings` turns them into one `OidcSettings` a provider.
    #[command(next_help_heading = "Identity provider (OIDC)")]
    pub struct OidcOptions {
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

        /// The claim of a JWT access token that holds its scopes: a name or a dotted path
        /// (Entra ID: scp; Auth0: permissions; Keycloak roles: realm_access.roles), a
        /// space-separated string or an array.
        #[arg(
            long,
            global = true,
            env = "MRMAT_API_OIDC_SCOPE_CLAIM",
            value_name = "CLAIM",
            default_value = defaults::OIDC_SCOPE_CLAIM
        )]
        oidc_scope_claim: String,

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

        /// Longest time an introspection result is trusted, in seconds; also how long a revoked
        /// token may still be accepted.
        #[arg(
            long,
            global = true,
            env = "MRMAT_API_OIDC_CACHE_TTL",
            value_name = "SECONDS",
            default_value = defaults::OIDC_CACHE_TTL.as_secs().to_string()
        )]
        oidc_cache_ttl: u64,

        /// Timeout of each call to the identity provider, in seconds.
        #[arg(
            long,
            global = true,
            env = "MRMAT_API_OIDC_TIMEOUT",
            value_name = "SECONDS",
            default_value = defaults::OIDC_TIMEOUT.as_secs().to_string()
        )]
        oidc_timeout: u64,

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
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_shown_in_help_is_not_a_given_value() {
        let cli = Cli::try_parse_from(["mrmat-api", "migrate"]).unwrap();
        assert_eq!(cli.options.host, None);
        assert_eq!(cli.options.port, None);
        assert_eq!(cli.options.oidc.oidc_timeout, None);
        let cli = Cli::try_parse_from(["mrmat-api", "--port", "8080", "--oidc-timeout=9"]).unwrap();
        assert_eq!(cli.options.port, Some(8080));
        assert_eq!(cli.options.oidc.oidc_timeout, Some(9));
    }

    #[test]
    fn the_module_header_names_every_variable_the_options_read() {
        let header: String = include_str!("cli.rs")
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect();
        for arg in Cli::command().get_arguments() {
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(
                    header.contains(&format!("`{env}`")),
                    "{env} is not in the header"
                );
            }
        }
    }

    #[test]
    fn help_shows_the_defaults_from_their_constants() {
        let help = Cli::command().render_long_help().to_string();
        for shown in [
            format!("[default: {}]", defaults::HOST),
            format!("[default: {}]", defaults::PORT),
            format!("[default: {:o}]", defaults::SOCKET_MODE),
            format!("[default: {}]", defaults::OIDC_CACHE_TTL.as_secs()),
            format!("[default: {}]", defaults::OIDC_SCOPE_CLAIM),
        ] {
            assert!(help.contains(&shown), "{shown} not in:\n{help}");
        }
    }
}
