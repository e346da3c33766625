//! The `mrmat-api` binary as a child process: a clean environment, its log captured, its
//! "listening on" line awaited within a bound, its exit awaited within a bound; killed
//! when dropped. The test crate names the binary (`env!("CARGO_BIN_EXE_mrmat-api")`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, COMMAND_TIMEOUT, Running};

/// How long the server may take to log that it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the server may take to exit after a signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// `binary` in `dir`, with no inherited `MRMAT_API_*`, `PORT` or `RUST_LOG`.
pub fn command(binary: &str, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("MRMAT_API_") || key == "PORT" || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// A running server process, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    process: Running,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The port of a complete "listening on http://HOST:PORT" line in the log so far.
fn listening_port(log: &str) -> Option<u16> {
    let (complete, _) = log.rsplit_once('\n')?;
    complete.lines().find_map(|line| {
        line.split("listening on http://")
            .nth(1)?
            .rsplit(':')
            .next()?
            .trim()
            .parse()
            .ok()
    })
}

impl ServerProcess {
    /// Starts `command` (see [`command`]) and waits for its "listening on" line; panics
    /// with its log when that does not come.
    pub fn start(command: &mut Command) -> Self {
        let process = Running::spawn(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let log = process.stderr.clone().expect("piped stderr");
        let port = log
            .wait_for(START_TIMEOUT, listening_port)
            .unwrap_or_else(|e| panic!("mrmat-api did not start ({e:?}):\n{}", log.text()));
        Self { process, port }
    }

    /// A URL on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.process.stderr_text()
    }

    /// Its log once `complete` says it is, or as it is after `timeout`. A line the
    /// server writes as it answers may reach the pipe after the answer reaches the test.
    pub fn log_when(&self, timeout: Duration, mut complete: impl FnMut(&str) -> bool) -> String {
        if let Some(stderr) = &self.process.stderr {
            let _ = stderr.wait_for(timeout, |log| complete(log).then_some(()));
        }
        self.log()
    }

    /// Sends `signal` and waits for the exit code.
    pub fn stop_with(mut self, signal: i32) -> Option<i32> {
        let pid = self.process.id().to_string();
        let kill = process::output(
            Command::new("kill").args([format!("-{signal}").as_str(), pid.as_str()]),
            COMMAND_TIMEOUT,
        );
        assert!(kill.status.success(), "kill -{signal} {pid}");
        self.process
            .wait_or_kill(STOP_TIMEOUT)
            .unwrap_or_else(|| {
                panic!(
                    "mrmat-api did not stop within {STOP_TIMEOUT:?}:\n{}",
                    self.log()
                )
            })
            .code()
    }

    /// SIGKILL, as a crash or an OOM killer would, and waits for the end.
    pub fn kill_9(&mut self) {
        self.process.kill();
    }
}
