//! Database access: one connection type over SQLite and PostgreSQL, its pool, the embedded
//! migrations, and [`Db`], the one way handlers reach the database. Every call through
//! [`Db`] is bounded by `--db-timeout`, runs off the async workers, and answers failures
//! with [`StoreError`], the database layer's own words (unavailable, storage full, not
//! found, ...); the API layer maps them to HTTP in one place (`api/owned.rs`).

pub(crate) mod connection;
mod crew;
mod error;
pub(crate) mod failure;
pub(crate) mod migrate;
pub(crate) mod owned;
pub(crate) mod resources;
pub mod schema;
pub(crate) mod stamp;
#[cfg(test)]
mod testing;
pub(crate) mod transaction;

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::r2d2::{HandleError, Pool, PooledConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};

pub(crate) use connection::ConnectionManager;
pub use connection::openssl_without_exit_handler;
use crew::{Crew, Job};
pub(crate) use error::StoreError;
pub(crate) use failure::DbFailure;
pub(crate) use transaction::Deadline;

use crate::metrics::Metrics;
use crate::outage::{Outage, Part};
use crate::settings::DatabaseUrl;
use crate::telemetry::{self, DbTarget};

/// The database as spans describe it: the system, and for PostgreSQL the database name,
/// host and port (never the URL: it may hold a password).
fn db_target(url: &DatabaseUrl) -> DbTarget {
    match url {
        DatabaseUrl::Sqlite(_) => DbTarget {
            system: "sqlite",
            namespace: None,
            server: None,
        },
        DatabaseUrl::Postgres(secret) => {
            let parsed = url::Url::parse(secret.expose()).ok();
            DbTarget {
                system: "postgresql",
                namespace: parsed
                    .as_ref()
                    .map(|u| u.path().trim_start_matches('/').to_owned())
                    .filter(|name| !name.is_empty()),
                server: parsed
                    .as_ref()
                    .and_then(|u| Some((u.host_str()?.to_owned(), u.port().unwrap_or(5432)))),
            }
        }
    }
}

/// A connection to either backend. Queries written once against it run on both.
#[derive(diesel::MultiConnection)]
pub(crate) enum DbConnection {
    /// PostgreSQL.
    Postgres(PgConnection),
    /// SQLite; last, because it would accept any string as a file name.
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the connection of the backend in use, as its own type
/// (`PgConnection` or `SqliteConnection`): the same query, compiled once per backend.
///
/// For the statements of every request. Through [`DbConnection`] Diesel wraps a query in
/// a type with no compile-time id, so its prepared-statement cache finds the statement
/// by its SQL text, which it builds anew for every query (identifiers quoted and all);
/// run natively the cache finds it by type. In a callgrind profile of a ten-row list on
/// PostgreSQL, building the SQL and decoding rows through the wrapper cost about a fifth
/// of the request's instructions.
macro_rules! natively {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use natively;

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres(_) => f.write_str("DbConnection::Postgres"),
            Self::Sqlite(_) => f.write_str("DbConnection::Sqlite"),
        }
    }
}

/// The connection pool shared by all workers.
pub(crate) type DbPool = Pool<ConnectionManager>;

/// The database cannot be used as configured.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// The SQLite file's directory could not be created.
    #[error("--db: cannot create the directory {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The SQLite files could not be made the server's user's only.
    #[error("--db: {0}")]
    Private(std::io::Error),
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
    /// The database threads could not be started.
    #[error("cannot start the database threads: {0}")]
    Threads(std::io::Error),
}

/// One direct connection, for start-up work (migrations, schema checks) and to fail at
/// once, in the driver's own words, when the URL is wrong. No pool exists yet, so an
/// error here leaves no background thread opening connections while the process exits.
pub(crate) fn establish(url: &DatabaseUrl, timeout: Duration) -> Result<DbConnection, DbError> {
    if let DatabaseUrl::Sqlite(path) = url {
        connection::create_parent_dir(path).map_err(|source| DbError::CreateDir {
            dir: path
                .parent()
                .map(|dir| dir.display().to_string())
                .unwrap_or_default(),
            source,
        })?;
        connection::make_sqlite_files_private(path).map_err(DbError::Private)?;
    }
    ConnectionManager::new(url.clone(), timeout)
        .establish()
        .map_err(|e| DbError::Connect {
            backend: url.backend(),
            message: failure::one_line(&e.to_string()),
        })
}

/// Whether a call reads or writes; SQLite writes take turns on the writer thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads only.
    Read,
    /// Writes (in a transaction of its own, see [`transaction::write`]).
    Write,
}

/// One call through [`Db::run`]: whether it writes, and what a trace calls it (the
/// database semantic conventions' operation and collection, e.g. `SELECT resources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    access: Access,
    operation: &'static str,
    collection: Option<&'static str>,
}

impl Work {
    /// A read: `operation` on `collection`.
    pub(crate) const fn read(operation: &'static str, collection: &'static str) -> Self {
        Self {
            access: Access::Read,
            operation,
            collection: Some(collection),
        }
    }

    /// A write: `operation` on `collection`.
    pub(crate) const fn write(operation: &'static str, collection: &'static str) -> Self {
        Self {
            access: Access::Write,
            operation,
            collection: Some(collection),
        }
    }
}

/// The readiness probe's `SELECT 1`.
const PING: Work = Work {
    access: Access::Read,
    operation: "SELECT",
    collection: None,
};

/// Calls that may wait for a crew thread.
const QUEUE: usize = 4096;

/// SQLite writes that may wait for the writer.
const WRITE_QUEUE: usize = 1024;

/// The database as handlers see it: a bounded, failure-mapping front of the pool.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pool: DbPool,
    timeout: Duration,
    /// SQLite has one writer at a time: its writes queue for the writer thread, without
    /// holding a pooled connection, so a long wait for the write lock never starves the
    /// readers.
    writer: Option<Crew>,
    /// SQLite reads run on the calling async worker when a connection here is idle (one
    /// per worker): a read in WAL mode does not wait for the writer, and the hop to a
    /// blocking thread and back cost more than the query (two thread wake-ups; a third of
    /// the throughput of a list). A read that meets a lock goes to the crew.
    inline_reads: Option<DbPool>,
    /// The threads that run every other call, one per connection, in arrival order. r2d2
    /// alone lets a newcomer take a connection a waiter was woken for, and under load
    /// some waiters lost again and again: a PostgreSQL list at c=32 with 8 connections had
    /// a p99 of 390 ms against a p50 of 2.6 ms.
    crew: Crew,
    outage: Arc<Outage>,
    /// A full disk is an outage of its own, logged at ERROR: an operator must free space.
    storage: Arc<Outage>,
    metrics: Arc<Metrics>,
    /// What database spans say of the database.
    target: DbTarget,
}

/// Routes the pool's own connection errors (opening connections in the background) to the
/// outage log instead of one ERROR line per attempt.
#[derive(Debug)]
struct PoolErrors(Arc<Outage>);

impl HandleError<ConnectionError> for PoolErrors {
    fn handle_error(&self, error: ConnectionError) {
        self.0
            .failed(Part::WHOLE, &failure::one_line(&error.to_string()));
    }
}

impl Db {
    /// A pool of at most `max_size` connections to `url`; every wait bounded by `timeout`.
    /// Call it once [`establish`] has shown the database works.
    /// `workers` is the number of async workers: each may run one SQLite read at a time.
    pub(crate) fn new(
        url: &DatabaseUrl,
        max_size: u32,
        workers: u32,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DbError> {
        let outage = Arc::new(Outage::new("the database"));
        let manager = ConnectionManager::new(url.clone(), timeout);
        let (writer, inline_reads) = match manager.is_sqlite() {
            true => (
                Some(Crew::start("sqlite-writer", 1, WRITE_QUEUE).map_err(DbError::Threads)?),
                Some(
                    Pool::builder()
                        .max_size(workers.max(1))
                        // Reads on a worker only take an idle connection, never wait for
                        // one to be opened: all are kept open.
                        .min_idle(Some(workers.max(1)))
                        .test_on_check_out(false)
                        .error_handler(Box::new(PoolErrors(outage.clone())))
                        .build_unchecked(ConnectionManager::inline_reads(url.clone())),
                ),
            ),
            false => (None, None),
        };
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(timeout)
            // No `SELECT 1` before every use: it doubled the statements of a read. A
            // connection that broke is noticed by the query that finds it (503, and the
            // pool drops it), so one request per dead connection pays, not every request.
            .test_on_check_out(false)
            .error_handler(Box::new(PoolErrors(outage.clone())))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            timeout,
            writer,
            inline_reads,
            crew: Crew::start("db", max_size, QUEUE).map_err(DbError::Threads)?,
            outage,
            storage: Arc::new(Outage::described(
                "the database's storage",
                log::Level::Error,
                ("is full", "takes writes again"),
            )),
            metrics,
            target: db_target(url),
        })
    }

    /// Runs `f` with a pooled connection on a crew thread (SQLite writes: on the
    /// writer thread). Every wait (for the SQLite write turn, a free connection, a lock,
    /// the query) ends by `--db-timeout`; `f` is given that [`Deadline`], for the commit
    /// of its writes (see [`transaction::write`]).
    /// With tracing on, it is a client span of the request's trace, from the wait to the
    /// answer.
    pub(crate) async fn run<T, E, F>(&self, work: Work, f: F) -> Result<T, StoreError>
    where
        F: Fn(&mut DbConnection, Deadline) -> Result<T, E> + Send + 'static,
        E: Into<StoreError>,
        T: Send + 'static,
    {
        let access = work.access;
        let span = telemetry::db_call(&self.target, work.operation, work.collection);
        let deadline = Instant::now() + self.timeout;
        let result = self.run_until(deadline, access, f).await;
        telemetry::db_answered(
            span,
            result.as_ref().err().and_then(StoreError::failure_kind),
        );
        let part = match access {
            Access::Read => Part::READS,
            Access::Write => Part::WRITES,
        };
        match &result {
            Err(StoreError::Unavailable(cause)) => self.outage.failed(part, cause),
            Err(StoreError::StorageFull(cause)) => {
                self.outage.answered(part);
                self.storage.failed(Part::WRITES, cause);
            }
            Ok(_) if access == Access::Write => {
                self.outage.answered(part);
                self.storage.answered(Part::WRITES);
            }
            _ => self.outage.answered(part),
        }
        result
    }

    async fn run_until<T, E, F>(
        &self,
        deadline: Instant,
        access: Access,
        f: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(&mut DbConnection, Deadline) -> Result<T, E> + Send + 'static,
        E: Into<StoreError>,
        T: Send + 'static,
    {
        if access == Access::Read
            && let Some(result) = self.read_inline(&f, Deadline::at(deadline))
        {
            return result;
        }
        let pool = self.pool.clone();
        let timeout = self.timeout;
        let metrics = self.metrics.clone();
        // `waiting`: since when the call has waited for a connection, for the metrics.
        let work =
            move |waiting: Instant| on_connection(&pool, deadline, timeout, &metrics, waiting, f);
        // The backstop: a call stuck in the driver (a link that went silent mid-query) is
        // answered at the bound; its thread gives up later, and rolls back, not commits.
        let late = || unavailable(format!("no answer within {timeout:?}"));
        let queued = Instant::now();
        let waits = self.metrics.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A call whose turn came after its bound was answered 503: it must not run (a
            // write must not land) behind that answer.
            let result = if Instant::now() >= deadline {
                waits.pool_wait(queued.elapsed());
                Err(unavailable(format!("no connection within {timeout:?}")))
            } else {
                work(queued)
            };
            // Nobody waits for an answer given after the bound.
            let _ = answer.send(result);
        });
        let submitted = match (&self.writer, access) {
            (Some(writer), Access::Write) => writer.submit(job).map_err(|e| e.to_string()),
            _ => self.crew.submit(job).map_err(|e| e.to_string()),
        };
        submitted.map_err(unavailable)?;
        match tokio::time::timeout_at(deadline.into(), answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Internal(
                "the database call panicked".to_owned(),
            )),
            Err(_) => Err(late()),
        }
    }

    /// `f` on the calling worker, when an inline connection is idle and the read need not
    /// wait for a lock; `None` leaves it to the crew.
    fn read_inline<T, E, F>(&self, f: &F, deadline: Deadline) -> Option<Result<T, StoreError>>
    where
        F: Fn(&mut DbConnection, Deadline) -> Result<T, E>,
        E: Into<StoreError>,
    {
        let mut conn = self.inline_reads.as_ref()?.try_get()?;
        match f(&mut conn, deadline).map_err(Into::into) {
            // Locked (or failed in a way a retry may cure): the crew waits for it,
            // up to the bound, without holding up the other requests of this worker.
            Err(error) if error.is_unavailable() => None,
            result => Some(result),
        }
    }

    /// Connections the pool holds, and how many of them are idle.
    pub(crate) fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// Whether the database answers; for the readiness check.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.run(PING, |conn, _| {
            conn.ping().map(|_| ()).map_err(DbFailure::from)
        })
        .await
    }
}

/// Runs `f` on a pooled connection, on the calling (crew or writer) thread: a write that finds
/// `deadline` passed when it would commit rolls back (see [`transaction::Deadline`]), and a
/// connection a query found cut off goes back to the pool marked, to be dropped.
fn on_connection<T, E, F>(
    pool: &DbPool,
    deadline: Instant,
    timeout: Duration,
    metrics: &Metrics,
    waiting: Instant,
    f: F,
) -> Result<T, StoreError>
where
    F: FnOnce(&mut DbConnection, Deadline) -> Result<T, E>,
    E: Into<StoreError>,
{
    let remaining = deadline.saturating_duration_since(Instant::now());
    let conn = checkout(pool, remaining, timeout);
    // The whole wait: the turn (when there was one), then the checkout.
    metrics.pool_wait(waiting.elapsed());
    let mut conn = conn?;
    let result = f(&mut conn, Deadline::at(deadline)).map_err(Into::into);
    if result.as_ref().is_err_and(StoreError::is_unavailable) {
        conn.cut_off();
    }
    result
}

fn unavailable(cause: String) -> StoreError {
    StoreError::Unavailable(cause)
}

fn checkout(
    pool: &DbPool,
    remaining: Duration,
    timeout: Duration,
) -> Result<PooledConnection<ConnectionManager>, StoreError> {
    if remaining.is_zero() {
        return Err(unavailable(format!("no connection within {timeout:?}")));
    }
    pool.get_timeout(remaining)
        .map_err(|e| unavailable(format!("no connection within {timeout:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::RunQueryDsl;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn sqlite(dir: &tempfile::TempDir) -> Db {
        let url = DatabaseUrl::Sqlite(dir.path().join("db.sqlite"));
        establish(&url, Duration::from_secs(1)).unwrap();
        Db::new(&url, 4, 1, Duration::from_secs(1), Arc::new(Metrics::new())).unwrap()
    }

    /// Waits until the inline connection is open (the pool opens it in the background).
    fn inline_ready(db: &Db) {
        let pool = db.inline_reads.as_ref().unwrap();
        let started = Instant::now();
        while pool.state().idle_connections == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no inline connection"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[actix_web::test]
    async fn a_read_runs_on_the_worker_when_an_inline_connection_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir);
        inline_ready(&db);
        let worker = std::thread::current().id();
        let ran_on = db
            .run(Work::read("SELECT", "t"), |_conn, _| {
                Ok::<_, StoreError>(std::thread::current().id())
            })
            .await
            .unwrap();
        assert_eq!(ran_on, worker);
    }

    #[actix_web::test]
    async fn a_read_that_finds_the_database_locked_on_the_worker_is_retried_off_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir);
        inline_ready(&db);
        let attempts = Arc::new(AtomicUsize::new(0));
        let seen = attempts.clone();
        let worker = std::thread::current().id();
        let ran_on = db
            .run(Work::read("SELECT", "t"), move |_conn, _| {
                match seen.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(StoreError::Unavailable("database is locked".to_owned())),
                    _ => Ok(std::thread::current().id()),
                }
            })
            .await
            .unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert_ne!(ran_on, worker);
    }

    #[actix_web::test]
    async fn inline_connections_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir);
        inline_ready(&db);
        let mut pooled = db.inline_reads.as_ref().unwrap().try_get().unwrap();
        let conn: &mut DbConnection = &mut pooled;
        let write = diesel::sql_query("CREATE TABLE t (x INTEGER)").execute(conn);
        let message = write.unwrap_err().to_string();
        assert!(message.contains("readonly"), "{message}");
    }

    #[actix_web::test]
    async fn writes_run_on_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir);
        let name = db
            .run(Work::write("INSERT", "t"), |_conn, _| {
                Ok::<_, StoreError>(std::thread::current().name().map(str::to_owned))
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("sqlite-writer"));
    }
}
