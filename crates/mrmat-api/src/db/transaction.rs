//! Write transactions. Every write runs in an explicit transaction whose COMMIT is a
//! statement of its own, so a failing commit (a full disk, a lost connection) is an error
//! the caller sees, and a multi-statement write lands whole or not at all.
//!
//! Why explicit: in autocommit mode SQLite commits an `INSERT ... RETURNING` whose row was
//! read but which was not stepped to its end only when the statement is reset, and the
//! driver ignores the result of that reset: a failed commit was acknowledged as a success,
//! and the write-ahead log's auto-checkpoint (which runs when a statement completes) never
//! ran, so the log grew without bound.

use diesel::Connection;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::result::Error as DieselError;

use super::DbConnection;

/// Runs `work` in one transaction and commits it; rolls back when `work` fails. On SQLite
/// the transaction takes the write lock at once (`BEGIN IMMEDIATE`): a deferred one that
/// read first could not wait for the lock when it later writes, it would fail at once.
pub(crate) fn write<T, E>(
    conn: &mut DbConnection,
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
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            // A failed rollback leaves the connection marked broken; the pool drops it.
            if let Err(rollback) =
                <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
            {
                log::debug!("rollback failed: {rollback}");
            }
            Err(error)
        }
    }
}
