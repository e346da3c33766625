//! The test identity provider: `tests/idp/server.mjs` (the `oidc-provider` npm package) as
//! a child process on a random loopback port. Its npm dependencies are installed on first
//! use (`npm ci`), under a file lock so parallel test processes install once.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

/// The directory of the provider's sources.
pub fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("idp")
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Installs the provider's npm packages unless they are already current.
pub fn ensure_installed() {
    let dir = idp_dir();
    let installed = dir.join("node_modules").join(".package-lock.json");
    let lockfile = dir.join("package-lock.json");
    let current = || match (mtime(&installed), mtime(&lockfile)) {
        (Some(installed), Some(wanted)) => installed >= wanted,
        _ => false,
    };
    if current() {
        return;
    }
    let lock =
        std::fs::File::create(dir.join(".npm-ci.lock")).expect("create tests/idp/.npm-ci.lock");
    lock.lock().expect("lock tests/idp/.npm-ci.lock");
    if current() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .expect("npm is required to install the test identity provider (Node.js 20+)");
    assert!(
        status.success(),
        "npm ci in {} failed: {status}",
        dir.display()
    );
}

/// Options of one provider instance.
#[derive(Debug, Clone, Default)]
pub struct IdpOptions {
    /// Port; 0 for a random one.
    pub port: u16,
    /// Extra environment, e.g. `IDP_ACCESS_TOKEN_TTL`.
    pub env: Vec<(String, String)>,
}

#[derive(Debug)]
struct Running {
    child: Child,
    // Held open: the provider exits when its stdin closes, i.e. when this process dies.
    _stdin: ChildStdin,
}

/// A running test provider. Stopped when dropped.
#[derive(Debug)]
pub struct Idp {
    /// Its issuer URL, `http://127.0.0.1:PORT`.
    pub issuer: String,
    /// Its port.
    pub port: u16,
    options: IdpOptions,
    running: Mutex<Option<Running>>,
}

/// What the provider counted (`GET /__stats`).
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    /// Introspection calls.
    pub introspections: u64,
    /// Revocation calls.
    pub revocations: u64,
    /// Device authorization calls.
    pub device_authorizations: u64,
    /// Every token endpoint request.
    pub token_requests: Vec<TokenRequest>,
}

/// One token endpoint request.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenRequest {
    /// When it arrived, epoch milliseconds.
    pub at_ms: u64,
    /// Its grant type.
    pub grant_type: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug, Deserialize)]
struct Ready {
    issuer: String,
    port: u16,
}

impl Idp {
    /// Starts a provider on a random port with default settings.
    pub fn start() -> Self {
        Self::start_with(IdpOptions::default())
    }

    /// Starts a provider.
    pub fn start_with(options: IdpOptions) -> Self {
        ensure_installed();
        let (running, ready) = spawn(&options);
        Self {
            issuer: ready.issuer,
            port: ready.port,
            options: IdpOptions {
                port: ready.port,
                ..options
            },
            running: Mutex::new(Some(running)),
        }
    }

    /// Stops the provider (its port then refuses connections).
    pub fn stop(&self) {
        if let Some(mut running) = self.running.lock().expect("idp lock").take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }

    /// Starts it again on the same port. It forgets every token it issued.
    pub fn restart(&self) {
        self.stop();
        let (running, _) = spawn(&self.options);
        *self.running.lock().expect("idp lock") = Some(running);
    }

    /// A URL on the provider.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// What it counted so far.
    pub async fn stats(&self) -> Stats {
        reqwest::get(self.url("/__stats"))
            .await
            .expect("idp stats")
            .json()
            .await
            .expect("idp stats JSON")
    }

    /// Zeroes the counters.
    pub async fn reset_stats(&self) {
        reqwest::Client::new()
            .post(self.url("/__stats/reset"))
            .send()
            .await
            .expect("idp stats reset");
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(options: &IdpOptions) -> (Running, Ready) {
    let dir = idp_dir();
    let stderr = if std::env::var_os("MRMAT_TEST_IDP_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let mut child = Command::new("node")
        .arg(dir.join("server.mjs"))
        .current_dir(&dir)
        .env("IDP_PORT", options.port.to_string())
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("Node.js 20+ (`node`) is required for the test identity provider");
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the provider's ready line");
    let ready: Ready = serde_json::from_str(&line).unwrap_or_else(|e| {
        let _ = child.kill();
        panic!("the test identity provider did not start (set MRMAT_TEST_IDP_LOG=1 to see why): {e}: {line:?}")
    });
    (
        Running {
            child,
            _stdin: stdin,
        },
        ready,
    )
}

/// Tokens from a device login.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenSet {
    /// The access token: the only one to send as a bearer.
    pub access_token: String,
    /// The refresh token (with `offline_access`).
    pub refresh_token: Option<String>,
    /// The ID token (with `openid`).
    pub id_token: Option<String>,
}

/// The device authorization answer.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceAuthorization {
    /// The device code the client polls with.
    pub device_code: String,
    /// The code the person types.
    pub user_code: String,
    /// Where the person goes.
    pub verification_uri: String,
    /// The same with the code filled in.
    pub verification_uri_complete: Option<String>,
    /// Seconds between polls.
    pub interval: Option<u64>,
}

/// How a scripted person answers a device login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Signs in and approves.
    Approve,
    /// Signs in and denies.
    Deny,
}

/// Scopes a user login asks for.
pub const USER_SCOPES: &str =
    "openid profile offline_access mrmat-api-resource-read mrmat-api-resource-write";

impl Idp {
    /// Starts a device login for `client_id` (the first half of RFC 8628).
    pub async fn device_authorization(&self, client_id: &str, scope: &str) -> DeviceAuthorization {
        reqwest::Client::new()
            .post(self.url("/device/auth"))
            .form(&[("client_id", client_id), ("scope", scope)])
            .send()
            .await
            .expect("device authorization")
            .json()
            .await
            .expect("device authorization JSON")
    }

    /// A person signs in as `username` on the provider's own pages and answers. Returns
    /// `approve.mjs`'s exit code (0 done, 3 login rejected, 4 unknown code).
    pub async fn approve(
        &self,
        verification_uri_complete: &str,
        username: &str,
        password: &str,
        answer: Approval,
    ) -> i32 {
        let mut command = tokio::process::Command::new("node");
        command
            .arg(idp_dir().join("approve.mjs"))
            .args(["--verification-uri-complete", verification_uri_complete])
            .args(["--username", username, "--password", password])
            .stdout(Stdio::null());
        if answer == Approval::Deny {
            command.arg("--deny");
        }
        let status = command.status().await.expect("run approve.mjs");
        status.code().unwrap_or(-1)
    }

    /// A complete device login of `username` through `client_id`: authorization, the
    /// person's approval, one token request.
    pub async fn user_tokens(&self, client_id: &str, username: &str) -> TokenSet {
        let authorization = self.device_authorization(client_id, USER_SCOPES).await;
        let uri = authorization
            .verification_uri_complete
            .clone()
            .expect("verification_uri_complete");
        let code = self
            .approve(
                &uri,
                username,
                &format!("{username}-password"),
                Approval::Approve,
            )
            .await;
        assert_eq!(code, 0, "approve.mjs failed");
        let response = reqwest::Client::new()
            .post(self.url("/token"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", authorization.device_code.as_str()),
                ("client_id", client_id),
            ])
            .send()
            .await
            .expect("device token request");
        assert!(
            response.status().is_success(),
            "device token: {}",
            response.status()
        );
        response.json().await.expect("token JSON")
    }
}

/// Waits until `check` holds, polling; panics after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
