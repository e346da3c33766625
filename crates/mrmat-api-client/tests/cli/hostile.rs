//! What a hostile server, proxy or provider can no longer do to the client: make it
//! buffer an endless answer, put it to sleep for good with a huge `interval`, or store a
//! time out of range; and what a reader that closes a pipe early does: end it quietly.
//!
//! The hostile party is a tiny loopback server each test starts ([`Fake`]): the test
//! provider cannot be made to answer like this, and these answers are the point.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mrmat_api_types::scope::Scope;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::harness::{Home, bounded, stderr};

/// What the fake answers with.
pub(crate) enum Body {
    /// This JSON, with its length.
    Json(Value),
    /// A JSON string that never ends, without a length: `limit` bytes, then the close.
    Endless(usize),
}

/// One answer: a status and a body.
pub(crate) struct Reply(pub(crate) u16, pub(crate) Body);

/// A request, as the fake sees it: method, path (without query), and how many requests
/// for that path came before it.
pub(crate) struct Request {
    method: String,
    pub(crate) path: String,
    seen: usize,
}

/// A loopback HTTP server answering each request with what `answer` says. `answer` gets
/// the server's own URL, so it can name itself as resource, issuer and endpoints.
pub(crate) struct Fake {
    pub(crate) url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    pub(crate) async fn start(
        answer: impl Fn(&str, &Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let answer = Arc::new(answer);
        let counts = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let base = url.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (answer, counts, base) =
                    (Arc::clone(&answer), Arc::clone(&counts), base.clone());
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match stream.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => head.push_str(&line),
                        }
                    }
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let mut words = head.split_whitespace();
                    let method = words.next().unwrap_or_default().to_owned();
                    let target = words.next().unwrap_or_default();
                    let path = target.split('?').next().unwrap_or_default().to_owned();
                    let seen = {
                        let mut counts = counts.lock().unwrap();
                        let count = counts.entry(path.clone()).or_insert(0usize);
                        *count += 1;
                        *count - 1
                    };
                    let Reply(status, body) = answer(&base, &Request { method, path, seen });
                    let mut stream = stream.into_inner();
                    match body {
                        Body::Json(value) => {
                            let text = value.to_string();
                            let answer = format!(
                                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                                text.len()
                            );
                            let _ = stream.write_all(answer.as_bytes()).await;
                        }
                        Body::Endless(limit) => {
                            let head = format!(
                                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{{\"resource\":\""
                            );
                            if stream.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let chunk = vec![b'a'; 64 * 1024];
                            let mut sent = 0;
                            while sent < limit {
                                if stream.write_all(&chunk).await.is_err() {
                                    return;
                                }
                                sent += chunk.len();
                            }
                        }
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { url, task }
    }
}

/// 200 MB: far more than any answer the client reads, and enough to show in its memory.
const FLOOD: usize = 200 * 1024 * 1024;

/// The client's peak memory must stay below this (a debug build starts near 10 MiB).
const MOST_RSS_KIB: u64 = 48 * 1024;

pub(crate) fn json(value: Value) -> Reply {
    Reply(200, Body::Json(value))
}

pub(crate) fn not_found() -> Reply {
    Reply(404, Body::Json(json!({})))
}

/// RFC 9728 metadata naming `base` as the resource and as its provider.
fn metadata(base: &str) -> Reply {
    json(json!({
        "resource": base,
        "authorization_servers": [base],
        "scopes_supported": [Scope::ResourceRead.as_str()],
        "bearer_methods_supported": ["header"],
    }))
}

/// A discovery document of a provider at `base` with a device endpoint.
fn discovery(base: &str) -> Reply {
    json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
        "device_authorization_endpoint": format!("{base}/device"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", Scope::ResourceRead.as_str()],
    }))
}

fn device(base: &str, interval: u64, expires_in: u64) -> Reply {
    json(json!({
        "device_code": "the-device-code",
        "user_code": "ABCD-EFGH",
        "verification_uri": format!("{base}/device"),
        "verification_uri_complete": format!("{base}/device?user_code=ABCD-EFGH"),
        "expires_in": expires_in,
        "interval": interval,
    }))
}

fn pending(error: &str) -> Reply {
    Reply(400, Body::Json(json!({ "error": error })))
}

fn tokens(expires_in: Value) -> Reply {
    json(json!({
        "access_token": "an-access-token",
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": "a-refresh-token",
        "scope": format!("openid profile {}", Scope::ResourceRead),
    }))
}

/// A provider (and server) that answers every step of a login as a good one would,
/// except where `token` decides the token endpoint's answer.
async fn provider(
    interval: u64,
    expires_in: u64,
    token: impl Fn(usize) -> Reply + Send + Sync + 'static,
) -> Fake {
    Fake::start(move |base, request| match request.path.as_str() {
        "/.well-known/oauth-protected-resource" => metadata(base),
        "/.well-known/openid-configuration" => discovery(base),
        "/device" if request.method == "POST" => device(base, interval, expires_in),
        "/token" => token(request.seen),
        _ => not_found(),
    })
    .await
}

/// The peak resident memory (`VmHWM`) of process `pid`, in KiB, while it lives.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Runs the client to its end, sampling its peak memory meanwhile: its exit code, its
/// stderr and the highest peak seen.
async fn run_measured(home: &Home, args: &[&str]) -> (Option<i32>, String, u64) {
    let mut child = home
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text).await;
        text
    });
    let mut peak = 0;
    let status = bounded("the client", async {
        loop {
            peak = peak.max(peak_kib(pid).unwrap_or(0));
            // Sampling, not waiting for readiness: VmHWM only grows, any later sample
            // of a living process sees the peak.
            tokio::select! {
                status = child.wait() => break status.unwrap(),
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    })
    .await;
    let text = bounded("the client's stderr", reader).await.unwrap();
    (status.code(), text, peak)
}

fn assert_refused_small(code: Option<i32>, text: &str, peak: u64, expected: &str) {
    // Memory first: that is the harm a flood does.
    assert!(
        peak < MOST_RSS_KIB,
        "peak RSS {peak} KiB, at most {MOST_RSS_KIB} KiB allowed: {text}"
    );
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(text, expected);
}

#[tokio::test]
async fn server_metadata_far_too_large_is_refused_unread_and_memory_stays_small() {
    let fake = Fake::start(|_, request| match request.path.as_str() {
        "/.well-known/oauth-protected-resource" => Reply(200, Body::Endless(FLOOD)),
        _ => not_found(),
    })
    .await;
    let home = Home::new(&fake.url);
    let (code, text, peak) = run_measured(&home, &["login"]).await;
    assert_refused_small(
        code,
        &text,
        peak,
        &format!(
            "error: unexpected answer from the server: its answer from {}/.well-known/oauth-protected-resource is larger than 64 KiB, the most this client reads; refused\n",
            fake.url
        ),
    );
}

#[tokio::test]
async fn a_discovery_document_far_too_large_is_refused_unread() {
    let fake = Fake::start(|base, request| match request.path.as_str() {
        "/.well-known/oauth-protected-resource" => metadata(base),
        "/.well-known/openid-configuration" => Reply(200, Body::Endless(FLOOD)),
        _ => not_found(),
    })
    .await;
    let home = Home::new(&fake.url);
    let (code, text, peak) = run_measured(&home, &["login"]).await;
    assert_refused_small(
        code,
        &text,
        peak,
        &format!(
            "error: unexpected answer from the identity provider: its answer from {}/.well-known/openid-configuration is larger than 64 KiB, the most this client reads; refused\n",
            fake.url
        ),
    );
}

#[tokio::test]
async fn a_token_answer_far_too_large_ends_the_login_at_once_instead_of_polling_on() {
    let fake = provider(1, 600, |_| Reply(200, Body::Endless(FLOOD))).await;
    let home = Home::new(&fake.url);
    let started = Instant::now();
    let (code, text, peak) = run_measured(&home, &["login"]).await;
    let last = text.lines().last().unwrap_or_default();
    assert!(peak < MOST_RSS_KIB, "peak RSS {peak} KiB: {text}");
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        last,
        format!(
            "error: unexpected answer from the identity provider: its answer from {}/token is larger than 64 KiB, the most this client reads; refused",
            fake.url
        )
    );
    assert!(peak < MOST_RSS_KIB, "peak RSS {peak} KiB");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(home.cache_file().is_none());
}

#[tokio::test]
async fn an_api_answer_beyond_four_mib_is_refused_unread() {
    let fake = Fake::start(|_, request| match request.path.as_str() {
        "/api/greeting/v1/" => Reply(200, Body::Endless(FLOOD)),
        _ => not_found(),
    })
    .await;
    let home = Home::new(&fake.url);
    let (code, text, peak) = run_measured(&home, &["greeting", "--api", "v1"]).await;
    assert_refused_small(
        code,
        &text,
        peak,
        &format!(
            "error: unexpected answer from the server: its answer from {}/api/greeting/v1/ is larger than 4 MiB, the most this client reads; refused\n",
            fake.url
        ),
    );
}

#[tokio::test]
async fn an_expires_in_of_two_to_the_63_is_a_clear_error_and_nothing_is_stored() {
    let fake = provider(1, 600, |_| tokens(json!(i64::MAX))).await;
    let home = Home::new(&fake.url);
    let output = home.run(&["login"]).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(
        text.lines().last().unwrap_or_default(),
        "error: unexpected answer from the identity provider: its token answer says the access token expires in 9223372036854775807 seconds (expires_in), more than the 315360000 (3650 days) this client accepts; nothing was stored"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(home.cache_file().is_none());
}

#[tokio::test]
async fn a_negative_expires_in_is_a_clear_error() {
    let fake = provider(1, 600, |_| tokens(json!(-3600))).await;
    let home = Home::new(&fake.url);
    let output = home.run(&["login"]).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: unexpected answer from the identity provider: expires_in: invalid value: integer `-3600`"),
        "{text}"
    );
    assert!(home.cache_file().is_none());
}

#[tokio::test]
async fn a_huge_interval_and_code_life_are_clamped_and_said_and_the_login_goes_on() {
    // Pending once, then the tokens: one wait, of the clamped interval.
    let fake = provider(1_000_000_000, 1_000_000_000_000, |seen| match seen {
        0 => pending("authorization_pending"),
        _ => tokens(json!(3600)),
    })
    .await;
    let home = Home::new(&fake.url);
    let started = Instant::now();
    let output = home.run(&["login"]).await;
    let took = started.elapsed();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("(the code expires in 1 hour)"), "{text}");
    assert!(
        text.contains("warning: the identity provider's interval is 1000000000 seconds; this client polls every 30 seconds instead"),
        "{text}"
    );
    assert!(
        text.contains("warning: the identity provider's expires_in is 1000000000000 seconds; this client waits for approval at most 1 hour instead"),
        "{text}"
    );
    assert!(took < Duration::from_secs(45), "took {took:?}");
    assert_eq!(home.cached()["lifetime"], 3600);
}

/// A login whose stdout and stderr share one pipe, as `login 2>&1 | head -3` does: the
/// test reads three lines, closes the pipe, and only then does the provider refuse, so
/// the client's next line goes to a closed pipe.
#[tokio::test]
async fn login_piped_into_head_ends_quietly_with_141_when_the_pipe_closes() {
    let closed = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let (closed_seen, polls_seen) = (Arc::clone(&closed), Arc::clone(&polls));
    let fake = provider(1, 600, move |_| {
        polls_seen.fetch_add(1, Ordering::SeqCst);
        if closed_seen.load(Ordering::SeqCst) {
            pending("access_denied")
        } else {
            pending("authorization_pending")
        }
    })
    .await;
    let home = Home::new(&fake.url);
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = home
        .command(&["login"])
        .stdout(Stdio::from(writer.try_clone().unwrap()))
        .stderr(Stdio::from(writer))
        .spawn()
        .unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(reader);
        let mut lines = Vec::new();
        for _ in 0..3 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            lines.push(line);
        }
        lines
        // `head` exits: the pipe's only reader is dropped here.
    });
    let lines = bounded("three lines", lines).await.unwrap();
    assert!(
        lines[1].starts_with("To log in, open this page"),
        "{lines:?}"
    );
    closed.store(true, Ordering::SeqCst);
    let status = bounded("the client", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(141), "{status:?}");
}

/// `command` with its stdout a pipe whose reader is already gone; stderr captured.
async fn with_stdout_closed(mut command: tokio::process::Command) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = command
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = bounded("the client", child.wait_with_output())
        .await
        .unwrap();
    (output.status.code(), stderr(&output))
}

#[tokio::test]
async fn completion_into_a_closed_pipe_ends_quietly_with_141() {
    let home = Home::new("http://127.0.0.1:9");
    let (code, text) = with_stdout_closed(home.command(&["completion", "bash"])).await;
    assert_eq!((code, text.as_str()), (Some(141), ""));
}

#[tokio::test]
async fn token_into_a_closed_pipe_ends_quietly_with_141() {
    let home = Home::new("http://127.0.0.1:9");
    let mut command = home.command(&["token"]);
    command.env("MRMAT_API_TOKEN", "a-token-for-ci");
    let (code, text) = with_stdout_closed(command).await;
    assert_eq!((code, text.as_str()), (Some(141), ""));
}

#[tokio::test]
async fn an_error_line_into_a_closed_stderr_ends_quietly_with_141() {
    let home = Home::new("http://127.0.0.1:9");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = bounded(
        "the client",
        home.command(&["--allow-insecure-http", "greeting"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(writer))
            .status(),
    )
    .await
    .unwrap();
    assert_eq!(status.code(), Some(141));
}
