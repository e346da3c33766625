//! Why the generator stops, and the usage it shows with a malformed command line.

use std::path::PathBuf;
use std::process::ExitCode;

pub(super) const USAGE: &str = "\
usage: cargo xtask new-api NAME [--crud]

  Writes a new API mounted at /api/NAME/v1 (docs/ADDING_AN_API.md).
  NAME: a lowercase identifier (a-z, 0-9, _), e.g. widgets or gift_cards.
  --crud: an owner-scoped CRUD API like resource/v1 (table and migrations for SQLite
          and PostgreSQL, a read and a write scope, handlers, OpenAPI, tests);
          without it, a stateless open API like greeting/v1.";

/// Why the generator stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is not `NAME [--crud]`.
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    /// The name cannot be used.
    #[error("new-api: {0}")]
    Name(String),
    /// The workspace is not in the shape the generator edits.
    #[error("new-api: {0}")]
    Workspace(String),
    /// Reading or writing a file failed.
    #[error("new-api: {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `rustfmt` failed on the written files.
    #[error("new-api: rustfmt failed ({0}); the files are written, run `cargo fmt --all`")]
    Format(String),
}

impl Error {
    /// 2 for what the caller can fix by asking differently (usage, name), 1 otherwise.
    pub(super) fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) | Self::Name(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}
