//! Where the server listens: a unix socket (`--bind unix:PATH`, with its file mode) instead
//! of TCP, and `/metrics` on a listener of its own (`--metrics-addr`).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use mrmat_api_testkit::process::Running;

use crate::process::{command, free_port, get, run, start_on_loopback};

/// GET `path` over the unix socket; the status line and the body.
fn get_over_socket(socket: &Path, path: &str, headers: &str) -> (String, String) {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: api.example\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[test]
fn the_server_listens_on_a_unix_socket_with_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let bind = format!("unix:{}", socket.display());
    // Killed when dropped, also when a check below fails.
    let mut server = Running::spawn(
        command(dir.path())
            .args(["--bind", &bind, "--socket-mode", "600"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let started = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no socket at {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    let (status, body) = get_over_socket(&socket, "/healthz/", "");
    // The proxy on the socket is believed: the metadata names the public URL it gives.
    let (_, metadata) = get_over_socket(
        &socket,
        "/.well-known/oauth-protected-resource",
        "X-Forwarded-Proto: https\r\nX-Forwarded-Host: api.example.org\r\n",
    );
    server.kill();
    assert_eq!(mode, 0o600);
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("\"OK\""), "{body}");
    assert!(metadata.contains("https://api.example.org"), "{metadata}");
}

#[test]
fn a_bind_that_is_not_a_unix_socket_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["--bind", "tcp:127.0.0.1:80"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--bind"));
}

#[tokio::test]
async fn metrics_move_to_their_own_listener_with_metrics_addr() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = start_on_loopback(dir.path(), &["--metrics-addr", &metrics_addr], &[]);
    assert_eq!(get(&server.url("/metrics"), None).await.status(), 404);
    let response = get(&format!("http://{metrics_addr}/metrics"), None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("mrmat_api_build_info")
    );
}
