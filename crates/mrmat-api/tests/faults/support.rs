//! What the fault tests share: skipping with a visible reason, servers on a given database,
//! and the assertions of a bounded 503.

use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use diesel::{Connection, QueryDsl, RunQueryDsl};
use mrmat_api::schema::resources;
use mrmat_api::settings::DatabaseUrl;
use mrmat_api_testkit::db::sqlite_connection;
use mrmat_api_testkit::{Backend, Oidc, TestApp};
use reqwest::Response;
use serde_json::Value;

/// The ids of every stored resource, read straight from the database.
pub fn stored_ids(url: &DatabaseUrl) -> BTreeSet<i64> {
    let ids: Vec<i64> = match url {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = sqlite_connection(path);
            resources::table
                .select(resources::id)
                .load(&mut conn)
                .unwrap()
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = diesel::pg::PgConnection::establish(url.expose()).unwrap();
            resources::table
                .select(resources::id)
                .load(&mut conn)
                .unwrap()
        }
    };
    ids.into_iter().collect()
}

/// The resource API.
pub const BASE: &str = "/api/resource/v1/";

/// The database bound the fault tests run with: short, so a test waits little.
pub const DB_TIMEOUT: Duration = Duration::from_secs(1);

/// How much later than the bound an answer may come: scheduling on a busy 2-core machine
/// running the whole suite. A hang would take far longer; the bound itself is measured on
/// a quiet machine in docs/RELIABILITY.md.
pub const SLACK: Duration = Duration::from_millis(3000);

/// Outside CI a missing capability skips the test, saying so; under CI it fails it.
pub fn skip_or_fail(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but this fault test cannot run: {reason}"
    );
    eprintln!("skipped: {reason}");
}

/// A server on `database` with the shared provider and the short database bound.
pub async fn spawn_on(database: DatabaseUrl) -> TestApp {
    let oidc = Oidc::shared().settings();
    TestApp::spawn_with(Backend::Sqlite, move |settings| {
        settings.database = database;
        settings.db_timeout = DB_TIMEOUT;
        settings.oidc = vec![oidc];
    })
    .await
}

/// Asserts a 503 problem with `Retry-After`, answered within the bound since `started`.
pub async fn assert_unavailable(response: Response, started: Instant) -> Value {
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503, "status");
    assert!(
        response.headers().contains_key("retry-after"),
        "Retry-After on a 503"
    );
    assert!(
        elapsed <= DB_TIMEOUT + SLACK,
        "answered after {elapsed:?}, beyond the bound of {DB_TIMEOUT:?}"
    );
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], 503);
    body
}

/// Polls `GET path` until it answers 200; how long that took.
pub async fn recovery_time(app: &TestApp, path: &str, token: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let response = app
            .request(reqwest::Method::GET, path, Some(token))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if response.is_ok_and(|r| r.status() == 200) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} did not recover within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
