//! Write transactions. Every write runs in an explicit transaction whose COMMIT is a
//! statement of its own, so a failing commit (a full disk, a lost connection) is an error
//! the caller sees, and a multi-statement write lands whole or not at all.
//!
//! Why explicit: in autocommit mode SQLite commits an `INSERT ... RETURNING` whose row was
//! read but which was not stepped to its end only when the statement is reset, and the
//! driver ignores the result of that reset: a failed commit was acknowledged as a success,
//! and the write-ahead log's auto-checkpoint (which runs when a statement completes) never
//! ran, so the log grew without bound.

use std::time::Instant;

use diesel::Connection;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::DbConnection;

/// When the request whose database work this is will have been answered 503 if not done.
/// It travels with the work, as an argument, from [`Db::run`](super::Db::run) to the
/// commit: a write that finds it passed rolls back instead of committing, because its
/// caller has been told 503 and it must not land behind that answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline: for the database layer's own tests.
    #[cfg(test)]
    pub(crate) const NONE: Self = Self(None);

    /// A deadline at `at`.
    pub(crate) fn at(at: Instant) -> Self {
        Self(Some(at))
    }

    fn passed(self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }
}

/// Runs `work` in one transaction and commits it; rolls back when `work` fails. On SQLite
/// the transaction takes the write lock at once (`BEGIN IMMEDIATE`): a deferred one that
/// read first could not wait for the lock when it later writes, it would fail at once.
/// A `deadline` passed when the work is done rolls it back (see [`Deadline`]).
pub(crate) fn write<T, E>(
    conn: &mut DbConnection,
    deadline: Deadline,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    match conn {
        DbConnection::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
        }
        DbConnection::Postgres(pg) => AnsiTransactionManager::begin_transaction(pg)?,
    }
    match work(conn) {
        Ok(_) if deadline.passed() => {
            rollback(conn);
            Err(DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new("timeout expired before the commit; rolled back".to_owned()),
            )
            .into())
        }
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            rollback(conn);
            Err(error)
        }
    }
}

fn rollback(conn: &mut DbConnection) {
    // A failed rollback leaves the connection marked broken; the pool drops it.
    if let Err(error) = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
    {
        log::debug!("rollback failed: {error}");
    }
}
