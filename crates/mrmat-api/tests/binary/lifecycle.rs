//! Start, answer, stop; migrations.

use mrmat_api_testkit::{Backend, TestDb};

use crate::process::{get, run, start_server};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

#[tokio::test]
async fn starts_on_a_random_port_answers_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &["--host", "127.0.0.1", "--port", "0"], &[]);
    assert_eq!(get(&server.url("/healthz/"), None).await.status(), 200);
    assert_eq!(server.stop_with(SIGTERM), Some(0));
}

#[tokio::test]
async fn exits_0_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &["--host", "127.0.0.1", "--port", "0"], &[]);
    assert_eq!(get(&server.url("/healthz/"), None).await.status(), 200);
    assert_eq!(server.stop_with(SIGINT), Some(0));
}

#[tokio::test]
async fn default_database_is_sqlite_in_the_created_instance_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &["--host", "127.0.0.1", "--port", "0"], &[]);
    assert!(dir.path().join("var/instance/mrmat-api.sqlite").exists());
    drop(server);
}

#[tokio::test]
async fn warns_when_running_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &["--host", "127.0.0.1", "--port", "0"], &[]);
    assert!(
        server
            .log()
            .contains("Running without any authentication/authorisation")
    );
}

fn migrate_twice(backend: Backend) {
    let db = TestDb::new(backend);
    let url = db.url_string();
    let first = run(db.dir.path(), &["migrate", "--db", &url], &[]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied 3 migration"));
    let second = run(db.dir.path(), &["migrate", "--db", &url], &[]);
    assert_eq!(second.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date"));
}

#[test]
fn migrate_twice_is_idempotent_on_sqlite() {
    migrate_twice(Backend::Sqlite);
}

#[test]
fn migrate_twice_is_idempotent_on_postgres() {
    if Backend::Postgres.available() {
        migrate_twice(Backend::Postgres);
    }
}

fn no_migrate_on_empty(backend: Backend) {
    let db = TestDb::new(backend);
    let url = db.url_string();
    let output = run(
        db.dir.path(),
        &["--no-migrate", "--db", &url, "--port", "0"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--no-migrate") && stderr.contains("mrmat-api migrate"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn no_migrate_on_an_empty_database_fails_with_a_clear_message_on_sqlite() {
    no_migrate_on_empty(Backend::Sqlite);
}

#[test]
fn no_migrate_on_an_empty_database_fails_with_a_clear_message_on_postgres() {
    if Backend::Postgres.available() {
        no_migrate_on_empty(Backend::Postgres);
    }
}

#[tokio::test]
async fn no_migrate_after_migrate_serves() {
    let db = TestDb::new(Backend::Sqlite);
    let url = db.url_string();
    assert!(
        run(db.dir.path(), &["migrate", "--db", &url], &[])
            .status
            .success()
    );
    let server = start_server(
        db.dir.path(),
        &[
            "--no-migrate",
            "--db",
            &url,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        &[],
    );
    assert_eq!(get(&server.url("/healthz/ready"), None).await.status(), 200);
}

#[test]
fn openapi_prints_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["openapi"], &[]);
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/resource/v1/{id}"].is_object());
}
