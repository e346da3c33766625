//! The server behind a real nginx running the shipped snippets (`var/nginx/snippets/`)
//! with TLS on its listener: the public URL, the client address and the request id
//! survive the proxy, and forwarding headers count only from the trusted proxy.
//!
//! Three loopback addresses keep the parties apart: the test client connects from
//! 127.0.0.3, nginx connects to the server from 127.0.0.2 (`proxy_bind`), and the server
//! trusts only 127.0.0.2.

use std::process::Command;
use std::time::Duration;

use mrmat_api_testkit::nginx::{self, Scheme};
use mrmat_api_testkit::process::run_with_deadline;
use mrmat_api_testkit::server_process::{self, Listen, ServerProcess};
use mrmat_api_testkit::{Nginx, Oidc, TestClient};
use reqwest::header::LOCATION;
use serde_json::json;
use tempfile::TempDir;

use crate::support::{CLIENT_ADDR, PROXY_ADDR, client, shipped_site, start_server};

/// A server with nginx in front.
struct Proxied {
    nginx: Nginx,
    server: ServerProcess,
    _dir: TempDir,
}

/// The server on TCP, trusting only the proxy's address, behind nginx with the shipped
/// snippets; `None` (after a skip line) without nginx.
async fn behind_nginx() -> Option<Proxied> {
    let binary = Nginx::binary()?;
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        dir.path(),
        Listen::Loopback,
        Oidc::shared(),
        &["--trusted-proxies", PROXY_ADDR],
    )
    .await;
    let upstream = [format!("127.0.0.1:{}", server.port)];
    let nginx = Nginx::start(&binary, Scheme::Https, |site| shipped_site(site, &upstream)).await;
    Some(Proxied {
        nginx,
        server,
        _dir: dir,
    })
}

fn unique_name() -> String {
    format!("proxied-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn location_headers_carry_the_scheme_and_host_the_client_used_at_the_proxy() {
    let Some(proxied) = behind_nginx().await else {
        return;
    };
    let token = Oidc::shared().token(TestClient::Rw).await;
    let response = client()
        .post(proxied.nginx.url("/api/resource/v1/"))
        .bearer_auth(&token)
        .json(&json!({ "name": unique_name() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!(
            "https://127.0.0.1:{}/api/resource/v1/{}",
            proxied.nginx.port, body["id"]
        )
    );
}

#[tokio::test]
async fn protected_resource_metadata_names_the_public_url_behind_the_proxy() {
    let Some(proxied) = behind_nginx().await else {
        return;
    };
    let metadata: serde_json::Value = client()
        .get(proxied.nginx.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["resource"],
        format!("https://127.0.0.1:{}", proxied.nginx.port)
    );
}

#[tokio::test]
async fn the_server_logs_the_original_client_address_not_the_proxy() {
    let Some(proxied) = behind_nginx().await else {
        return;
    };
    let response = client()
        .get(proxied.nginx.url("/api/"))
        .header("x-request-id", "client-address-check")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let line = proxied.server.access_line("client-address-check").await;
    assert_eq!(line.client, CLIENT_ADDR);
}

#[tokio::test]
async fn a_request_id_from_the_client_passes_through_the_proxy_both_ways() {
    let Some(proxied) = behind_nginx().await else {
        return;
    };
    let response = client()
        .get(proxied.nginx.url("/api/"))
        .header("x-request-id", "rid-from-the-client-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "rid-from-the-client-42");
    proxied.server.access_line("rid-from-the-client-42").await;
    proxied
        .nginx
        .access_log_line("rid=rid-from-the-client-42")
        .await;
}

#[tokio::test]
async fn without_a_client_request_id_the_proxy_and_server_share_the_one_nginx_makes() {
    let Some(proxied) = behind_nginx().await else {
        return;
    };
    let response = client()
        .get(proxied.nginx.url("/api/"))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "not nginx's $request_id: {id}"
    );
    proxied.server.access_line(&id).await;
    proxied.nginx.access_log_line(&format!("rid={id}")).await;
}

/// A create sent to `url` with every forwarding header forged (client 203.0.113.9, host
/// evil.example, scheme `proto`); the `Location` it is answered with, asserting a 201.
async fn create_with_forged_forwarding(url: String, request_id: &str, proto: &str) -> String {
    let token = Oidc::shared().token(TestClient::Rw).await;
    let response = client()
        .post(url)
        .bearer_auth(&token)
        .header("x-request-id", request_id)
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", proto)
        .header("x-forwarded-host", "evil.example")
        .header(
            "forwarded",
            format!("for=203.0.113.9;proto={proto};host=evil.example"),
        )
        .json(&json!({ "name": unique_name() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn forwarding_headers_a_client_sends_through_the_proxy_are_replaced() {
    let Some(proxied) = behind_nginx().await else {
        return;
    };
    let location = create_with_forged_forwarding(
        proxied.nginx.url("/api/resource/v1/"),
        "forged-through-proxy",
        "http",
    )
    .await;
    assert!(
        location.starts_with(&format!("https://127.0.0.1:{}/", proxied.nginx.port)),
        "{location}"
    );
    let line = proxied.server.access_line("forged-through-proxy").await;
    assert_eq!(line.client, CLIENT_ADDR);
}

#[tokio::test]
async fn forwarding_headers_from_a_peer_the_server_does_not_trust_are_ignored() {
    let Some(proxied) = behind_nginx().await else {
        return;
    };
    // Straight to the server, from the client's address, which it does not trust.
    let location = create_with_forged_forwarding(
        proxied.server.url("/api/resource/v1/"),
        "forged-direct",
        "https",
    )
    .await;
    assert!(
        location.starts_with(&format!("http://127.0.0.1:{}/", proxied.server.port)),
        "{location}"
    );
    let line = proxied.server.access_line("forged-direct").await;
    assert_eq!(line.client, CLIENT_ADDR);
}

#[tokio::test]
async fn a_spoofed_leftmost_x_forwarded_for_is_not_taken_for_the_client_address() {
    let Some(binary) = Nginx::binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        dir.path(),
        Listen::Loopback,
        Oidc::shared(),
        &["--trusted-proxies", PROXY_ADDR],
    )
    .await;
    // nginx behind another proxy appends to X-Forwarded-For (var/nginx says how): the
    // client's own value stays leftmost, and only the rightmost entry, added by the
    // trusted proxy, is a fact.
    let port = server.port;
    let nginx = Nginx::start(&binary, Scheme::Http, |site| {
        format!(
            "    server {{
        listen {listen};
        location / {{
            proxy_pass http://127.0.0.1:{port};
            proxy_bind {PROXY_ADDR};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Forwarded \"\";
        }}
    }}
",
            listen = site.listen
        )
    })
    .await;
    let response = client()
        .get(nginx.url("/api/"))
        .header("x-request-id", "spoofed-leftmost")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let line = server.access_line("spoofed-leftmost").await;
    assert_eq!(line.client, CLIENT_ADDR, "the spoofed address was believed");
}

#[tokio::test]
async fn behind_nginx_over_a_unix_socket_the_public_url_client_address_and_request_id_survive() {
    let Some(binary) = Nginx::binary() else {
        return;
    };
    // In /tmp: a socket path must fit a socket address, wherever TMPDIR points.
    let dir = server_process::socket_dir();
    let socket = dir.path().join("api.sock");
    // Over a unix socket there is no peer address to trust: whoever may open the socket
    // (its mode and group) is the proxy, so no --trusted-proxies.
    let server = start_server(
        dir.path(),
        Listen::Unix(socket.clone()),
        Oidc::shared(),
        &["--socket-mode", "660"],
    )
    .await;
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660, "socket mode {mode:o}");
    let upstream = [format!("unix:{}", socket.display())];
    let nginx = Nginx::start(&binary, Scheme::Https, |site| shipped_site(site, &upstream)).await;

    let token = Oidc::shared().token(TestClient::Rw).await;
    let response = client()
        .post(nginx.url("/api/resource/v1/"))
        .bearer_auth(&token)
        .header("x-request-id", "over-the-socket")
        .json(&json!({ "name": unique_name() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-request-id"], "over-the-socket");
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("https://127.0.0.1:{}/", nginx.port)),
        "{location}"
    );
    let line = server.access_line("over-the-socket").await;
    assert_eq!(line.client, CLIENT_ADDR);
    nginx.access_log_line("rid=over-the-socket").await;
}

#[tokio::test]
async fn the_shipped_site_configuration_passes_nginx_s_own_check() {
    let Some(binary) = Nginx::binary() else {
        return;
    };
    // The site file as shipped, with only what is machine-specific swapped: ports,
    // certificate and log paths. Its includes are relative to the configuration's
    // directory, as they are to /etc/nginx.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(nginx::shipped("snippets"), dir.path().join("snippets")).unwrap();
    let (cert, key) = nginx::self_signed_certificate(dir.path());
    let d = dir.path().display();
    let shipped = std::fs::read_to_string(nginx::shipped("mrmat-api.conf")).unwrap();
    let site = shipped
        .replace(
            "/etc/ssl/certs/api.example.com.fullchain.pem",
            &cert.display().to_string(),
        )
        .replace(
            "/etc/ssl/private/api.example.com.key",
            &key.display().to_string(),
        )
        .replace("/var/log/nginx/", &format!("{d}/"))
        .replace("listen 80", "listen 127.0.0.1:1080")
        .replace("listen 443 ssl", "listen 127.0.0.1:1443 ssl")
        .lines()
        .filter(|l| !l.trim_start().starts_with("listen [::]"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        site.contains(&format!("{d}/cert.pem")),
        "certificate path not found"
    );
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        "events {}\nhttp {\n    include site.conf;\n}\n",
    )
    .unwrap();
    let mut check = Command::new(&binary);
    check
        .args(["-t", "-e", "stderr", "-p"])
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-g")
        .arg(format!("pid {d}/nginx.pid;"));
    let checked = run_with_deadline(&mut check, Duration::from_secs(30));
    assert!(checked.success, "nginx -t: {}", checked.output);
}

/// The server behind nginx with the shipped snippets, reading `family` from it (its
/// default when `None`).
async fn behind_nginx_reading(family: Option<&str>) -> Option<Proxied> {
    let binary = Nginx::binary()?;
    let dir = tempfile::tempdir().unwrap();
    let mut options = vec!["--trusted-proxies", PROXY_ADDR];
    if let Some(family) = family {
        options.extend(["--forwarded-headers", family]);
    }
    let server = start_server(dir.path(), Listen::Loopback, Oidc::shared(), &options).await;
    let upstream = [format!("127.0.0.1:{}", server.port)];
    let nginx = Nginx::start(&binary, Scheme::Https, |site| shipped_site(site, &upstream)).await;
    Some(Proxied {
        nginx,
        server,
        _dir: dir,
    })
}

/// Issue 19 row 1: a `Host` that closes the quoted `host=` of the `Forwarded` header nginx
/// builds and opens an element of its own (address, scheme and host of the client's
/// choosing). nginx with the shipped snippets refuses such a Host (400 problem+json)
/// before the server sees anything, whichever header family the server reads; so are a
/// Host holding a comma (a second X-Forwarded-Host value), a space, a path, userinfo or
/// a port out of range.
#[tokio::test]
async fn a_host_that_breaks_out_of_the_forwarded_header_forges_nothing_through_the_shipped_snippets()
 {
    for family in [None, Some("forwarded"), Some("x-forwarded")] {
        let Some(proxied) = behind_nginx_reading(family).await else {
            return;
        };
        let port = proxied.nginx.port;
        let token = Oidc::shared().token(TestClient::Rw).await;
        let hostile = [
            format!("127.0.0.1:{port}\",for=6.6.6.6;proto=https;host=\"evil.example"),
            format!("127.0.0.1:{port},evil.example"),
            format!("127.0.0.1:{port};for=6.6.6.6"),
            "evil.example\"".to_owned(),
            "user@evil.example".to_owned(),
            "127.0.0.1:99999".to_owned(),
            "127.0.0.1:80:80".to_owned(),
        ];
        for (i, host) in hostile.iter().enumerate() {
            let request_id = format!("hostile-host-{family:?}-{i}");
            let response = client()
                .post(proxied.nginx.url("/api/resource/v1/"))
                .bearer_auth(&token)
                .header("host", host)
                .header("x-request-id", &request_id)
                .json(&json!({ "name": unique_name() }))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let location = response
                .headers()
                .get(LOCATION)
                .map(|l| l.to_str().unwrap().to_owned());
            assert_eq!(
                status, 400,
                "{family:?}: Host {host:?} got {status}, Location {location:?}"
            );
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
        // None of them reached the server: nothing logged the forged address.
        let log = proxied.server.log();
        assert!(!log.contains("6.6.6.6"), "{log}");
        assert!(!log.contains("hostile-host-"), "{log}");
        // A plain Host still works, and names the client nginx saw.
        let location = create_with_forged_forwarding(
            proxied.nginx.url("/api/resource/v1/"),
            &format!("plain-host-{}", family.unwrap_or("default")),
            "http",
        )
        .await;
        assert!(
            location.starts_with(&format!("https://127.0.0.1:{port}/")),
            "{location}"
        );
        let line = proxied
            .server
            .access_line(&format!("plain-host-{}", family.unwrap_or("default")))
            .await;
        assert_eq!(line.client, CLIENT_ADDR);
    }
}

/// Issue 19 row 2: nginx set up as the snippet advises behind another proxy (it appends
/// to X-Forwarded-For and sets no `Forwarded`), so a client's own `Forwarded` passes
/// through. The server reads only the family it is told to (`x-forwarded` by default):
/// the client's `Forwarded` is never read.
#[tokio::test]
async fn a_client_forwarded_header_is_not_read_when_the_proxy_speaks_x_forwarded() {
    let Some(binary) = Nginx::binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        dir.path(),
        Listen::Loopback,
        Oidc::shared(),
        &["--trusted-proxies", PROXY_ADDR],
    )
    .await;
    let port = server.port;
    let nginx = Nginx::start(&binary, Scheme::Http, |site| {
        format!(
            "    server {{
        listen {listen};
        location / {{
            proxy_pass http://127.0.0.1:{port};
            proxy_bind {PROXY_ADDR};
            proxy_set_header Host $host:$server_port;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host:$server_port;
        }}
    }}
",
            listen = site.listen
        )
    })
    .await;
    let forged = [
        "for=6.6.6.6;proto=https;host=evil.example",
        "for=\"6.6.6.6\";host=\"evil.example\", for=6.6.6.7;proto=https;host=evil.example",
    ];
    for (i, forwarded) in forged.iter().enumerate() {
        let request_id = format!("client-forwarded-{i}");
        let response = client()
            .get(nginx.url("/.well-known/oauth-protected-resource"))
            .header("x-request-id", &request_id)
            .header("forwarded", *forwarded)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let metadata: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            metadata["resource"],
            format!("http://127.0.0.1:{}", nginx.port),
            "{forwarded}"
        );
        let line = server.access_line(&request_id).await;
        assert_eq!(line.client, CLIENT_ADDR, "{forwarded}");
    }
}
