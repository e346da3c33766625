//! A login's tokens are for the server it was made with: RFC 8707 `resource` in every
//! device authorization, token and refresh request (renamed or left out when the provider
//! needs it), and a server whose RFC 9728 metadata names another resource refused before
//! any login starts.

use std::time::Duration;

use mrmat_api_testkit::idp::{Approval, Idp, eventually};
use mrmat_api_testkit::{Backend, Oidc, TestApp};
use mrmat_api_types::scope::Scope;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Home, stderr};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The provider's `/__stats` as JSON: the testkit's typed stats do not carry the
/// `resource` and `audience` each request sent.
async fn raw_stats(idp: &Idp) -> Value {
    let text = reqwest::get(idp.url("/__stats"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `(resource, audience)` of every device authorization request.
async fn device_requests(idp: &Idp) -> Vec<(Value, Value)> {
    raw_stats(idp).await["device_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["resource"].clone(), r["audience"].clone()))
        .collect()
}

/// `(resource, audience)` of every token request of `grant_type`.
async fn token_requests(idp: &Idp, grant_type: &str) -> Vec<(Value, Value)> {
    raw_stats(idp).await["token_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["grant_type"] == grant_type)
        .map(|r| (r["resource"].clone(), r["audience"].clone()))
        .collect()
}

/// A provider of its own (its stats are this test's alone) and a server using it.
async fn own_provider() -> (Oidc, TestApp) {
    let oidc = Oidc::local(Idp::start());
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    (oidc, app)
}

async fn login(home: &Home, idp: &Idp, extra: &[&str]) {
    let result = home
        .login_with(idp, extra, "alice", Some(Approval::Approve), || async {})
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
}

#[tokio::test]
async fn the_device_authorization_and_every_device_token_request_carry_the_server_url_as_resource()
{
    let (oidc, app) = own_provider().await;
    let idp = oidc.idp.as_ref().unwrap();
    let home = Home::new(&app.address);
    login(&home, idp, &[]).await;

    let expected = (json!(app.address), Value::Null);
    assert_eq!(device_requests(idp).await, std::slice::from_ref(&expected));
    let polls = token_requests(idp, DEVICE_GRANT).await;
    assert!(!polls.is_empty());
    assert!(polls.iter().all(|p| *p == expected), "{polls:?}");
}

#[tokio::test]
async fn the_resource_is_the_server_url_in_its_normal_form() {
    let (oidc, app) = own_provider().await;
    let idp = oidc.idp.as_ref().unwrap();
    // Upper case and a trailing slash: the same server, and the same resource.
    let home = Home::new(&format!("HTTP://127.0.0.1:{}/", app.port));
    login(&home, idp, &[]).await;
    assert_eq!(
        device_requests(idp).await,
        [(json!(app.address), Value::Null)]
    );
}

#[tokio::test]
async fn a_refresh_asks_for_tokens_for_the_same_server() {
    let (oidc, app) = own_provider().await;
    let idp = oidc.idp.as_ref().unwrap();
    let home = Home::new(&app.address);
    let short = ["--client-id", "mrmat-api-cli-short"];
    login(&home, idp, &short).await;
    // The access token lives 2 s; once it is due, `token` refreshes it.
    eventually(Duration::from_secs(10), || async {
        home.status(&short).await.0["logins"][0]["state"] == "refreshable"
    })
    .await;
    home.ok(&["--client-id", "mrmat-api-cli-short", "token"])
        .await;
    let refreshes = token_requests(idp, "refresh_token").await;
    assert_eq!(refreshes, [(json!(app.address), Value::Null)]);
}

#[tokio::test]
async fn auth_status_says_which_server_the_tokens_were_asked_for() {
    let (oidc, app) = own_provider().await;
    let home = Home::new(&app.address);
    login(&home, oidc.idp.as_ref().unwrap(), &[]).await;
    let me = home.current_login().await;
    assert_eq!(me["resource"], app.address.as_str());
    assert_eq!(me["resource_param"], "resource");
    let table = home.ok(&["--output", "table", "auth", "status"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("tokens for") && l.ends_with(&app.address)),
        "{table}"
    );
}

#[tokio::test]
async fn the_parameter_can_be_renamed_to_auth0s_audience_with_the_apis_identifier() {
    let (oidc, app) = own_provider().await;
    let idp = oidc.idp.as_ref().unwrap();
    let home = Home::new(&app.address);
    login(
        &home,
        idp,
        &[
            "--resource-indicator-param",
            "audience",
            "--resource-indicator",
            "https://mrmat-api.example.com",
        ],
    )
    .await;
    let expected = (Value::Null, json!("https://mrmat-api.example.com"));
    assert_eq!(device_requests(idp).await, std::slice::from_ref(&expected));
    let polls = token_requests(idp, DEVICE_GRANT).await;
    assert!(polls.iter().all(|p| *p == expected), "{polls:?}");
    assert_eq!(home.current_login().await["resource_param"], "audience");
}

#[tokio::test]
async fn a_parameter_of_the_request_itself_as_the_indicator_name_is_a_configuration_error() {
    let home = Home::new("http://127.0.0.1:9");
    let output = home
        .run_with_env(
            &["token"],
            &[("MRMAT_API_CLIENT_RESOURCE_INDICATOR_PARAM", "scope")],
        )
        .await;
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("error: --resource-indicator-param: scope is a parameter"),
        "{message}"
    );
}

#[tokio::test]
async fn no_resource_indicator_sends_none() {
    let (oidc, app) = own_provider().await;
    let idp = oidc.idp.as_ref().unwrap();
    let home = Home::new(&app.address);
    login(&home, idp, &["--no-resource-indicator"]).await;
    let none = (Value::Null, Value::Null);
    assert_eq!(device_requests(idp).await, std::slice::from_ref(&none));
    let polls = token_requests(idp, DEVICE_GRANT).await;
    assert!(polls.iter().all(|p| *p == none), "{polls:?}");
    assert_eq!(home.current_login().await["resource"], Value::Null);
}

/// A server on loopback that answers every `GET /.well-known/oauth-protected-resource`
/// with `metadata` and anything else with 404: the attacker's look-alike, which needs no
/// more than this to send a person to the real provider. Its URL.
async fn look_alike(metadata: impl Fn(&str) -> Value + Send + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let body = metadata(&url).to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let metadata = head.starts_with(b"GET /.well-known/oauth-protected-resource ");
                let (status, body) = if metadata {
                    ("200 OK", body.as_str())
                } else {
                    ("404 Not Found", "{}")
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

fn metadata_naming(resource: Option<&str>, issuer: &str) -> Value {
    let mut metadata = json!({
        "authorization_servers": [issuer],
        "scopes_supported": Scope::ALL,
        "bearer_methods_supported": ["header"],
    });
    if let Some(resource) = resource {
        metadata["resource"] = json!(resource);
    }
    metadata
}

#[tokio::test]
async fn a_look_alike_whose_metadata_names_the_real_server_is_refused_before_any_login_starts() {
    let (oidc, app) = own_provider().await;
    let idp = oidc.idp.as_ref().unwrap();
    let (real, issuer) = (app.address.clone(), idp.issuer.clone());
    let fake = look_alike(move |_| metadata_naming(Some(&real), &issuer)).await;
    let home = Home::new(&fake);
    let output = home.run(&["login"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "error: the server at {fake} says it is {real} (the resource its /.well-known/oauth-protected-resource names): no login is started, as tokens for {real} must not go to {fake} (RFC 9728 section 3.3); check --server\n",
            real = app.address
        )
    );
    let stats = raw_stats(idp).await;
    assert_eq!(stats["device_authorizations"], 0, "{stats}");
    assert_eq!(stats["token_requests"], json!([]), "{stats}");
    assert!(home.cache_file().is_none());
}

#[tokio::test]
async fn metadata_without_a_resource_is_refused_before_any_login_starts() {
    let (oidc, _app) = own_provider().await;
    let idp = oidc.idp.as_ref().unwrap();
    let issuer = idp.issuer.clone();
    let fake = look_alike(move |_| metadata_naming(None, &issuer)).await;
    let home = Home::new(&fake);
    let output = home.run(&["login"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "error: the server at {fake} names no resource in its /.well-known/oauth-protected-resource, which RFC 9728 requires: no login is started, as nothing ties its provider's tokens to it; check --server\n"
        )
    );
    assert_eq!(raw_stats(idp).await["device_authorizations"], 0);
}

#[tokio::test]
async fn metadata_naming_the_server_with_a_trailing_slash_is_accepted() {
    let (oidc, _app) = own_provider().await;
    let idp = oidc.idp.as_ref().unwrap();
    let issuer = idp.issuer.clone();
    let server = look_alike(move |url| metadata_naming(Some(&format!("{url}/")), &issuer)).await;
    let home = Home::new(&server);
    login(&home, idp, &[]).await;
    assert_eq!(device_requests(idp).await, [(json!(server), Value::Null)]);
}
