//! JWT access tokens (RFC 9068) checked by the server against the issuer's keys, end to
//! end: the test provider issues them for a resource (RFC 8707) and, through its test-only
//! hooks, rotates its key and mints tokens it would never issue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mrmat_api::settings::OidcSettings;
use mrmat_api_testkit::idp::{Idp, IdpOptions};
use mrmat_api_testkit::server_process::{self, Listen, ServerProcess};
use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient, backend_tests};
use mrmat_api_types::scope::Scope;
use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use crate::helpers::{assert_problem, challenge};

/// What the server is for: the resource its tokens are asked for, and its audience.
const API: &str = "https://api.test/";

/// Another server of the same provider.
const OTHER_API: &str = "https://other.test/";

const INVALID_TOKEN: &str = "Bearer realm=\"mrmat-api\", error=\"invalid_token\"";

/// A provider whose access tokens are JWTs for [`API`] unless another resource is asked.
fn jwt_provider(alg: &str) -> Oidc {
    Oidc::local(Idp::start_with(IdpOptions::default().jwt(API).alg(alg)))
}

fn idp(oidc: &Oidc) -> &Idp {
    oidc.idp.as_ref().expect("the local test provider")
}

/// The provider with the server's client (so opaque tokens are introspected) and [`API`]
/// as the audience (so JWTs are checked here).
fn settings(oidc: &Oidc) -> OidcSettings {
    OidcSettings {
        audiences: vec![API.to_owned()],
        ..oidc.settings()
    }
}

/// The provider without the server's client: its JWTs alone are accepted.
fn jwt_only_settings(oidc: &Oidc) -> OidcSettings {
    OidcSettings {
        timeout: Duration::from_secs(2),
        ..OidcSettings::jwt_only(
            Url::parse(&oidc.issuer).expect("issuer"),
            vec![API.to_owned()],
        )
    }
}

async fn app(backend: Backend, oidc: &Oidc) -> TestApp {
    TestApp::spawn_with_auth(backend, settings(oidc)).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a good access token of `oidc` for [`API`], to spoil one at a time.
fn good_claims(oidc: &Oidc) -> Value {
    json!({
        "iss": oidc.issuer,
        "aud": API,
        "sub": "mallory",
        "client_id": "mrmat-api-test-rw",
        "scope": Scope::SPACE_SEPARATED,
        "iat": now(),
        "exp": now() + 600,
        "jti": format!("jti-{}", now()),
    })
}

fn header_of(token: &str) -> jsonwebtoken::Header {
    jsonwebtoken::decode_header(token).expect("a JWT")
}

/// Asserts 401 with the `invalid_token` challenge.
async fn assert_invalid_token(response: reqwest::Response) {
    assert_eq!(challenge(&response), INVALID_TOKEN);
    assert_problem(response, 401).await;
}

// --- every algorithm, its scopes and its owner ---------------------------------------

/// Read-write, read-only and no-scope JWTs signed with `alg` give 200/201, 200/403 and
/// 403, and the writer owns what it creates.
async fn jwts_signed_with(backend: Backend, alg: &str) {
    let oidc = jwt_provider(alg);
    let app = app(backend, &oidc).await;
    let rw = oidc.token(TestClient::Rw).await;
    let ro = oidc.token(TestClient::Ro).await;
    let none = oidc.token(TestClient::NoScope).await;
    for token in [&rw, &ro, &none] {
        let header = header_of(token);
        assert_eq!(format!("{:?}", header.alg), alg);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    }
    assert_eq!(app.get("/api/resource/v1/", Some(&rw)).await.status(), 200);
    let created = app.create_resource(&rw, "by rw").await;
    assert_eq!(created["owner"]["client_id"], "mrmat-api-test-rw");
    assert_eq!(app.get("/api/resource/v1/", Some(&ro)).await.status(), 200);
    let response = app
        .post_json("/api/resource/v1/", Some(&ro), &json!({"name": "x"}))
        .await;
    assert!(challenge(&response).contains("insufficient_scope"));
    assert_problem(response, 403).await;
    let response = app.get("/api/resource/v1/", Some(&none)).await;
    assert!(challenge(&response).contains("insufficient_scope"));
    assert_problem(response, 403).await;
    assert_eq!(idp(&oidc).stats().await.introspections, 0);
}

backend_tests! {
    async fn rs256_jwt_access_tokens_are_accepted_with_their_scopes(backend) {
        jwts_signed_with(backend, "RS256").await;
    }

    async fn ps256_jwt_access_tokens_are_accepted_with_their_scopes(backend) {
        jwts_signed_with(backend, "PS256").await;
    }

    async fn es256_jwt_access_tokens_are_accepted_with_their_scopes(backend) {
        jwts_signed_with(backend, "ES256").await;
    }

    async fn eddsa_jwt_access_tokens_are_accepted_with_their_scopes(backend) {
        jwts_signed_with(backend, "EdDSA").await;
    }

    async fn a_users_jwt_makes_its_subject_the_owner(backend) {
        let oidc = jwt_provider("RS256");
        let app = app(backend, &oidc).await;
        let alice = idp(&oidc).user_tokens("mrmat-api-cli", "alice").await.access_token;
        assert_eq!(header_of(&alice).typ.as_deref(), Some("at+jwt"));
        let bob = idp(&oidc).user_tokens("mrmat-api-cli", "bob").await.access_token;
        let created = app.create_resource(&alice, "alice's").await;
        assert_eq!(created["owner"]["name"], "alice");
        let id = created["id"].as_i64().unwrap();
        let path = format!("/api/resource/v1/{id}");
        assert_problem(app.put_json(&path, Some(&bob), &json!({"name": "bob's"})).await, 403).await;
        assert_problem(app.delete(&path, Some(&bob)).await, 403).await;
        assert_eq!(app.put_json(&path, Some(&alice), &json!({"name": "still alice's"})).await.status(), 200);
    }

    async fn a_clients_jwt_and_its_opaque_token_are_one_owner(backend) {
        let oidc = Oidc::local(Idp::start_with(IdpOptions::default().jwt_when_asked()));
        // The provider's introspection names `mrmat-api` as the audience of opaque tokens.
        let mut settings = settings(&oidc);
        settings.audiences.push("mrmat-api".to_owned());
        let app = TestApp::spawn_with_auth(backend, settings).await;
        let opaque = oidc.token(TestClient::Rw).await;
        assert!(jsonwebtoken::decode_header(&opaque).is_err(), "an opaque token");
        let jwt = oidc.token_for(TestClient::Rw, Some(API)).await;
        let created = app.create_resource(&opaque, "the client's").await;
        let id = created["id"].as_i64().unwrap();
        let response = app
            .put_json(&format!("/api/resource/v1/{id}"), Some(&jwt), &json!({"name": "renamed"}))
            .await;
        assert_eq!(response.status(), 200, "the client's JWT is the client's owner");
    }

    async fn a_clients_jwt_cannot_own_what_a_namesake_users_jwt_created(backend) {
        let oidc = jwt_provider("RS256");
        let app = app(backend, &oidc).await;
        // The user's `sub` is the rw2 client's id; the provider's client-credentials JWTs
        // carry the client id as `sub` (RFC 9068 section 2.2).
        let user = idp(&oidc).user_tokens("mrmat-api-cli", "mrmat-api-test-rw2").await.access_token;
        let client = oidc.token(TestClient::Rw2).await;
        let by_user = app.create_resource(&user, "the user's").await;
        let by_client = app.create_resource(&client, "the client's").await;
        assert_ne!(by_user["owner"]["id"], by_client["owner"]["id"]);
        let id = by_user["id"].as_i64().unwrap();
        assert_problem(app.delete(&format!("/api/resource/v1/{id}"), Some(&client)).await, 403).await;
        let id = by_client["id"].as_i64().unwrap();
        assert_problem(app.delete(&format!("/api/resource/v1/{id}"), Some(&user)).await, 403).await;
    }
}

// --- what JWTs cost the provider -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_distinct_jwts_cost_no_introspection_and_one_key_fetch() {
    let oidc = jwt_provider("ES256");
    let app = app(Backend::Sqlite, &oidc).await;
    let mut tokens = Vec::new();
    for _ in 0..200 {
        tokens.push(oidc.token(TestClient::Ro).await);
    }
    let distinct: std::collections::HashSet<&String> = tokens.iter().collect();
    assert_eq!(distinct.len(), 200);
    idp(&oidc).reset_stats().await;
    for token in &tokens {
        assert_eq!(
            app.get("/api/resource/v1/", Some(token)).await.status(),
            200
        );
    }
    let stats = idp(&oidc).stats().await;
    assert_eq!(stats.introspections, 0, "introspections");
    assert_eq!(stats.jwks_requests, 1, "JWKS fetches");
}

// --- bound to this server --------------------------------------------------------------

async fn serve(dir: &std::path::Path, oidc: &Oidc, public_url: &str) -> ServerProcess {
    let (client_id, secret) = oidc.server_credentials();
    let mut command = server_process::command(env!("CARGO_BIN_EXE_mrmat-api"), dir);
    command.args([
        "--instance-path",
        &dir.display().to_string(),
        "--oidc-issuer",
        &oidc.issuer,
        "--oidc-client-id",
        client_id,
        "--oidc-client-secret",
        secret,
        "--public-url",
        public_url,
    ]);
    ServerProcess::serve(command, Listen::Loopback).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_for_one_server_is_refused_by_another_server_of_the_same_provider() {
    let oidc = Oidc::local(Idp::start_with(IdpOptions::default().jwt_when_asked()));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = serve(dir_a.path(), &oidc, API).await;
    let b = serve(dir_b.path(), &oidc, OTHER_API).await;
    let for_a = oidc.token_for(TestClient::Rw, Some(API)).await;
    assert_eq!(header_of(&for_a).typ.as_deref(), Some("at+jwt"));
    let http = reqwest::Client::new();
    let get = |url: String, token: &str| http.get(url).bearer_auth(token).send();
    assert_eq!(
        get(a.url("/api/resource/v1/"), &for_a)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_invalid_token(get(b.url("/api/resource/v1/"), &for_a).await.unwrap()).await;
    let for_b = oidc.token_for(TestClient::Rw, Some(OTHER_API)).await;
    assert_eq!(
        get(b.url("/api/resource/v1/"), &for_b)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_invalid_token(get(a.url("/api/resource/v1/"), &for_b).await.unwrap()).await;
    assert_eq!(idp(&oidc).stats().await.introspections, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_only_provider_without_an_audience_stops_the_server_at_start_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = mrmat_api_testkit::process::output(
        server_process::command(env!("CARGO_BIN_EXE_mrmat-api"), dir.path()).args([
            "--instance-path",
            &dir.path().display().to_string(),
            "--oidc-issuer",
            "http://127.0.0.1:1",
            "--oidc-client-id",
            "mrmat-api",
            "--oidc-client-secret",
            "a-secret",
            "--oidc-issuer",
            "http://127.0.0.1:2",
        ]),
        mrmat_api_testkit::process::COMMAND_TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for option in ["--public-url", "--oidc-audience", "http://127.0.0.1:2"] {
        assert!(errors[0].contains(option), "{option} in {:?}", errors[0]);
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// --- rotation and outages ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotation_while_requests_run_fails_no_request() {
    let oidc = Arc::new(jwt_provider("RS256"));
    let app = Arc::new(app(Backend::Sqlite, &oidc).await);
    let rotated = Arc::new(std::sync::Mutex::new(None::<String>));
    let after_rotation = Arc::new(AtomicUsize::new(0));
    let before_rotation = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (oidc, app, rotated) = (oidc.clone(), app.clone(), rotated.clone());
        let (before, after) = (before_rotation.clone(), after_rotation.clone());
        loops.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while after.load(Ordering::SeqCst) < 40 && Instant::now() < deadline {
                let token = oidc.token(TestClient::Rw).await;
                let kid = header_of(&token).kid;
                let status = app
                    .request(Method::GET, "/api/resource/v1/", Some(&token))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                if !matches!(status, Ok(200)) {
                    failures.push(format!("{kid:?}: {status:?}"));
                }
                let new_key = rotated.lock().unwrap().clone();
                if new_key.is_some() && kid == new_key {
                    after.fetch_add(1, Ordering::SeqCst);
                } else {
                    before.fetch_add(1, Ordering::SeqCst);
                }
            }
            failures
        }));
    }
    mrmat_api_testkit::idp::eventually(Duration::from_secs(30), || {
        let before = before_rotation.clone();
        async move { before.load(Ordering::SeqCst) >= 40 }
    })
    .await;
    let kid = idp(&oidc).rotate().await;
    *rotated.lock().unwrap() = Some(kid);
    let mut failures = Vec::new();
    for handle in loops {
        failures.extend(handle.await.unwrap());
    }
    let (before, after) = (
        before_rotation.load(Ordering::SeqCst),
        after_rotation.load(Ordering::SeqCst),
    );
    eprintln!("rotation: {before} requests before, {after} with the new key");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(after >= 40, "only {after} requests with the new key");
    assert!(idp(&oidc).stats().await.jwks_requests <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_provider_down_cached_keys_still_verify_jwts_and_opaque_tokens_get_503() {
    let oidc = Oidc::local(Idp::start_with(IdpOptions::default().jwt_when_asked()));
    let app = app(Backend::Sqlite, &oidc).await;
    let first = oidc.token_for(TestClient::Rw, Some(API)).await;
    assert_eq!(
        app.get("/api/resource/v1/", Some(&first)).await.status(),
        200
    );
    // Fresh tokens the server has not judged yet (so no cached verdict answers for them).
    let jwt = oidc.token_for(TestClient::Rw, Some(API)).await;
    let opaque = oidc.token(TestClient::Rw).await;
    idp(&oidc).stop();
    assert_eq!(app.get("/api/resource/v1/", Some(&jwt)).await.status(), 200);
    let response = app.get("/api/resource/v1/", Some(&opaque)).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503).await;
}

// --- two providers at once -----------------------------------------------------------

async fn two_provider_app(backend: Backend, a: &Oidc, b: &Oidc) -> TestApp {
    let (a, b) = (settings(a), jwt_only_settings(b));
    TestApp::spawn_with(backend, move |s| s.oidc = vec![a, b]).await
}

backend_tests! {
    async fn each_of_two_providers_tokens_are_accepted(backend) {
        let (a, b) = (jwt_provider("ES256"), jwt_provider("ES256"));
        let app = two_provider_app(backend, &a, &b).await;
        for oidc in [&a, &b] {
            let token = oidc.token(TestClient::Rw).await;
            assert_eq!(app.get("/api/resource/v1/", Some(&token)).await.status(), 200);
        }
    }

    async fn the_same_user_name_at_two_providers_is_two_owners(backend) {
        let (a, b) = (jwt_provider("ES256"), jwt_provider("ES256"));
        let app = two_provider_app(backend, &a, &b).await;
        let alice_a = idp(&a).user_tokens("mrmat-api-cli", "alice").await.access_token;
        let alice_b = idp(&b).user_tokens("mrmat-api-cli", "alice").await.access_token;
        let created = app.create_resource(&alice_a, "alice of A's").await;
        let id = created["id"].as_i64().unwrap();
        let path = format!("/api/resource/v1/{id}");
        assert_problem(app.put_json(&path, Some(&alice_b), &json!({"name": "taken"})).await, 403).await;
        assert_problem(app.delete(&path, Some(&alice_b)).await, 403).await;
        let theirs = app.create_resource(&alice_b, "alice of B's").await;
        assert_ne!(created["owner"]["id"], theirs["owner"]["id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_by_one_provider_claiming_the_others_issuer_is_refused() {
    let (a, b) = (jwt_provider("ES256"), jwt_provider("ES256"));
    let app = two_provider_app(Backend::Sqlite, &a, &b).await;
    // B's key, B's key id, A's name.
    let forged = idp(&b)
        .mint(json!({"typ": "at+jwt"}), good_claims(&a))
        .await;
    assert_invalid_token(app.get("/api/resource/v1/", Some(&forged)).await).await;
    // The same without a key id: every key of A is tried, none verifies it.
    let forged = idp(&b)
        .mint(json!({"typ": "at+jwt", "kid": null}), good_claims(&a))
        .await;
    assert_invalid_token(app.get("/api/resource/v1/", Some(&forged)).await).await;
    // What B minted for itself passes: the forgery fails for its signature alone.
    let genuine = idp(&b)
        .mint(json!({"typ": "at+jwt"}), good_claims(&b))
        .await;
    assert_eq!(
        app.get("/api/resource/v1/", Some(&genuine)).await.status(),
        200
    );
}

// --- hostile tokens: each 401 invalid_token (or what the HTTP layer answers first) ----

/// One provider ([`jwt_provider`] with ES256, unless said) and a server for [`API`].
async fn hostile_setup(alg: &str) -> (Oidc, TestApp) {
    let oidc = jwt_provider(alg);
    let app = app(Backend::Sqlite, &oidc).await;
    (oidc, app)
}

/// `token` is refused with 401 invalid_token, and cost no introspection.
async fn assert_refused(oidc: &Oidc, app: &TestApp, token: &str) {
    assert_invalid_token(app.get("/api/resource/v1/", Some(token)).await).await;
    assert_eq!(idp(oidc).stats().await.introspections, 0, "introspections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minted_good_token_is_accepted_so_each_refusal_below_is_for_its_one_flaw() {
    let (oidc, app) = hostile_setup("ES256").await;
    let token = idp(&oidc)
        .mint(json!({"typ": "at+jwt"}), good_claims(&oidc))
        .await;
    assert_eq!(
        app.get("/api/resource/v1/", Some(&token)).await.status(),
        200
    );
}

/// The header and payload of `signed_of` under the signature of `signature_of`.
fn spliced(signed_of: &str, signature_of: &str) -> String {
    let (signed, _) = signed_of.rsplit_once('.').expect("a JWS");
    let (_, signature) = signature_of.rsplit_once('.').expect("a JWS");
    format!("{signed}.{signature}")
}

/// A good token, accepted often enough that every worker has judged it lately, and a
/// second good token with another subject.
async fn a_judged_token_and_another(oidc: &Oidc, app: &TestApp) -> (String, String) {
    let judged = idp(oidc)
        .mint(json!({"typ": "at+jwt"}), good_claims(oidc))
        .await;
    for _ in 0..8 {
        assert_eq!(
            app.get("/api/resource/v1/", Some(&judged)).await.status(),
            200
        );
    }
    let mut claims = good_claims(oidc);
    claims["sub"] = json!("alice");
    let other = idp(oidc).mint(json!({"typ": "at+jwt"}), claims).await;
    (judged, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judged_tokens_signature_under_another_payload_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let (judged, other) = a_judged_token_and_another(&oidc, &app).await;
    assert_refused(&oidc, &app, &spliced(&other, &judged)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judged_tokens_payload_under_another_signature_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let (judged, other) = a_judged_token_and_another(&oidc, &app).await;
    assert_refused(&oidc, &app, &spliced(&judged, &other)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_alg_none_token_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let token = idp(&oidc)
        .mint_with(
            json!({"header": {"typ": "at+jwt"}, "payload": good_claims(&oidc), "unsigned": true}),
        )
        .await;
    assert_eq!(header_of_raw(&token)["alg"], "none");
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hs256_token_keyed_with_the_providers_rsa_public_key_pem_is_401() {
    let (oidc, app) = hostile_setup("RS256").await;
    let token = idp(&oidc)
        .mint_with(json!({"header": {"typ": "at+jwt"}, "payload": good_claims(&oidc), "hmac_secret_from": "pem"}))
        .await;
    assert_eq!(header_of_raw(&token)["alg"], "HS256");
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hs256_token_keyed_with_the_providers_rsa_public_jwk_is_401() {
    let (oidc, app) = hostile_setup("RS256").await;
    let token = idp(&oidc)
        .mint_with(json!({"header": {"typ": "at+jwt"}, "payload": good_claims(&oidc), "hmac_secret_from": "jwk"}))
        .await;
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_300_tokens_with_made_up_key_ids_costs_a_handful_of_key_fetches() {
    let (oidc, app) = hostile_setup("ES256").await;
    let good = idp(&oidc)
        .mint(json!({"typ": "at+jwt"}), good_claims(&oidc))
        .await;
    assert_eq!(
        app.get("/api/resource/v1/", Some(&good)).await.status(),
        200
    );
    let mut tokens = Vec::new();
    for i in 0..300 {
        let kid = format!("made-up-{i}-{}", now());
        tokens.push(
            idp(&oidc)
                .mint(json!({"typ": "at+jwt", "kid": kid}), good_claims(&oidc))
                .await,
        );
    }
    idp(&oidc).reset_stats().await;
    let started = Instant::now();
    let app = Arc::new(app);
    let answers = futures_util::future::join_all(tokens.into_iter().map(|token| {
        let app = app.clone();
        async move {
            let response = app
                .request(Method::GET, "/api/resource/v1/", Some(&token))
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .expect("an answer");
            (response.status().as_u16(), challenge(&response))
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let stats = idp(&oidc).stats().await;
    eprintln!(
        "kid flood: 300 requests in {elapsed:?}, {} JWKS fetches",
        stats.jwks_requests
    );
    for (status, challenge) in &answers {
        assert_eq!(*status, 401);
        assert_eq!(challenge, INVALID_TOKEN);
    }
    assert!(stats.jwks_requests <= 3, "{} fetches", stats.jwks_requests);
    assert_eq!(stats.introspections, 0);
    assert!(elapsed < Duration::from_secs(45), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_an_unknown_issuer_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let mut claims = good_claims(&oidc);
    claims["iss"] = json!("https://evil.example");
    let token = idp(&oidc).mint(json!({"typ": "at+jwt"}), claims).await;
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_an_audience_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let mut claims = good_claims(&oidc);
    claims.as_object_mut().unwrap().remove("aud");
    let token = idp(&oidc).mint(json!({"typ": "at+jwt"}), claims).await;
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_token_for_another_resource_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let token = oidc.token_for(TestClient::Rw, Some(OTHER_API)).await;
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let mut claims = good_claims(&oidc);
    claims["iat"] = json!(now() - 900);
    claims["exp"] = json!(now() - 120);
    let token = idp(&oidc).mint(json!({"typ": "at+jwt"}), claims).await;
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_not_valid_before_a_future_time_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let mut claims = good_claims(&oidc);
    claims["nbf"] = json!(now() + 600);
    let token = idp(&oidc).mint(json!({"typ": "at+jwt"}), claims).await;
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_id_token_of_a_device_login_is_401() {
    let (oidc, app) = hostile_setup("RS256").await;
    let tokens = idp(&oidc).user_tokens("mrmat-api-cli", "alice").await;
    assert_eq!(
        app.get("/api/resource/v1/", Some(&tokens.access_token))
            .await
            .status(),
        200
    );
    let id_token = tokens.id_token.expect("an ID token");
    assert_ne!(header_of(&id_token).typ.as_deref(), Some("at+jwt"));
    assert_refused(&oidc, &app, &id_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_naming_this_server_with_a_nonce_and_at_hash_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let mut claims = good_claims(&oidc);
    claims["nonce"] = json!("n-0S6_WzA2Mj");
    claims["at_hash"] = json!("77QmUPtjPfzWtF2AnpK9RQ");
    let token = idp(&oidc).mint(json!({"typ": "JWT"}), claims).await;
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let tokens = idp(&oidc).user_tokens("mrmat-api-cli", "bob").await;
    let refresh = tokens.refresh_token.expect("a refresh token");
    assert_invalid_token(app.get("/api/resource/v1/", Some(&refresh)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_a_crit_header_is_401() {
    let (oidc, app) = hostile_setup("ES256").await;
    let token = idp(&oidc)
        .mint(
            json!({"typ": "at+jwt", "crit": ["exp"], "exp": now() + 600}),
            good_claims(&oidc),
        )
        .await;
    assert_refused(&oidc, &app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_token_is_refused_by_the_http_layer_with_431() {
    let (oidc, app) = hostile_setup("ES256").await;
    let mut claims = good_claims(&oidc);
    claims["padding"] = json!("x".repeat(1024 * 1024));
    let token = idp(&oidc).mint(json!({"typ": "at+jwt"}), claims).await;
    assert!(token.len() > 1024 * 1024);
    let response = app
        .request(Method::GET, "/api/resource/v1/", Some(&token))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let status = response.map(|r| r.status().as_u16());
    assert!(matches!(status, Ok(431)), "{status:?}");
    assert_eq!(idp(&oidc).stats().await.jwks_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_jku_points_at_an_attackers_key_set_is_401_and_that_set_is_never_fetched() {
    let (oidc, app) = hostile_setup("ES256").await;
    // The attacker: a provider of its own on loopback, whose key set it points at.
    let attacker = Idp::start_with(IdpOptions::default().jwt(API).alg("ES256"));
    let jku = attacker.url("/jwks");
    for header in [
        json!({"typ": "at+jwt", "jku": jku}),
        json!({"typ": "at+jwt", "jku": jku, "kid": null}),
    ] {
        let token = attacker.mint(header, good_claims(&oidc)).await;
        assert_refused(&oidc, &app, &token).await;
    }
    assert_eq!(
        attacker.stats().await.jwks_requests,
        0,
        "the attacker's JWKS"
    );
}

fn header_of_raw(token: &str) -> Value {
    let header = token.split('.').next().expect("a header");
    serde_json::from_slice(&base64_decode(header)).expect("a JSON header")
}

/// base64url without padding, for headers `jsonwebtoken` refuses to parse (`alg: none`).
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes() {
        let value = ALPHABET.iter().position(|&c| c == byte).expect("base64url") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}
