//! PostgreSQL going away: refused, blackholed (through a cuttable proxy in front of the
//! shared server), a backend terminated mid-query and the server shut down with queries in
//! flight (on a private server). Each is 503 + Retry-After within the bound, and the server
//! recovers without a restart.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};
use mrmat_api::Settings;
use mrmat_api::settings::DatabaseUrl;
use mrmat_api_testkit::pg_server::{self, PgServer};
use mrmat_api_testkit::proxy::{CuttableProxy, Link};
use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient, TestDb};
use mrmat_api_types::secret::Secret;
use serde_json::json;
use url::Url;

use crate::process::start_server;
use crate::support::{BASE, assert_unavailable, recovery_time, skip_or_fail, spawn_on};

/// A fresh database on the shared server and a proxy in front of it; `None` when
/// PostgreSQL tests are not configured here.
fn proxied_database() -> Option<(TestDb, CuttableProxy, String)> {
    if !Backend::Postgres.available() {
        eprintln!("skipped: MRMAT_TEST_POSTGRES_URL is not set");
        return None;
    }
    let db = TestDb::new(Backend::Postgres);
    let mut url = Url::parse(&db.url_string()).unwrap();
    let upstream = url.socket_addrs(|| Some(5432)).unwrap()[0];
    let proxy = CuttableProxy::start(upstream);
    url.set_port(Some(proxy.port)).unwrap();
    Some((db, proxy, url.to_string()))
}

async fn cut_and_restore(link: Link) {
    let Some((_db, proxy, url)) = proxied_database() else {
        return;
    };
    let app = Arc::new(spawn_on(DatabaseUrl::Postgres(Secret::new(url))).await);
    let token = Oidc::shared().token(TestClient::Rw).await;
    app.create_resource(&token, "before the cut").await;

    proxy.set(link);
    // More requests at once than the pool has connections: none waits past the bound.
    let requests: Vec<_> = (0..12)
        .map(|n| {
            let app = app.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let response = if n % 2 == 0 {
                    app.get(BASE, Some(&token)).await
                } else {
                    app.post_json(
                        BASE,
                        Some(&token),
                        &json!({ "name": format!("during {n}") }),
                    )
                    .await
                };
                (response, started)
            })
        })
        .collect();
    for request in requests {
        let (response, started) = request.await.unwrap();
        assert_unavailable(response, started).await;
    }
    let started = Instant::now();
    let ready = app.get("/healthz/ready", None).await;
    let elapsed = started.elapsed();
    assert_eq!(ready.status(), 503);
    assert!(
        elapsed <= crate::support::DB_TIMEOUT + crate::support::SLACK,
        "readiness took {elapsed:?}"
    );
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "UNREACHABLE");

    proxy.set(Link::Pass);
    let recovered = recovery_time(&app, BASE, &token, Duration::from_secs(15)).await;
    eprintln!("{link:?}: recovered {recovered:?} after the link came back");
    app.create_resource(&token, "after the cut").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_postgresql_is_503_within_the_bound_and_recovers_without_restart() {
    cut_and_restore(Link::Refuse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_postgresql_is_503_within_the_bound_and_recovers_without_restart() {
    cut_and_restore(Link::Blackhole).await;
}

/// A private server with a database, a server on it, a token, and one resource (so the
/// owner exists and a create only has to insert the resource).
async fn private_setup() -> Option<(PgServer, String, Arc<TestApp>, String)> {
    if !pg_server::available() {
        skip_or_fail("PostgreSQL server programs are not installed");
        return None;
    }
    let pg = PgServer::start();
    let name = pg.create_database();
    let app = spawn_on(DatabaseUrl::Postgres(Secret::new(pg.url(&name)))).await;
    let token = Oidc::shared().token(TestClient::Rw).await;
    app.create_resource(&token, "first").await;
    Some((pg, name, Arc::new(app), token))
}

/// Holds `resources` locked in another session, so creates wait there: in flight.
fn lock_resources(pg: &PgServer, name: &str) -> diesel::pg::PgConnection {
    let mut conn = diesel::pg::PgConnection::establish(&pg.url(name)).unwrap();
    conn.batch_execute("BEGIN; LOCK TABLE resources IN ACCESS EXCLUSIVE MODE;")
        .unwrap();
    conn
}

/// Creates that will wait on the lock.
fn creates_in_flight(
    app: &Arc<TestApp>,
    token: &str,
    count: usize,
) -> Vec<tokio::task::JoinHandle<reqwest::Response>> {
    (0..count)
        .map(|n| {
            let app = app.clone();
            let token = token.to_owned();
            tokio::spawn(async move {
                app.post_json(
                    BASE,
                    Some(&token),
                    &json!({ "name": format!("in flight {n}") }),
                )
                .await
            })
        })
        .collect()
}

/// Waits until `count` sessions of `name` wait on a lock.
async fn wait_for_lock_waiters(pg: &PgServer, name: &str, count: i64) {
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let started = Instant::now();
    loop {
        let mut conn = diesel::pg::PgConnection::establish(&pg.admin_url()).unwrap();
        let waiting: Waiting = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{name}' AND wait_event_type = 'Lock'"
        ))
        .get_result(&mut conn)
        .unwrap();
        if waiting.n >= count {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the creates never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_backend_terminated_mid_query_is_503() {
    let Some((pg, name, app, token)) = private_setup().await else {
        return;
    };
    let mut locker = lock_resources(&pg, &name);
    let creates = creates_in_flight(&app, &token, 1);
    wait_for_lock_waiters(&pg, &name, 1).await;
    let started = Instant::now();
    pg.execute(
        "postgres",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND wait_event_type = 'Lock'"
        ),
    );
    for create in creates {
        assert_unavailable(create.await.unwrap(), started).await;
    }
    locker.batch_execute("ROLLBACK").unwrap();
    recovery_time(&app, BASE, &token, Duration::from_secs(10)).await;
    app.create_resource(&token, "after").await;
}

async fn shutdown_with_queries_in_flight(mode: &str) {
    let Some((pg, name, app, token)) = private_setup().await else {
        return;
    };
    let _locker = lock_resources(&pg, &name);
    let creates = creates_in_flight(&app, &token, 3);
    wait_for_lock_waiters(&pg, &name, 3).await;
    let started = Instant::now();
    pg.stop(mode);
    // The shutdown ends the lock holder's session too; a create it released may still
    // commit before its own session ends. Such a create is answered 201 and must then be
    // stored; every other one is 503. None is a 500, none waits past the bound.
    let mut acknowledged = Vec::new();
    for create in creates {
        let response = create.await.unwrap();
        if response.status() == 201 {
            let body: serde_json::Value = response.json().await.unwrap();
            acknowledged.push(body["id"].as_i64().unwrap());
        } else {
            assert_unavailable(response, started).await;
        }
    }
    let started = Instant::now();
    assert_unavailable(app.get(BASE, Some(&token)).await, started).await;
    pg.start_again();
    let recovered = recovery_time(&app, BASE, &token, Duration::from_secs(15)).await;
    eprintln!(
        "shutdown -m {mode}: {} of 3 in flight committed first; recovered {recovered:?} after the restart",
        acknowledged.len()
    );
    for id in acknowledged {
        let stored = app.get(&format!("{BASE}{id}"), Some(&token)).await;
        assert_eq!(stored.status(), 200, "acknowledged create {id} is stored");
    }
    app.create_resource(&token, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_shut_down_fast_with_queries_in_flight_is_503_and_recovers() {
    shutdown_with_queries_in_flight("fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_shut_down_immediately_with_queries_in_flight_is_503_and_recovers() {
    shutdown_with_queries_in_flight("immediate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_logs_one_warning_and_one_recovery_line() {
    let Some((db, proxy, url)) = proxied_database() else {
        return;
    };
    let oidc = Oidc::shared();
    let (client_id, secret) = oidc.server_credentials();
    let server = start_server(
        db.dir.path(),
        &[
            "--db",
            &url,
            "--db-timeout",
            "1",
            "--oidc-issuer",
            &oidc.issuer,
            "--oidc-client-id",
            client_id,
        ],
        &[
            ("MRMAT_API_OIDC_CLIENT_SECRET", secret),
            ("RUST_LOG", "info"),
        ],
    );
    let token = oidc.token(TestClient::Rw).await;
    let http = reqwest::Client::new();
    let list = server.url(BASE);
    assert_eq!(
        http.get(&list)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    proxy.set(Link::Refuse);
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(3) {
        let status = http
            .get(&list)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 503);
    }
    proxy.set(Link::Pass);
    let started = Instant::now();
    while http
        .get(&list)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(started.elapsed() < Duration::from_secs(15), "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log_when(Duration::from_secs(5), |log| {
        log.contains("the database is available again")
    });
    let count = |needle: &str| log.lines().filter(|line| line.contains(needle)).count();
    assert_eq!(count("the database is unavailable"), 1, "{log}");
    assert_eq!(count("the database is available again"), 1, "{log}");
    assert_eq!(count(" ERROR "), 0, "{log}");
}

/// Set in the child processes of the exit test: the database they connect to.
const EXITING_CHILD_URL: &str = "MRMAT_TEST_EXITING_CHILD_URL";

/// Runs of the exit test: a process crashed in about one exit in four before the fix.
const EXIT_RUNS: usize = 20;

/// A process whose threads are still opening PostgreSQL connections (over TLS, which libpq
/// prefers) when it exits ends with status 0. Were OpenSSL's exit handler registered, it
/// would free OpenSSL's state under those threads and the process would die of a signal
/// after all its work was done, as a test process once did in CI. The child processes are
/// this test binary run again with [`EXITING_CHILD_URL`] set.
#[test]
fn a_process_exiting_while_connections_open_ends_with_status_0() {
    if let Ok(url) = std::env::var(EXITING_CHILD_URL) {
        exit_while_connecting(&url);
        return;
    }
    if !Backend::Postgres.available() {
        eprintln!("skipped: MRMAT_TEST_POSTGRES_URL is not set");
        return;
    }
    let db = TestDb::new(Backend::Postgres);
    let exe = std::env::current_exe().unwrap();
    let test = "postgres::a_process_exiting_while_connections_open_ends_with_status_0";
    for run in 1..=EXIT_RUNS {
        let output = mrmat_api_testkit::process::output(
            Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(EXITING_CHILD_URL, db.url_string()),
            Duration::from_secs(60),
        );
        assert!(
            output.status.success(),
            "run {run} of {EXIT_RUNS} ended: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The child: the library opens the first connection (as the server's start-up does), then
/// threads standing in for the pool's open connections while the process exits.
fn exit_while_connecting(url: &str) {
    let settings = Settings::with_database(DatabaseUrl::Postgres(Secret::new(url.to_owned())));
    mrmat_api::migrate(&settings).expect("migrate through the library");
    for _ in 0..4 {
        let url = url.to_owned();
        std::thread::spawn(move || {
            loop {
                let _ = diesel::pg::PgConnection::establish(&url);
            }
        });
    }
    std::thread::sleep(Duration::from_millis(30));
}
