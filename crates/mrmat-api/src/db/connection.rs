//! Opening connections: SQLite with its per-connection pragmas, PostgreSQL with libpq
//! parameters that bound every wait, so a database that stops answering (a cut cable, a
//! dropped route) fails a query within the timeout instead of holding it forever.

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};
use url::Url;

use super::DbConnection;
use crate::settings::DatabaseUrl;

/// SQLite's write-ahead log is truncated back to this size after a checkpoint, so a burst
/// of writes does not leave a large file behind.
const SQLITE_JOURNAL_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// Opens connections of the configured backend.
#[derive(Clone)]
pub(crate) struct ConnectionManager {
    url: DatabaseUrl,
    timeout: Duration,
    /// SQLite connections that only read, on an async worker: they never wait for a lock.
    inline_reads: bool,
}

impl std::fmt::Debug for ConnectionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The PostgreSQL URL may carry a password: name the backend only.
        f.debug_struct("ConnectionManager")
            .field("backend", &self.url.backend())
            .field("timeout", &self.timeout)
            .field("inline_reads", &self.inline_reads)
            .finish()
    }
}

impl ConnectionManager {
    /// Connections to `url` whose waits are bounded by `timeout`.
    pub(crate) fn new(url: DatabaseUrl, timeout: Duration) -> Self {
        Self {
            url,
            timeout,
            inline_reads: false,
        }
    }

    /// SQLite connections for reads run on an async worker: read-only, and a read that
    /// meets a lock fails at once (`busy_timeout = 0`) instead of holding up the worker.
    pub(crate) fn inline_reads(url: DatabaseUrl) -> Self {
        Self {
            url,
            timeout: Duration::ZERO,
            inline_reads: true,
        }
    }

    /// Whether the connections are SQLite ones.
    pub(crate) fn is_sqlite(&self) -> bool {
        matches!(self.url, DatabaseUrl::Sqlite(_))
    }

    /// One new connection.
    pub(crate) fn establish(&self) -> Result<DbConnection, ConnectionError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                openssl_without_exit_handler();
                PgConnection::establish(&bounded_postgres_url(url.expose(), self.timeout))
                    .map(DbConnection::Postgres)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                conn.batch_execute(&sqlite_pragmas(self.timeout))
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                if self.inline_reads {
                    conn.batch_execute("PRAGMA query_only = ON;")
                        .map_err(ConnectionError::CouldntSetupConfiguration)?;
                }
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// Initialises the OpenSSL that libpq uses for TLS before libpq does, without the exit
/// handler OpenSSL would otherwise register. That handler frees OpenSSL's state while the
/// process exits, and a pool thread still opening or closing a connection at that moment
/// (r2d2 does both in the background) crashes in the freed state: a process that did
/// all its work then dies of a signal. The first initialisation decides; later calls cost
/// one atomic load. Anything that opens a PostgreSQL connection calls this first.
pub fn openssl_without_exit_handler() {
    openssl_sys::init();
}

/// Per-connection SQLite settings: WAL so readers never wait for the writer, a busy timeout
/// so a writer waits for the lock a while instead of failing at once, foreign keys on.
/// `synchronous = NORMAL` in WAL mode keeps every commit through a crash of the process;
/// only a crash of the machine may lose the last commits (see docs/RELIABILITY.md).
fn sqlite_pragmas(timeout: Duration) -> String {
    format!(
        "PRAGMA busy_timeout = {};
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA journal_size_limit = {SQLITE_JOURNAL_SIZE_LIMIT};
         PRAGMA foreign_keys = ON;",
        timeout.as_millis()
    )
}

/// `url` with libpq parameters that bound connecting (`connect_timeout`), a query
/// (`statement_timeout`), unacknowledged writes (`tcp_user_timeout`) and a silent peer
/// (TCP keepalives), unless the URL already sets them.
pub(crate) fn bounded_postgres_url(url: &str, timeout: Duration) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        // Settings checked it parses; should it not, libpq says why.
        return url.to_owned();
    };
    let seconds = timeout.as_secs_f64();
    let millis = timeout.as_millis().max(1);
    // Keepalive probes start after a third of the timeout and give up by its end.
    let idle = (seconds / 3.0).ceil().max(1.0) as u64;
    let wanted = [
        // libpq treats values below 2 as 2.
        ("connect_timeout", seconds.ceil().max(2.0).to_string()),
        ("keepalives", "1".to_owned()),
        ("keepalives_idle", idle.to_string()),
        ("keepalives_interval", "1".to_owned()),
        ("keepalives_count", idle.max(2).to_string()),
        ("tcp_user_timeout", millis.to_string()),
    ];
    let existing: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let has = |key: &str| existing.iter().any(|(k, _)| k == key);
    let mut pairs = existing.clone();
    for (key, value) in wanted {
        if !has(key) {
            pairs.push((key.to_owned(), value));
        }
    }
    let statement_timeout = format!("-c statement_timeout={millis}");
    match pairs.iter_mut().find(|(k, _)| k == "options") {
        Some((_, options)) if options.contains("statement_timeout") => {}
        Some((_, options)) => {
            options.push(' ');
            options.push_str(&statement_timeout);
        }
        None => pairs.push(("options".to_owned(), statement_timeout)),
    }
    // Percent-encoded by hand: form encoding writes a space as `+`, which libpq keeps.
    let query = pairs
        .iter()
        .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    parsed.set_query(Some(&query));
    parsed.into()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A pooled connection, and whether a query found it cut off.
///
/// The pool does not test a connection before each use (a `SELECT 1` per request doubled
/// the statements of a read), and the driver does not notice a connection whose server
/// went away. So the query that meets the failure says so here, and the pool drops the
/// connection instead of handing it out again: one request per dead connection pays.
#[derive(Debug)]
pub(crate) struct Pooled {
    conn: DbConnection,
    cut_off: bool,
}

impl Pooled {
    /// Marks the connection as not to be used again.
    pub(crate) fn cut_off(&mut self) {
        self.cut_off = true;
    }
}

impl std::ops::Deref for Pooled {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = Pooled;
    type Error = ConnectionError;

    fn connect(&self) -> Result<Pooled, ConnectionError> {
        self.establish().map(|conn| Pooled {
            conn,
            cut_off: false,
        })
    }

    fn is_valid(&self, conn: &mut Pooled) -> Result<(), ConnectionError> {
        conn.conn
            .ping()
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.cut_off || conn.conn.is_broken()
    }
}

/// Mode of the directories the server creates (the instance directory, an SQLite file's
/// directory): the server's user only, whatever the umask.
pub(crate) const PRIVATE_DIR: u32 = 0o700;

/// Mode of the SQLite database and its journal files: the server's user only.
pub(crate) const PRIVATE_FILE: u32 = 0o600;

/// Creates `dir` and any missing parents as [`PRIVATE_DIR`] (the umask cannot widen it;
/// it may only narrow, and 0700 is already the narrowest a server can use).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
}

/// Makes an existing `dir` the server's user's only. A directory with the sticky bit (such
/// as /tmp) is shared by design and left alone, as is one the server cannot change (a
/// volume owned by another user): both with a warning, since the database files in it are
/// private all the same.
pub(crate) fn tighten_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(dir) else {
        return;
    };
    let mode = metadata.permissions().mode();
    if mode & 0o077 == 0 {
        return;
    }
    if mode & 0o1000 != 0 {
        log::warn!(
            "{} is a shared directory (sticky bit, mode {:o}); the database files in it are private, but give the server a directory of its own",
            dir.display(),
            mode & 0o7777
        );
        return;
    }
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR)) {
        log::warn!(
            "cannot make {} private (mode {:o}, wanted 700): {e}",
            dir.display(),
            mode & 0o7777
        );
    }
}

/// Creates the directory an SQLite file lives in, private.
pub(crate) fn create_parent_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => create_private_dir(dir),
        _ => Ok(()),
    }
}

/// The SQLite database file and the files SQLite keeps beside it.
fn sqlite_files(path: &Path) -> impl Iterator<Item = std::path::PathBuf> + '_ {
    ["", "-wal", "-shm", "-journal"]
        .into_iter()
        .map(move |suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::path::PathBuf::from(name)
        })
}

/// Makes the database file and its journal files [`PRIVATE_FILE`], creating an empty
/// database file so when there is none.
///
/// SQLite itself creates a new database 0644 less the umask, but gives the `-wal`, `-shm`
/// and `-journal` files it creates later the mode of the database file (its unix VFS reads
/// the database's mode and sets it with `fchmod`, past the umask). So a database file that
/// is 0600 before SQLite first opens it makes every file SQLite adds 0600 too, at any time,
/// without touching the process-wide umask (which every thread shares). Files left wider
/// by an earlier run, or by another tool, are narrowed here; one the server cannot change
/// is an error, since the data would stay readable by others.
pub(crate) fn make_sqlite_files_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(path)
    {
        // An empty file is a new database to SQLite.
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for file in sqlite_files(path) {
        let Ok(metadata) = std::fs::metadata(&file) else {
            continue;
        };
        if metadata.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(PRIVATE_FILE))
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot make {} private (0600): {e}", file.display()),
                    )
                })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_and_the_files_sqlite_adds_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instance").join("db.sqlite");
        create_parent_dir(&path).unwrap();
        assert_eq!(mode(&dir.path().join("instance")), 0o700);
        make_sqlite_files_private(&path).unwrap();
        let manager =
            ConnectionManager::new(DatabaseUrl::Sqlite(path.clone()), Duration::from_secs(1));
        let mut conn = manager.establish().unwrap();
        conn.batch_execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        for file in sqlite_files(&path).take(3) {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }

    #[test]
    fn wider_database_files_are_narrowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        for file in sqlite_files(&path).take(3) {
            std::fs::write(&file, b"").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        make_sqlite_files_private(&path).unwrap();
        for file in sqlite_files(&path).take(3) {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }

    #[test]
    fn postgres_urls_gain_bounds() {
        let url = bounded_postgres_url("postgres://u@h/db", Duration::from_secs(5));
        let parsed = Url::parse(&url).unwrap();
        let get = |key: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(get("connect_timeout").as_deref(), Some("5"));
        assert_eq!(get("tcp_user_timeout").as_deref(), Some("5000"));
        assert_eq!(get("keepalives").as_deref(), Some("1"));
        assert_eq!(get("options").as_deref(), Some("-c statement_timeout=5000"));
    }

    #[test]
    fn bounds_the_url_sets_itself_are_kept() {
        let url = bounded_postgres_url(
            "postgres://u@h/db?connect_timeout=30&options=-c%20search_path%3Dx",
            Duration::from_secs(5),
        );
        let parsed = Url::parse(&url).unwrap();
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert!(pairs.contains(&("connect_timeout".into(), "30".into())));
        assert!(pairs.contains(&(
            "options".into(),
            "-c search_path=x -c statement_timeout=5000".into()
        )));
    }
}
