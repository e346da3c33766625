//! Running the binary in a scratch directory with a clean environment; every run and
//! every wait for the process is bounded in time (the testkit's `process` and
//! `server_process`).

use std::path::Path;
use std::process::{Command, Output};

use mrmat_api_testkit::process::{self, COMMAND_TIMEOUT};
use mrmat_api_testkit::server_process::{self, ServerProcess};

/// The binary under test, in `dir`, with no inherited MRMAT_API_* or PORT variables.
pub fn command(dir: &Path) -> Command {
    server_process::command(env!("CARGO_BIN_EXE_mrmat-api"), dir)
}

/// Runs to completion (killed, and the test failed, after `COMMAND_TIMEOUT`).
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    process::output(
        command(dir).args(args).envs(env.iter().copied()),
        COMMAND_TIMEOUT,
    )
}

/// Starts `mrmat-api` in `dir` and waits for its "listening on" line.
pub fn start_server(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::start(command(dir).args(args).envs(env.iter().copied()))
}

/// Starts `mrmat-api` in `dir` on 127.0.0.1 and a free port, with `args` besides.
pub fn start_on_loopback(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
    let mut all = vec!["--host", "127.0.0.1", "--port", "0"];
    all.extend_from_slice(args);
    start_server(dir, &all, env)
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

/// Runs with `args` and asserts exit code 2 and one `error:` line naming `option`.
pub fn assert_bad_config(dir: &Path, args: &[&str], env: &[(&str, &str)], option: &str) {
    let output = run(dir, args, env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{args:?}: one error line expected in {stderr}"
    );
    assert!(
        errors[0].contains(option),
        "{args:?}: expected {option} in {:?}",
        errors[0]
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}
