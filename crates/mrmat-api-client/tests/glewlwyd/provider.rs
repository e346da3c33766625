//! What Glewlwyd does, as the server and the client rely on it: discovery, tokens,
//! device approval on its pages, introspection answers, revocation and refresh. These
//! facts are written down in `tests/glewlwyd/README.md`.

use mrmat_api_testkit::glewlwyd::{CLI_CLIENT, ClientAuth, DeviceApproval, USER_SCOPES};
use mrmat_api_testkit::{Glewlwyd, GlewlwydOptions, TestClient};
use serde_json::Value;

use crate::glewlwyd;

async fn json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Status and body of an answer, for the answers Glewlwyd gives without a body.
async fn status_and_body(response: reqwest::Response) -> (u16, String) {
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn bearer(glewlwyd: &Glewlwyd) -> ClientAuth {
    ClientAuth::Bearer(glewlwyd.server_token().await)
}

#[tokio::test]
async fn discovery_names_every_endpoint_and_scope_the_server_and_client_use() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let discovery = glewlwyd.discovery().await;
    assert_eq!(discovery["issuer"], glewlwyd.issuer.as_str());
    assert_eq!(discovery["token_endpoint"], glewlwyd.token_endpoint());
    assert_eq!(
        discovery["introspection_endpoint"],
        glewlwyd.introspection_endpoint()
    );
    assert_eq!(
        discovery["revocation_endpoint"],
        glewlwyd.revocation_endpoint()
    );
    assert_eq!(
        discovery["device_authorization_endpoint"],
        format!("{}/device_authorization", glewlwyd.issuer)
    );
    let scopes = discovery["scopes_supported"].as_array().unwrap();
    for scope in USER_SCOPES.split(' ') {
        assert!(scopes.iter().any(|s| s == scope), "{scope} in {scopes:?}");
    }
    assert!(
        discovery["introspection_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "bearer")
    );
}

#[tokio::test]
async fn every_test_client_gets_a_token_with_exactly_its_scopes() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let auth = bearer(&glewlwyd).await;
    for client in TestClient::ALL {
        // Glewlwyd gives a client without API scopes `profile` (see the test kit).
        let scope = match client
            .scopes()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
        {
            names if names.is_empty() => "profile".to_owned(),
            names => names.join(" "),
        };
        let token = glewlwyd.token(client).await;
        let answer = json(glewlwyd.introspect(&auth, &token).await).await;
        assert_eq!(answer["active"], true, "{client:?}");
        assert_eq!(answer["scope"], scope.as_str(), "{client:?}");
    }
}

#[tokio::test]
async fn a_client_credentials_request_without_scope_is_refused_with_an_empty_403() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let credentials = glewlwyd.client_credentials(TestClient::Rw);
    let response = reqwest::Client::new()
        .post(glewlwyd.token_endpoint())
        .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_body(response).await, (403, String::new()));
}

#[tokio::test]
async fn a_device_login_approved_on_the_pages_gives_access_refresh_and_id_tokens() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    assert!(!tokens.access_token.is_empty());
    assert!(tokens.refresh_token.is_some());
    assert!(tokens.id_token.is_some());
}

#[tokio::test]
async fn the_device_authorization_answer_has_a_complete_uri_and_a_one_second_interval() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let authorization = glewlwyd.device_authorization(CLI_CLIENT, USER_SCOPES).await;
    assert_eq!(authorization.interval, Some(1));
    assert_eq!(
        authorization.verification_uri,
        format!("{}/device", glewlwyd.issuer)
    );
    assert_eq!(
        authorization.verification_uri_complete,
        Some(format!(
            "{}/device?code={}",
            glewlwyd.issuer, authorization.user_code
        ))
    );
}

#[tokio::test]
async fn a_wrong_password_on_the_pages_is_rejected() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let authorization = glewlwyd.device_authorization(CLI_CLIENT, USER_SCOPES).await;
    let uri = authorization.verification_uri_complete.unwrap();
    assert_eq!(
        glewlwyd.approve(&uri, "alice", "not-her-password").await,
        DeviceApproval::LoginRejected
    );
}

#[tokio::test]
async fn an_unknown_user_code_is_reported_by_the_pages() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let uri = format!("{}/device?code=ABCD-EFGH", glewlwyd.issuer);
    assert_eq!(
        glewlwyd
            .approve(&uri, "alice", &Glewlwyd::password("alice"))
            .await,
        DeviceApproval::UnknownCode
    );
}

#[tokio::test]
async fn a_bearer_token_with_the_introspection_scope_introspects_a_users_access_token() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let answer = json(
        glewlwyd
            .introspect(&bearer(&glewlwyd).await, &tokens.access_token)
            .await,
    )
    .await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["client_id"], CLI_CLIENT);
    assert_eq!(answer["scope"], USER_SCOPES);
    assert!(answer["exp"].is_i64());
    // `sub` is opaque, not the username, and there is no preferred_username: the server's
    // display name comes from `username`.
    assert!(answer["sub"].is_string());
    assert_ne!(answer["sub"], "alice");
    assert!(answer.get("preferred_username").is_none());
}

#[tokio::test]
async fn http_basic_introspection_is_refused_with_an_empty_401_when_the_plugin_disallows_it() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let basic = ClientAuth::Basic(glewlwyd.server_credentials().clone());
    let own = glewlwyd.server_token().await;
    for token in [&tokens.access_token, &own] {
        let response = glewlwyd.introspect(&basic, token).await;
        assert_eq!(status_and_body(response).await, (401, String::new()));
    }
}

#[tokio::test]
async fn http_basic_introspection_sees_any_token_when_the_plugin_allows_it() {
    let Some(glewlwyd) = Glewlwyd::start_or_skip(GlewlwydOptions {
        basic_introspection: true,
        ..GlewlwydOptions::default()
    })
    .await
    else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let basic = ClientAuth::Basic(glewlwyd.server_credentials().clone());
    let answer = json(glewlwyd.introspect(&basic, &tokens.access_token).await).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], CLI_CLIENT, "another client's token");
}

#[tokio::test]
async fn a_bearer_token_without_the_introspection_scope_is_refused_with_an_empty_401() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let other = ClientAuth::Bearer(glewlwyd.token(TestClient::Rw).await);
    let response = glewlwyd.introspect(&other, &tokens.access_token).await;
    assert_eq!(status_and_body(response).await, (401, String::new()));
}

#[tokio::test]
async fn a_client_credentials_token_introspects_active_without_sub_or_username() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let token = glewlwyd.token(TestClient::Rw).await;
    let answer = json(glewlwyd.introspect(&bearer(&glewlwyd).await, &token).await).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(
        answer["client_id"],
        glewlwyd
            .client_credentials(TestClient::Rw)
            .client_id
            .as_str()
    );
    assert!(answer.get("sub").is_none(), "{answer}");
    assert!(answer.get("username").is_none(), "{answer}");
}

#[tokio::test]
async fn a_refresh_token_introspects_active_with_token_type_refresh_token() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let refresh_token = tokens.refresh_token.unwrap();
    let answer = json(
        glewlwyd
            .introspect(&bearer(&glewlwyd).await, &refresh_token)
            .await,
    )
    .await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    assert_eq!(answer["username"], "alice");
}

#[tokio::test]
async fn an_id_token_introspects_active_with_token_type_id_token() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let answer = json(
        glewlwyd
            .introspect(&bearer(&glewlwyd).await, &tokens.id_token.unwrap())
            .await,
    )
    .await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "id_token");
    assert!(answer.get("scope").is_none(), "{answer}");
}

#[tokio::test]
async fn a_garbage_token_introspects_inactive() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let answer = json(
        glewlwyd
            .introspect(&bearer(&glewlwyd).await, "not-a-token")
            .await,
    )
    .await;
    assert_eq!(answer, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn an_access_token_revoked_with_the_introspection_scope_introspects_inactive() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let auth = bearer(&glewlwyd).await;
    let revoked = glewlwyd.revoke(&auth, &tokens.access_token).await;
    assert_eq!(status_and_body(revoked).await, (200, String::new()));
    let answer = json(glewlwyd.introspect(&auth, &tokens.access_token).await).await;
    assert_eq!(answer, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn a_public_client_revoking_its_tokens_gets_an_empty_401_and_they_stay_active() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let public = ClientAuth::Public(CLI_CLIENT.to_owned());
    let refresh_token = tokens.refresh_token.unwrap();
    for token in [&tokens.access_token, &refresh_token] {
        let response = glewlwyd.revoke(&public, token).await;
        assert_eq!(status_and_body(response).await, (401, String::new()));
    }
    let answer = json(
        glewlwyd
            .introspect(&bearer(&glewlwyd).await, &tokens.access_token)
            .await,
    )
    .await;
    assert_eq!(answer["active"], true);
}

#[tokio::test]
async fn a_refresh_rotates_the_refresh_token_and_the_old_one_gets_an_empty_400() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let first = tokens.refresh_token.unwrap();
    let refreshed = json(glewlwyd.refresh(&first).await).await;
    let second = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(second, first);
    assert!(refreshed["access_token"].is_string());
    let again = glewlwyd.refresh(&first).await;
    assert_eq!(status_and_body(again).await, (400, String::new()));
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_ends_the_newer_one_too() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let tokens = glewlwyd.user_tokens("alice").await;
    let first = tokens.refresh_token.unwrap();
    let refreshed = json(glewlwyd.refresh(&first).await).await;
    let second = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(glewlwyd.refresh(&first).await.status(), 400);
    let after = glewlwyd.refresh(&second).await;
    assert_eq!(status_and_body(after).await, (400, String::new()));
}

#[tokio::test]
async fn a_garbage_refresh_token_gets_an_empty_400() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let response = glewlwyd.refresh("not-a-refresh-token").await;
    assert_eq!(status_and_body(response).await, (400, String::new()));
}

#[tokio::test]
async fn glewlwyd_stops_and_frees_its_port_when_dropped() {
    let Some(glewlwyd) = glewlwyd().await else {
        return;
    };
    let address = format!("127.0.0.1:{}", glewlwyd.port);
    drop(glewlwyd);
    assert!(tokio::net::TcpStream::connect(&address).await.is_err());
}
