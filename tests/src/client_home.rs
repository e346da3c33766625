//! The client binary on a user's machine of its own: a home with its own cache and config
//! directories, none of the test's `MRMAT_API*` variables, and every run bounded in time.
//! The provider-specific part of a login (finding the link, answering on the provider's
//! pages) is the caller's: see [`ClientHome::login_answered`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// No run of the client may take longer, a login's approval included; a hung one is
/// killed and the test fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Awaits `future` (a child process's end), failing the test after [`CLIENT_TIMEOUT`].
pub async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CLIENT_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CLIENT_TIMEOUT:?}"))
}

/// A user's machine for the client binary.
#[derive(Debug)]
pub struct ClientHome {
    binary: PathBuf,
    dir: tempfile::TempDir,
    /// The server every command names with `--server`, unless told another.
    pub server: String,
}

/// What a finished login printed.
#[derive(Debug)]
pub struct LoginResult {
    /// Its exit code.
    pub code: Option<i32>,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl ClientHome {
    /// A new home for `binary` (a test's `env!("CARGO_BIN_EXE_mrmat-api-client")`) against
    /// `server`.
    pub fn new(binary: &str, server: &str) -> Self {
        Self {
            binary: binary.into(),
            dir: tempfile::tempdir().expect("a temporary home"),
            server: server.to_owned(),
        }
    }

    /// The client against this home's server; killed if the test lets go of it.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        self.command_on(&self.server, args)
    }

    /// The client against `server`, with this home's cache and config.
    pub fn command_on(&self, server: &str, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        for (key, _) in std::env::vars() {
            if key.starts_with("MRMAT_API") {
                command.env_remove(key);
            }
        }
        command
            .env_remove("COLUMNS")
            .envs(self.environment())
            .args(["--server", server])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// The variables that make this home the client's: its home, cache and config
    /// directories. For a client started another way (in a terminal, by a shell).
    pub fn environment(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("HOME", self.dir.path().to_owned()),
            ("XDG_CACHE_HOME", self.dir.path().join("cache")),
            ("XDG_CONFIG_HOME", self.dir.path().join("config")),
        ]
    }

    /// Runs to the end.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[]).await
    }

    /// Runs to the end with `env` besides.
    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        finish(command, args).await
    }

    /// Runs to the end against `server`.
    pub async fn run_on(&self, server: &str, args: &[&str]) -> Output {
        finish(self.command_on(server, args), args).await
    }

    /// Runs and returns stdout, asserting success.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Runs with JSON output and parses stdout, asserting success.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all).await).expect("JSON output")
    }

    /// `login` with `extra` arguments: once a line on stderr holds a word `find_link`
    /// accepts, `answer` gets that word and answers as the person would.
    pub async fn login_answered<Fut>(
        &self,
        extra: &[&str],
        find_link: impl Fn(&str) -> bool,
        answer: impl FnOnce(String) -> Fut,
    ) -> LoginResult
    where
        Fut: std::future::Future<Output = ()>,
    {
        let mut args = vec!["login"];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the client");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut seen = String::new();
        let mut link = None;
        while link.is_none() {
            let mut line = String::new();
            if bounded("login's prompt", stderr.read_line(&mut line))
                .await
                .expect("read the client's stderr")
                == 0
            {
                break;
            }
            link = line
                .split_whitespace()
                .find(|word| find_link(word))
                .map(str::to_owned);
            seen.push_str(&line);
        }
        if let Some(link) = link {
            bounded("the login's answer", answer(link)).await;
        }
        let mut rest = String::new();
        bounded("login", stderr.read_to_string(&mut rest))
            .await
            .expect("read the client's stderr");
        seen.push_str(&rest);
        let status = bounded("login", child.wait())
            .await
            .expect("wait for the client");
        LoginResult {
            code: status.code(),
            stderr: seen,
        }
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
        serde_json::from_str(&std::fs::read_to_string(file).expect("read the cache file"))
            .expect("the cache file is JSON")
    }
}

/// A file's permission bits.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("the file exists")
        .permissions()
        .mode()
        & 0o777
}

/// Runs `command` to its end, bounded in time.
pub async fn finish(mut command: tokio::process::Command, args: &[&str]) -> Output {
    bounded(&format!("mrmat-api-client {args:?}"), command.output())
        .await
        .expect("run the client")
}

/// What a run wrote to stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a run wrote to stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
