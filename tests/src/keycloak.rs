//! A live Keycloak for the tests: its server distribution (`keycloak-quarkus-dist`, pinned
//! to [`VERSION`]) fetched from Maven Central with `mvn` into a cache outside the work tree,
//! unpacked once under a file lock, and started with `kc.sh start-dev` on loopback with
//! the realm of `var/keycloak/` (plus the test clients and users of `test-clients.json`)
//! imported twice: as `mrmat`, and as `mrmat-noaud` without any Audience mapper.
//!
//! One instance serves a whole test binary ([`Keycloak::shared`]): a start costs about
//! 25 s. Each instance has a home of its own in a temporary directory (its database,
//! transaction log, configuration and Quarkus build), sharing only the read-only jars of
//! the cache; a watchdog kills it and deletes that home when the test process dies.
//!
//! Environment: `CI` (a missing `java` or `mvn`, or a failed fetch, fails instead of
//! skipping), `XDG_CACHE_HOME` (the cache's parent, else `~/.cache`),
//! `MRMAT_TEST_KEYCLOAK_LOG=1` (Keycloak's log on stderr as it is written).

mod pages;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use crate::credentials::Credentials;

use mrmat_api::cli::Cli;
use mrmat_api::settings::{OidcSettings, Settings};
use mrmat_api_types::scope::Scope;
use serde_json::{Value, json};
use tempfile::TempDir;

pub use pages::DeviceApproval;

use crate::idp::{DeviceAuthorization, TokenSet};
use crate::oidc::TestClient;
use crate::process::{self, Echo, Running, Streams, TAIL_BYTES};

/// The Keycloak release the tests run: the one place it is pinned. 26.7.3 runs on Java 17
/// (the machine's `java`; `kc.sh --version` and a full start checked), so no newer JDK
/// is needed; and it answers introspection with `active: false` when the introspecting
/// client is not in the token's `aud`, the behaviour the `mrmat-noaud` tests pin down.
pub const VERSION: &str = "26.7.3";

/// The realm of `var/keycloak/realm-export.json`, with its Audience mappers.
pub const REALM: &str = "mrmat";

/// The same realm without any Audience mapper: the mistake the tests show the server
/// refusing and `doctor` naming.
pub const NOAUD_REALM: &str = "mrmat-noaud";

/// The public device-flow client the CLI uses.
pub const CLI_CLIENT: &str = "mrmat-api-cli";

/// The server's confidential client.
pub const SERVER_CLIENT: &str = "mrmat-api";

/// Scopes a user login asks for.
pub const USER_SCOPES: &str = crate::idp::USER_SCOPES;

/// Lifetime of the CLI client's access tokens in the test realms (seconds): short, so a
/// test sees the client refresh within seconds. The realm file's own is 300.
pub const CLI_ACCESS_TOKEN_LIFESPAN: u64 = 6;

/// `maven-dependency-plugin`, pinned so a fetch does not depend on what is newest.
const DEPENDENCY_PLUGIN: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1";

/// Longest a fetch of the distribution (about 170 MB) may take; it took 9 s here.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest an unpack may take; it took 2 s here.
const UNPACK_TIMEOUT: Duration = Duration::from_secs(180);

/// Longest a start may take to serve both realms. Measured here (2 cores, Java 17): about
/// 23 s with a cached Quarkus build, 35 s on the first start, which builds it (a
/// re-augmentation Keycloak does for `start-dev`).
const READY_TIMEOUT: Duration = Duration::from_secs(150);

/// How many times a start is tried (a free port can be taken before Keycloak binds it).
const START_ATTEMPTS: usize = 2;

/// How long the watchdog gets to exit once told Keycloak stopped.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A heap cap: the machine running the tests has two cores and other tests beside.
const HEAP: &str = "-Xms64m -Xmx512m";

/// The variable that passes Keycloak's log through to the test's stderr.
const LOG_ENV: &str = "MRMAT_TEST_KEYCLOAK_LOG";

fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Whether `program` runs (`program version_arg` exits 0).
fn runs(program: &str, version_arg: &str) -> bool {
    process::try_output(
        Command::new(program).arg(version_arg),
        process::COMMAND_TIMEOUT,
    )
    .is_ok_and(|o| o.status.success())
}

/// The cache of distributions: `$XDG_CACHE_HOME/mrmat-api-tests/keycloak`, else
/// `~/.cache/...`: outside the work tree, so a clean clone or `cargo clean` keeps it.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("mrmat-api-tests").join("keycloak")
}

fn lock(path: &Path, bound: Duration) -> std::fs::File {
    let file = std::fs::File::create(path)
        .unwrap_or_else(|e| panic!("create the lock {}: {e}", path.display()));
    // Another test process may be fetching; it holds the lock for at most its own bounds
    // (or dies, and the lock goes with it).
    let deadline = Instant::now() + bound;
    while let Err(e) = file.try_lock() {
        assert!(
            matches!(e, std::fs::TryLockError::WouldBlock) && Instant::now() < deadline,
            "lock {}: {e}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    file
}

fn mvn(args: &[&str], timeout: Duration, what: &str) -> Result<(), String> {
    // In the cache: without a project, the plugin writes its markers to a directory named
    // `${project.basedir}` literally, under the working directory (else the package's).
    let finished = process::run_with_deadline(
        Command::new("mvn").args(args).current_dir(cache_dir()),
        timeout,
    );
    if finished.success {
        Ok(())
    } else {
        Err(format!("{what} failed: {}", finished.output))
    }
}

/// The unpacked distribution of [`VERSION`], fetched and unpacked now unless cached.
/// Returns its directory, or why it could not be had.
pub fn distribution() -> Result<PathBuf, String> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).map_err(|e| format!("create {}: {e}", cache.display()))?;
    let home = cache.join(format!("keycloak-{VERSION}"));
    let done = cache.join(format!("keycloak-{VERSION}.unpacked"));
    if done.exists() {
        return Ok(home);
    }
    let _lock = lock(
        &cache.join(format!("keycloak-{VERSION}.lock")),
        FETCH_TIMEOUT + UNPACK_TIMEOUT + Duration::from_secs(30),
    );
    if done.exists() {
        return Ok(home);
    }
    let artifact = format!("org.keycloak:keycloak-quarkus-dist:{VERSION}:zip");
    let download = cache.join("download");
    let began = Instant::now();
    mvn(
        &[
            "-q",
            "-B",
            &format!("{DEPENDENCY_PLUGIN}:copy"),
            &format!("-Dartifact={artifact}"),
            &format!("-DoutputDirectory={}", download.display()),
        ],
        FETCH_TIMEOUT,
        &format!("fetching {artifact} from Maven Central"),
    )?;
    eprintln!("keycloak: fetched {artifact} in {:?}", began.elapsed());
    // Unpacked beside its final place and renamed there: a half-unpacked tree is never
    // taken for a whole one. Maven unpacks the artifact it now has in its local
    // repository (offline), so no `unzip` is needed; permissions do not matter, as
    // `kc.sh` is run with `sh`.
    let partial = cache.join(format!("keycloak-{VERSION}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let began = Instant::now();
    mvn(
        &[
            "-q",
            "-B",
            "-o",
            &format!("{DEPENDENCY_PLUGIN}:unpack"),
            &format!("-Dartifact={artifact}"),
            &format!("-DoutputDirectory={}", partial.display()),
        ],
        UNPACK_TIMEOUT,
        "unpacking the Keycloak distribution",
    )?;
    eprintln!("keycloak: unpacked in {:?}", began.elapsed());
    let _ = std::fs::remove_dir_all(&home);
    std::fs::rename(partial.join(format!("keycloak-{VERSION}")), &home)
        .map_err(|e| format!("move the unpacked distribution into place: {e}"))?;
    let _ = std::fs::remove_dir_all(&partial);
    let _ = std::fs::remove_dir_all(&download);
    std::fs::write(&done, VERSION).map_err(|e| format!("write {}: {e}", done.display()))?;
    Ok(home)
}

/// Keycloak's client id of a test client (`test-clients.json`).
pub fn client_id(client: TestClient) -> &'static str {
    match client {
        TestClient::Rw => "mrmat-api-test",
        TestClient::Rw2 => "mrmat-api-test-rw2",
        TestClient::Ro => "mrmat-api-test-ro",
        TestClient::NoScope => "mrmat-api-test-none",
    }
}

fn var_keycloak(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../var/keycloak")
        .join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// One realm to import: the realm file as shipped, the test clients and users added, each
/// confidential client given its secret, and the test's own timings.
fn realm_import(
    name: &str,
    audience_mappers: bool,
    secrets: &HashMap<String, Credentials>,
) -> Value {
    let mut realm = var_keycloak("realm-export.json");
    let test = var_keycloak("test-clients.json");
    realm["realm"] = json!(name);
    // The CLI waits `interval` between polls: 1 s, not the realm's 5, keeps logins fast.
    realm["oauth2DevicePollingInterval"] = json!(1);
    let clients = realm["clients"].as_array_mut().expect("clients");
    clients.extend(test["clients"].as_array().expect("test clients").clone());
    for client in clients.iter_mut() {
        let id = client["clientId"].as_str().expect("clientId").to_owned();
        if let Some(credentials) = secrets.get(&id) {
            client["secret"] = json!(credentials.client_secret);
        }
        if id == CLI_CLIENT {
            client["attributes"]["access.token.lifespan"] =
                json!(CLI_ACCESS_TOKEN_LIFESPAN.to_string());
        }
    }
    realm["users"] = test["users"].clone();
    with_api_scopes(&mut realm);
    if !audience_mappers {
        for scope in realm["clientScopes"].as_array_mut().expect("clientScopes") {
            if let Some(mappers) = scope["protocolMappers"].as_array_mut() {
                mappers.retain(|m| m["protocolMapper"] != "oidc-audience-mapper");
            }
        }
    }
    realm
}

/// Makes the realm offer every scope of the API's list, whatever the shipped files name:
/// a client scope for each (as the shipped ones are: in the token's `scope`, with the
/// Audience mapper that names the server), optional for the CLI, and each test client's
/// scopes (`TestClient::scopes`) among its defaults. Adding a scope to the list is then
/// enough for the Keycloak tests; the shipped realm is for deployments to extend.
fn with_api_scopes(realm: &mut Value) {
    let scopes = realm["clientScopes"].as_array_mut().expect("clientScopes");
    for scope in Scope::ALL {
        if scopes.iter().any(|s| s["name"] == scope.as_str()) {
            continue;
        }
        scopes.push(json!({
            "name": scope.as_str(),
            "description": scope.description(),
            "protocol": "openid-connect",
            "attributes": {
                "include.in.token.scope": "true",
                "display.on.consent.screen": "true",
                "consent.screen.text": scope.description(),
            },
            "protocolMappers": [{
                "name": format!("audience {SERVER_CLIENT}"),
                "protocol": "openid-connect",
                "protocolMapper": "oidc-audience-mapper",
                "consentRequired": false,
                "config": {
                    "included.client.audience": SERVER_CLIENT,
                    "id.token.claim": "false",
                    "access.token.claim": "true",
                    "introspection.token.claim": "true",
                    "lightweight.claim": "false",
                },
            }],
        }));
    }
    let wanted = |id: &str| -> Option<(&'static str, Vec<Scope>)> {
        if id == CLI_CLIENT {
            return Some(("optionalClientScopes", Scope::ALL.to_vec()));
        }
        TestClient::ALL
            .into_iter()
            .find(|client| client_id(*client) == id)
            .map(|client| ("defaultClientScopes", client.scopes()))
    };
    for client in realm["clients"].as_array_mut().expect("clients") {
        let Some((list, scopes)) = wanted(client["clientId"].as_str().expect("clientId")) else {
            continue;
        };
        let names = client[list]
            .as_array_mut()
            .unwrap_or_else(|| panic!("{list}"));
        for scope in scopes {
            if !names.iter().any(|name| name == scope.as_str()) {
                names.push(json!(scope.as_str()));
            }
        }
    }
}

/// A free port on 127.0.0.1; it may be taken before Keycloak binds it (a start is retried).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// A home of its own for one instance: `bin/kc.sh` and `conf/` copied (kc.sh takes its
/// home from its own path), the jars and themes linked from the cache, and `lib/quarkus`
/// (the Quarkus build `start-dev` rewrites when it finds it built for another mode)
/// copied, so no instance writes into the cache.
fn make_home(dist: &Path, home: &Path) {
    fn io<T>(what: &str, e: std::io::Error) -> T {
        panic!("{what}: {e}")
    }
    for dir in ["bin", "lib", "data/import", "conf"] {
        std::fs::create_dir_all(home.join(dir)).unwrap_or_else(|e| io("create the home", e));
    }
    std::fs::copy(dist.join("bin/kc.sh"), home.join("bin/kc.sh"))
        .unwrap_or_else(|e| io("copy kc.sh", e));
    for entry in std::fs::read_dir(dist.join("conf")).unwrap_or_else(|e| io("read conf", e)) {
        let entry = entry.unwrap_or_else(|e| io("read conf", e));
        if entry.path().is_file() {
            std::fs::copy(entry.path(), home.join("conf").join(entry.file_name()))
                .unwrap_or_else(|e| io("copy conf", e));
        }
    }
    for linked in [
        "themes",
        "providers",
        "lib/app",
        "lib/lib",
        "lib/quarkus-run.jar",
    ] {
        std::os::unix::fs::symlink(dist.join(linked), home.join(linked))
            .unwrap_or_else(|e| io("link the distribution", e));
    }
    let built = dev_build(dist);
    let source = if built.exists() {
        built
    } else {
        dist.join("lib/quarkus")
    };
    copy_dir(&source, &home.join("lib/quarkus"));
}

/// Where the cache keeps a Quarkus build for `start-dev`, once an instance made one.
fn dev_build(dist: &Path) -> PathBuf {
    dist.with_file_name(format!("keycloak-{VERSION}.quarkus-dev"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.expect("read a directory entry");
        std::fs::copy(entry.path(), to.join(entry.file_name()))
            .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
    }
}

/// Keeps the Quarkus build the first `start-dev` made, so later starts skip it (about
/// 12 s). Written beside and renamed into place: a reader never sees half of it.
fn keep_dev_build(dist: &Path, home: &Path) {
    let kept = dev_build(dist);
    if kept.exists() {
        return;
    }
    let partial = kept.with_extension(format!("partial-{}", std::process::id()));
    copy_dir(&home.join("lib/quarkus"), &partial);
    if std::fs::rename(&partial, &kept).is_err() {
        // Another process kept one first.
        let _ = std::fs::remove_dir_all(&partial);
    }
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200. Plain std I/O: this runs before and
/// outside any async runtime.
fn answers_200(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    // `HTTP/1.x 200`: Keycloak answers an HTTP/1.0 request in HTTP/1.0.
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[8..] == b" 200"
}

/// A running Keycloak with both test realms.
#[derive(Debug)]
pub struct Keycloak {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its port.
    pub port: u16,
    /// From spawning `kc.sh` until both realms answered discovery.
    pub start_time: Duration,
    server: Credentials,
    clients: HashMap<TestClient, Credentials>,
    process: Process,
}

/// A client for one call. Not kept in the shared instance: each test has a runtime of its
/// own, and a pooled connection made on a finished test's runtime fails the next caller.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

#[derive(Debug)]
struct Process {
    kc: Running,
    watchdog: Running,
    // The watchdog kills Keycloak's process group and deletes its home when this closes
    // without "stopped" written first: when the test process dies, since a shared
    // instance lives in a static that is never dropped. The JVM itself ignores stdin.
    watchdog_stdin: Option<ChildStdin>,
    home: TempDir,
}

impl Process {
    fn stop(&mut self) {
        // kc.sh runs the JVM as its child: kill the whole group kc.sh leads.
        kill_group(self.kc.id());
        self.kc.kill();
        if let Some(mut stdin) = self.watchdog_stdin.take() {
            let _ = writeln!(stdin, "stopped");
        }
        self.watchdog.wait_or_kill(STOP_TIMEOUT);
    }
}

/// SIGKILL to the process group `leader` leads. Never panics (fit for `drop`).
fn kill_group(leader: u32) {
    let _ = process::try_output(
        Command::new("kill").args(["-s", "KILL", "--", &format!("-{leader}")]),
        process::COMMAND_TIMEOUT,
    );
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What [`Keycloak::shared`] holds: the instance, or why there is none.
#[derive(Debug)]
enum Shared {
    Running(Box<Keycloak>),
    Skipped(String),
    Failed(String),
}

impl Keycloak {
    /// The Keycloak shared by every test of this test binary, started by the first test
    /// that asks; `None` (with `skipped: ...` printed) where Java or Maven is missing, or
    /// the distribution cannot be fetched, outside CI. Under CI those fail the test.
    pub async fn shared() -> Option<&'static Keycloak> {
        static SHARED: OnceLock<Shared> = OnceLock::new();
        // Blocking: the first caller starts it, the others wait for it on threads of the
        // blocking pool, not on their runtime's.
        let shared = tokio::task::spawn_blocking(|| SHARED.get_or_init(Self::start_shared))
            .await
            .expect("start the shared Keycloak");
        match shared {
            Shared::Running(keycloak) => Some(keycloak.as_ref()),
            Shared::Skipped(why) => {
                eprintln!("skipped: {why}");
                None
            }
            Shared::Failed(why) => panic!("{why}"),
        }
    }

    fn start_shared() -> Shared {
        let missing: Vec<&str> = [("java", "-version"), ("mvn", "-v")]
            .into_iter()
            .filter(|(program, arg)| !runs(program, arg))
            .map(|(program, _)| program)
            .collect();
        if !missing.is_empty() {
            let why = format!(
                "{} not found: the Keycloak tests need Java 17+ and Maven",
                missing.join(" and ")
            );
            return if under_ci() {
                Shared::Failed(format!("CI is set, but {why}"))
            } else {
                Shared::Skipped(why)
            };
        }
        let dist = match distribution() {
            Ok(dist) => dist,
            Err(why) if under_ci() => return Shared::Failed(why),
            Err(why) => return Shared::Skipped(why),
        };
        // A panic while starting is kept, so every test reports it instead of each trying
        // a 30-second start again.
        match std::panic::catch_unwind(|| Self::start(&dist)) {
            Ok(keycloak) => Shared::Running(Box::new(keycloak)),
            Err(panic) => Shared::Failed(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "Keycloak did not start".to_owned()),
            ),
        }
    }

    /// Starts a Keycloak of its own from the unpacked distribution `dist`, both realms
    /// imported. Panics, with its log, when it does not serve them in time.
    pub fn start(dist: &Path) -> Self {
        let server = Credentials::random(SERVER_CLIENT);
        let clients: HashMap<TestClient, Credentials> = TestClient::ALL
            .into_iter()
            .map(|c| (c, Credentials::random(client_id(c))))
            .collect();
        let secrets: HashMap<String, Credentials> = clients
            .values()
            .chain([&server])
            .map(|c| (c.client_id.clone(), c.clone()))
            .collect();

        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let home = tempfile::Builder::new()
                .prefix("mrmat-keycloak-")
                .tempdir()
                .expect("a temporary Keycloak home");
            make_home(dist, home.path());
            for (name, audience) in [(REALM, true), (NOAUD_REALM, false)] {
                let file = home.path().join(format!("data/import/{name}.json"));
                std::fs::write(&file, realm_import(name, audience, &secrets).to_string())
                    .expect("write a realm import");
            }
            let began = Instant::now();
            match spawn(home) {
                Ok((process, port)) => {
                    let start_time = began.elapsed();
                    eprintln!("keycloak: serving both realms on port {port} after {start_time:?}");
                    keep_dev_build(dist, process.home.path());
                    return Self {
                        base: format!("http://127.0.0.1:{port}"),
                        port,
                        start_time,
                        server,
                        clients,
                        process,
                    };
                }
                Err(failure) => {
                    eprintln!("keycloak did not start (attempt {attempt}/{START_ATTEMPTS})");
                    failures.push(format!("attempt {attempt}: {failure}"));
                }
            }
        }
        panic!(
            "Keycloak {VERSION} did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        )
    }

    /// Stops it (its port then refuses connections).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Its log so far (the last 64 KiB).
    pub fn log(&self) -> String {
        self.process.kc.stderr_text()
    }

    /// The issuer of `realm`.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base)
    }

    /// An endpoint of `realm` under `protocol/openid-connect/`.
    pub fn endpoint(&self, realm: &str, name: &str) -> String {
        format!("{}/protocol/openid-connect/{name}", self.issuer(realm))
    }

    /// The server's client credentials (the same in both realms).
    pub fn server_credentials(&self) -> &Credentials {
        &self.server
    }

    /// A test client's credentials (the same in both realms).
    pub fn client_credentials(&self, client: TestClient) -> &Credentials {
        &self.clients[&client]
    }

    /// The server's own settings for `realm`, built from the server's command line as an
    /// operator would write it, with `extra` options. `cache_ttl` is the introspection
    /// cache ceiling.
    pub fn server_settings(
        &self,
        realm: &str,
        cache_ttl: Duration,
        extra: &[&str],
    ) -> OidcSettings {
        let issuer = self.issuer(realm);
        let cache_ttl = cache_ttl.as_secs().to_string();
        let mut args = vec![
            "mrmat-api",
            "--oidc-issuer",
            &issuer,
            "--oidc-client-id",
            &self.server.client_id,
            "--oidc-client-secret",
            &self.server.client_secret,
            "--oidc-cache-ttl",
            &cache_ttl,
        ];
        args.extend_from_slice(extra);
        // clap's message names an unknown option, never a value.
        let cli = Cli::try_parse_from(args)
            .unwrap_or_else(|e| panic!("the server refuses the Keycloak options: {e}"));
        Settings::load(cli.options)
            .unwrap_or_else(|e| panic!("the server refuses the Keycloak settings: {e}"))
            .oidc
            .into_iter()
            .next()
            .expect("OIDC settings")
    }

    /// Server settings that check `realm`'s JWT access tokens against Keycloak's keys,
    /// naming one of `audiences`, with no client at Keycloak (so no introspection).
    pub fn jwt_server_settings(&self, realm: &str, audiences: &[&str]) -> OidcSettings {
        OidcSettings {
            timeout: Duration::from_secs(5),
            ..OidcSettings::jwt_only(
                url::Url::parse(&self.issuer(realm)).expect("the realm's issuer is a URL"),
                audiences.iter().map(|a| (*a).to_owned()).collect(),
            )
        }
    }

    /// A client-credentials access token of `client` in `realm` (its default scopes).
    pub async fn token(&self, realm: &str, client: TestClient) -> String {
        let credentials = self.client_credentials(client);
        let response = http()
            .post(self.endpoint(realm, "token"))
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200, "client credentials token");
        let body: Value = response.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Introspects `token` in `realm` as the server's client (RFC 7662).
    pub async fn introspect(&self, realm: &str, token: &str) -> Value {
        let response = http()
            .post(self.endpoint(realm, "token/introspect"))
            .basic_auth(&self.server.client_id, Some(&self.server.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspection request");
        assert_eq!(response.status(), 200, "introspection");
        response.json().await.expect("introspection JSON")
    }

    /// Refreshes with `refresh_token` in `realm` as the public CLI client.
    pub async fn refresh(&self, realm: &str, refresh_token: &str) -> reqwest::Response {
        http()
            .post(self.endpoint(realm, "token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CLI_CLIENT),
            ])
            .send()
            .await
            .expect("refresh request")
    }

    /// Starts a device login of the CLI client in `realm` (RFC 8628 section 3.1).
    pub async fn device_authorization(&self, realm: &str, scope: &str) -> DeviceAuthorization {
        let response = http()
            .post(self.endpoint(realm, "auth/device"))
            .form(&[("client_id", CLI_CLIENT), ("scope", scope)])
            .send()
            .await
            .expect("device authorization");
        assert_eq!(response.status(), 200, "device authorization");
        response.json().await.expect("device authorization JSON")
    }

    /// A person opens `verification_uri_complete` in a browser, signs in as `username`
    /// with `password` on Keycloak's login page and grants access on its consent page.
    pub async fn approve(
        &self,
        verification_uri_complete: &str,
        username: &str,
        password: &str,
    ) -> DeviceApproval {
        pages::approve(&http(), verification_uri_complete, username, password).await
    }

    /// `username`'s password (`test-clients.json`).
    pub fn password(username: &str) -> String {
        format!("{username}-dev-only")
    }

    /// A complete device login of `username` in `realm`: authorization, the person's
    /// approval on Keycloak's pages, one token request.
    pub async fn user_tokens(&self, realm: &str, username: &str) -> TokenSet {
        let authorization = self.device_authorization(realm, USER_SCOPES).await;
        let uri = authorization
            .verification_uri_complete
            .clone()
            .expect("verification_uri_complete");
        let approval = self
            .approve(&uri, username, &Self::password(username))
            .await;
        assert_eq!(approval, DeviceApproval::Approved);
        let response = http()
            .post(self.endpoint(realm, "token"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", authorization.device_code.as_str()),
                ("client_id", CLI_CLIENT),
            ])
            .send()
            .await
            .expect("device token request");
        assert_eq!(response.status(), 200, "device token");
        response.json().await.expect("token JSON")
    }
}

/// Spawns `kc.sh start-dev` in `home` on free ports and waits until both realms serve
/// discovery. On failure: why, with the end of its log.
fn spawn(home: TempDir) -> Result<(Process, u16), String> {
    let port = free_port();
    let management_port = free_port();
    let echo = if std::env::var_os(LOG_ENV).is_some() {
        Echo::Stderr
    } else {
        Echo::Off
    };
    let mut command = Command::new("sh");
    command
        // One stream for kc.sh's messages and the JVM's log (its console goes to stdout).
        .args(["-c", r#"exec sh "$0" "$@" 1>&2"#])
        .arg(home.path().join("bin/kc.sh"))
        .args([
            "start-dev",
            "--import-realm",
            "--http-host=127.0.0.1",
            &format!("--http-port={port}"),
            &format!("--http-management-port={management_port}"),
        ])
        .env("JAVA_OPTS_KC_HEAP", HEAP)
        .env_remove("KC_BOOTSTRAP_ADMIN_USERNAME")
        .env_remove("KC_BOOTSTRAP_ADMIN_PASSWORD")
        // Its own group: kc.sh runs the JVM as a child, and one signal to the group
        // reaches both.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let kc = Running::spawn_with(
        &mut command,
        Streams {
            stdout_limit: TAIL_BYTES,
            stderr_limit: TAIL_BYTES,
            stderr_echo: echo,
        },
    );
    let mut watchdog = Running::spawn(
        Command::new("sh")
            .args([
                "-c",
                r#"read -r line; [ "$line" = stopped ] || { kill -9 "-$1"; rm -rf "$2"; }"#,
                "keycloak-watchdog",
            ])
            .arg(kc.id().to_string())
            .arg(home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let watchdog_stdin = watchdog.take_stdin();
    let mut process = Process {
        kc,
        watchdog,
        watchdog_stdin,
        home,
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    let discovery = |realm: &str| format!("/realms/{realm}/.well-known/openid-configuration");
    loop {
        if answers_200(port, &discovery(REALM)) && answers_200(port, &discovery(NOAUD_REALM)) {
            return Ok((process, port));
        }
        if let Some(status) = process.kc.wait_timeout(Duration::ZERO) {
            if let Some(stderr) = &process.kc.stderr {
                stderr.wait_closed(Duration::from_secs(2));
            }
            let log = process.kc.stderr_text();
            process.stop();
            return Err(format!(
                "kc.sh exited ({status}) while starting; its log:\n{log}"
            ));
        }
        if Instant::now() > deadline {
            let log = process.kc.stderr_text();
            process.stop();
            return Err(format!(
                "both realms did not answer within {READY_TIMEOUT:?}; killed; its log:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test client of the realm gets what `TestClient::scopes` says at every provider,
    /// and the CLI may ask for every scope of the list.
    #[test]
    fn the_test_realm_offers_every_scope_of_the_list() {
        let realm = realm_import(REALM, true, &HashMap::new());
        let client = |id: &str| {
            realm["clients"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["clientId"] == id)
                .unwrap_or_else(|| panic!("{id}"))
                .clone()
        };
        let names = |list: &Value| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect()
        };
        for scope in Scope::ALL {
            assert!(
                realm["clientScopes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["name"] == scope.as_str()),
                "{scope}"
            );
            assert!(
                names(&client(CLI_CLIENT)["optionalClientScopes"]).contains(&scope.to_string())
            );
        }
        for test_client in TestClient::ALL {
            let defaults = names(&client(client_id(test_client))["defaultClientScopes"]);
            let mut api: Vec<Scope> = defaults
                .iter()
                .filter_map(|n| Scope::from_name(n))
                .collect();
            let mut expected = test_client.scopes();
            api.sort_by_key(|s| s.as_str());
            expected.sort_by_key(|s| s.as_str());
            assert_eq!(api, expected, "{test_client:?}");
        }
    }
}
