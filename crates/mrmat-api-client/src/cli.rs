//! The command line. Global options are also read from `MRMAT_API_CLIENT_<NAME>`; they are
//! listed once, in the top-level help, and accepted before or after the command.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use mrmat_api_types::secret::Secret;

/// Log in to an mrmat-api server with the device flow and call its APIs.
///
/// Prompts and progress go to stderr; results go to stdout.
#[derive(Debug, Parser)]
#[command(
    name = "mrmat-api-client",
    version,
    long_about = None,
    after_help = "\
Examples:
  mrmat-api-client --server https://api.example.com login
  mrmat-api-client resource create \"my first resource\"
  mrmat-api-client resource list --output json | jq '.resources[].name'
  mrmat-api-client auth status --check

Exit codes: 0 ok, 1 error, 2 usage or configuration, 3 not logged in or session ended,
4 not found, 5 forbidden, 6 the login could not be checked (auth status --check: the
provider did not answer), 130 cancelled."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command. The client secret is a [`Secret`], so `Debug` shows it
/// redacted.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Print only results and errors.
    #[arg(
        short,
        long,
        global = true,
        env = "MRMAT_API_CLIENT_QUIET",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::SetTrue
    )]
    pub quiet: bool,

    /// Print what the client does, and every HTTP call (never tokens).
    #[arg(
        short,
        long,
        global = true,
        env = "MRMAT_API_CLIENT_DEBUG",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::SetTrue
    )]
    pub debug: bool,

    /// The API server [default: http://localhost:8080]. To change the default, set
    /// MRMAT_API_CLIENT_SERVER, or "server" in the config file.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_SERVER",
        value_name = "URL"
    )]
    pub server: Option<String>,

    /// Output format [default: table on a terminal, json otherwise].
    #[arg(
        short,
        long,
        global = true,
        env = "MRMAT_API_CLIENT_OUTPUT",
        value_enum
    )]
    pub output: Option<OutputFormat>,

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
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_CLIENT_ID",
        value_name = "ID"
    )]
    pub client_id: Option<String>,

    /// OAuth client secret, for a confidential client.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub client_secret: Option<Secret>,

    /// The identity provider's discovery URL [default: found from the server].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_DISCOVERY_URL",
        value_name = "URL"
    )]
    pub discovery_url: Option<String>,

    /// The value of the resource indicator a login sends, when the provider knows the API
    /// by another name than the server URL (Auth0: the API's identifier)
    /// [default: the server URL].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_RESOURCE_INDICATOR",
        value_name = "VALUE"
    )]
    pub resource_indicator: Option<String>,

    /// The name of the resource indicator parameter (RFC 8707), for providers that read
    /// another one (Auth0: audience) [default: resource].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_RESOURCE_INDICATOR_PARAM",
        value_name = "NAME"
    )]
    pub resource_indicator_param: Option<String>,

    /// Send no resource indicator, for providers that refuse unknown resources. Tokens
    /// are then not bound to this server by the login; the server's audience check must
    /// do it.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_NO_RESOURCE_INDICATOR",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::SetTrue
    )]
    pub no_resource_indicator: bool,

    /// Ask for plain bearer tokens at login, even when the server takes DPoP-bound ones
    /// (RFC 9449). By default a login to a server that advertises DPoP gets tokens bound
    /// to a key of its own, worthless to anyone who copies them without it.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_NO_DPOP",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::SetTrue
    )]
    pub no_dpop: bool,

    /// Seconds one HTTP call may take, connecting included [default: 30].
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_TIMEOUT",
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    pub timeout: Option<u64>,

    /// Also trust the CA certificates in this PEM file (besides the system's and
    /// webpki's roots).
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_CA_FILE",
        value_name = "FILE"
    )]
    pub ca_file: Option<PathBuf>,

    /// Allow plain http to hosts other than this machine. Anyone on the way can then read
    /// the tokens; a warning says so every time.
    #[arg(
        long,
        global = true,
        env = "MRMAT_API_CLIENT_ALLOW_INSECURE_HTTP",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::SetTrue
    )]
    pub allow_insecure_http: bool,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people, cut to the terminal's width.
    Table,
    /// JSON for scripts, with every value in full.
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in with the device flow and cache the tokens.
    #[command(after_help = "\
Examples:
  mrmat-api-client login
  mrmat-api-client --server https://api.example.com login
  mrmat-api-client login                      # as another user too: both are kept, the new one active
  mrmat-api-client login --no-browser         # on a remote shell: only print the page
  mrmat-api-client login --scopes mrmat-api-resource-read     # a read-only login")]
    Login(LoginArgs),
    /// Revoke the active account's tokens at the provider and delete its login; another
    /// account logged in to the server, if any, becomes active.
    #[command(after_help = "\
Examples:
  mrmat-api-client logout
  mrmat-api-client logout --user bob  # another account than the active one
  mrmat-api-client logout --all       # every account logged in to the server
  mrmat-api-client logout --local     # the provider is gone: only forget the login here")]
    Logout(LogoutArgs),
    /// Logins and whether they work; switching between accounts.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Same as `auth status`.
    Whoami(StatusArgs),
    /// Print a valid access token (refreshed if needed), for scripts.
    /// MRMAT_API_TOKEN in the environment is used instead of the login. With
    /// `--output json` (only when asked for): {"access_token", "token_type", "expires_at"}.
    #[command(after_help = "\
Examples:
  curl -H \"Authorization: Bearer $(mrmat-api-client token)\" http://localhost:8080/api/greeting/v3/
  mrmat-api-client token -o json | jq -r .expires_at")]
    Token,
    /// Call the greeting API.
    #[command(after_help = "\
Examples:
  mrmat-api-client greeting
  mrmat-api-client greeting --api v2 --name Eelyn
  mrmat-api-client greeting --api v3     # needs a login")]
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
    /// Print a completion script for a shell.
    #[command(after_help = "\
Examples:
  mrmat-api-client completion bash > ~/.local/share/bash-completion/completions/mrmat-api-client
  mrmat-api-client completion zsh > \"${fpath[1]}/_mrmat-api-client\"
  mrmat-api-client completion fish > ~/.config/fish/completions/mrmat-api-client.fish
  mrmat-api-client completion powershell >> $PROFILE")]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The command as typed, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Login(_) => "login",
            Self::Logout(_) => "logout",
            Self::Auth(AuthCommand::Status(_)) => "auth status",
            Self::Auth(AuthCommand::Switch(_)) => "auth switch",
            Self::Auth(AuthCommand::Login(_)) => "auth login",
            Self::Auth(AuthCommand::Logout(_)) => "auth logout",
            Self::Auth(AuthCommand::Token) => "auth token",
            Self::Whoami(_) => "whoami",
            Self::Token => "token",
            Self::Greeting { .. } => "greeting",
            Self::Resource(ResourceCommand::List(_)) => "resource list",
            Self::Resource(ResourceCommand::Get { .. }) => "resource get",
            Self::Resource(ResourceCommand::Create { .. }) => "resource create",
            Self::Resource(ResourceCommand::Update { .. }) => "resource update",
            Self::Resource(ResourceCommand::Delete { .. }) => "resource delete",
            Self::Completion { .. } => "completion",
        }
    }
}

/// Options of `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Do not open the login page in a browser (a remote shell): only print it. Otherwise
    /// a login on a terminal opens it with $BROWSER, or the desktop's opener.
    #[arg(
        long,
        env = "MRMAT_API_CLIENT_NO_BROWSER",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::SetTrue
    )]
    pub no_browser: bool,

    /// Ask only for these of the server's scopes (comma-separated), for example only
    /// mrmat-api-resource-read for a read-only login [default: all the server offers].
    #[arg(long, value_name = "SCOPE,...", value_delimiter = ',')]
    pub scopes: Vec<String>,

    /// Accepted for scripts written when a login as another user replaced the cached
    /// one; logins as another user are now kept alongside, so it changes nothing.
    #[arg(long, hide = true)]
    pub switch_account: bool,
}

/// Options of `logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Only delete the login on this machine; the tokens are not revoked and stay valid
    /// until they expire.
    #[arg(long)]
    pub local: bool,

    /// Log out this account (its user name or subject) instead of the active one.
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub user: Option<String>,

    /// Log out every account logged in to the server.
    #[arg(long)]
    pub all: bool,
}

/// Options of `auth switch`.
#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// The account to make active (its user name or subject). Without it: the other
    /// account when there are two; a numbered choice on a terminal when there are more.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// `auth` commands.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Every cached login (server, user, which account is active, provider, scopes,
    /// expiry) and whether it works.
    /// Exits 3 when the login to the chosen server is missing or has ended, 6 when
    /// --check cannot tell (the provider did not answer).
    #[command(after_help = "\
Examples:
  mrmat-api-client auth status
  mrmat-api-client auth status --check     # refresh once to prove each session still works
  mrmat-api-client whoami --output json")]
    Status(StatusArgs),
    /// Make another account logged in to the server the active one: the one `token`,
    /// `whoami` and every API call use.
    #[command(after_help = "\
Examples:
  mrmat-api-client auth switch                # two accounts: the other one
  mrmat-api-client auth switch --user alice")]
    Switch(SwitchArgs),
    /// Same as `login` (as gh spells it).
    Login(LoginArgs),
    /// Same as `logout`.
    Logout(LogoutArgs),
    /// Same as `token`.
    Token,
}

/// Options of `auth status`.
#[derive(Debug, Clone, Copy, Args)]
pub struct StatusArgs {
    /// Refresh each login once, to know whether it still works.
    #[arg(long)]
    pub check: bool,
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
    /// List resources, ordered by id: all of them, page by page, unless --limit is given.
    #[command(after_help = "\
Examples:
  mrmat-api-client resource list
  mrmat-api-client resource list --limit 10
  mrmat-api-client resource list --limit 10 --after 42     # the page after id 42
  mrmat-api-client resource list --output json | jq '.resources | length'")]
    List(ListArgs),
    /// Show one resource.
    Get {
        /// Resource id.
        id: i64,
    },
    /// Create a resource you own.
    #[command(after_help = "\
Examples:
  mrmat-api-client resource create \"my first resource\"")]
    Create {
        /// Its name: 1 to 255 characters.
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

/// Options of `resource list`.
#[derive(Debug, Clone, Copy, Args)]
pub struct ListArgs {
    /// List every resource, following the pages to the end (the default).
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// Only one page of at most this many resources (1-1000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Resources per request when listing all (1-1000) [default: the server's, 100].
    #[arg(long, value_name = "N", conflicts_with = "limit", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: Option<u32>,
    /// Skip this many resources first.
    #[arg(long, value_name = "N")]
    pub offset: Option<u64>,
    /// Start after this resource id (the cursor in a page's `next` link).
    #[arg(long, value_name = "ID")]
    pub after: Option<i64>,
}

/// Where subcommand help points for the global options.
const GLOBALS_NOTE: &str =
    "Global options (--server, --output, --debug, ...): see `mrmat-api-client --help`.";

impl Cli {
    /// Parses the process's arguments. Global options stay accepted after any command
    /// but are listed in the top-level help only, so `login --help` shows `login`.
    pub fn parse_args() -> Self {
        let mut command = hide_globals_below(Self::command());
        let mut matches = command.get_matches_mut();
        match Self::from_arg_matches_mut(&mut matches) {
            Ok(cli) => cli,
            Err(e) => e.format(&mut command).exit(),
        }
    }

    /// The command line as clap knows it, every option visible: for completions.
    pub fn full_command() -> clap::Command {
        Self::command()
    }
}

/// The completion script for `shell`, of every command and option.
///
/// Bash: clap_complete (4.6) names the function of a subcommand after the binary with its
/// hyphens turned into `__`, but labels the `case` branch that completes it with the
/// hyphens turned into `__subcmd__`, so past the first word nothing matched and bash fell
/// back to file names. The labels are renamed here to the names the script sets. This
/// keeps the static script (`source <(mrmat-api-client completion bash)`, nothing run at
/// each Tab) rather than clap_complete's dynamic completion, still behind an unstable
/// feature; a test runs the script in a real bash and fails if clap_complete changes.
pub fn completion_script(shell: clap_complete::Shell) -> String {
    const BIN: &str = "mrmat-api-client";
    let mut command = Cli::full_command();
    let mut script = Vec::new();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    clap_complete::generate(shell, &mut command, BIN, &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    if shell != clap_complete::Shell::Bash {
        return script;
    }
    let set = BIN.replace('-', "__");
    let labelled = BIN.replace('-', "__subcmd__");
    script.replace(
        &format!("{labelled}__subcmd__"),
        &format!("{set}__subcmd__"),
    )
}

/// `command` with hidden copies of its global options in every subcommand. Clap copies a
/// global option into a subcommand only where it is missing, so the hidden copy stays
/// (and still parses, its value reaching the top level like any global's).
fn hide_globals_below(command: clap::Command) -> clap::Command {
    let globals: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.clone().hide(true))
        .collect();
    hide_in_subcommands(command, &globals)
}

fn hide_in_subcommands(command: clap::Command, globals: &[clap::Arg]) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    names.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| {
            let sub = globals.iter().fold(sub, |sub, arg| sub.arg(arg.clone()));
            let note = match sub.get_after_help() {
                Some(help) => format!("{help}\n\n{GLOBALS_NOTE}"),
                None => GLOBALS_NOTE.to_owned(),
            };
            hide_in_subcommands(sub.after_help(note), globals)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        hide_globals_below(Cli::command()).debug_assert();
    }

    #[test]
    fn every_command_the_bash_script_reaches_has_its_case_branch() {
        let script = completion_script(clap_complete::Shell::Bash);
        let reached: Vec<&str> = script
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cmd=\""))
            .filter_map(|l| l.strip_suffix('"'))
            .filter(|name| !name.is_empty())
            .collect();
        assert!(reached.len() > 10, "{script}");
        for name in reached {
            assert!(
                script.contains(&format!("\n        {name})\n")),
                "no branch for {name}"
            );
        }
    }

    #[test]
    fn global_options_parse_after_a_nested_command() {
        let command = hide_globals_below(Cli::command());
        let matches = command
            .try_get_matches_from([
                "mrmat-api-client",
                "resource",
                "list",
                "--server",
                "http://127.0.0.1:1",
                "--output",
                "json",
            ])
            .unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        assert_eq!(cli.global.server.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(cli.global.output, Some(OutputFormat::Json));
    }

    #[test]
    fn subcommand_help_lists_its_own_options_only() {
        let mut command = hide_globals_below(Cli::command());
        let help = command
            .find_subcommand_mut("login")
            .unwrap()
            .render_help()
            .to_string();
        assert!(help.contains("--no-browser"), "{help}");
        assert!(!help.contains("--switch-account"), "{help}");
        assert!(!help.contains("--client-secret"), "{help}");
        assert!(help.contains("Examples:"), "{help}");
        assert!(help.contains("mrmat-api-client --help"), "{help}");
    }

    #[test]
    fn debug_output_hides_the_client_secret() {
        let cli = Cli::try_parse_from([
            "mrmat-api-client",
            "--client-secret",
            "hunter2-cli",
            "token",
        ])
        .unwrap();
        assert_eq!(
            cli.global.client_secret.as_ref().map(Secret::expose),
            Some("hunter2-cli")
        );
        let text = format!("{cli:?}");
        assert!(!text.contains("hunter2-cli"), "{text}");
    }
}
