//! DPoP (RFC 9449) end to end: tokens the real test provider bound to a key (a client
//! credentials request with a proof), presented to the server with proofs made by the
//! testkit's own ES256 signer, independent of the server's verifier. Every refusal is a 401
//! with a `DPoP` challenge naming the error and the accepted algorithms. The proof checks
//! are the authentication layer's, the same on either database, so these run on SQLite.

use mrmat_api::settings::OidcSettings;
use mrmat_api_testkit::idp::{Idp, IdpOptions};
use mrmat_api_testkit::oidc::{DpopKey, proof, proof_claims};
use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use url::Url;

use crate::helpers::assert_problem;

/// What a JWT-issuing provider's tokens are for, and the server's audience then.
const API: &str = "https://api.test/";

const LIST: &str = "/api/resource/v1/";

const INVALID_PROOF: &str = "DPoP error=\"invalid_dpop_proof\", algs=\"";
const INVALID_TOKEN: &str = "DPoP error=\"invalid_token\", algs=\"";

/// The server with the shared provider (its opaque tokens introspected).
async fn app() -> TestApp {
    TestApp::spawn_with_auth(Backend::Sqlite, Oidc::shared().settings()).await
}

/// A key and a token of the read-write client bound to it.
async fn bound() -> (DpopKey, String) {
    let key = DpopKey::generate();
    let token = Oidc::shared().dpop_token(TestClient::Rw, &key).await;
    (key, token)
}

/// `method path` with `Authorization: <scheme> <token>` and one `DPoP` header per proof.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    authorization: &str,
    proofs: &[String],
) -> Response {
    let mut request = app
        .http
        .request(method, app.url(path))
        .header("Authorization", authorization);
    for proof in proofs {
        request = request.header("DPoP", proof);
    }
    request.send().await.expect("request")
}

/// Every `WWW-Authenticate` value, in order, joined with " | ".
fn challenges(response: &Response) -> String {
    response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap_or("<not text>"))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Asserts a 401 whose only challenge starts with `expected` and lists the algorithms;
/// prints it, for the record of refusals.
async fn assert_refused(case: &str, response: Response, expected: &str) {
    let challenge = challenges(&response);
    eprintln!(
        "refusal: {case}: {} {challenge}",
        response.status().as_u16()
    );
    assert!(
        challenge.starts_with(expected) && !challenge.contains(" | "),
        "{case}: {challenge}"
    );
    assert!(
        challenge.contains("ES256") && challenge.contains("EdDSA"),
        "{case}: {challenge}"
    );
    assert_problem(response, 401).await;
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_introspected_bound_token_works_with_a_proof_of_its_key() {
    let app = app().await;
    let (key, token) = bound().await;
    let introspection = Oidc::shared().introspect(&token).await;
    assert_eq!(introspection["token_type"], "DPoP", "{introspection}");
    assert_eq!(introspection["cnf"]["jkt"], key.thumbprint());
    let response = send(
        &app,
        Method::GET,
        LIST,
        &format!("DPoP {token}"),
        &[proof(&key, "GET", &app.url(LIST), Some(&token))],
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_jwt_access_token_works_with_a_proof_of_its_key() {
    let oidc = Oidc::local(Idp::start_with(IdpOptions::default().jwt(API).alg("ES256")));
    let settings = OidcSettings {
        audiences: vec![API.to_owned()],
        ..oidc.settings()
    };
    let app = TestApp::spawn_with_auth(Backend::Sqlite, settings).await;
    let key = DpopKey::generate();
    let token = oidc.dpop_token(TestClient::Rw, &key).await;
    let claims: Value = {
        use base64::Engine;
        let payload = token.split('.').nth(1).expect("a JWT");
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64url"),
        )
        .expect("JSON claims")
    };
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint(), "{claims}");
    let created = app
        .http
        .post(app.url(LIST))
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", proof(&key, "POST", &app.url(LIST), Some(&token)))
        .json(&json!({"name": "bound"}))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 201, "{}", challenges(&created));
    let response = send(
        &app,
        Method::GET,
        LIST,
        &format!("DPoP {token}"),
        &[proof(&key, "GET", &app.url(LIST), Some(&token))],
    )
    .await;
    assert_eq!(response.status(), 200);
    let bearer = send(&app, Method::GET, LIST, &format!("Bearer {token}"), &[]).await;
    assert_refused("bound JWT as Bearer", bearer, INVALID_TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_sent_as_a_bearer_token_is_401_invalid_token() {
    let app = app().await;
    let (_, token) = bound().await;
    let response = send(&app, Method::GET, LIST, &format!("Bearer {token}"), &[]).await;
    assert_refused("bound token as Bearer", response, INVALID_TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_sent_as_a_bearer_token_with_its_proof_is_still_401_invalid_token() {
    let app = app().await;
    let (key, token) = bound().await;
    let proofs = [proof(&key, "GET", &app.url(LIST), Some(&token))];
    let response = send(&app, Method::GET, LIST, &format!("Bearer {token}"), &proofs).await;
    assert_refused(
        "bound token as Bearer, with a proof",
        response,
        INVALID_TOKEN,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_token_sent_with_the_dpop_scheme_is_401_invalid_token() {
    let app = app().await;
    let key = DpopKey::generate();
    let token = Oidc::shared().token(TestClient::Rw).await;
    let proofs = [proof(&key, "GET", &app.url(LIST), Some(&token))];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("unbound token as DPoP", response, INVALID_TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_without_a_proof_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (_, token) = bound().await;
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &[]).await;
    assert_refused("no proof", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_signed_by_another_key_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (_, token) = bound().await;
    let other = DpopKey::generate();
    let proofs = [proof(&other, "GET", &app.url(LIST), Some(&token))];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("another key's proof", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_used_a_second_time_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (key, token) = bound().await;
    let proofs = [proof(&key, "GET", &app.url(LIST), Some(&token))];
    let first = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_eq!(first.status(), 200);
    let again = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("replayed proof", again, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_for_another_method_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (key, token) = bound().await;
    let proofs = [proof(&key, "POST", &app.url(LIST), Some(&token))];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("proof for POST on a GET", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_for_another_url_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (key, token) = bound().await;
    let proofs = [proof(
        &key,
        "GET",
        &app.url("/api/greeting/v3/"),
        Some(&token),
    )];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("proof for another URL", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proofs_url_is_compared_without_the_query() {
    let app = app().await;
    let (key, token) = bound().await;
    let proofs = [proof(&key, "GET", &app.url(LIST), Some(&token))];
    let path = format!("{LIST}?limit=5&offset=0");
    let response = send(&app, Method::GET, &path, &format!("DPoP {token}"), &proofs).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_issued_two_minutes_ago_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (key, token) = bound().await;
    let mut claims = proof_claims("GET", &app.url(LIST), Some(&token));
    claims["iat"] = (now() - 120).into();
    let proofs = [key.sign(json!({}), &claims)];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("stale iat (-120 s)", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_issued_a_minute_ahead_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (key, token) = bound().await;
    let mut claims = proof_claims("GET", &app.url(LIST), Some(&token));
    claims["iat"] = (now() + 60).into();
    let proofs = [key.sign(json!({}), &claims)];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("future iat (+60 s)", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_without_the_tokens_hash_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (key, token) = bound().await;
    let proofs = [proof(&key, "GET", &app.url(LIST), None)];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("no ath", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_with_another_tokens_hash_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (key, token) = bound().await;
    let proofs = [proof(&key, "GET", &app.url(LIST), Some("another-token"))];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("ath of another token", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dpop_headers_are_401_invalid_dpop_proof() {
    let app = app().await;
    let (key, token) = bound().await;
    let proofs = [
        proof(&key, "GET", &app.url(LIST), Some(&token)),
        proof(&key, "GET", &app.url(LIST), Some(&token)),
    ];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("two DPoP headers", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_typed_as_a_plain_jwt_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (key, token) = bound().await;
    let claims = proof_claims("GET", &app.url(LIST), Some(&token));
    let proofs = [key.sign(json!({"typ": "JWT"}), &claims)];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("typ JWT", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_that_is_not_a_jwt_is_401_invalid_dpop_proof() {
    let app = app().await;
    let (_, token) = bound().await;
    let proofs = ["not-a-proof".to_owned()];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("not a JWT", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_dpop_refuses_a_bearer_token_and_takes_a_bound_one() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.oidc = vec![oidc.settings()];
        s.require_dpop = true;
    })
    .await;
    let bearer = oidc.token(TestClient::Rw).await;
    let response = send(&app, Method::GET, LIST, &format!("Bearer {bearer}"), &[]).await;
    assert_refused("bearer token, --oidc-require-dpop", response, INVALID_TOKEN).await;
    let (key, token) = bound().await;
    let proofs = [proof(&key, "GET", &app.url(LIST), Some(&token))];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_to_a_bearer_token_also_offers_dpop_with_its_algorithms() {
    let app = app().await;
    let response = send(&app, Method::GET, LIST, "Bearer not-a-token", &[]).await;
    let all = challenges(&response);
    eprintln!(
        "refusal: unknown bearer token: {} {all}",
        response.status().as_u16()
    );
    assert_eq!(response.status(), 401);
    assert!(all.starts_with("Bearer "), "{all}");
    assert!(all.contains(" | DPoP algs=\""), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_advertises_the_proof_algorithms_and_whether_dpop_is_required() {
    let oidc = Oidc::shared();
    for required in [false, true] {
        let app = TestApp::spawn_with(Backend::Sqlite, |s| {
            s.oidc = vec![oidc.settings()];
            s.require_dpop = required;
        })
        .await;
        let metadata: Value = app
            .get("/.well-known/oauth-protected-resource", None)
            .await
            .json()
            .await
            .expect("metadata JSON");
        let algs = metadata["dpop_signing_alg_values_supported"]
            .as_array()
            .unwrap_or_else(|| panic!("no algorithms: {metadata}"));
        for alg in ["ES256", "EdDSA"] {
            assert!(algs.iter().any(|a| a == alg), "{metadata}");
        }
        assert!(
            algs.iter()
                .all(|a| a != "none" && !a.as_str().unwrap_or("HS").starts_with("HS")),
            "{metadata}"
        );
        assert_eq!(metadata["dpop_bound_access_tokens_required"], required);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_a_proof_names_the_url_the_client_used() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.oidc = vec![oidc.settings()];
        s.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a proxy")];
    })
    .await;
    let (key, token) = bound().await;
    let public = format!("https://api.proxied.test{LIST}");
    let forwarded = |proof: String| {
        app.http
            .get(app.url(LIST))
            .header("Authorization", format!("DPoP {token}"))
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", "api.proxied.test")
            .header("DPoP", proof)
            .send()
    };
    let response = forwarded(proof(&key, "GET", &public, Some(&token)))
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "{}", challenges(&response));
    let response = forwarded(proof(&key, "GET", &app.url(LIST), Some(&token)))
        .await
        .expect("request");
    assert_refused("internal URL behind a proxy", response, INVALID_PROOF).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_public_url_a_proof_names_it_whatever_the_request_says() {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.oidc = vec![oidc.settings()];
        s.public_url = Some(Url::parse("https://api.public.test/").expect("URL"));
    })
    .await;
    let (key, token) = bound().await;
    let public = format!("https://api.public.test{LIST}");
    let proofs = [proof(&key, "GET", &public, Some(&token))];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_eq!(response.status(), 200, "{}", challenges(&response));
    let proofs = [proof(&key, "GET", &app.url(LIST), Some(&token))];
    let response = send(&app, Method::GET, LIST, &format!("DPoP {token}"), &proofs).await;
    assert_refused("internal URL with --public-url", response, INVALID_PROOF).await;
}
