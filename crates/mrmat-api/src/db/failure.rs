//! What a database error means for the caller: worth retrying (the database is
//! unreachable, busy, shutting down, or cut the connection), storage full, or a fault of
//! ours. Drivers say which only in words, so the words are read here, in one place.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A database error, classified.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbFailure {
    /// Unreachable, busy beyond the timeout, restarting, or the connection was cut: a
    /// retry later may succeed. Nothing was acknowledged; a write cut while its COMMIT was
    /// on the wire may still have landed (a retry then answers 409 naming it).
    #[error("{0}")]
    Unavailable(String),
    /// The disk or the database is full. Nothing was committed.
    #[error("storage is full: {0}")]
    StorageFull(String),
    /// Anything else: a bug or a schema mismatch.
    #[error(transparent)]
    Other(DieselError),
}

/// Messages (lower case) of errors a retry may cure.
const UNAVAILABLE: &[&str] = &[
    // SQLite
    "database is locked",
    "database table is locked",
    "database is busy",
    "disk i/o error",
    "unable to open database file",
    // PostgreSQL and libpq
    "terminating connection",
    "server closed the connection",
    "connection to server",
    "could not receive data",
    "could not send data",
    "no connection to the server",
    "ssl syscall",
    "ssl connection has been closed",
    "canceling statement due to statement timeout",
    "canceling statement due to user request",
    "canceling statement due to lock timeout",
    "the database system is",
    "too many connections",
    "remaining connection slots",
    "deadlock detected",
    "could not serialize access",
    "timeout expired",
];

/// Messages (lower case) of a full disk or database.
const FULL: &[&str] = &[
    "database or disk is full",
    "no space left on device",
    "could not extend file",
    "disk full",
    "disk quota exceeded",
];

impl From<DieselError> for DbFailure {
    fn from(error: DieselError) -> Self {
        let message = match &error {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )
            | DieselError::BrokenTransactionManager => {
                return Self::Unavailable(one_line(&error.to_string()));
            }
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                return Self::Unavailable(one_line(&error.to_string()));
            }
            DieselError::DatabaseError(_, info) => info.message().to_lowercase(),
            // A failed COMMIT is what the caller must hear about, not the rollback after it.
            DieselError::RollbackErrorOnCommit { commit_error, .. } => {
                commit_error.to_string().to_lowercase()
            }
            other => other.to_string().to_lowercase(),
        };
        if FULL.iter().any(|needle| message.contains(needle)) {
            Self::StorageFull(one_line(&error.to_string()))
        } else if UNAVAILABLE.iter().any(|needle| message.contains(needle)) {
            Self::Unavailable(one_line(&error.to_string()))
        } else {
            Self::Other(error)
        }
    }
}

/// libpq's messages span lines ("...\n\tIs the server running..."): keep one.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(message: &str) -> DieselError {
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()))
    }

    #[test]
    fn a_full_sqlite_database_is_storage_full() {
        assert!(matches!(
            DbFailure::from(database_error("database or disk is full")),
            DbFailure::StorageFull(_)
        ));
    }

    #[test]
    fn a_full_postgresql_disk_is_storage_full() {
        assert!(matches!(
            DbFailure::from(database_error(
                "could not extend file \"base/1/2\": No space left on device"
            )),
            DbFailure::StorageFull(_)
        ));
    }

    #[test]
    fn locks_shutdowns_and_cut_connections_are_unavailable() {
        for message in [
            "database is locked",
            "terminating connection due to administrator command",
            "canceling statement due to statement timeout",
            "server closed the connection unexpectedly\n\tThis probably means...",
            "FATAL:  the database system is shutting down",
        ] {
            assert!(
                matches!(
                    DbFailure::from(database_error(message)),
                    DbFailure::Unavailable(_)
                ),
                "{message}"
            );
        }
        assert!(matches!(
            DbFailure::from(DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new(String::new())
            )),
            DbFailure::Unavailable(_)
        ));
    }

    #[test]
    fn a_failed_commit_is_judged_by_the_commit_error() {
        let error = DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(database_error("cannot rollback - no transaction is active")),
            commit_error: Box::new(database_error("database or disk is full")),
        };
        assert!(matches!(DbFailure::from(error), DbFailure::StorageFull(_)));
    }

    #[test]
    fn other_errors_stay_internal() {
        assert!(matches!(
            DbFailure::from(database_error("no such table: resources")),
            DbFailure::Other(_)
        ));
    }
}
