//! Running the binary in a scratch directory with a clean environment; every run and
//! every wait for the process is bounded in time (the testkit's `process`).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mrmat_api_testkit::process::{self, COMMAND_TIMEOUT, Running};

/// How long the server may take to log that it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the server may take to exit after a signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The binary under test, in `dir`, with no inherited MRMAT_API_* or PORT variables.
pub fn command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mrmat-api"));
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("MRMAT_API_") || key == "PORT" || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// Runs to completion (killed, and the test failed, after `COMMAND_TIMEOUT`).
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    process::output(
        command(dir).args(args).envs(env.iter().copied()),
        COMMAND_TIMEOUT,
    )
}

/// A running server process, killed when dropped.
pub struct Server {
    process: Running,
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

impl Server {
    /// Starts `mrmat-api` and waits for its "listening on" line.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let process = Running::spawn(
            command(dir)
                .args(args)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let log = process.stderr.clone().unwrap();
        let port = log
            .wait_for(START_TIMEOUT, listening_port)
            .unwrap_or_else(|e| panic!("server did not start ({e:?}): {}", log.text()));
        Self { process, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends `signal` and waits for the exit code.
    pub fn stop_with(mut self, signal: i32) -> Option<i32> {
        let pid = self.process.id().to_string();
        let kill = process::output(
            Command::new("kill").args([format!("-{signal}").as_str(), pid.as_str()]),
            COMMAND_TIMEOUT,
        );
        assert!(kill.status.success(), "kill -{signal} {pid}");
        let status = self.process.wait_or_kill(STOP_TIMEOUT);
        status
            .unwrap_or_else(|| {
                panic!(
                    "server did not stop within {STOP_TIMEOUT:?}: {}",
                    self.log()
                )
            })
            .code()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.process.stderr_text()
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Blocking GET, for process tests.
pub async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("GET")
}
