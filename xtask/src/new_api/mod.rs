//! `cargo xtask new-api NAME [--crud]`: writes a new versioned API, `NAME/v1`, from the
//! templates in `xtask/templates/` (see docs/ADDING_AN_API.md).
//!
//! With `--crud` it is an owner-scoped CRUD API like `resource/v1`: the table's migration
//! for both databases, its `diesel::table!`, wire types, a read and a write scope, handlers
//! with OpenAPI, and tests. Without it, a stateless open API like `greeting/v1`. New files
//! carry everything; existing files get one line or one block each: the registry
//! (`api/mod.rs`), the wire types' module list, the test binary's module list, and with
//! `--crud` the schema and the scope list. Nothing is written unless every file to create
//! is new and every file to edit has the place the edit goes; the written Rust is then
//! formatted with `rustfmt`, so its lines fit whatever the name's length.
//!
//! Templates are plain text with `{{key}}` placeholders: no template engine, because a
//! dozen replacements need none.

mod error;
mod names;
mod plan;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

pub use error::Error;
use error::USAGE;
pub use names::Names;
use plan::Plan;

/// What was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The API's name.
    pub name: String,
    /// An owner-scoped CRUD API rather than a stateless one.
    pub crud: bool,
}

/// Reads `NAME [--crud]`.
pub fn parse_args(args: &[String]) -> Result<Request, Error> {
    let mut name = None;
    let mut crud = false;
    for arg in args {
        match arg.as_str() {
            "--crud" => crud = true,
            flag if flag.starts_with('-') => {
                return Err(Error::Usage(format!("unknown option {flag}")));
            }
            _ if name.is_some() => return Err(Error::Usage(format!("unexpected {arg}"))),
            _ => name = Some(arg.clone()),
        }
    }
    let name = name.ok_or_else(|| Error::Usage("NAME is missing".to_owned()))?;
    Ok(Request { name, crud })
}

/// `cargo xtask new-api ...`.
pub fn main(args: Vec<String>) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let root = match crate::workspace::root() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("new-api: {e}");
            return ExitCode::FAILURE;
        }
    };
    match parse_args(&args).and_then(|request| run(&root, &request)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            error.exit_code()
        }
    }
}

/// Writes the API `request` asks for into the workspace at `root`.
pub fn run(root: &Path, request: &Request) -> Result<(), Error> {
    let names = Names::new(&request.name).map_err(Error::Name)?;
    let plan = Plan::new(root, &names, request.crud, now())?;
    plan.check(root)?;
    let written = plan.write(root)?;
    format(root, &written)?;
    println!(
        "new-api: wrote {} `{}` at /api/{}/v1:",
        if request.crud {
            "the CRUD API"
        } else {
            "the API"
        },
        names.name,
        names.name
    );
    for (path, how) in plan.summary() {
        println!("  {how:<7} {}", path.display());
    }
    println!(
        "next: cargo xtask test -p mrmat-api --test api -- {}  (docs/ADDING_AN_API.md says what to change by hand)",
        names.name
    );
    Ok(())
}

/// Seconds since the epoch, for the migration's version.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Formats the Rust files among `written` (paths relative to `root`).
fn format(root: &Path, written: &[PathBuf]) -> Result<(), Error> {
    let rust: Vec<PathBuf> = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| root.join(p))
        .collect();
    if rust.is_empty() {
        return Ok(());
    }
    let status = Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(&rust)
        .current_dir(root)
        .status()
        .map_err(|e| Error::Format(e.to_string()))?;
    match status.success() {
        true => Ok(()),
        false => Err(Error::Format(status.to_string())),
    }
}
