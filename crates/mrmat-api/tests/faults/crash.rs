//! The server killed with SIGKILL while four clients write: every create it acknowledged
//! is in the database afterwards, on both backends.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mrmat_api_testkit::{Backend, Oidc, TestClient, TestDb, backend_tests};
use serde_json::{Value, json};

use crate::process::start_server;
use crate::support::stored_ids;

const WRITERS: usize = 4;

async fn kill_during_writes(backend: Backend) {
    let oidc = Oidc::shared();
    let db = TestDb::new(backend);
    let (client_id, secret) = oidc.server_credentials();
    let url = db.url_string();
    let mut server = start_server(
        db.dir.path(),
        &[
            "--db",
            &url,
            "--oidc-issuer",
            &oidc.issuer,
            "--oidc-client-id",
            client_id,
        ],
        &[("MRMAT_API_OIDC_CLIENT_SECRET", secret)],
    );
    let token = oidc.token(TestClient::Rw).await;
    let base = server.url("/api/resource/v1/");
    let acknowledged = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let base = base.clone();
            let token = token.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                for n in 0.. {
                    let sent = http
                        .post(&base)
                        .bearer_auth(&token)
                        .json(&json!({ "name": format!("writer {writer} #{n}") }))
                        .send()
                        .await;
                    let Ok(response) = sent else { return };
                    if response.status() != 201 {
                        return;
                    }
                    let Ok(body) = response.json::<Value>().await else {
                        return;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .insert(body["id"].as_i64().unwrap());
                }
            })
        })
        .collect();
    // Let the writers get going, then pull the plug.
    let started = std::time::Instant::now();
    while acknowledged.lock().unwrap().len() < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no writes got through"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_9();
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(20), writer)
            .await
            .expect("a writer did not stop after the kill")
            .unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let stored = stored_ids(&db.url);
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    eprintln!(
        "{:?}: {} acknowledged, {} stored, {} missing",
        backend,
        acknowledged.len(),
        stored.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

backend_tests! {
    async fn every_acknowledged_create_survives_a_kill_9_of_the_server(backend) {
        kill_during_writes(backend).await;
    }
}
