//! Running the client binary with a home of its own; every run is bounded in time (the
//! testkit's `process`).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mrmat_api_testkit::idp::{Approval, Idp};
use mrmat_api_testkit::process::{self, COMMAND_TIMEOUT, Running, WaitError};

/// How long a whole login may take, the person's answer included.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(120);

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

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mrmat-api-client"));
        for (key, _) in std::env::vars() {
            if key.starts_with("MRMAT_API") {
                command.env_remove(key);
            }
        }
        command
            .env("HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .args(["--server", &self.server])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        process::output_async(self.command(args), COMMAND_TIMEOUT).await
    }

    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        process::output_async(command, COMMAND_TIMEOUT).await
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
        let deadline = Instant::now() + LOGIN_TIMEOUT;
        let mut args = vec!["login"];
        args.extend_from_slice(extra);
        let mut login = Running::spawn(
            self.command(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let stderr = login.stderr.clone().unwrap();
        // The prompt names the verification URI with the code filled in; only complete
        // lines count, so a half-read URI is never taken.
        let prompt = stderr.clone();
        let uri = tokio::task::spawn_blocking(move || {
            prompt.wait_for(LOGIN_TIMEOUT, |text| {
                let (complete, _) = text.rsplit_once('\n')?;
                complete
                    .split_whitespace()
                    .find(|w| w.contains("user_code="))
                    .map(str::to_owned)
            })
        })
        .await
        .unwrap();
        let uri = match uri {
            Ok(uri) => Some(uri),
            Err(WaitError::Closed) => None,
            Err(WaitError::TimedOut) => panic!(
                "login showed no code within {LOGIN_TIMEOUT:?}: {}",
                stderr.text()
            ),
        };
        if let (Some(uri), Some(answer)) = (&uri, answer) {
            before_answer().await;
            let password = format!("{username}-password");
            assert_eq!(
                idp.approve(uri, username, &password, answer).await,
                0,
                "approve.mjs"
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let (login, status) = tokio::task::spawn_blocking(move || {
            let status = login.wait_or_kill(left);
            (login, status)
        })
        .await
        .unwrap();
        let Some(status) = status else {
            panic!(
                "login did not finish within {LOGIN_TIMEOUT:?} and was killed: {}",
                login.stderr_text()
            );
        };
        stderr.wait_closed(Duration::from_secs(10));
        LoginResult {
            code: status.code(),
            stderr: stderr.text(),
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

    pub fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
