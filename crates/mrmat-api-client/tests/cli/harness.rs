//! Running the client binary with a home of its own.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use mrmat_api_testkit::idp::{Approval, Idp};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// No run of the client may take longer; a hung one is killed and the test fails.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// Awaits `future` (a child process's end), failing the test after [`PROCESS_TIMEOUT`].
pub async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROCESS_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {PROCESS_TIMEOUT:?}"))
}

/// A user's machine: its own cache and config directories.
pub struct Home {
    dir: tempfile::TempDir,
    pub server: String,
}

/// What a finished login printed.
pub struct LoginResult {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Home {
    pub fn new(server: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            server: server.to_owned(),
        }
    }

    /// The client against this home's server; killed if the test lets go of it.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        self.command_on(&self.server, args)
    }

    /// The client against `server`, with this home's cache and config.
    pub fn command_on(&self, server: &str, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mrmat-api-client"));
        for (key, _) in std::env::vars() {
            if key.starts_with("MRMAT_API") {
                command.env_remove(key);
            }
        }
        command
            .env_remove("COLUMNS")
            .env("HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .args(["--server", server])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[]).await
    }

    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        finish(command, args).await
    }

    pub async fn run_on(&self, server: &str, args: &[&str]) -> Output {
        finish(self.command_on(server, args), args).await
    }

    /// Runs and returns stdout, asserting success.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs with JSON output and parses stdout.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }

    /// `auth status` as JSON, whatever its exit code, and the exit code.
    pub async fn status(&self, extra: &[&str]) -> (serde_json::Value, Option<i32>) {
        let mut args = vec!["--output", "json", "auth", "status"];
        args.extend_from_slice(extra);
        let output = self.run(&args).await;
        let json = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("auth status printed no JSON ({e}): {}", stderr(&output)));
        (json, output.status.code())
    }

    /// The login to this home's server, from `auth status`.
    pub async fn current_login(&self) -> serde_json::Value {
        let (status, _) = self.status(&[]).await;
        status["logins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["current"] == true)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// `login`, answered by `username` on the provider's pages once the code is shown.
    /// `before_answer` runs between the prompt and the answer.
    pub async fn login_with<F, Fut>(
        &self,
        idp: &Idp,
        extra: &[&str],
        username: &str,
        answer: Option<Approval>,
        before_answer: F,
    ) -> LoginResult
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut args = vec!["login"];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let mut uri = None;
        while uri.is_none() {
            let mut line = String::new();
            if bounded("login's prompt", stderr.read_line(&mut line))
                .await
                .unwrap()
                == 0
            {
                break;
            }
            uri = line
                .split_whitespace()
                .find(|w| w.contains("user_code="))
                .map(str::to_owned);
            seen.push_str(&line);
        }
        if let (Some(uri), Some(answer)) = (&uri, answer) {
            before_answer().await;
            let password = format!("{username}-password");
            assert_eq!(
                idp.approve(uri, username, &password, answer).await,
                0,
                "approve.mjs"
            );
        }
        let mut rest = String::new();
        bounded("login", stderr.read_to_string(&mut rest))
            .await
            .unwrap();
        seen.push_str(&rest);
        let status = bounded("login", child.wait()).await.unwrap();
        LoginResult {
            code: status.code(),
            stderr: seen,
        }
    }

    pub async fn login(&self, idp: &Idp, username: &str) {
        let result = self
            .login_with(idp, &[], username, Some(Approval::Approve), || async {})
            .await;
        assert_eq!(result.code, Some(0), "login: {}", result.stderr);
    }

    /// The one token cache file.
    pub fn cache_file(&self) -> Option<PathBuf> {
        let dir = self.dir.path().join("cache/mrmat-api-client/tokens");
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
    }

    /// The cached login, as stored.
    pub fn cached(&self) -> serde_json::Value {
        let file = self.cache_file().expect("a cache file");
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }

    pub fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
}

/// Runs `command` to its end, bounded in time.
pub async fn finish(mut command: tokio::process::Command, args: &[&str]) -> Output {
    bounded(&format!("mrmat-api-client {args:?}"), command.output())
        .await
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
