//! What the deployment tests share: the server binary with the test provider's settings,
//! a test client with a source address of its own, nginx sites built around the snippets
//! shipped in `var/nginx/snippets/`, and a cluster of instances on one PostgreSQL
//! database behind such a site.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::future::join_all;
use mrmat_api_testkit::nginx::{self, Scheme, Site};
use mrmat_api_testkit::process::run_with_deadline;
use mrmat_api_testkit::server_process::{self, Listen, ServerProcess};
use mrmat_api_testkit::{Backend, Nginx, Oidc, TestDb, tools};
use reqwest::{Method, StatusCode};
use tempfile::TempDir;

/// The server binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_mrmat-api");

/// nginx connects to the servers from this loopback address (`proxy_bind`), so a server
/// can trust the proxy without trusting the test client.
pub const PROXY_ADDR: &str = "127.0.0.2";

/// The test client's source address: what a server should log as the client.
pub const CLIENT_ADDR: &str = "127.0.0.3";

/// The binary in `dir` with a clean environment.
pub fn command(dir: &Path) -> Command {
    server_process::command(BINARY, dir)
}

/// Starts the binary in `dir` with the test provider and `extra` options, and waits until
/// it answers. The client secret goes in the environment, as a deployment would pass it.
pub async fn start_server(
    dir: &Path,
    listen: Listen,
    oidc: &Oidc,
    extra: &[&str],
) -> ServerProcess {
    let mut command = command(dir);
    server_process::with_test_provider(&mut command, oidc).args(extra);
    ServerProcess::serve(command, listen).await
}

/// An HTTP client that connects from [`CLIENT_ADDR`], follows no redirects, and accepts
/// the throwaway certificate of the test nginx (these tests are about forwarding, not
/// certificate checks).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(
            CLIENT_ADDR.parse::<Ipv4Addr>().expect("client address"),
        ))
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .expect("HTTP client")
}

/// An `http {}` body: the upstream `mrmat_api` over `servers` (`127.0.0.1:PORT` or
/// `unix:PATH`), the shipped http-level snippet, and one server block that listens where
/// the harness says and includes the shipped proxy snippet, like `var/nginx/mrmat-api.conf`.
/// nginx connects to TCP servers from [`PROXY_ADDR`]. The upstream's settings are those of
/// `var/nginx/mrmat-api.conf` (an upstream block is not a snippet: keep the two alike).
pub fn shipped_site(site: &Site, servers: &[String]) -> String {
    let upstream: String = servers
        .iter()
        .map(|s| format!("        server {s} max_fails=1 fail_timeout=1s;\n"))
        .collect();
    // A source address cannot be bound on a unix socket (nginx would fail every
    // connection with EINVAL); there the socket's mode says who the proxy is.
    let bind = if servers.iter().all(|s| s.starts_with("unix:")) {
        String::new()
    } else {
        format!("proxy_bind {PROXY_ADDR};")
    };
    format!(
        "    upstream mrmat_api {{
{upstream}        keepalive 32;
        keepalive_timeout 4s;
    }}
    {http}
    server {{
        listen {listen};
        {tls}
        access_log {log} mrmat_api;
        {bind}
        {proxy}
    }}
",
        http = nginx::include_shipped("snippets/mrmat-api-http.conf"),
        listen = site.listen,
        tls = site.tls,
        log = site.access_log.display(),
        proxy = nginx::include_shipped("snippets/mrmat-api-proxy.conf"),
    )
}

/// Runs `mrmat-api migrate` on `db` and returns what it printed.
pub fn migrate(dir: &Path, db: &TestDb) -> String {
    let mut command = command(dir);
    command.arg("migrate").arg("--db").arg(db.url_string());
    let finished = run_with_deadline(&mut command, Duration::from_secs(60));
    assert!(finished.success, "migrate failed: {}", finished.output);
    finished.output
}

/// Instances of the server on one PostgreSQL database, migrated once by `mrmat-api
/// migrate` and serving with `--no-migrate`, behind nginx balancing round robin over
/// [`shipped_site`], with the real test provider.
pub struct Cluster {
    /// The instances, in the balancer's order.
    pub instances: Vec<ServerProcess>,
    /// The balancer.
    pub nginx: Nginx,
    /// Their database.
    pub db: TestDb,
    /// Scratch space: one instance directory per instance.
    pub dir: TempDir,
    /// A client from [`CLIENT_ADDR`].
    pub http: reqwest::Client,
    /// The options every instance serves with, for an instance started again.
    options: Vec<String>,
}

impl Cluster {
    /// `count` instances serving with `extra` options as well as the cluster's own, or
    /// `None` after a skip line when PostgreSQL or nginx is missing (both fail the test
    /// under CI).
    pub async fn start(count: usize, extra: &[&str]) -> Option<Self> {
        if !Backend::Postgres.available() {
            tools::skip("MRMAT_TEST_POSTGRES_URL is not set (a cluster needs PostgreSQL)");
            return None;
        }
        let nginx_binary = Nginx::binary()?;
        let db = TestDb::new(Backend::Postgres);
        let dir = tempfile::tempdir().unwrap();
        let migrated = migrate(dir.path(), &db);
        assert!(migrated.contains("applied"), "first migrate: {migrated}");

        let mut options: Vec<String> = [
            "--no-migrate",
            "--db",
            &db.url_string(),
            "--trusted-proxies",
            PROXY_ADDR,
        ]
        .map(str::to_owned)
        .into();
        options.extend(extra.iter().map(|&o| o.to_owned()));
        let instances = join_all((0..count).map(|i| {
            let instance_dir = instance_dir(dir.path(), i);
            std::fs::create_dir_all(&instance_dir).unwrap();
            let options = &options;
            async move { serve(&instance_dir, Listen::Loopback, options).await }
        }))
        .await;
        let upstream: Vec<String> = instances
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let nginx = Nginx::start(&nginx_binary, Scheme::Http, |site| {
            shipped_site(site, &upstream)
        })
        .await;
        Some(Self {
            instances,
            nginx,
            db,
            dir,
            http: client(),
            options,
        })
    }

    /// Starts instance `i` again, in its directory and with its options, where `listen`
    /// says (its old port, for the balancer to find it), and waits until it answers.
    pub async fn serve_again(&self, i: usize, listen: Listen) -> ServerProcess {
        serve(&instance_dir(self.dir.path(), i), listen, &self.options).await
    }

    /// A request through the balancer.
    pub fn balanced(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        with_token(self.http.request(method, self.nginx.url(path)), token)
    }

    /// A request straight to instance `i`.
    pub fn direct(
        &self,
        i: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        with_token(
            self.http.request(method, self.instances[i].url(path)),
            token,
        )
    }

    /// Instance `i`'s metrics, scraped from its public port.
    pub async fn metrics(&self, i: usize) -> String {
        let response = self
            .http
            .get(self.instances[i].url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "/metrics of instance {i}"
        );
        response.text().await.unwrap()
    }

    /// Per instance, the sum of the samples of the counter `name` whose labels contain
    /// every one of `labels` (e.g. `method="POST"`). A server counts a request before
    /// its response leaves, so a count read after the responses is complete.
    pub async fn counted(&self, name: &str, labels: &[&str]) -> Vec<u64> {
        let mut counts = Vec::new();
        for i in 0..self.instances.len() {
            counts.push(sum_of(&self.metrics(i).await, name, labels));
        }
        counts
    }

    /// Requests to the resource API each instance served.
    pub async fn resource_requests(&self, labels: &[&str]) -> Vec<u64> {
        let mut with_route = vec![r#"route="/api/resource/v1"#];
        with_route.extend(labels);
        self.counted("mrmat_api_http_requests_total", &with_route)
            .await
    }

    /// Introspection calls each instance made to the provider.
    pub async fn introspections(&self) -> Vec<u64> {
        self.counted("mrmat_api_introspection_requests_total", &[])
            .await
    }
}

fn instance_dir(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("instance-{i}"))
}

async fn serve(dir: &Path, listen: Listen, options: &[String]) -> ServerProcess {
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    start_server(dir, listen, Oidc::shared(), &options).await
}

/// The sum of the samples of `name` in Prometheus text whose label set contains every one
/// of `labels` as a substring.
pub fn sum_of(text: &str, name: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            // `name{...}` or `name` alone, not a longer name sharing the prefix.
            (rest.is_empty() || rest.starts_with('{')).then_some(())?;
            labels
                .iter()
                .all(|l| rest.contains(l))
                .then(|| value.parse::<f64>().ok())?
        })
        // Counters are whole numbers written as floats.
        .map(|v| v as u64)
        .sum()
}

/// `request` with `token` as its bearer token, if any.
pub fn with_token(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// A name no other test uses.
pub fn unique_name(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}
