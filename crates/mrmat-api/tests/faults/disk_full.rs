//! A full disk: 507 with a detail that says storage is full, nothing half-written, and
//! every acknowledged create still there.

use std::collections::BTreeSet;

use mrmat_api::settings::DatabaseUrl;
use mrmat_api_testkit::pg_server::{self, PgServer};
use mrmat_api_testkit::small_fs::SmallFs;
use mrmat_api_testkit::{Oidc, TestApp, TestClient};
use mrmat_api_types::secret::Secret;
use serde_json::{Value, json};

use crate::support::{BASE, skip_or_fail, spawn_on, stored_ids};

/// Creates resources with long names until the server answers 507; the acknowledged ids
/// and the 507 body.
async fn fill(app: &TestApp, token: &str) -> (BTreeSet<i64>, Value) {
    let padding = "x".repeat(240);
    let mut acknowledged = BTreeSet::new();
    for n in 0..50_000 {
        let response = app
            .post_json(
                BASE,
                Some(token),
                &json!({ "name": format!("{n} {padding}") }),
            )
            .await;
        match response.status().as_u16() {
            201 => {
                let body: Value = response.json().await.unwrap();
                assert!(
                    acknowledged.insert(body["id"].as_i64().unwrap()),
                    "an id acknowledged twice: {body}"
                );
            }
            507 => return (acknowledged, response.json().await.unwrap()),
            other => panic!(
                "create {n}: unexpected {other}: {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }
    panic!("the disk never filled");
}

fn assert_storage_full(body: &Value) {
    assert_eq!(body["status"], 507);
    assert_eq!(body["title"], "Insufficient Storage");
    assert!(
        body["detail"].as_str().unwrap().contains("storage is full"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_disk_is_507_and_every_acknowledged_create_is_stored() {
    let fs = match SmallFs::mount(512, None) {
        Ok(fs) => fs,
        Err(reason) => return skip_or_fail(&reason),
    };
    let path = fs.join("full.sqlite");
    let app = spawn_on(DatabaseUrl::Sqlite(path.clone())).await;
    let token = Oidc::shared().token(TestClient::Rw).await;

    let (acknowledged, full) = fill(&app, &token).await;
    assert_storage_full(&full);
    assert!(!acknowledged.is_empty());

    // A rename while full fails the same way and changes nothing.
    let first = *acknowledged.first().unwrap();
    let before: Value = app
        .get(&format!("{BASE}{first}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let rename = app
        .put_json(
            &format!("{BASE}{first}"),
            Some(&token),
            &json!({"name": "y".repeat(250)}),
        )
        .await;
    assert_eq!(rename.status(), 507);
    let after: Value = app
        .get(&format!("{BASE}{first}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before, after);

    drop(app);
    let stored = stored_ids(&DatabaseUrl::Sqlite(path));
    assert_eq!(
        stored, acknowledged,
        "stored ids are exactly the acknowledged ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_postgresql_disk_is_507_and_every_acknowledged_create_is_stored() {
    if !pg_server::available() {
        return skip_or_fail("PostgreSQL server programs are not installed");
    }
    let fs = match SmallFs::mount(256, Some("postgres")) {
        Ok(fs) => fs,
        Err(reason) => return skip_or_fail(&reason),
    };
    let pg = PgServer::start();
    let name = pg.create_database();
    pg.execute(
        "postgres",
        &format!("CREATE TABLESPACE small LOCATION '{}'", fs.path().display()),
    );
    let app = spawn_on(DatabaseUrl::Postgres(Secret::new(pg.url(&name)))).await;
    // The resources, and only they, live on the small disk; the server's own files and
    // its write-ahead log do not, so the disk fills where a table grows.
    pg.execute(
        &name,
        "ALTER TABLE resources SET TABLESPACE small;
         ALTER INDEX resources_pkey SET TABLESPACE small;
         ALTER INDEX resources_owner_name_unique SET TABLESPACE small;",
    );
    let token = Oidc::shared().token(TestClient::Rw).await;

    let (acknowledged, full) = fill(&app, &token).await;
    assert_storage_full(&full);
    assert!(!acknowledged.is_empty());

    drop(app);
    let stored = stored_ids(&DatabaseUrl::Postgres(Secret::new(pg.url(&name))));
    assert_eq!(
        stored, acknowledged,
        "stored ids are exactly the acknowledged ones"
    );
}
