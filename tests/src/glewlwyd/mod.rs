//! Glewlwyd (the Debian package `glewlwyd`), a second real OpenID Connect provider for the
//! tests: started per test on a random loopback port with a fresh SQLite database and a
//! config file in a temporary directory, provisioned through its admin API like the test
//! provider in `tests/idp/` (users alice and bob, the server's client, the device-flow CLI
//! client and the client-credentials test clients), stopped when dropped. Its tokens are
//! signed with a throwaway ES256 key (`keys`) it publishes in its JWKS, and with
//! `GlewlwydOptions::resources` it takes RFC 8707 `resource` into `aud`, so a server can
//! check its `at+jwt` access tokens itself as well as introspect them.
//!
//! Facts about Glewlwyd that shaped this module are in `tests/glewlwyd/README.md`.
//! Environment: `CI` (a missing Glewlwyd fails instead of skipping),
//! `MRMAT_TEST_GLEWLWYD_INSTALL=1` (install it outside CI, as root).

mod install;
mod keys;
mod pages;
mod process;
mod provision;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub use crate::credentials::Credentials;

use diesel::connection::SimpleConnection;
use diesel::{Connection, sqlite::SqliteConnection};
use mrmat_api::cli::Cli;
use mrmat_api::settings::{OidcSettings, Settings};
use tempfile::TempDir;

pub use install::{INSTALL_ENV, SKIP_MESSAGE, available};
pub use keys::KeyShape;
pub use pages::DeviceApproval;

use crate::idp::{DeviceAuthorization, TokenSet};
use crate::oidc::TestClient;
use process::Process;

/// The scope a client-credentials token needs to introspect and revoke any token.
pub const INTROSPECTION_SCOPE: &str = "mrmat-api-introspect";

/// The public device-flow client the CLI uses.
pub const CLI_CLIENT: &str = "mrmat-api-cli";

/// The server's confidential client.
pub const SERVER_CLIENT: &str = "mrmat-api";

/// Scopes a user login asks for.
pub const USER_SCOPES: &str = crate::idp::USER_SCOPES;

/// The users, each with the password `<name>-password`.
pub const USERS: [&str; 2] = ["alice", "bob"];

/// The plugin instance's name: the issuer is `http://127.0.0.1:PORT/api/oidc`.
const PLUGIN: &str = "oidc";

/// Longest Glewlwyd may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a port clash is retried with another port.
const PORT_ATTEMPTS: usize = 3;

/// Options of one Glewlwyd instance.
#[derive(Debug, Clone)]
pub struct GlewlwydOptions {
    /// Access token lifetime in seconds.
    pub access_token_ttl: u64,
    /// Whether confidential clients may introspect with HTTP Basic too. Off by default:
    /// the server must then use a bearer token, as it must with a provider that refuses
    /// Basic at introspection.
    pub basic_introspection: bool,
    /// The RFC 8707 resources a token may be asked for (`resource=`), each becoming the
    /// access token's `aud`; compared as strings, so list every form a client sends. Empty
    /// (the default): resource indicators off, a `resource` parameter is ignored and `aud`
    /// is the scope list.
    pub resources: Vec<String>,
    /// The key it signs with (default: this test process's own).
    pub signing_key: KeyShape,
}

impl Default for GlewlwydOptions {
    fn default() -> Self {
        Self {
            access_token_ttl: 3600,
            basic_introspection: false,
            resources: Vec::new(),
            signing_key: KeyShape::Fresh,
        }
    }
}

/// How a request to the introspection or revocation endpoint authenticates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// HTTP Basic with a confidential client's credentials.
    Basic(Credentials),
    /// A bearer access token (RFC 7662 section 2.1).
    Bearer(String),
    /// A public client: its id in the form, no secret.
    Public(String),
}

/// A running, provisioned Glewlwyd. Stopped when dropped; its log is printed then if the
/// test is failing.
#[derive(Debug)]
pub struct Glewlwyd {
    /// The issuer, `http://127.0.0.1:PORT/api/oidc`.
    pub issuer: String,
    /// Its port.
    pub port: u16,
    /// The REST API base its pages call, `http://127.0.0.1:PORT/api`.
    pub api: String,
    /// From spawning the process until it listened.
    pub start_time: Duration,
    /// Provisioning through the admin API.
    pub provision_time: Duration,
    server: Credentials,
    clients: HashMap<TestClient, Credentials>,
    http: reqwest::Client,
    process: Process,
    // Deleted after the process stopped (fields drop after `drop` ran).
    _dir: TempDir,
}

fn config_file(port: u16, database: &Path) -> String {
    format!(
        r#"# Written by mrmat-api-testkit for one test.
port={port}
bind_address="127.0.0.1"
external_url="http://127.0.0.1:{port}"
login_url="login.html"
api_prefix="api"
allow_origin="*"
log_mode="console"
log_level="INFO"
cookie_secure=0
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
plugin_api_run_enabled=""
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="/usr/lib/glewlwyd/user"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
hash_algorithm="SHA512"
database =
{{
  type = "sqlite3"
  path = "{}"
}};
"#,
        database.display()
    )
}

/// A fresh database from the schema the package ships (it holds the admin user).
fn create_database(path: &Path) {
    let schema = std::fs::read_to_string(install::SCHEMA).expect("read the Glewlwyd schema");
    let url = path.to_str().expect("a UTF-8 temp path");
    let mut conn = SqliteConnection::establish(url).expect("create the Glewlwyd database");
    // WAL is a property of the file, so Glewlwyd's own writes sync less too.
    conn.batch_execute("PRAGMA journal_mode=WAL")
        .expect("WAL mode");
    // One transaction: a sync per statement would make this the slowest part of a start.
    conn.transaction(|conn| conn.batch_execute(&schema))
        .expect("load the Glewlwyd schema");
}

impl Glewlwyd {
    /// Starts a provisioned Glewlwyd, or prints [`SKIP_MESSAGE`] and returns `None` where
    /// it is not installed (outside CI).
    pub async fn start_or_skip(options: GlewlwydOptions) -> Option<Self> {
        if !available() {
            eprintln!("{SKIP_MESSAGE}");
            return None;
        }
        Some(Self::start(options).await)
    }

    /// Starts a provisioned Glewlwyd. Panics, with its log, if it does not come up.
    pub async fn start(options: GlewlwydOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("glewlwyd.sqlite3");
        create_database(&database);
        let config = dir.path().join("glewlwyd.conf");
        let log = dir.path().join("glewlwyd.log");

        let began = Instant::now();
        let (process, port) = Self::spawn_listening(&config, &database, &log).await;
        let start_time = began.elapsed();

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        let api = format!("http://127.0.0.1:{port}/api");
        let issuer = format!("{api}/{PLUGIN}");
        let server = Credentials::random(SERVER_CLIENT);
        let clients: HashMap<TestClient, Credentials> = TestClient::ALL
            .into_iter()
            .map(|c| (c, Credentials::random(c.local_id())))
            .collect();
        let mut glewlwyd = Self {
            issuer,
            port,
            api,
            start_time,
            provision_time: Duration::ZERO,
            server,
            clients,
            http,
            process,
            _dir: dir,
        };

        let began = Instant::now();
        let admin = provision::Admin::login(&glewlwyd.http, &glewlwyd.api).await;
        let clients: Vec<(TestClient, Credentials)> = glewlwyd
            .clients
            .iter()
            .map(|(c, cred)| (*c, cred.clone()))
            .collect();
        admin
            .provision(&glewlwyd.issuer, &options, &glewlwyd.server, &clients)
            .await;
        glewlwyd.provision_time = began.elapsed();
        glewlwyd
    }

    /// Spawns Glewlwyd on a free port and waits until it listens there, trying another
    /// port when the chosen one was taken in between.
    async fn spawn_listening(config: &Path, database: &Path, log: &Path) -> (Process, u16) {
        for _ in 0..PORT_ATTEMPTS {
            let port = process::free_port();
            std::fs::write(config, config_file(port, database)).expect("write the config file");
            let mut process = Process::spawn(config, log);
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if process.listens_on(port) {
                    return (process, port);
                }
                if let Some(status) = process.exited() {
                    let text = process.log();
                    if text.contains("Address already in use") {
                        break;
                    }
                    panic!("glewlwyd exited ({status}) while starting; its log:\n{text}");
                }
                if Instant::now() > deadline {
                    let text = process.log();
                    process.stop();
                    panic!("glewlwyd did not listen within {START_TIMEOUT:?}; its log:\n{text}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        panic!("glewlwyd found no free port in {PORT_ATTEMPTS} attempts");
    }

    /// What Glewlwyd logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Its token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// Its introspection endpoint.
    pub fn introspection_endpoint(&self) -> String {
        format!("{}/introspect", self.issuer)
    }

    /// Its revocation endpoint.
    pub fn revocation_endpoint(&self) -> String {
        format!("{}/revoke", self.issuer)
    }

    /// Its published signing keys (discovery's `jwks_uri`).
    pub async fn jwks(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/jwks", self.issuer))
            .send()
            .await
            .expect("JWKS")
            .json()
            .await
            .expect("JWKS JSON")
    }

    /// Its discovery document.
    pub async fn discovery(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/.well-known/openid-configuration", self.issuer))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("discovery JSON")
    }

    /// The server's client credentials.
    pub fn server_credentials(&self) -> &Credentials {
        &self.server
    }

    /// A test client's credentials.
    pub fn client_credentials(&self, client: TestClient) -> &Credentials {
        &self.clients[&client]
    }

    /// The server's own settings for this provider, built from the server's command line
    /// as an operator would write it, with bearer-token introspection
    /// (`--oidc-introspection-token-scope`): what a provider refusing HTTP Basic at
    /// introspection needs. `cache_ttl` is the introspection cache ceiling.
    pub fn server_settings(&self, cache_ttl: Duration) -> OidcSettings {
        self.settings_from_args(
            cache_ttl,
            &["--oidc-introspection-token-scope", INTROSPECTION_SCOPE],
        )
    }

    /// The server's settings with HTTP Basic introspection, the server's default: enough
    /// for what never introspects, such as the protected-resource metadata a client's
    /// login starts from, and for an instance started with `basic_introspection`.
    pub fn server_settings_basic(&self, cache_ttl: Duration) -> OidcSettings {
        self.settings_from_args(cache_ttl, &[])
    }

    fn settings_from_args(&self, cache_ttl: Duration, extra: &[&str]) -> OidcSettings {
        self.settings_with(true, cache_ttl, extra)
            .oidc
            .into_iter()
            .next()
            .expect("OIDC settings")
    }

    /// The server's settings that check Glewlwyd's JWT access tokens here, bound to
    /// `public_url` (`--public-url`: the RFC 9728 `resource` and the accepted audience).
    /// With `with_client`, the server's client credentials and bearer-token introspection
    /// too, for any token that is not such a JWT; without, a JWT-only provider that cannot
    /// introspect at all. Only the OIDC part and `public_url` are meant to be used.
    pub fn jwt_server_settings(&self, public_url: &str, with_client: bool) -> Settings {
        let mut extra = vec!["--public-url", public_url];
        if with_client {
            extra.extend(["--oidc-introspection-token-scope", INTROSPECTION_SCOPE]);
        }
        self.settings_with(with_client, Duration::from_secs(30), &extra)
    }

    fn settings_with(&self, with_client: bool, cache_ttl: Duration, extra: &[&str]) -> Settings {
        let cache_ttl = cache_ttl.as_secs().to_string();
        let mut args = vec![
            "mrmat-api",
            "--oidc-issuer",
            &self.issuer,
            "--oidc-cache-ttl",
            &cache_ttl,
        ];
        if with_client {
            args.extend([
                "--oidc-client-id",
                &self.server.client_id,
                "--oidc-client-secret",
                &self.server.client_secret,
            ]);
        }
        args.extend_from_slice(extra);
        // clap's message names an unknown option, never a value.
        let cli = Cli::try_parse_from(args)
            .unwrap_or_else(|e| panic!("the server refuses the Glewlwyd options: {e}"));
        Settings::load(cli.options)
            .unwrap_or_else(|e| panic!("the server refuses the Glewlwyd settings: {e}"))
    }

    /// A client-credentials access token of `credentials`, asking for `scopes` (Glewlwyd
    /// refuses the grant without a `scope`).
    pub async fn client_credentials_token(
        &self,
        credentials: &Credentials,
        scopes: &[&str],
    ) -> String {
        self.client_credentials_token_for(credentials, scopes, None)
            .await
    }

    /// A client-credentials access token of `credentials`, asking for `scopes` and, when
    /// given, for `resource` (RFC 8707), which then is its `aud`.
    pub async fn client_credentials_token_for(
        &self,
        credentials: &Credentials,
        scopes: &[&str],
        resource: Option<&str>,
    ) -> String {
        let scope = scopes.join(" ");
        let mut form = vec![("grant_type", "client_credentials"), ("scope", &scope)];
        form.extend(resource.map(|resource| ("resource", resource)));
        let response = self
            .http
            .post(self.token_endpoint())
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .form(&form)
            .send()
            .await
            .expect("token request");
        let status = response.status();
        if status != 200 {
            // Glewlwyd's error bodies name the error (invalid_target), never a secret.
            let body = response.text().await.unwrap_or_default();
            panic!("client credentials token: {status} {body}");
        }
        let body: serde_json::Value = response.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// An access token of a test client, with every scope it may have.
    pub async fn token(&self, client: TestClient) -> String {
        self.token_for(client, None).await
    }

    /// An access token of a test client, with every scope it may have, asked for
    /// `resource` when given (its `aud` then).
    pub async fn token_for(&self, client: TestClient, resource: Option<&str>) -> String {
        self.client_credentials_token_for(
            self.client_credentials(client),
            &provision::test_client_scopes(client),
            resource,
        )
        .await
    }

    /// The token the server introspects with: its own client, the introspection scope.
    pub async fn server_token(&self) -> String {
        self.client_credentials_token(&self.server, &[INTROSPECTION_SCOPE])
            .await
    }

    fn authenticated(
        &self,
        endpoint: String,
        auth: &ClientAuth,
        form: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        let request = self.http.post(endpoint);
        let request = match auth {
            ClientAuth::Basic(c) => request.basic_auth(&c.client_id, Some(&c.client_secret)),
            ClientAuth::Bearer(token) => request.bearer_auth(token),
            ClientAuth::Public(client_id) => {
                form.push(("client_id", client_id));
                request
            }
        };
        request.form(&form)
    }

    /// Introspects `token` as `auth` (RFC 7662).
    pub async fn introspect(&self, auth: &ClientAuth, token: &str) -> reqwest::Response {
        self.authenticated(self.introspection_endpoint(), auth, &[("token", token)])
            .send()
            .await
            .expect("introspection request")
    }

    /// Revokes `token` as `auth` (RFC 7009).
    pub async fn revoke(&self, auth: &ClientAuth, token: &str) -> reqwest::Response {
        self.authenticated(self.revocation_endpoint(), auth, &[("token", token)])
            .send()
            .await
            .expect("revocation request")
    }

    /// Refreshes with `refresh_token` as the public CLI client.
    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.authenticated(
            self.token_endpoint(),
            &ClientAuth::Public(CLI_CLIENT.to_owned()),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .send()
        .await
        .expect("refresh request")
    }

    /// Starts a device login of `client_id` (RFC 8628 section 3.1).
    pub async fn device_authorization(&self, client_id: &str, scope: &str) -> DeviceAuthorization {
        self.device_authorization_for(client_id, scope, None).await
    }

    /// Starts a device login of `client_id` asking for `resource` (RFC 8707) when given.
    pub async fn device_authorization_for(
        &self,
        client_id: &str,
        scope: &str,
        resource: Option<&str>,
    ) -> DeviceAuthorization {
        let mut form = vec![("client_id", client_id), ("scope", scope)];
        form.extend(resource.map(|resource| ("resource", resource)));
        let response = self
            .http
            .post(format!("{}/device_authorization", self.issuer))
            .form(&form)
            .send()
            .await
            .expect("device authorization");
        let status = response.status();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            panic!("device authorization: {status} {body}");
        }
        response.json().await.expect("device authorization JSON")
    }

    /// A person opens `verification_uri_complete`, signs in as `username` with `password`
    /// and approves, through the calls Glewlwyd's pages make.
    pub async fn approve(
        &self,
        verification_uri_complete: &str,
        username: &str,
        password: &str,
    ) -> DeviceApproval {
        pages::approve(
            &self.http,
            &self.api,
            verification_uri_complete,
            username,
            password,
        )
        .await
    }

    /// `username`'s password.
    pub fn password(username: &str) -> String {
        provision::user_password(username)
    }

    /// A complete device login of `username` through the CLI client: authorization, the
    /// person's approval, one token request.
    pub async fn user_tokens(&self, username: &str) -> TokenSet {
        self.user_tokens_for(username, None).await
    }

    /// A device login of `username` asking for `resource` (RFC 8707) when given, in the
    /// device authorization and the token request, as `mrmat-api-client` does.
    pub async fn user_tokens_for(&self, username: &str, resource: Option<&str>) -> TokenSet {
        let authorization = self
            .device_authorization_for(CLI_CLIENT, USER_SCOPES, resource)
            .await;
        let uri = authorization
            .verification_uri_complete
            .clone()
            .expect("verification_uri_complete");
        let approval = self
            .approve(&uri, username, &Self::password(username))
            .await;
        assert_eq!(approval, DeviceApproval::Approved);
        let mut form = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", authorization.device_code.as_str()),
            ("client_id", CLI_CLIENT),
        ];
        form.extend(resource.map(|resource| ("resource", resource)));
        let response = self
            .http
            .post(self.token_endpoint())
            .form(&form)
            .send()
            .await
            .expect("device token request");
        assert_eq!(response.status(), 200, "device token");
        response.json().await.expect("token JSON")
    }
}

impl Drop for Glewlwyd {
    fn drop(&mut self) {
        self.process.stop();
        if std::thread::panicking() {
            eprintln!("--- Glewlwyd log ---\n{}--- end ---", self.process.log());
        }
    }
}
