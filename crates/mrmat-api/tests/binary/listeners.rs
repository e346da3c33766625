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

/// Issue 19 row 8: peers on the socket are trusted as proxies (they set the client
/// address and the public host), so a mode that lets "other" users connect would let
/// anyone on the machine forge them. Any bit for others is refused at start: exit 2, one
/// `error:` line naming the option and why. Owner and group modes start.
#[test]
fn a_socket_mode_that_lets_other_users_connect_is_refused_at_start() {
    for mode in ["777", "666", "662", "0o606", "601", "0004"] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let bind = format!("unix:{}", socket.display());
        let output = run(dir.path(), &["--bind", &bind, "--socket-mode", mode], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "mode {mode}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "mode {mode}: {stderr}");
        assert!(errors[0].contains("--socket-mode"), "{}", errors[0]);
        assert!(errors[0].contains("other users"), "{}", errors[0]);
        assert!(!socket.exists(), "mode {mode}: a socket was made");
    }
}

/// The socket never exists at its path with a mode other than the one asked for: it is
/// bound inside a private (0700) directory, given its mode there, and only then renamed
/// to its path. Under umask 000 a socket bound at its path and chmod-ed afterwards is
/// 0777 for a moment, and any local user connecting then is a trusted proxy. (Before the
/// fix this test caught that moment only when it polled in time: it is a race.)
#[test]
fn the_socket_has_its_mode_from_the_moment_it_appears_whatever_the_umask() {
    for attempt in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let bind = format!("unix:{}", socket.display());
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg("umask 000 && exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_mrmat-api"))
            .args(["--bind", &bind, "--socket-mode", "600"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut server = Running::spawn(&mut command);
        let started = Instant::now();
        // The first mode the path is seen with, polled as fast as stat allows.
        let first_mode = loop {
            if let Ok(metadata) = std::fs::symlink_metadata(&socket) {
                break metadata.permissions().mode() & 0o777;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "attempt {attempt}: no socket at {}",
                socket.display()
            );
            std::thread::yield_now();
        };
        while UnixStream::connect(&socket).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The private directory goes right after the rename, which may be a moment after
        // the socket answers: wait for it, within a bound.
        let hidden = || -> Vec<String> {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('.'))
                .collect()
        };
        let mut leftovers = hidden();
        while !leftovers.is_empty() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
            leftovers = hidden();
        }
        server.kill();
        assert_eq!(
            first_mode, 0o600,
            "attempt {attempt}: first seen {first_mode:o}"
        );
        assert!(
            leftovers.is_empty(),
            "private directory left: {leftovers:?}"
        );
    }
}
