//! A log sink that stops reading (a stuck log shipper, a full pipe): requests go on, the
//! lines that cannot be written are dropped and counted, never waited for.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mrmat_api_testkit::process::Running;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_never_holds_up_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // stderr is a pipe whose reading end is held and never read: it fills after 64 KiB.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mrmat-api"))
        .current_dir(dir.path())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _unread = child.stderr.take();
    // Killed when dropped, also when a check below fails.
    let mut server = Running::adopt(child, "mrmat-api");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/greeting/v1/");
    let started = Instant::now();
    while http.get(&url).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // About 200 KiB of access lines: the pipe is full long before the end.
    let started = Instant::now();
    for n in 0..2_000 {
        let response = http.get(&url).send().await;
        assert!(
            response.is_ok_and(|r| r.status() == 200),
            "request {n} failed after {:?}",
            started.elapsed()
        );
    }
    server.kill();
}
