//! Running the binary in a scratch directory with a clean environment.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Runs to completion.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run mrmat-api")
}

/// A running server process.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `mrmat-api` and waits for its "listening on" line.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = command(dir)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mrmat-api");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("listening on http://")
                    .nth(1)
                    .and_then(|addr| addr.rsplit(':').next())
                    .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("server did not start: {}", log.lock().unwrap()));
        Self { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends `signal` and waits for the exit code.
    pub fn stop_with(mut self, signal: i32) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args([format!("-{signal}").as_str(), pid.as_str()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
