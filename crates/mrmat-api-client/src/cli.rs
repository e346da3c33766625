//! The command line. Global options are also read from `MRMAT_API_CLIENT_<NAME>`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// mrmat-api-client: log in with the device flow and call every mrmat-api API.
///
/// Prompts and progress go to stderr; results go to stdout.
#[derive(Parser)]
#[command(name = "mrmat-api-client", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command. No `Debug`: it holds the client secret.
#[derive(Args)]
pub struct Global {
    /// Print only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Print what the client does (never tokens).
    #[arg(short, long, global = true)]
    pub debug: bool,

    /// Config file in the original's JSON shape: {"client_id", "client_secret", "discovery_url"}
    /// [default: <config dir>/mrmat-api-client/config.json].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// OAuth client id [default: mrmat-api-cli].
    #[arg(long, global = true, env = "MRMAT_API_CLIENT_CLIENT_ID")]
    pub client_id: Option<String>,

    /// OAuth client secret, for a confidential client.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,

    /// The identity provider's discovery URL [default: found from the server].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_DISCOVERY_URL",
        value_name = "URL"
    )]
    pub discovery_url: Option<String>,

    /// The API server [default: http://localhost:8080].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_SERVER",
        value_name = "URL"
    )]
    pub server: Option<String>,

    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, global = true, env = "MRMAT_API_CLIENT_OUTPUT", value_enum)]
    pub output: Option<OutputFormat>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// What to do.
#[derive(Subcommand)]
pub enum Command {
    /// Log in with the device flow and cache the tokens.
    Login,
    /// Revoke the cached tokens at the provider and delete them.
    Logout,
    /// Show who the cached token says you are, its scopes and expiry.
    Whoami,
    /// Print a valid access token (refreshed if needed), for scripts.
    /// MRMAT_API_TOKEN in the environment is used instead of the cache.
    Token,
    /// Call the greeting API.
    Greeting {
        /// API version.
        #[arg(long, value_enum, default_value_t = ApiVersion::V1)]
        api: ApiVersion,
        /// Who to greet (v2).
        #[arg(long)]
        name: Option<String>,
    },
    /// Call the resource API.
    #[command(subcommand)]
    Resource(ResourceCommand),
}

/// Greeting API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiVersion {
    /// Hello World.
    V1,
    /// Hello <name>.
    V2,
    /// Hello <you>; needs a login.
    V3,
}

/// Resource API commands.
#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// List resources, ordered by id.
    List {
        /// Page size (1-1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Resources to skip.
        #[arg(long)]
        offset: Option<u64>,
    },
    /// Show one resource.
    Get {
        /// Resource id.
        id: i64,
    },
    /// Create a resource you own.
    Create {
        /// Its name.
        name: String,
    },
    /// Rename a resource you own.
    Update {
        /// Resource id.
        id: i64,
        /// The new name.
        name: String,
    },
    /// Delete a resource you own.
    Delete {
        /// Resource id.
        id: i64,
    },
}
