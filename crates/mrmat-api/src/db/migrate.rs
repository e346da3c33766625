//! Embedded migrations, one directory per backend. Every migration must work with both the
//! old and the new code (expand, then contract), so rolling deployments stay safe.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbConnection, DbError};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Applies the pending migrations; returns the versions applied.
pub(crate) fn run_pending(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let applied = match conn {
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES).map(versions),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE).map(versions),
    };
    applied.map_err(|e| DbError::Migration(e.to_string()))
}

/// Fails with [`DbError::SchemaBehind`] when migrations are pending.
pub(crate) fn ensure_current(conn: &mut DbConnection) -> Result<(), DbError> {
    let pending = match conn {
        DbConnection::Postgres(c) => c.pending_migrations(POSTGRES).map(|m| m.len()),
        DbConnection::Sqlite(c) => c.pending_migrations(SQLITE).map(|m| m.len()),
    }
    .map_err(|e| DbError::Migration(e.to_string()))?;
    if pending > 0 {
        return Err(DbError::SchemaBehind(pending));
    }
    Ok(())
}

fn versions(applied: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    applied.iter().map(ToString::to_string).collect()
}
