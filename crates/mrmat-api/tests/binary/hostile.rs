//! What a hostile client, proxy or file name can do to the real binary (issue 19): forge
//! or colour log lines and `doctor` output, and read the database through its file modes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mrmat_api_testkit::server_process::{self, AccessLine, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::run;

/// `mrmat-api ARGS` in `dir`, under `umask` (set in a shell that then becomes the server).
fn under_umask(dir: &Path, umask: &str, args: &[&str]) -> Command {
    let mut command = server_process::command("/bin/sh", dir);
    command
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_mrmat-api"))
        .args(args);
    command
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn database_files(instance: &Path) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| instance.join(format!("mrmat-api.sqlite{suffix}")))
        .collect()
}

#[test]
fn the_instance_directory_and_database_files_are_private_whatever_the_umask() {
    for umask in ["022", "000"] {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(&mut under_umask(
            dir.path(),
            umask,
            &["--host", "127.0.0.1", "--port", "0"],
        ));
        let instance = dir.path().join("var/instance");
        assert_eq!(mode(&instance), 0o700, "umask {umask}: instance directory");
        // The log and shared-memory files live only while a connection is open, and the
        // pool may have closed its last one by now: each file that exists is checked.
        let files: Vec<_> = database_files(&instance)
            .into_iter()
            .filter(|file| file.exists())
            .collect();
        assert!(!files.is_empty(), "umask {umask}: no database file");
        for file in files {
            assert_eq!(mode(&file), 0o600, "umask {umask}: {}", file.display());
        }
        drop(server);
    }
}

#[test]
fn an_instance_left_readable_by_others_is_made_private_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let instance = dir.path().join("var/instance");
    let migrated = run(dir.path(), &["migrate"], &[]);
    assert_eq!(migrated.status.code(), Some(0));
    // As an earlier release (or a copy) left them: readable by everyone.
    std::fs::set_permissions(&instance, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in database_files(&instance) {
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let server = ServerProcess::start(&mut under_umask(
        dir.path(),
        "022",
        &["--host", "127.0.0.1", "--port", "0"],
    ));
    assert_eq!(mode(&instance), 0o700);
    // As above: the files a closed pool has removed are not there to check.
    for file in database_files(&instance).into_iter().filter(|f| f.exists()) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    drop(server);
}

/// A name of a config file that holds a forged report line and terminal escapes.
const FORGED: &str =
    "x\nok    forged        all good\u{1b}[2J\u{1b}]8;;http://evil/\u{7}\u{202e}.toml";

fn assert_no_forgery(output: &str) {
    assert!(
        !output.lines().any(|line| line.starts_with("ok    forged")),
        "a forged line:\n{output}"
    );
    for c in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!output.contains(c), "{c:?} reached the terminal:\n{output}");
    }
    assert!(output.contains("\\u{a}ok"), "escaped visibly:\n{output}");
    assert!(output.contains("\\u{202e}"), "escaped visibly:\n{output}");
}

#[test]
fn doctor_output_cannot_be_forged_or_coloured_by_outside_text() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["text", "json"] {
        let output = run(
            dir.path(),
            &["doctor", "--output", format, "--config", FORGED],
            &[],
        );
        assert_ne!(output.status.code(), Some(0));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stdout = match format {
            // JSON escapes a newline itself: look at the text it stands for.
            "json" => {
                serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["checks"][0]["detail"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            _ => stdout.into_owned(),
        };
        assert_no_forgery(&stdout);
    }
}

#[test]
fn a_start_up_error_cannot_forge_a_line_or_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["--config", FORGED], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert_no_forgery(&String::from_utf8_lossy(&output.stderr));
}

/// Sends `head` byte for byte; the answer's status.
async fn raw(port: u16, head: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_access_log_parses_the_same_whatever_a_client_or_proxy_sends() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        crate::process::command(dir.path())
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--trusted-proxies", "127.0.0.1"]),
    );
    // A client name a trusted proxy passes on, with spaces and quotes that would shift
    // every field after it, and a path with a quote.
    let forged_client = "1.2.3.4 \"GET /admin\" 200 0.1ms request_id=forged x=\"";
    let head = format!(
        "GET /api/greeting/v1/ HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {forged_client}\r\nX-Request-Id: one\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw(server.port, head.as_bytes()).await, "200");
    let quoted =
        b"GET /x\"y HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: two\r\nConnection: close\r\n\r\n";
    let status = raw(server.port, quoted).await;
    let log = server.log_when(Duration::from_secs(5), |log| {
        log.contains("request_id=one") && (status != "404" || log.contains("request_id=two"))
    });
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("mrmat_api::access]"))
        .collect();
    let one = lines
        .iter()
        .find(|line| line.contains("request_id=one"))
        .unwrap_or_else(|| panic!("no access line:\n{log}"));
    let parsed = AccessLine::parse(one).unwrap();
    assert_eq!(parsed.method, "GET");
    assert_eq!(parsed.path, "/api/greeting/v1/");
    assert_eq!(parsed.status, 200);
    assert_eq!(parsed.request_id, "one");
    assert!(!parsed.client.contains(' '), "{}", parsed.client);
    assert!(!log.contains("request_id=forged x"), "{log}");
    if status == "404" {
        let two = lines
            .iter()
            .find(|line| line.contains("request_id=two"))
            .unwrap();
        let parsed = AccessLine::parse(two).unwrap();
        assert_eq!(parsed.path, "/x\\u{22}y");
        assert_eq!(parsed.status, 404);
    }
}

#[tokio::test]
async fn a_refused_requests_access_line_names_its_path_however_long() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(crate::process::command(dir.path()).args([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]));
    // Refused before routing (not canonical), so the line is written from the request
    // context's own copy of the path: one short, one past the copy's room on the stack.
    let long = format!("/api/resource/v1/{}%31", "a".repeat(100));
    let requests = [("short", "/api/resource/v1/%31"), ("long", long.as_str())];
    for (id, path) in requests {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(raw(server.port, head.as_bytes()).await, "404", "{path}");
    }
    let log = server.log_when(Duration::from_secs(5), |log| {
        log.contains("request_id=short") && log.contains("request_id=long")
    });
    for (id, path) in requests {
        let line = log
            .lines()
            .find(|line| {
                line.contains("mrmat_api::access]") && line.contains(&format!("request_id={id}"))
            })
            .unwrap_or_else(|| panic!("no access line for {id}:\n{log}"));
        let parsed = AccessLine::parse(line).unwrap();
        assert_eq!((parsed.path.as_str(), parsed.status), (path, 404));
    }
}
