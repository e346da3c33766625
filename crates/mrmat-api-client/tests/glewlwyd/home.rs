//! Running the client binary with a home of its own, every run bounded by a timeout, and a
//! login answered on Glewlwyd's pages.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use mrmat_api_testkit::glewlwyd::{DeviceApproval, Glewlwyd};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// Longest any client command may take; a login includes a person's approval.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A user's machine: its own cache and config directories.
pub struct Home {
    dir: tempfile::TempDir,
    server: String,
}

impl Home {
    pub fn new(server: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            server: server.to_owned(),
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
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
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("mrmat-api-client {args:?} ran over {RUN_TIMEOUT:?}"))
            .unwrap()
    }

    /// Runs and returns stdout, asserting success.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs with JSON output and parses stdout.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }

    /// `login`, approved by `username` on Glewlwyd's pages once the URI is shown. Returns
    /// the exit code and everything printed on stderr.
    pub async fn login_as(&self, glewlwyd: &Glewlwyd, username: &str) -> (Option<i32>, String) {
        let mut child = self
            .command(&["login"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let session = async {
            let mut seen = String::new();
            let mut uri = None;
            while uri.is_none() {
                let mut line = String::new();
                if stderr.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                // Glewlwyd's complete URI is `<issuer>/device?code=XXXX-XXXX`.
                uri = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http") && w.contains("code="))
                    .map(str::to_owned);
                seen.push_str(&line);
            }
            if let Some(uri) = uri {
                let approval = glewlwyd
                    .approve(&uri, username, &Glewlwyd::password(username))
                    .await;
                assert_eq!(approval, DeviceApproval::Approved, "{seen}");
            }
            let mut rest = String::new();
            stderr.read_to_string(&mut rest).await.unwrap();
            seen.push_str(&rest);
            let status = child.wait().await.unwrap();
            (status.code(), seen)
        };
        tokio::time::timeout(RUN_TIMEOUT, session)
            .await
            .unwrap_or_else(|_| panic!("login ran over {RUN_TIMEOUT:?}"))
    }

    /// A login that must succeed.
    pub async fn login(&self, glewlwyd: &Glewlwyd, username: &str) {
        let (code, stderr) = self.login_as(glewlwyd, username).await;
        assert_eq!(code, Some(0), "login: {stderr}");
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

    /// The cached session as JSON.
    pub fn cached(&self) -> serde_json::Value {
        let file = self.cache_file().expect("a cached session");
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
