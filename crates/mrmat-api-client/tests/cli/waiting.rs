//! What the person sees while the client waits: a named wait, a bounded one, and with `-d`
//! each HTTP call.

use std::time::{Duration, Instant};

use mrmat_api_testkit::{Backend, TestApp};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::{Home, SilentServer, bounded, stderr};

#[tokio::test]
async fn an_unresponsive_server_is_named_within_two_seconds_and_the_wait_is_bounded() {
    let silent = SilentServer::start().await;
    let address = silent.address.clone();
    let home = Home::new(&address);
    let started = Instant::now();
    let mut child = home
        .command(&["--timeout", "4", "greeting"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = bounded("the waiting line", lines.next_line())
        .await
        .unwrap()
        .unwrap();
    let said_after = started.elapsed();
    assert_eq!(
        first,
        format!("Waiting for the server at {address} to answer GET /api/greeting/v1/...")
    );
    assert!(
        said_after < Duration::from_millis(2500),
        "said after {said_after:?}"
    );
    let last = bounded("the error line", lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        last,
        format!("error: cannot reach the server at {address}/api/greeting/v1/: timed out")
    );
    let status = bounded("the client", child.wait()).await.unwrap();
    let ended_after = started.elapsed();
    assert_eq!(status.code(), Some(1));
    assert!(
        ended_after < Duration::from_secs(8),
        "ended after {ended_after:?}"
    );
}

#[tokio::test]
async fn debug_shows_each_http_call_without_its_query() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let home = Home::new(&app.address);
    let output = home
        .run(&["-d", "greeting", "--api", "v2", "--name", "private-name"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    let call = text
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "debug: GET {}/api/greeting/v2/ -> 200 OK (",
                app.address
            ))
        })
        .unwrap_or_else(|| panic!("no HTTP call line: {text}"));
    assert!(call.ends_with(" ms)"), "{call}");
    assert!(
        !text.contains("private-name"),
        "the query stays out: {text}"
    );
}
