//! The test identity provider: `tests/idp/server.mjs` (the `oidc-provider` npm package) as
//! a child process on a random loopback port. Its npm dependencies are installed on first
//! use (`npm ci`), under a file lock so parallel test processes install once.
//!
//! Every wait is bounded: `npm ci`, the provider's ready line (a provider that does not
//! print it in time is killed and started once more; the test then fails with its
//! stderr), `approve.mjs`. Set `MRMAT_TEST_IDP_LOG=1` to see the provider's stderr as it
//! is written.

use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use mrmat_api_types::scope::{Permission, Scope};
use serde::Deserialize;

use crate::process::{self, Echo, Running, Streams, TAIL_BYTES, WaitError};

/// How long `npm ci` may take on a fresh clone (it downloads the packages; about 6 s
/// here). Below the test runner's per-test limit (180 s), so npm's own error is what shows.
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a provider may take to print its ready line before it is killed. It needs
/// about a second on a busy machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a provider is started before the test gives up.
const START_ATTEMPTS: usize = 2;

/// How long `approve.mjs` may take; it bounds itself at 30 s.
const APPROVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The variable that passes the provider's stderr through to the test's.
const IDP_LOG_ENV: &str = "MRMAT_TEST_IDP_LOG";

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
    // Another test process may be installing; it holds the lock for at most its own
    // `npm ci` bound (then it is killed, or its test process dies and the lock goes).
    let deadline = Instant::now() + NPM_CI_TIMEOUT + Duration::from_secs(30);
    while let Err(e) = lock.try_lock() {
        assert!(
            matches!(e, std::fs::TryLockError::WouldBlock) && Instant::now() < deadline,
            "lock tests/idp/.npm-ci.lock: {e}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    if current() {
        return;
    }
    let output = process::output(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir),
        NPM_CI_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "npm ci in {} failed ({}); Node.js 20+ and npm are required for the test identity provider:\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Options of one provider instance.
#[derive(Debug, Clone)]
pub struct IdpOptions {
    /// Port; 0 for a random one.
    pub port: u16,
    /// Extra environment, e.g. `IDP_ACCESS_TOKEN_TTL`.
    pub env: Vec<(String, String)>,
    /// How long each start may take to print the ready line.
    pub ready_timeout: Duration,
}

impl IdpOptions {
    /// JWT access tokens (RFC 9068): a token asked for a resource (RFC 8707) is a JWT whose
    /// `aud` is that resource, and a request naming none gets `default_resource`. Such
    /// tokens are not stored by the provider, so they cannot be introspected.
    pub fn jwt(mut self, default_resource: &str) -> Self {
        self.env.push((
            "IDP_DEFAULT_RESOURCE".to_owned(),
            default_resource.to_owned(),
        ));
        self
    }

    /// JWT access tokens only for requests that name a resource; others stay opaque.
    pub fn jwt_when_asked(mut self) -> Self {
        self.env
            .push(("IDP_JWT_ACCESS_TOKENS".to_owned(), "1".to_owned()));
        self
    }

    /// Every DPoP proof must carry the provider's nonce: a token request whose proof has
    /// none is answered 400 `use_dpop_nonce` with a `DPoP-Nonce` header.
    pub fn dpop_nonce(mut self) -> Self {
        self.env.push(("IDP_DPOP_NONCE".to_owned(), "1".to_owned()));
        self
    }

    /// The access tokens' signing algorithm: `RS256` (the default), `PS256`, `ES256` or
    /// `EdDSA`.
    pub fn alg(mut self, alg: &str) -> Self {
        self.env
            .push(("IDP_SIGNING_ALG".to_owned(), alg.to_owned()));
        self
    }
}

impl Default for IdpOptions {
    fn default() -> Self {
        Self {
            port: 0,
            env: Vec::new(),
            ready_timeout: READY_TIMEOUT,
        }
    }
}

#[derive(Debug)]
struct Provider {
    // Held: dropping it kills the provider.
    _process: Running,
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
    running: Mutex<Option<Provider>>,
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
    /// Requests for its key set (`GET /jwks`).
    #[serde(default)]
    pub jwks_requests: u64,
    /// Revocation calls that carried a `DPoP` proof header.
    #[serde(default)]
    pub dpop_revocations: u64,
    /// Every request that carried W3C trace context.
    #[serde(default)]
    pub trace_contexts: Vec<TraceContextSeen>,
}

/// A request to the provider with a `traceparent` header.
#[derive(Debug, Clone, Deserialize)]
pub struct TraceContextSeen {
    /// Its method.
    pub method: String,
    /// Its path.
    pub path: String,
    /// `traceparent`, as sent.
    pub traceparent: String,
    /// `tracestate`, as sent.
    pub tracestate: Option<String>,
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
    /// Whether it carried a `DPoP` proof header.
    #[serde(default)]
    pub dpop: bool,
    /// The OAuth `error` of a refused request (`use_dpop_nonce`, `invalid_grant`, ...).
    #[serde(default)]
    pub error: Option<String>,
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
        // Dropping the process kills and reaps it.
        drop(self.running.lock().expect("idp lock").take());
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

    /// Test-only: a new signing key for access tokens, published from now on beside the
    /// old ones (which stay). Returns its key id.
    pub async fn rotate(&self) -> String {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(self.url("/__rotate"))
            .send()
            .await
            .expect("idp rotate")
            .json()
            .await
            .expect("idp rotate JSON");
        answer["kid"].as_str().expect("kid").to_owned()
    }

    /// Test-only: `header` and `payload` signed with the current access-token key; the
    /// header's `alg` and `kid` default to the key's (`"kid": null` leaves it out).
    pub async fn mint(&self, header: serde_json::Value, payload: serde_json::Value) -> String {
        self.mint_with(serde_json::json!({ "header": header, "payload": payload }))
            .await
    }

    /// Test-only: a token made as `request` says (`header`, `payload`, and `"unsigned":
    /// true`, `"hmac_secret": "..."` or `"hmac_secret_from": "pem" | "jwk"`: see
    /// tests/idp/README.md).
    pub async fn mint_with(&self, request: serde_json::Value) -> String {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(self.url("/__mint"))
            .json(&request)
            .send()
            .await
            .expect("idp mint")
            .json()
            .await
            .expect("idp mint JSON");
        answer["token"].as_str().expect("token").to_owned()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a provider, a second time if the first does not get ready; panics with what
/// each attempt wrote to stderr when neither does.
fn spawn(options: &IdpOptions) -> (Provider, Ready) {
    let mut failures = Vec::new();
    for attempt in 1..=START_ATTEMPTS {
        match spawn_once(options) {
            Ok(started) => return started,
            Err(failure) => {
                eprintln!(
                    "the test identity provider did not start (attempt {attempt}/{START_ATTEMPTS}): {failure}"
                );
                failures.push(format!("attempt {attempt}: {failure}"));
            }
        }
    }
    panic!(
        "the test identity provider (node tests/idp/server.mjs) did not start in {START_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    )
}

/// One start: the ready line within the bound, or the reason and the provider's stderr.
fn spawn_once(options: &IdpOptions) -> Result<(Provider, Ready), String> {
    let dir = idp_dir();
    let echo = if std::env::var_os(IDP_LOG_ENV).is_some() {
        Echo::Stderr
    } else {
        Echo::Off
    };
    let mut process = Running::spawn_with(
        Command::new("node")
            .arg(dir.join("server.mjs"))
            .current_dir(&dir)
            .env("IDP_PORT", options.port.to_string())
            .envs(scope_env())
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        Streams {
            stdout_limit: TAIL_BYTES,
            stderr_limit: TAIL_BYTES,
            stderr_echo: echo,
        },
    );
    let stdin = process.take_stdin().expect("piped stdin");
    let stdout = process.stdout.clone().expect("piped stdout");
    let line = stdout.wait_for(options.ready_timeout, |text| {
        text.split_once('\n').map(|(line, _)| line.to_owned())
    });
    let reason = match line {
        Ok(line) => match serde_json::from_str::<Ready>(&line) {
            Ok(ready) => {
                return Ok((
                    Provider {
                        _process: process,
                        _stdin: stdin,
                    },
                    ready,
                ));
            }
            Err(e) => format!("its first line is not the ready line ({e}): {line:?}"),
        },
        Err(WaitError::TimedOut) => {
            format!("no ready line within {:?}; killed", options.ready_timeout)
        }
        Err(WaitError::Closed) => {
            let status = process.wait_or_kill(Duration::from_secs(5));
            format!(
                "it exited ({}) without a ready line",
                status.map_or_else(|| "status unknown".to_owned(), |s| s.to_string())
            )
        }
    };
    process.kill();
    if let Some(stderr) = &process.stderr {
        // Dead now: what it wrote last is still in the pipe for a moment.
        stderr.wait_closed(Duration::from_secs(2));
    }
    Err(format!("{reason}; its stderr:\n{}", process.stderr_text()))
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

/// The scopes every user login asks for besides the API's.
const LOGIN_SCOPES: &str = "openid profile offline_access";

/// Scopes a user login asks for: [`LOGIN_SCOPES`] and every scope of the API's list.
pub const USER_SCOPES: &str = {
    const LEN: usize = LOGIN_SCOPES.len() + 1 + Scope::SPACE_SEPARATED.len();
    // A `const` (not a function) so call sites pass it as any `&str`; joined byte by byte
    // because `concat!` takes only literals.
    const BYTES: [u8; LEN] = {
        let mut bytes = [b' '; LEN];
        let (login, api) = (LOGIN_SCOPES.as_bytes(), Scope::SPACE_SEPARATED.as_bytes());
        let mut i = 0;
        while i < login.len() {
            bytes[i] = login[i];
            i += 1;
        }
        let mut j = 0;
        while j < api.len() {
            bytes[login.len() + 1 + j] = api[j];
            j += 1;
        }
        bytes
    };
    match std::str::from_utf8(&BYTES) {
        Ok(text) => text,
        Err(_) => panic!("scope names are ASCII"),
    }
};

/// The API's scopes as the test provider takes them: `IDP_READ_SCOPES` for the read-only
/// test client, `IDP_WRITE_SCOPES` besides for the read-write ones and logins. Passed in,
/// not written in `server.mjs`, so a scope added to the list exists there too.
fn scope_env() -> [(&'static str, String); 2] {
    let names = |permission| {
        Scope::with_permission(permission)
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    };
    [
        ("IDP_READ_SCOPES", names(Permission::Read)),
        ("IDP_WRITE_SCOPES", names(Permission::Write)),
    ]
}

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
        let mut command = Command::new("node");
        command
            .arg(idp_dir().join("approve.mjs"))
            .args(["--verification-uri-complete", verification_uri_complete])
            .args(["--username", username, "--password", password]);
        if answer == Approval::Deny {
            command.arg("--deny");
        }
        let output = process::output_async(command, APPROVE_TIMEOUT).await;
        // Its one line on stderr says why it failed; show it with the test's output.
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        output.status.code().unwrap_or(-1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_that_never_gets_ready_is_started_twice_then_fails_with_its_stderr() {
        let options = IdpOptions {
            env: vec![("IDP_TEST_HANG_BEFORE_READY".to_owned(), "1".to_owned())],
            ready_timeout: Duration::from_secs(2),
            ..IdpOptions::default()
        };
        let started = Instant::now();
        let panic = std::panic::catch_unwind(|| Idp::start_with(options))
            .expect_err("a provider that never prints its ready line");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("did not start in 2 attempts"), "{message}");
        for attempt in ["attempt 1: no ready line", "attempt 2: no ready line"] {
            assert!(message.contains(attempt), "{message}");
        }
        assert_eq!(
            message
                .matches("IDP_TEST_HANG_BEFORE_READY is set: blocking")
                .count(),
            2,
            "each attempt's stderr: {message}"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{message}");
    }
}
