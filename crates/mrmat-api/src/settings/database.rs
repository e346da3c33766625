//! The database URL: SQLite or PostgreSQL, and nothing the pool cannot serve.

use std::path::PathBuf;

use mrmat_api_types::secret::Secret;
use url::Url;

use super::ConfigError;

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
