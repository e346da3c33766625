//! Running the client binary with a home of its own.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use mrmat_api_testkit::idp::{Approval, Idp};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

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

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mrmat-api-client"));
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
        self.command(args).output().await.unwrap()
    }

    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args)
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap()
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
            if stderr.read_line(&mut line).await.unwrap() == 0 {
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
        stderr.read_to_string(&mut rest).await.unwrap();
        seen.push_str(&rest);
        let status = child.wait().await.unwrap();
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

    pub fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
