//! SQLite's write lock held by another process: writes answer 503 + Retry-After within the
//! bound, reads go on meanwhile, and writes work again once the lock is released.

use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use mrmat_api::settings::DatabaseUrl;
use mrmat_api_testkit::{Oidc, TestClient};
use serde_json::json;

use crate::support::{BASE, DB_TIMEOUT, assert_unavailable, spawn_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_write_lock_held_elsewhere_is_503_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.sqlite");
    let app = spawn_on(DatabaseUrl::Sqlite(path.clone())).await;
    let token = Oidc::shared().token(TestClient::Rw).await;
    app.create_resource(&token, "before the lock").await;

    // Another process's writer: holds the write lock until it rolls back.
    let mut other = diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    other
        .batch_execute("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE;")
        .unwrap();

    let app = std::sync::Arc::new(app);
    let writes: Vec<_> = (0..16)
        .map(|n| {
            let app = app.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let response = app
                    .post_json(
                        BASE,
                        Some(&token),
                        &json!({ "name": format!("during {n}") }),
                    )
                    .await;
                (response, started)
            })
        })
        .collect();
    // Readers are not held up by the writers queueing for the lock.
    let started = Instant::now();
    let read = app.get(BASE, Some(&token)).await;
    assert_eq!(read.status(), 200);
    assert!(
        started.elapsed() < DB_TIMEOUT / 2,
        "a read waited {:?} behind the writers",
        started.elapsed()
    );
    for write in writes {
        let (response, started) = write.await.unwrap();
        // The writers queue: each is answered within the bound of its own arrival.
        assert_unavailable(response, started).await;
    }

    other.batch_execute("ROLLBACK;").unwrap();
    drop(other);
    let started = Instant::now();
    loop {
        let response = app
            .post_json(BASE, Some(&token), &json!({ "name": "after the lock" }))
            .await;
        if response.status() == 201 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writes did not recover"
        );
    }
}
