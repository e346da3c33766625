//! CORS in a real browser: headless Chromium loads a page from one loopback origin whose
//! script calls the API on another with an `Authorization` header (so a preflight comes
//! first) and reports what it saw to the page's own server. An allowed origin's page sees
//! the JSON; a refused one's sees a network error. Without Chromium: skipped, except
//! under CI.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use mrmat_api::CorsOrigins;
use mrmat_api_testkit::tools::{find_program, skip};
use mrmat_api_testkit::{Backend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Longest the browser gets to load the page, call the API and report.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a page request may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn chromium() -> Option<PathBuf> {
    find_program("chromium", &[]).or_else(|| find_program("chromium-browser", &[]))
}

/// A page server on 127.0.0.1: `GET /?api=URL` the page calling the API at URL, `POST
/// /result` what the page saw, sent on the channel. Its origin, the channel and its task.
async fn page_server() -> (String, mpsc::Receiver<String>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let page = r#"<!doctype html><html><body><pre id="out">pending</pre><script>
(async () => {
  let outcome;
  try {
    const api = new URLSearchParams(location.search).get("api");
    const r = await fetch(api + "/api/greeting/v1/", {headers: {"Authorization": "Bearer browser-test"}});
    const body = await r.json();
    outcome = "ok " + r.status + " " + JSON.stringify(body) + " request-id=" + (r.headers.get("x-request-id") ? "seen" : "hidden");
  } catch (e) {
    outcome = "error " + e.name;
  }
  document.getElementById("out").textContent = outcome;
  await fetch("/result", {method: "POST", body: outcome});
})();
</script></body></html>"#
        .to_owned();
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let page = page.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(READ_TIMEOUT, serve(stream, &page, &tx)).await;
            });
        }
    });
    (origin, rx, task)
}

async fn serve(mut stream: TcpStream, page: &str, results: &mpsc::Sender<String>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..at]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (at + 4, length);
        }
    };
    while request.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let (status, body) = if head.starts_with("GET /?") || head.starts_with("GET / ") {
        ("200 OK", page.to_owned())
    } else if head.starts_with("POST /result ") {
        let outcome = String::from_utf8_lossy(&request[head_end..head_end + length]).to_string();
        let _ = results.send(outcome).await;
        ("200 OK", String::new())
    } else {
        ("404 Not Found", String::new())
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
}

/// Opens `url` in headless Chromium and returns what its page reported.
async fn browse(chromium: &PathBuf, url: &str, results: &mut mpsc::Receiver<String>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromium");
    let outcome = tokio::time::timeout(BROWSER_TIMEOUT, results.recv()).await;
    let _ = child.kill().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    outcome
        .unwrap_or_else(|_| panic!("the page did not report within {BROWSER_TIMEOUT:?}"))
        .expect("page server gone")
}

#[tokio::test]
async fn a_page_of_an_allowed_origin_reads_the_api_and_a_refused_one_cannot() {
    let Some(chromium) = chromium() else {
        skip("chromium is not installed (apt-get install chromium)");
        return;
    };
    let (allowed, mut allowed_results, allowed_task) = page_server().await;
    let (refused, mut refused_results, refused_task) = page_server().await;
    let origins = CorsOrigins::parse(std::slice::from_ref(&allowed)).unwrap();
    let app = TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.cors_origins = Some(origins);
        s.rate_limit = Some("100/s".parse().unwrap());
    })
    .await;

    let seen = browse(
        &chromium,
        &format!("{allowed}/?api={}", app.address),
        &mut allowed_results,
    )
    .await;
    eprintln!("page of the allowed origin {allowed}: {seen}");
    assert_eq!(
        seen, r#"ok 200 {"message":"Hello World"} request-id=seen"#,
        "the allowed page reads the JSON and the exposed X-Request-Id"
    );
    let seen = browse(
        &chromium,
        &format!("{refused}/?api={}", app.address),
        &mut refused_results,
    )
    .await;
    eprintln!("page of the refused origin {refused}: {seen}");
    assert_eq!(
        seen, "error TypeError",
        "the refused page sees a network error"
    );
    allowed_task.abort();
    refused_task.abort();
}
