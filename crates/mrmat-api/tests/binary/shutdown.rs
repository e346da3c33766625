//! SIGTERM as a platform sends it before a restart: readiness turns 503 at once, the
//! listener keeps accepting for `--shutdown-delay` with every answer closing its
//! connection, then closes (a connection is refused), the requests in flight finish, and
//! the process exits within the delay plus the shutdown timeout.

use std::time::{Duration, Instant};

use mrmat_api_testkit::server_process::{self, Listen, ServerProcess};
use mrmat_api_testkit::{Oidc, TestClient};
use reqwest::StatusCode;
use reqwest::header::CONNECTION;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::command;

/// The drain of these tests.
const DELAY: Duration = Duration::from_secs(3);

/// The server's own bound on the requests in flight once it stops accepting
/// (`startup::SHUTDOWN_TIMEOUT`).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack on every bound, for a loaded machine.
const SLACK: Duration = Duration::from_secs(5);

/// How many creates are in flight when the signal comes.
const IN_FLIGHT: usize = 4;

async fn start(dir: &std::path::Path, delay: Duration) -> ServerProcess {
    let mut command = command(dir);
    server_process::with_test_provider(&mut command, Oidc::shared())
        .arg("--shutdown-delay")
        .arg(delay.as_secs().to_string());
    ServerProcess::serve(command, Listen::Loopback).await
}

/// A create whose head and half its body are sent: in flight until [`finish`] sends the
/// rest.
struct HalfSent {
    stream: TcpStream,
    rest: Vec<u8>,
}

async fn half_send(port: u16, token: &str, name: &str) -> HalfSent {
    let body = format!(r#"{{"name":"{name}"}}"#).into_bytes();
    let head = format!(
        "POST /api/resource/v1/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let half = body.len() / 2;
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..half]).await.unwrap();
    HalfSent {
        stream,
        rest: body[half..].to_vec(),
    }
}

/// Sends the rest of the body; the status and head of the answer.
async fn finish(mut request: HalfSent) -> (u16, String) {
    let exchange = async {
        request.stream.write_all(&request.rest).await.unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0_u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = request.stream.read(&mut buffer).await.unwrap();
            assert!(
                n > 0,
                "closed before an answer: {:?}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&buffer[..n]);
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, text.to_ascii_lowercase())
    };
    tokio::time::timeout(SHUTDOWN_TIMEOUT, exchange)
        .await
        .expect("an answer to a request in flight")
}

/// Whether a connection to `port` is refused now.
async fn refused(port: u16) -> bool {
    match tokio::time::timeout(
        Duration::from_secs(2),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// Polls until connections to `port` are refused; when they were, after `since`.
async fn wait_refused(port: u16, since: Instant, within: Duration) -> Duration {
    loop {
        if refused(port).await {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < within,
            "port {port} still accepts after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_refuses_finishes_the_requests_in_flight_and_exits_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), DELAY).await;
    let port = server.port;
    let token = Oidc::shared().token(TestClient::Rw).await;
    // A kept-alive connection, as a proxy's pool holds.
    let kept = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let before = kept
        .get(server.url("/api/greeting/v1/"))
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), StatusCode::OK);
    assert!(
        before
            .headers()
            .get(CONNECTION)
            .is_none_or(|v| v != "close")
    );
    let ready = kept.get(server.url("/healthz/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    let mut in_flight = Vec::new();
    for i in 0..IN_FLIGHT {
        in_flight.push(
            half_send(
                port,
                &token,
                &format!("drain-{i}-{}", uuid::Uuid::new_v4().simple()),
            )
            .await,
        );
    }

    let signalled = Instant::now();
    server.signal("TERM");
    // Readiness says so at once (polled: the signal takes a moment to arrive).
    let draining = loop {
        let response = reqwest::get(server.url("/healthz/ready")).await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert!(
            signalled.elapsed() < SLACK,
            "readiness still {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let readiness_503_after = signalled.elapsed();
    assert!(draining.headers().contains_key("retry-after"));
    assert_eq!(draining.headers()[CONNECTION], "close");
    let body: Value = draining.json().await.unwrap();
    assert_eq!(body["status"], "DEGRADED");
    assert_eq!(body["checks"]["server"], "SHUTTING_DOWN");

    // Still accepting, still serving; each answer closes its connection, the kept-alive
    // one too.
    let during = kept
        .get(server.url("/api/greeting/v1/"))
        .send()
        .await
        .unwrap();
    assert_eq!(during.status(), StatusCode::OK);
    assert_eq!(during.headers()[CONNECTION], "close");
    let fresh = reqwest::get(server.url("/api/greeting/v1/")).await.unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert!(
        signalled.elapsed() < DELAY,
        "the checks during the drain took too long"
    );

    // Half the creates in flight finish during the drain, half after the listener closed.
    let late = in_flight.split_off(IN_FLIGHT / 2);
    for request in in_flight {
        let (status, head) = finish(request).await;
        assert_eq!(status, 201, "{head}");
        assert!(head.contains("connection: close"), "{head}");
    }
    let refused_after = wait_refused(port, signalled, DELAY + SLACK).await;
    assert!(
        refused_after >= DELAY,
        "refused {refused_after:?} after SIGTERM, before the {DELAY:?} drain ended"
    );
    for request in late {
        let (status, head) = finish(request).await;
        assert_eq!(status, 201, "{head}");
    }
    let bound = DELAY + SHUTDOWN_TIMEOUT + SLACK;
    let code = server.wait_exit(bound).await;
    let exited_after = signalled.elapsed();
    assert_eq!(
        code,
        Some(Some(0)),
        "no clean exit within {bound:?}:\n{}",
        server.log()
    );
    assert!(refused(port).await);
    eprintln!(
        "shutdown: readiness 503 after {readiness_503_after:?}, refused after {refused_after:?}, \
         exit after {exited_after:?} (delay {DELAY:?})"
    );
    let log = server.log();
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_drain_early_and_requests_in_flight_still_finish() {
    let dir = tempfile::tempdir().unwrap();
    let long = Duration::from_secs(60);
    let mut server = start(dir.path(), long).await;
    let port = server.port;
    let token = Oidc::shared().token(TestClient::Rw).await;
    let request = half_send(
        port,
        &token,
        &format!("second-{}", uuid::Uuid::new_v4().simple()),
    )
    .await;

    let signalled = Instant::now();
    server.signal("INT");
    loop {
        let response = reqwest::get(server.url("/healthz/ready")).await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            signalled.elapsed() < SLACK,
            "readiness still {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("TERM");
    let refused_after = wait_refused(port, signalled, SLACK * 2).await;
    assert!(refused_after < long);
    let (status, head) = finish(request).await;
    assert_eq!(status, 201, "{head}");
    let code = server.wait_exit(SHUTDOWN_TIMEOUT + SLACK).await;
    assert_eq!(code, Some(Some(0)), "{}", server.log());
    eprintln!(
        "second signal: refused after {refused_after:?}, exit after {:?}",
        signalled.elapsed()
    );
    assert!(server.log().contains("again: ending the drain early"));
}
