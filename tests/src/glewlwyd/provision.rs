//! Provisioning a fresh Glewlwyd through its admin REST API, as an administrator would in
//! its admin pages: scopes, the OpenID Connect plugin instance, users and clients.

use mrmat_api_types::scope::Scope;
use serde_json::{Value, json};

use super::keys::signing_key;
use super::{Credentials, GlewlwydOptions, INTROSPECTION_SCOPE, PLUGIN, USERS};
use crate::oidc::TestClient;

/// The administrator a fresh database has (Glewlwyd's documented default).
const ADMIN: (&str, &str) = ("admin", "password");

/// What a user may be granted: what a login asks for.
fn user_scopes() -> Vec<&'static str> {
    super::USER_SCOPES.split(' ').collect()
}

/// The scopes created, besides `openid` which the schema ships.
fn scopes() -> Vec<&'static str> {
    user_scopes()
        .into_iter()
        .filter(|scope| *scope != "openid")
        .chain([INTROSPECTION_SCOPE])
        .collect()
}

/// The scopes a client-credentials test client may ask for. Glewlwyd refuses a client
/// credentials request without `scope`, and a client without scopes gets no token at all:
/// the client without API scopes gets `profile`.
pub(super) fn test_client_scopes(client: TestClient) -> Vec<&'static str> {
    let scopes: Vec<&'static str> = client.scopes().into_iter().map(Scope::as_str).collect();
    if scopes.is_empty() {
        vec!["profile"]
    } else {
        scopes
    }
}

/// An admin session on one Glewlwyd.
pub(super) struct Admin<'a> {
    http: &'a reqwest::Client,
    api: String,
    cookie: String,
}

impl std::fmt::Debug for Admin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("api", &self.api).finish()
    }
}

/// The `name=value` part of a `Set-Cookie` answer: Glewlwyd's session cookie.
pub(super) fn session_cookie(response: &reqwest::Response) -> Option<String> {
    let header = response.headers().get(reqwest::header::SET_COOKIE)?;
    let cookie = header.to_str().ok()?.split(';').next()?.trim().to_owned();
    Some(cookie)
}

impl<'a> Admin<'a> {
    /// Logs in as the default administrator.
    pub(super) async fn login(http: &'a reqwest::Client, api: &str) -> Self {
        let response = http
            .post(format!("{api}/auth/"))
            .json(&json!({"username": ADMIN.0, "password": ADMIN.1}))
            .send()
            .await
            .expect("admin login request");
        assert_eq!(response.status(), 200, "admin login");
        let cookie = session_cookie(&response).expect("admin session cookie");
        Self {
            http,
            api: api.to_owned(),
            cookie,
        }
    }

    async fn post(&self, path: &str, body: &Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .header(reqwest::header::COOKIE, &self.cookie)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        // The body names the offending field, never a secret of ours.
        assert_eq!(status, 200, "POST {path}: {text}");
    }

    /// Everything the suite needs, on a fresh database.
    pub(super) async fn provision(
        &self,
        issuer: &str,
        options: &GlewlwydOptions,
        server: &Credentials,
        clients: &[(TestClient, Credentials)],
    ) {
        for scope in scopes() {
            self.post(
                "/scope/",
                &json!({
                    "name": scope,
                    "display_name": scope,
                    "description": format!("mrmat-api test scope {scope}"),
                    // No scheme: the password alone authorises the scope.
                    "password_required": true,
                    "password_max_age": 0,
                    "scheme": {},
                }),
            )
            .await;
        }
        self.post("/mod/plugin/", &plugin(issuer, options)).await;
        for user in USERS {
            self.post(
                "/user/",
                &json!({
                    "username": user,
                    "name": user,
                    "email": format!("{user}@example.test"),
                    "password": user_password(user),
                    "enabled": true,
                    "scope": user_scopes(),
                }),
            )
            .await;
        }
        self.post(
            "/client/",
            &json!({
                "client_id": super::CLI_CLIENT,
                "name": super::CLI_CLIENT,
                "confidential": false,
                "enabled": true,
                "authorization_type": ["device_authorization", "refresh_token"],
                "token_endpoint_auth_method": ["none"],
                "redirect_uri": [],
                "scope": [],
            }),
        )
        .await;
        self.post("/client/", &confidential(server, &[INTROSPECTION_SCOPE]))
            .await;
        for (client, credentials) in clients {
            self.post(
                "/client/",
                &confidential(credentials, &test_client_scopes(*client)),
            )
            .await;
        }
    }
}

/// A user's password.
pub(super) fn user_password(user: &str) -> String {
    format!("{user}-password")
}

/// A confidential client for the client-credentials grant. Without
/// `token_endpoint_auth_method` Glewlwyd refuses its secret everywhere (403 at the token
/// endpoint, 401 at introspection), whatever the secret.
fn confidential(credentials: &Credentials, scopes: &[&str]) -> Value {
    json!({
        "client_id": credentials.client_id,
        "name": credentials.client_id,
        "confidential": true,
        "client_secret": credentials.client_secret,
        "enabled": true,
        "authorization_type": ["client_credentials"],
        "token_endpoint_auth_method": ["client_secret_basic", "client_secret_post"],
        "redirect_uri": [],
        "scope": scopes,
    })
}

/// The OpenID Connect plugin instance. Parameter names are those of Glewlwyd 2.7's
/// `protocol_oidc` (its admin pages send the same JSON).
fn plugin(issuer: &str, options: &GlewlwydOptions) -> Value {
    let key = signing_key(options.signing_key);
    let resource_scope: serde_json::Map<String, Value> = user_scopes()
        .into_iter()
        .chain(scopes())
        .map(|scope| (scope.to_owned(), json!(options.resources)))
        .collect();
    json!({
        "module": "oidc",
        "name": PLUGIN,
        "display_name": "mrmat-api tests",
        "enabled": true,
        "parameters": {
            "iss": issuer,
            // ES256 with this test process's throwaway key pair: Glewlwyd publishes the
            // public half at `<issuer>/jwks` (discovery's `jwks_uri`), so a server with an
            // audience checks its access tokens itself. ("384" would sign with ES512: the
            // plugin compares the size with "256" twice.)
            "jwt-type": "ecdsa",
            "jwt-key-size": "256",
            "key": key.private_pem,
            "cert": key.public_pem,
            "jwks-show": true,
            "access-token-duration": options.access_token_ttl,
            "refresh-token-duration": 1_209_600,
            "code-duration": 600,
            "refresh-token-rolling": true,
            // A new refresh token on every refresh; reusing an old one is refused.
            "refresh-token-one-use": "always",
            "allow-non-oidc": true,
            "auth-type-code-enabled": true,
            "auth-type-token-enabled": false,
            "auth-type-id-token-enabled": true,
            "auth-type-none-enabled": false,
            "auth-type-password-enabled": false,
            "auth-type-client-enabled": true,
            "auth-type-device-enabled": true,
            "auth-type-refresh-enabled": true,
            "device-authorization-expiration": 600,
            // Glewlwyd answers slow_down to polls closer than this: 1 s keeps logins quick.
            "device-authorization-interval": 1,
            "introspection-revocation-allowed": true,
            // RFC 7662 section 2.1: a bearer token carrying this scope may introspect and
            // revoke any token.
            "introspection-revocation-auth-scope": [INTROSPECTION_SCOPE],
            // Whether a confidential client may use HTTP Basic there too. Absent means no.
            "introspection-revocation-allow-target-client": options.basic_introspection,
            // The user's display name in ID tokens and userinfo, so a client can say who
            // logged in (Glewlwyd's default, on-demand, leaves only an opaque `sub`).
            "name-claim": "mandatory",
            // What discovery lists in scopes_supported.
            "allowed-scope": user_scopes(),
            // RFC 8707: with resources configured, a token asked for one of them carries it
            // as `aud` (else `aud` is the scope list). Glewlwyd takes a resource only when a
            // requested scope lists it, so every scope lists all of them; off, a `resource`
            // parameter is ignored.
            "resource-allowed": !options.resources.is_empty(),
            "resource-scope": resource_scope,
            "resource-scope-and-client-property": false,
        }
    })
}
