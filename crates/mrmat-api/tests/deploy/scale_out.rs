//! Scale-out: three server processes on one PostgreSQL database, migrated once by
//! `mrmat-api migrate` and serving with `--no-migrate`, behind nginx balancing round robin
//! over the shipped snippets, with the real test provider.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use mrmat_api_testkit::{Oidc, TestClient};
use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Cluster, migrate, unique_name};

const INSTANCES: usize = 3;

/// A short introspection cache ceiling, so revocation reaches every instance quickly.
const CACHE_TTL_SECONDS: u64 = 2;

/// The cluster of these tests: three instances, each with the short cache ceiling.
async fn start() -> Option<Cluster> {
    let ttl = CACHE_TTL_SECONDS.to_string();
    Cluster::start(INSTANCES, &["--oidc-cache-ttl", &ttl]).await
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.expect("JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_contract_holds_through_the_balancer() {
    let Some(cluster) = start().await else {
        return;
    };
    let oidc = Oidc::shared();
    let rw = oidc.token(TestClient::Rw).await;
    let rw2 = oidc.token(TestClient::Rw2).await;
    let ro = oidc.token(TestClient::Ro).await;
    let base = "/api/resource/v1/";
    let name = unique_name("contract");

    let anonymous = cluster
        .balanced(Method::GET, base, None)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key(WWW_AUTHENTICATE));
    let read_only = cluster
        .balanced(Method::POST, base, Some(&ro))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(read_only.status(), StatusCode::FORBIDDEN);

    let created = cluster
        .balanced(Method::POST, base, Some(&rw))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()[LOCATION].to_str().unwrap().to_owned();
    let resource = json(created).await;
    let id = resource["id"].as_i64().unwrap();
    let path = format!("{base}{id}");
    assert_eq!(location, cluster.nginx.url(&path));

    for _ in 0..INSTANCES {
        let read = cluster
            .balanced(Method::GET, &path, Some(&ro))
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::OK);
        assert_eq!(json(read).await["name"], name.as_str());
    }
    let list = json(
        cluster
            .balanced(Method::GET, base, Some(&ro))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id),
        "{list}"
    );
    let duplicate = cluster
        .balanced(Method::POST, base, Some(&rw))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let not_owner = cluster
        .balanced(Method::PUT, &path, Some(&rw2))
        .json(&json!({ "name": "taken over" }))
        .send()
        .await
        .unwrap();
    assert_eq!(not_owner.status(), StatusCode::FORBIDDEN);
    let renamed = cluster
        .balanced(Method::PUT, &path, Some(&rw))
        .json(&json!({ "name": format!("{name}-renamed") }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    let deleted = cluster
        .balanced(Method::DELETE, &path, Some(&rw))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for _ in 0..INSTANCES {
        let gone = cluster
            .balanced(Method::GET, &path, Some(&ro))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    }
    let again = cluster
        .balanced(Method::DELETE, &path, Some(&rw))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    // Every request above went through the balancer to the resource API, once: nginx
    // retried none on another instance.
    let sent = 15;
    let served = cluster.resource_requests(&[]).await;
    let introspections = cluster.introspections().await;
    eprintln!(
        "contract through the balancer: {sent} requests; per instance (from /metrics) \
         {served:?} requests, {introspections:?} introspections"
    );
    assert_eq!(served.iter().sum::<u64>(), sent, "{served:?}");
    assert!(
        served.iter().all(|&n| n > 0),
        "round robin left an instance idle: {served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_created_on_one_instance_is_read_renamed_and_deleted_on_the_others() {
    let Some(cluster) = start().await else {
        return;
    };
    let rw = Oidc::shared().token(TestClient::Rw).await;
    let name = unique_name("roaming");

    let created = cluster
        .direct(0, Method::POST, "/api/resource/v1/", Some(&rw))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = json(created).await["id"].as_i64().unwrap();
    let path = format!("/api/resource/v1/{id}");

    for i in 1..INSTANCES {
        let read = cluster
            .direct(i, Method::GET, &path, Some(&rw))
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::OK, "read on instance {i}");
    }
    let renamed_to = format!("{name}-renamed");
    let renamed = cluster
        .direct(1, Method::PUT, &path, Some(&rw))
        .json(&json!({ "name": renamed_to }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    for i in [0, 2] {
        let read = json(
            cluster
                .direct(i, Method::GET, &path, Some(&rw))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(read["name"], renamed_to.as_str(), "name on instance {i}");
    }
    let through = json(
        cluster
            .balanced(Method::GET, &path, Some(&rw))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(through["name"], renamed_to.as_str());

    let deleted = cluster
        .direct(2, Method::DELETE, &path, Some(&rw))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for i in 0..INSTANCES {
        let gone = cluster
            .direct(i, Method::GET, &path, Some(&rw))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND, "instance {i}");
    }
    let gone = cluster
        .balanced(Method::GET, &path, Some(&rw))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_creates_of_one_name_through_the_balancer_give_one_201() {
    let Some(cluster) = start().await else {
        return;
    };
    let oidc = Oidc::shared();
    let rw = oidc.token(TestClient::Rw).await;
    let name = unique_name("race");
    let introspections_before = match &oidc.idp {
        Some(idp) => Some(idp.stats().await.introspections),
        None => None,
    };
    let started = Instant::now();
    let statuses = join_all((0..20).map(|_| {
        cluster
            .balanced(Method::POST, "/api/resource/v1/", Some(&rw))
            .json(&json!({ "name": name }))
            .send()
    }))
    .await
    .into_iter()
    .map(|r| r.unwrap().status())
    .collect::<Vec<_>>();
    let elapsed = started.elapsed();

    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    let posts = cluster.resource_requests(&[r#"method="POST""#]).await;
    let introspected = cluster.introspections().await;
    let introspections = match (&oidc.idp, introspections_before) {
        (Some(idp), Some(before)) => format!(
            "{} (provider-wide; other tests share it)",
            idp.stats().await.introspections - before
        ),
        _ => "n/a (external provider)".to_owned(),
    };
    eprintln!(
        "20 concurrent creates through the balancer in {elapsed:?}: {created}x201 {conflicts}x409; \
         per instance (from /metrics) {posts:?} POSTs, {introspected:?} introspections; \
         at the provider {introspections}"
    );
    assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
    assert_eq!(posts.iter().sum::<u64>(), 20, "{posts:?}");
    assert!(
        posts.iter().filter(|&&n| n > 0).count() > 1,
        "the creates did not spread over instances: {posts:?}"
    );
    // Each instance has a cache of its own and makes one call for a token however many
    // requests carry it at once; an instance that served none made none.
    for (i, (&posted, &calls)) in posts.iter().zip(&introspected).enumerate() {
        assert_eq!(
            calls,
            u64::from(posted > 0),
            "instance {i}: {posts:?} {introspected:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_migrate_while_instances_serve_changes_nothing() {
    let Some(cluster) = start().await else {
        return;
    };
    let second = migrate(cluster.dir.path(), &cluster.db);
    assert!(second.contains("database is up to date"), "{second}");
    assert!(!second.contains("applied"), "{second}");
    for (i, instance) in cluster.instances.iter().enumerate() {
        let ready = cluster
            .http
            .get(instance.url("/healthz/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "instance {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_working_on_every_instance_within_the_cache_ceiling() {
    let Some(cluster) = start().await else {
        return;
    };
    let oidc = Oidc::shared();
    let token = oidc.token(TestClient::Rw).await;
    let path = "/api/resource/v1/";
    // Every instance caches the token as active.
    for i in 0..INSTANCES {
        let ok = cluster
            .direct(i, Method::GET, path, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(
            ok.status(),
            StatusCode::OK,
            "instance {i} before revocation"
        );
    }
    oidc.revoke(TestClient::Rw, &token).await;
    let revoked_at = Instant::now();

    let ceiling = Duration::from_secs(CACHE_TTL_SECONDS);
    // Slack for the poll interval and a loaded machine; far below any real cache ceiling.
    let limit = ceiling + Duration::from_secs(3);
    let mut refused_after = Vec::new();
    for i in 0..INSTANCES {
        loop {
            let status = cluster
                .direct(i, Method::GET, path, Some(&token))
                .send()
                .await
                .unwrap()
                .status();
            if status == StatusCode::UNAUTHORIZED {
                refused_after.push(revoked_at.elapsed());
                break;
            }
            assert_eq!(status, StatusCode::OK, "instance {i} while the cache holds");
            assert!(
                revoked_at.elapsed() < limit,
                "instance {i} still accepts the revoked token after {:?}",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let through = cluster
        .balanced(Method::GET, path, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), StatusCode::UNAUTHORIZED);
    eprintln!(
        "revoked token refused by instance 0, 1, 2 after {refused_after:?} (cache ceiling \
         {ceiling:?}); introspections per instance (from /metrics) {:?}",
        cluster.introspections().await
    );
}
