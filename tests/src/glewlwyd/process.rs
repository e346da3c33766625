//! Glewlwyd as a child process: a free loopback port, its output in a log file, a watchdog
//! that stops it if the test process dies, and waits that always end (the testkit's
//! `process::Running`).

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::process::Running;

/// How long the watchdog gets to exit once told Glewlwyd stopped, before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A free port on 127.0.0.1. Glewlwyd cannot bind port 0 and report the port it got, so
/// the port is found here and may be taken by someone else before Glewlwyd binds it: the
/// caller retries on a clash.
pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// A running Glewlwyd and its watchdog.
#[derive(Debug)]
pub(super) struct Process {
    child: Running,
    watchdog: Running,
    // The watchdog kills Glewlwyd when this closes without "stopped" written to it first,
    // i.e. when the test process dies without dropping the handle.
    watchdog_stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Process {
    /// Starts `glewlwyd -c config`, its output going to `log`.
    pub(super) fn spawn(config: &Path, log: &Path) -> Self {
        let out = File::create(log).expect("create the Glewlwyd log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Running::spawn(
            Command::new(super::install::BINARY)
                .arg("--config-file")
                .arg(config)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        );
        let mut watchdog = Running::spawn(
            Command::new("sh")
                .args([
                    "-c",
                    r#"read -r line; [ "$line" = stopped ] || kill -9 "$1""#,
                    "glewlwyd-watchdog",
                ])
                .arg(child.id().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let watchdog_stdin = watchdog.take_stdin();
        Self {
            child,
            watchdog,
            watchdog_stdin,
            log: log.to_path_buf(),
        }
    }

    /// Whether it exited already (say, because its port was taken).
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.wait_timeout(Duration::ZERO)
    }

    /// Whether this very process listens on `127.0.0.1:port`. Glewlwyd logs "started"
    /// before it binds, and another process may hold the port: only the kernel's socket
    /// table says whether the answers on that port will be Glewlwyd's.
    pub(super) fn listens_on(&self, port: u16) -> bool {
        let Some(inode) = listening_inode(port) else {
            return false;
        };
        let socket = format!("socket:[{inode}]");
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())) else {
            return false;
        };
        fds.filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| target.as_os_str() == socket.as_str())
    }

    /// What it logged so far.
    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it and waits for it and its watchdog, each with a timeout.
    pub(super) fn stop(&mut self) {
        self.child.kill();
        if let Some(mut stdin) = self.watchdog_stdin.take() {
            // Glewlwyd is gone and its pid may be reused: tell the watchdog not to kill.
            let _ = writeln!(stdin, "stopped");
        }
        self.watchdog.wait_or_kill(STOP_TIMEOUT);
    }
}

/// The inode of the socket listening on `127.0.0.1:port`, from `/proc/net/tcp`.
fn listening_inode(port: u16) -> Option<String> {
    // The address is little-endian hex, the port big-endian; 0A is LISTEN.
    let local = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A"))
            .then(|| fields.get(9).map(|inode| (*inode).to_owned()))
            .flatten()
    })
}
