//! What the deployment tests share: the server binary with the test provider's settings,
//! a test client with a source address of its own, and nginx sites built around the
//! snippets shipped in `var/nginx/snippets/`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;

use mrmat_api_testkit::Oidc;
use mrmat_api_testkit::nginx::{self, Site};
use mrmat_api_testkit::server_process::{self, Listen, ServerProcess};

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
    let (client_id, secret) = oidc.server_credentials();
    let mut command = command(dir);
    command
        .args(["--oidc-issuer", &oidc.issuer, "--oidc-client-id", client_id])
        .env("MRMAT_API_OIDC_CLIENT_SECRET", secret)
        .args(["--workers", "2"])
        .args(extra);
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
/// nginx connects to TCP servers from [`PROXY_ADDR`].
pub fn shipped_site(site: &Site, servers: &[String]) -> String {
    let upstream: String = servers
        .iter()
        .map(|s| format!("        server {s};\n"))
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
