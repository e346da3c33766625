//! Database access: one connection type over SQLite and PostgreSQL, its pool, the embedded
//! migrations, and [`run`], the one way handlers reach the database.

pub mod migrate;
pub mod resources;
pub mod schema;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ManageConnection, Pool, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};

use crate::error::ApiError;
use crate::settings::DatabaseUrl;

/// A connection to either backend. Queries written once against it run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL.
    Postgres(PgConnection),
    /// SQLite; last, because it would accept any string as a file name.
    Sqlite(SqliteConnection),
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres(_) => f.write_str("DbConnection::Postgres"),
            Self::Sqlite(_) => f.write_str("DbConnection::Sqlite"),
        }
    }
}

/// The connection pool shared by all workers.
pub type DbPool = Pool<ConnectionManager>;

/// How long a request waits for a free connection before it is answered 503.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long SQLite waits on a lock held by another connection before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// Opens connections of the configured backend; SQLite ones get their pragmas here, once
/// per connection, because they are per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    fn establish(&self) -> Result<DbConnection, ConnectionError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url).map(DbConnection::Postgres),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;"
                ))
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        conn.ping()
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// The database cannot be used as configured.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The SQLite file's directory could not be created.
    #[error("--db: cannot create the directory {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The first connection failed.
    #[error("--db: cannot connect to the {backend} database: {message}")]
    Connect {
        /// Which backend.
        backend: &'static str,
        /// The driver's message (connection URLs with passwords are never part of it).
        message: String,
    },
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// `--no-migrate` with a schema that is behind.
    #[error(
        "--no-migrate: the database schema is behind ({0} pending migration(s)); run `mrmat-api migrate` first or start without --no-migrate"
    )]
    SchemaBehind(usize),
}

/// One direct connection, for start-up work (migrations, schema checks) and to fail at
/// once, in the driver's own words, when the URL is wrong. No pool exists yet, so an
/// error here leaves no background thread opening connections while the process exits.
pub fn establish(url: &DatabaseUrl) -> Result<DbConnection, DbError> {
    if let DatabaseUrl::Sqlite(path) = url {
        create_parent_dir(path)?;
    }
    ConnectionManager { url: url.clone() }
        .establish()
        .map_err(|e| DbError::Connect {
            backend: url.backend(),
            // libpq's messages span lines ("...\n\tIs the server running..."): keep one.
            message: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })
}

/// The pool for serving; call it once [`establish`] has shown the database works.
pub fn pool(url: &DatabaseUrl, max_size: u32) -> DbPool {
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(CHECKOUT_TIMEOUT)
        .build_unchecked(ConnectionManager { url: url.clone() })
}

fn create_parent_dir(path: &Path) -> Result<(), DbError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                dir: dir.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Runs `f` with a pooled connection on the blocking thread pool, so Diesel's blocking
/// calls never stall an async worker. Pool and Diesel errors become [`ApiError`]s here.
pub async fn run<T, F>(pool: &DbPool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().map_err(|e| ApiError::Unavailable {
            what: "the database",
            cause: e.to_string(),
        })?;
        f(&mut conn)
    })
    .await?
}

/// Whether the database answers; for the readiness check.
pub async fn ping(pool: &DbPool) -> Result<(), ApiError> {
    run(pool, |conn| {
        conn.ping().map(|_| ()).map_err(|e| ApiError::Unavailable {
            what: "the database",
            cause: e.to_string(),
        })
    })
    .await
}
