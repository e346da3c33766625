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

/// Where the schema stands against this binary's migrations.
#[derive(Debug, Clone)]
pub(crate) struct SchemaStatus {
    /// Versions applied in the database.
    pub(crate) applied: Vec<String>,
    /// Versions this binary has that the database lacks.
    pub(crate) pending: Vec<String>,
    /// Versions the database has that this binary does not know: a newer binary migrated.
    pub(crate) unknown: Vec<String>,
}

/// Compares the database's applied migrations with this binary's.
pub(crate) fn status(conn: &mut DbConnection) -> Result<SchemaStatus, DbError> {
    let (applied, known) = match conn {
        DbConnection::Postgres(c) => (
            c.applied_migrations().map(versions),
            embedded_versions(POSTGRES),
        ),
        DbConnection::Sqlite(c) => (
            c.applied_migrations().map(versions),
            embedded_versions(SQLITE),
        ),
    };
    let applied = applied.map_err(|e| DbError::Migration(e.to_string()))?;
    let known = known?;
    Ok(SchemaStatus {
        pending: known
            .iter()
            .filter(|v| !applied.contains(v))
            .cloned()
            .collect(),
        unknown: applied
            .iter()
            .filter(|v| !known.contains(v))
            .cloned()
            .collect(),
        applied,
    })
}

fn embedded_versions(migrations: EmbeddedMigrations) -> Result<Vec<String>, DbError> {
    use diesel::migration::MigrationSource;
    let list = MigrationSource::<diesel::pg::Pg>::migrations(&migrations)
        .map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(list
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}

fn versions(applied: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    applied.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests;
