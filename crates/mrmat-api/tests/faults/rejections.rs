//! Requests the HTTP layer refuses before any application code runs (a malformed request
//! line, an oversized head): answered with the layer's own 400 and 431, and not logged at
//! ERROR, so no client can flood the operator's error log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::process::start_server;

/// Sends `request` raw and returns the status line of the answer.
fn raw_status(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn requests_the_http_layer_refuses_are_not_logged_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &[], &[("RUST_LOG", "info")]);
    let bad_line = raw_status(server.port, b"NOT A REQUEST LINE\r\n\r\n");
    assert!(bad_line.contains(" 400 "), "{bad_line}");
    let mut huge_head = b"GET /healthz/ HTTP/1.1\r\nHost: x\r\n".to_vec();
    for n in 0..2_000 {
        huge_head.extend_from_slice(format!("X-Padding-{n}: {}\r\n", "p".repeat(40)).as_bytes());
    }
    huge_head.extend_from_slice(b"\r\n");
    let too_large = raw_status(server.port, &huge_head);
    assert!(too_large.contains(" 431 "), "{too_large}");
    // Still serving, and nothing at ERROR.
    let ok = raw_status(
        server.port,
        b"GET /healthz/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ok.contains(" 200 "), "{ok}");
    let log = server.log();
    assert!(
        !log.lines().any(|line| line.contains(" ERROR ")),
        "ERROR lines for bad clients:\n{log}"
    );
}

/// A client that sends its headers and then stalls holds nothing for long: the body
/// timeout answers 408 problem+json, with the request id, and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_408_problem_json_after_the_body_timeout() {
    let oidc = mrmat_api_testkit::Oidc::shared();
    let app = mrmat_api_testkit::TestApp::spawn_with_auth(
        mrmat_api_testkit::Backend::Sqlite,
        oidc.settings(),
    )
    .await;
    let token = oidc.token(mrmat_api_testkit::TestClient::Rw).await;
    let started = std::time::Instant::now();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", app.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // Promises 100 bytes, sends 10, then nothing.
        write!(
            stream,
            "POST /api/resource/v1/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":\"a"
        )
        .unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read until the head and the JSON body have arrived.
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&answer).contains("\"status\":408") {
                break;
            }
        }
        drop(app);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("x-request-id:"),
        "{answer}"
    );
    assert!(
        elapsed >= Duration::from_secs(9) && elapsed < Duration::from_secs(20),
        "answered after {elapsed:?}"
    );
}
