//! What the database layer answers when it cannot give the answer asked for, in its own
//! words: the API layer (`api/owned.rs`) decides, in one place, which HTTP status each
//! means. Nothing here knows about HTTP.

use diesel::result::Error as DieselError;

use super::DbFailure;

/// Why a database call did not give its answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// No row of `noun` has that id.
    #[error("no {noun} with id {id}")]
    NotFound {
        /// What the table holds, e.g. `resource`.
        noun: &'static str,
        /// The id asked for.
        id: i64,
    },
    /// The owner already has a row of that name.
    #[error("you already have a {noun} with this name: id {existing_id}")]
    Duplicate {
        /// What the table holds.
        noun: &'static str,
        /// The row that has the name.
        existing_id: i64,
    },
    /// The name kept conflicting with rows that vanished before they could be named.
    #[error("the name is being changed concurrently; retry")]
    Contended,
    /// Unreachable, busy beyond the timeout, restarting, or the connection was cut: a
    /// retry later may succeed. Nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
    /// The disk or the database is full. Nothing was committed.
    #[error("storage is full: {0}")]
    StorageFull(String),
    /// Anything else: a bug, a schema mismatch, a task that panicked. The cause is for
    /// the log only.
    #[error("{0}")]
    Internal(String),
}

impl StoreError {
    /// Whether a retry later may succeed (the caller is told when to retry).
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The kind a database span records: the database's failures, not a 404 or a 409 a
    /// query's answer leads to.
    pub(crate) fn failure_kind(&self) -> Option<&'static str> {
        match self {
            Self::Unavailable(_) => Some("unavailable"),
            Self::StorageFull(_) => Some("storage_full"),
            Self::Internal(_) => Some("internal"),
            _ => None,
        }
    }
}

impl From<DbFailure> for StoreError {
    fn from(failure: DbFailure) -> Self {
        match failure {
            DbFailure::Unavailable(cause) => Self::Unavailable(cause),
            DbFailure::StorageFull(cause) => Self::StorageFull(cause),
            DbFailure::Other(error) => Self::Internal(format!("database: {error}")),
        }
    }
}

impl From<DieselError> for StoreError {
    fn from(error: DieselError) -> Self {
        DbFailure::from(error).into()
    }
}
