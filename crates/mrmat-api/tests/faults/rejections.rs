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
