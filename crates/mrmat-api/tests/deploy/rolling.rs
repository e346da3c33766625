//! A rolling restart under load: three instances on one PostgreSQL database behind nginx
//! over the shipped snippets, each stopped with SIGTERM and started again on its port in
//! turn, as a platform replaces its replicas, while clients send a steady mix of reads
//! and writes through the balancer. Not one request may fail, and every create that was
//! acknowledged must be in the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use mrmat_api_testkit::server_process::Listen;
use mrmat_api_testkit::{Oidc, TestClient};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Cluster, sum_of, unique_name, with_token};

const INSTANCES: usize = 3;

/// The drain of each instance (`--shutdown-delay`): the default, 5 s, one more than the
/// shipped upstream `keepalive_timeout` (4 s). nginx does not read readiness; what makes
/// the restart safe is that by the end of the drain nginx holds no idle connection to the
/// instance (each used during the drain was closed by `Connection: close`, each idle since
/// the signal was closed by nginx itself), and that the server then lets no new connection
/// complete before it closes its listener (see `startup::shut_the_door`): nginx sees a
/// refused connection, which it retries elsewhere even for a POST.
const DELAY: Duration = Duration::from_secs(5);

/// The server's own bound on the requests in flight after the drain
/// (`startup::SHUTDOWN_TIMEOUT`).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack on every bound, for a loaded machine.
const SLACK: Duration = Duration::from_secs(5);

/// Clients sending requests at once, each one after the other.
const CLIENTS: usize = 4;

/// Longest any one request may take; longer counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Load before the first restart and after the last.
const STEADY: Duration = Duration::from_secs(1);

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    /// Answered as expected, per kind of request.
    served: [u64; KINDS.len()],
    /// Every request that was not: what, when, and what came back.
    failures: Vec<String>,
    /// The resources this client created (id, name as last renamed).
    created: Vec<(i64, String)>,
}

/// The mix each client cycles through.
const KINDS: [&str; 4] = [
    "GET greeting v3",
    "GET resource list",
    "POST resource",
    "PUT resource",
];

/// What the clients share.
struct Load {
    http: reqwest::Client,
    base: String,
    rw: String,
    ro: String,
    /// Names this run creates start with this.
    prefix: String,
    started: Instant,
    stop: AtomicBool,
}

impl Load {
    /// One request; `Ok(body)` when it got `expected`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
        expected: StatusCode,
    ) -> Result<serde_json::Value, String> {
        let mut request = with_token(
            self.http
                .request(method.clone(), format!("{}{path}", self.base)),
            Some(token),
        )
        .timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let at = self.started.elapsed();
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await;
                match text {
                    Ok(text) if status == expected => {
                        Ok(serde_json::from_str(&text).unwrap_or_default())
                    }
                    Ok(text) => Err(format!("{status} {}", text.trim())),
                    Err(e) => Err(format!("{status}, body cut: {e:?}")),
                }
            }
            Err(e) => Err(format!("transport error: {e:?}")),
        };
        outcome.map_err(|e| format!("{method} {path} sent at {at:.3?}: {e}"))
    }

    /// Cycles through [`KINDS`] until told to stop.
    async fn client(self: Arc<Self>, n: usize) -> Tally {
        let mut tally = Tally::default();
        let mut k = 0_usize;
        while !self.stop.load(Ordering::Relaxed) {
            let kind = k % KINDS.len();
            k += 1;
            let outcome = match kind {
                0 => self
                    .send(
                        Method::GET,
                        "/api/greeting/v3/",
                        &self.rw,
                        None,
                        StatusCode::OK,
                    )
                    .await
                    .map(drop),
                1 => self
                    .send(
                        Method::GET,
                        "/api/resource/v1/?limit=5",
                        &self.ro,
                        None,
                        StatusCode::OK,
                    )
                    .await
                    .map(drop),
                2 => {
                    let name = format!("{}-{n}-{k}", self.prefix);
                    let body = json!({ "name": name });
                    self.send(
                        Method::POST,
                        "/api/resource/v1/",
                        &self.rw,
                        Some(body),
                        StatusCode::CREATED,
                    )
                    .await
                    .map(|created| {
                        let id = created["id"]
                            .as_i64()
                            .expect("the id of a created resource");
                        tally.created.push((id, name));
                    })
                }
                _ => match tally.created.last_mut() {
                    // Renames this client's newest resource; a second rename of the same
                    // one keeps its name, as a repeated PUT would.
                    Some((id, name)) => {
                        let renamed = format!("{}-renamed", name.trim_end_matches("-renamed"));
                        let path = format!("/api/resource/v1/{id}");
                        let body = json!({ "name": renamed });
                        self.send(Method::PUT, &path, &self.rw, Some(body), StatusCode::OK)
                            .await
                            .map(|_| *name = renamed)
                    }
                    None => continue,
                },
            };
            match outcome {
                Ok(()) => tally.served[kind] += 1,
                Err(failure) => tally.failures.push(failure),
            }
        }
        tally
    }
}

/// What one restart took.
#[derive(Debug)]
struct Restart {
    /// SIGTERM to exit.
    exited: Duration,
    /// Exit to the new process ready.
    ready: Duration,
    /// Ready to the balancer sending it requests again.
    serving: Duration,
}

/// Replaces instance `i` as a platform replaces a replica: SIGTERM, a wait for the exit
/// within the drain plus the server's shutdown bound, a new process on its port (the
/// balancer's configuration stays as it is), a wait until it is ready, and a wait until
/// the balancer sends it requests again, so that two are never out at once.
async fn restart(cluster: &mut Cluster, i: usize) -> Restart {
    let port = cluster.instances[i].port;
    let signalled = Instant::now();
    cluster.instances[i].signal("TERM");
    let bound = DELAY + SHUTDOWN_TIMEOUT + SLACK;
    let code = cluster.instances[i].wait_exit(bound).await;
    assert_eq!(
        code,
        Some(Some(0)),
        "instance {i} did not exit cleanly within {bound:?} of SIGTERM:\n{}",
        cluster.instances[i].log()
    );
    let exited = signalled.elapsed();

    let starting = Instant::now();
    cluster.instances[i] = cluster.serve_again(i, Listen::LoopbackPort(port)).await;
    loop {
        let ready = cluster
            .direct(i, Method::GET, "/healthz/ready", None)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map(|r| r.status());
        if matches!(ready, Ok(StatusCode::OK)) {
            break;
        }
        assert!(
            starting.elapsed() < SLACK * 2,
            "instance {i} not ready {:?} after its start: {ready:?}\n{}",
            starting.elapsed(),
            cluster.instances[i].log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = starting.elapsed();

    let back = Instant::now();
    loop {
        let metrics = cluster.metrics(i).await;
        if sum_of(
            &metrics,
            "mrmat_api_http_requests_total",
            &[r#"route="/api/resource/v1"#],
        ) > 0
        {
            break;
        }
        assert!(
            back.elapsed() < SLACK * 2,
            "the balancer sent instance {i} nothing for {:?} after it was ready",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Restart {
        exited,
        ready,
        serving: back.elapsed(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_steady_load_fails_no_request() {
    let delay = DELAY.as_secs().to_string();
    let Some(mut cluster) = Cluster::start(INSTANCES, &["--shutdown-delay", &delay]).await else {
        return;
    };
    let oidc = Oidc::shared();
    let load = Arc::new(Load {
        http: cluster.http.clone(),
        base: cluster.nginx.url(""),
        rw: oidc.token(TestClient::Rw).await,
        ro: oidc.token(TestClient::Ro).await,
        prefix: unique_name("rolling"),
        started: Instant::now(),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(Arc::clone(&load).client(n)))
        .collect();

    tokio::time::sleep(STEADY).await;
    let mut restarts = Vec::new();
    for i in 0..INSTANCES {
        restarts.push(restart(&mut cluster, i).await);
    }
    tokio::time::sleep(STEADY).await;
    load.stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for client in clients {
        let one = tokio::time::timeout(REQUEST_TIMEOUT + SLACK, client)
            .await
            .expect("a client still busy long after the stop")
            .unwrap();
        for (total, n) in tally.served.iter_mut().zip(one.served) {
            *total += n;
        }
        tally.failures.extend(one.failures);
        tally.created.extend(one.created);
    }
    let duration = load.started.elapsed();

    // Every create that was acknowledged is there under its last name, read through the
    // balancer; and the database holds no create that was not acknowledged.
    for (id, name) in &tally.created {
        let read = cluster
            .balanced(
                Method::GET,
                &format!("/api/resource/v1/{id}"),
                Some(&load.ro),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::OK, "resource {id}");
        let read: serde_json::Value = read.json().await.unwrap();
        assert_eq!(read["name"], name.as_str(), "resource {id}");
    }
    let mut conn = PgConnection::establish(&cluster.db.url_string()).unwrap();
    let in_database = diesel::sql_query(format!(
        "SELECT id FROM resources WHERE name LIKE '{}-%'",
        load.prefix
    ))
    .execute(&mut conn)
    .unwrap();

    // nginx lists every instance it tried for a request; two mean a retry elsewhere.
    let log = cluster.nginx.access_log();
    let retried: Vec<&str> = log
        .lines()
        .filter(|l| l.split("upstream=").nth(1).is_some_and(|u| u.contains(',')))
        .collect();
    let served: u64 = tally.served.iter().sum();
    let failed = tally.failures.len();
    let per_kind: Vec<String> = KINDS
        .iter()
        .zip(tally.served)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    eprintln!(
        "rolling restart: {} requests, {failed} failed, {served} served ({}) in {duration:.1?} \
         by {CLIENTS} clients; {INSTANCES} instances restarted in turn with --shutdown-delay {} \
         (SIGTERM to exit, exit to ready, ready to serving again): \
         {:.2?}; {} retried by nginx on another instance; {} creates acknowledged, \
         {in_database} in the database",
        served + failed as u64,
        per_kind.join(", "),
        DELAY.as_secs(),
        restarts
            .iter()
            .map(|r| (r.exited, r.ready, r.serving))
            .collect::<Vec<_>>(),
        retried.len(),
        tally.created.len(),
    );
    assert!(
        tally.failures.is_empty(),
        "{failed} failed requests:\n{}\nnginx's error log:\n{}",
        tally.failures.join("\n"),
        cluster.nginx.error_log()
    );
    assert_eq!(in_database, tally.created.len());
    assert!(
        tally.served.iter().all(|&n| n > 0),
        "some kind of request was never sent: {per_kind:?}"
    );
}
