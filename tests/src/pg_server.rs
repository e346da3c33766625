//! A PostgreSQL server of the test's own, for faults that must not touch the machine's
//! shared server: stopping it with queries in flight, terminating its backends, filling its
//! disk. `initdb` into a temporary directory, `pg_ctl start` on a free loopback port, run as
//! the `postgres` user when the tests run as root (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, pg::PgConnection};
use tempfile::TempDir;

use crate::process::{COMMAND_TIMEOUT, run_with_deadline};

/// A private PostgreSQL server. Stopped (immediately) and deleted when dropped.
#[derive(Debug)]
pub struct PgServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: TempDir,
    bin: PathBuf,
}

/// Where the PostgreSQL server programs are, if installed.
pub fn postgres_bin() -> Option<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    let id = run_with_deadline(Command::new("id").arg("-u"), COMMAND_TIMEOUT);
    id.success && id.output.trim() == "0"
}

/// Whether a private server can run here.
pub fn available() -> bool {
    postgres_bin().is_some()
}

impl PgServer {
    /// initdb and start; panics with the server's log when that fails.
    pub fn start() -> Self {
        let bin = postgres_bin().expect("PostgreSQL server programs (apt-get install postgresql)");
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            chown_to_postgres(dir.path());
        }
        let data = dir.path().join("data");
        let initdb = run_with_deadline(
            as_postgres(&bin.join("initdb")).arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]),
            Duration::from_secs(60),
        );
        assert!(initdb.success, "initdb failed: {}", initdb.output);
        let port = free_port();
        let server = Self { port, dir, bin };
        server.start_again();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the (stopped) server again on its port.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let started = run_with_deadline(
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-o", &options, "-w", "-t", "30", "-l"])
                .arg(self.dir.path().join("server.log"))
                .arg("start"),
            Duration::from_secs(40),
        );
        assert!(
            started.success,
            "pg_ctl start failed: {}\n{}",
            started.output,
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server: `mode` is pg_ctl's `fast` (disconnects sessions, rolls back) or
    /// `immediate` (no clean shutdown, as a crash).
    pub fn stop(&self, mode: &str) {
        let _ = run_with_deadline(
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", mode, "-w", "-t", "30", "stop"]),
            Duration::from_secs(40),
        );
    }

    /// The admin URL (database `postgres`).
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `sql` (one or more statements) on database `name`.
    pub fn execute(&self, name: &str, sql: &str) {
        mrmat_api::openssl_without_exit_handler();
        let mut conn =
            PgConnection::establish(&self.url(name)).expect("connect to the private server");
        conn.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A new empty database; its name.
    pub fn create_database(&self) -> String {
        let name = format!("fault_{}", uuid::Uuid::new_v4().simple());
        self.execute("postgres", &format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// A directory the server may write to (for tablespaces).
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        if is_root() {
            chown_to_postgres(&dir);
        }
        dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop("immediate");
    }
}

fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Gives `path` to the `postgres` user.
pub fn chown_to_postgres(path: &Path) {
    let chown = run_with_deadline(
        Command::new("chown").args(["postgres:postgres"]).arg(path),
        COMMAND_TIMEOUT,
    );
    assert!(
        chown.success,
        "chown postgres {}: {}",
        path.display(),
        chown.output
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
