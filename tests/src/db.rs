//! A fresh database per test: an SQLite file in a temporary directory, or a new
//! PostgreSQL database on the server `MRMAT_TEST_POSTGRES_URL` names, dropped afterwards.

use std::path::Path;

use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl, pg::PgConnection};
use mrmat_api::settings::DatabaseUrl;
use tempfile::TempDir;
use url::Url;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, always available.
    Sqlite,
    /// PostgreSQL, when `MRMAT_TEST_POSTGRES_URL` is set.
    Postgres,
}

/// The PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "MRMAT_TEST_POSTGRES_URL";

impl Backend {
    /// Whether tests can run on this backend here. Under CI (`CI` set) PostgreSQL must be
    /// configured: a silently skipped backend would count as a pass.
    pub fn available(self) -> bool {
        match self {
            Self::Sqlite => true,
            Self::Postgres => {
                let configured = std::env::var(POSTGRES_ENV).is_ok_and(|v| !v.is_empty());
                assert!(
                    configured || std::env::var_os("CI").is_none(),
                    "CI is set but {POSTGRES_ENV} is not: the PostgreSQL tests would be skipped"
                );
                configured
            }
        }
    }
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    /// Its URL.
    pub url: DatabaseUrl,
    /// The directory of the SQLite file, or a scratch instance directory.
    pub dir: TempDir,
    /// For PostgreSQL: the admin URL and the database name, to drop it.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A new, empty database on `backend`.
    pub fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self {
                url: DatabaseUrl::Sqlite(dir.path().join("test.sqlite")),
                dir,
                postgres: None,
            },
            Backend::Postgres => {
                let admin = std::env::var(POSTGRES_ENV).expect("MRMAT_TEST_POSTGRES_URL");
                let name = format!("mrmat_test_{}", uuid::Uuid::new_v4().simple());
                // Before libpq's first connection of this process, as the server does.
                mrmat_api::openssl_without_exit_handler();
                let mut conn = PgConnection::establish(&admin).expect("connect to PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .expect("create test database");
                let mut url = Url::parse(&admin).expect("MRMAT_TEST_POSTGRES_URL is a URL");
                url.set_path(&name);
                Self {
                    url: DatabaseUrl::Postgres(mrmat_api_types::secret::Secret::new(
                        url.to_string(),
                    )),
                    dir,
                    postgres: Some((admin, name)),
                }
            }
        }
    }

    /// The URL as given on the command line.
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => url.expose().to_owned(),
        }
    }
}

/// How long a test's own SQLite connection waits for a lock the server's connections hold.
const OUTSIDE_BUSY_MS: u32 = 10_000;

/// A test's own connection to an SQLite file a server uses or has used, waiting for its
/// locks instead of failing at once: the last of the server's connections to close
/// checkpoints the log under an exclusive lock, and r2d2 may still be closing one it was
/// opening in the background when the server stopped.
pub fn sqlite_connection(path: &Path) -> SqliteConnection {
    let mut conn =
        SqliteConnection::establish(&path.to_string_lossy()).expect("open the SQLite file");
    diesel::sql_query(format!("PRAGMA busy_timeout = {OUTSIDE_BUSY_MS}"))
        .execute(&mut conn)
        .expect("set the busy timeout");
    conn
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres
            && let Ok(mut conn) = PgConnection::establish(admin)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}
