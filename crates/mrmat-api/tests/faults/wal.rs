//! SQLite's write-ahead log stays small while the server serves a create-only load.

use mrmat_api::settings::DatabaseUrl;
use mrmat_api_testkit::{Oidc, TestClient};
use serde_json::json;

use crate::support::{BASE, spawn_on};

/// Creates made; unchecked, about three log frames each would grow the log past 20 MiB.
const CREATES: usize = 2_000;

/// The bound: the auto-checkpoint's 1000 pages plus the size limit of the log file.
const WAL_LIMIT: u64 = 6 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_stays_bounded_under_a_create_only_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.sqlite");
    let app = spawn_on(DatabaseUrl::Sqlite(path.clone())).await;
    let token = Oidc::shared().token(TestClient::Rw).await;
    let wal = dir.path().join("wal.sqlite-wal");
    let mut largest = 0;
    for n in 0..CREATES {
        let response = app
            .post_json(
                BASE,
                Some(&token),
                &json!({ "name": format!("resource {n:05} {}", "w".repeat(100)) }),
            )
            .await;
        assert_eq!(response.status(), 201);
        if n % 100 == 0 {
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
    }
    largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    eprintln!("largest -wal file over {CREATES} creates: {largest} bytes");
    assert!(
        largest <= WAL_LIMIT,
        "the -wal file grew to {largest} bytes over {CREATES} creates"
    );
}
