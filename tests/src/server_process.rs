//! The `mrmat-api` binary as a child process: a clean environment, its log captured, its
//! "listening on" line awaited within a bound, its exit awaited within a bound; killed
//! when dropped. The test crate names the binary (`env!("CARGO_BIN_EXE_mrmat-api")`).
//! [`ServerProcess::serve`] is the async start for tests that talk to it as a deployment
//! would (on loopback TCP or a unix socket, read back through its access log).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::Oidc;
use crate::process::{self, Running};

/// How long the server may take to log that it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the server may take to exit after a signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long an access line may take to reach the log after its response reached the test:
/// a writer thread formats and writes the access log in batches.
const ACCESS_LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the async waits look again.
const POLL: Duration = Duration::from_millis(20);

/// `binary` in `dir`, with no inherited `MRMAT_API_*`, `OTEL_*`, `PORT` or `RUST_LOG`, and no drain
/// on SIGTERM (`MRMAT_API_SHUTDOWN_DELAY=0`: a test that stops a server gracefully would
/// otherwise wait out the default delay; the tests of the drain pass `--shutdown-delay`).
pub fn command(binary: &str, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("MRMAT_API_")
            || key.starts_with("OTEL_")
            || key == "PORT"
            || key == "RUST_LOG"
        {
            command.env_remove(key);
        }
    }
    command.env("MRMAT_API_SHUTDOWN_DELAY", "0");
    command
}

/// Points `command` at the test provider `oidc` with the server's own client, its secret in
/// the environment as a deployment passes it (never in argv), and two workers.
pub fn with_test_provider<'a>(command: &'a mut Command, oidc: &Oidc) -> &'a mut Command {
    let (client_id, secret) = oidc.server_credentials();
    command
        .args(["--oidc-issuer", &oidc.issuer, "--oidc-client-id", client_id])
        .env("MRMAT_API_OIDC_CLIENT_SECRET", secret)
        .args(["--workers", "2"])
}

/// The check called `name` in a `mrmat-api doctor --output json` report.
pub fn doctor_check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

/// Where [`ServerProcess::serve`] has the server listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// TCP on 127.0.0.1, port 0 (the port is read from the log).
    Loopback,
    /// TCP on 127.0.0.1 and this port: a server started again where its predecessor was.
    LoopbackPort(u16),
    /// A unix socket (`--bind unix:PATH`). The path must fit a socket address (about 100
    /// bytes): see [`socket_dir`].
    Unix(PathBuf),
}

/// A directory for a unix socket whose path fits a socket address (108 bytes on Linux)
/// wherever `TMPDIR` points: it is made in `/tmp`. Removed when dropped.
pub fn socket_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mrmat-")
        .tempdir_in("/tmp")
        .expect("a socket directory in /tmp")
}

/// One access-log line of the server:
/// `[ts INFO  mrmat_api::access] CLIENT "METHOD PATH" STATUS LATENCY request_id=ID [trace_id=T] [subject=S]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLine {
    /// The client address the server logged.
    pub client: String,
    /// The method.
    pub method: String,
    /// The path, without query.
    pub path: String,
    /// The status.
    pub status: u16,
    /// The request id.
    pub request_id: String,
    /// The trace id, when the server traces.
    pub trace_id: Option<String>,
}

impl AccessLine {
    /// Parses the access line inside one log line, if it is one.
    pub fn parse(line: &str) -> Option<Self> {
        let (_, rest) = line.split_once("mrmat_api::access")?;
        let rest = rest.trim_start_matches(']').trim_start();
        let (client, rest) = rest.split_once(" \"")?;
        let (request, rest) = rest.split_once("\" ")?;
        let (method, path) = request.split_once(' ')?;
        let mut words = rest.split_whitespace();
        let status = words.next()?.parse().ok()?;
        let request_id = words.find_map(|w| w.strip_prefix("request_id="))?;
        let trace_id = words
            .next()
            .and_then(|w| w.strip_prefix("trace_id="))
            .map(str::to_owned);
        Some(Self {
            client: client.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            request_id: request_id.to_owned(),
            trace_id,
        })
    }
}

/// A running server process, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    process: Running,
    /// Its port on 127.0.0.1 (0 when it listens on a unix socket only).
    pub port: u16,
    /// Its unix socket, when it listens on one.
    pub socket: Option<PathBuf>,
}

/// Where a complete "listening on ..." line of the log so far says the server listens: a
/// TCP port, or (port 0) a unix socket.
fn listening(log: &str) -> Option<(u16, Option<PathBuf>)> {
    let (complete, _) = log.rsplit_once('\n')?;
    complete.lines().find_map(|line| {
        let (_, address) = line.split_once("listening on ")?;
        let address = address.trim();
        if let Some(path) = address.strip_prefix("unix:") {
            return Some((0, Some(PathBuf::from(path))));
        }
        let port = address
            .strip_prefix("http://")?
            .rsplit(':')
            .next()?
            .parse()
            .ok()?;
        Some((port, None))
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
        let (port, socket) = log
            .wait_for(START_TIMEOUT, listening)
            .unwrap_or_else(|e| panic!("mrmat-api did not start ({e:?}):\n{}", log.text()));
        Self {
            process,
            port,
            socket,
        }
    }

    /// Starts `command` (see [`command`]; `serve` is the binary's default command) with
    /// the listening options `listen` implies, for async tests: started off the runtime's
    /// threads, and ready once `GET /healthz/` answers 200 (over the socket with
    /// [`Listen::Unix`]). Panics with its log when it is not within a bound.
    pub async fn serve(mut command: Command, listen: Listen) -> Self {
        match &listen {
            Listen::Loopback => command.args(["--host", "127.0.0.1", "--port", "0"]),
            Listen::LoopbackPort(port) => {
                command.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            }
            Listen::Unix(path) => command
                .arg("--bind")
                .arg(format!("unix:{}", path.display())),
        };
        let server = match tokio::task::spawn_blocking(move || Self::start(&mut command)).await {
            Ok(server) => server,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("start mrmat-api: {e}"),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let client = reqwest::Client::new();
        loop {
            let status = match &server.socket {
                Some(socket) => unix_get(socket, "/healthz/").await,
                None => client
                    .get(server.url("/healthz/"))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .ok()
                    .map(|r| r.status().as_u16()),
            };
            if status == Some(200) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "mrmat-api listens but GET /healthz/ did not answer 200 within {START_TIMEOUT:?} \
                 (last: {status:?}):\n{}",
                server.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// A URL on its TCP port.
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

    /// Its access-log lines so far.
    pub fn access_lines(&self) -> Vec<AccessLine> {
        self.log().lines().filter_map(AccessLine::parse).collect()
    }

    /// The access line of the request with `request_id`, waited for without blocking the
    /// test's runtime; panics with the log when it does not come within a bound.
    pub async fn access_line(&self, request_id: &str) -> AccessLine {
        let deadline = Instant::now() + ACCESS_LOG_TIMEOUT;
        loop {
            if let Some(line) = self
                .access_lines()
                .into_iter()
                .find(|l| l.request_id == request_id)
            {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no access line with request_id={request_id} within {ACCESS_LOG_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends `signal` and waits for the exit code; SIGTERM and SIGINT are the graceful
    /// stop (requests in flight finish).
    pub fn stop_with(mut self, signal: i32) -> Option<i32> {
        let pid = self.process.id();
        assert!(
            process::send_signal(pid, &signal.to_string()),
            "kill -{signal} {pid}"
        );
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

    /// Sends `signal` (e.g. `TERM`) and returns at once.
    pub fn signal(&self, signal: &str) {
        let pid = self.process.id();
        assert!(process::send_signal(pid, signal), "kill -{signal} {pid}");
    }

    /// Waits without blocking the test's runtime for the process to exit, at most
    /// `timeout`: its exit code (`Some(None)` when a signal ended it), or `None` when it
    /// is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.process.wait_timeout(Duration::ZERO) {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL, as a crash or an OOM killer would, and waits for the end.
    pub fn kill_9(&mut self) {
        self.process.kill();
    }
}

/// `GET path` over the unix socket at `socket`, HTTP/1.0 written by hand (reqwest has no
/// unix sockets); the status, or `None` when nothing answered within 5 s.
pub async fn unix_get(socket: &Path, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        // The status line fits in the first read; the rest is not needed.
        let mut head = [0_u8; 64];
        let n = stream.read(&mut head).await.ok()?;
        let head = std::str::from_utf8(head.get(..n)?).ok()?;
        head.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_are_parsed_from_the_access_log() {
        let line = "[2026-12-01T21:00:00Z INFO  mrmat_api::access] 127.0.0.3 \"GET /api/\" 200 1.2ms request_id=abc subject=alice";
        assert_eq!(
            AccessLine::parse(line),
            Some(AccessLine {
                client: "127.0.0.3".to_owned(),
                method: "GET".to_owned(),
                path: "/api/".to_owned(),
                status: 200,
                request_id: "abc".to_owned(),
                trace_id: None,
            })
        );
        let traced = line.replace("abc ", "abc trace_id=4bf92f3577b34da6a3ce929d0e0e4736 ");
        assert_eq!(
            AccessLine::parse(&traced).and_then(|l| l.trace_id),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned())
        );
    }

    #[test]
    fn other_log_lines_are_not_access_lines() {
        assert_eq!(
            AccessLine::parse("[.. INFO  mrmat_api] listening on http://127.0.0.1:1"),
            None
        );
    }

    #[test]
    fn the_listening_line_gives_a_port_or_a_socket() {
        assert_eq!(
            listening("[.. INFO  mrmat_api] listening on http://127.0.0.1:4242\n"),
            Some((4242, None))
        );
        assert_eq!(
            listening("[.. INFO  mrmat_api] listening on unix:/tmp/x/api.sock\n"),
            Some((0, Some(PathBuf::from("/tmp/x/api.sock"))))
        );
        // Not before the line is complete.
        assert_eq!(
            listening("[.. INFO  mrmat_api] listening on http://127.0.0.1:42"),
            None
        );
    }
}
