//! `mrmat-api doctor`: checks a set-up from the outside in (configuration, database and
//! schema, the identity provider's discovery, the https rule, whether the server's own
//! client may introspect, and a real token when `MRMAT_API_DOCTOR_TOKEN` holds one) and
//! prints each check as ok, warn or fail with a one-line fix. Exit code 0 only when
//! nothing failed.
//!
//! Reads: `MRMAT_API_DOCTOR_TOKEN` (an access token to try; never printed).

use std::sync::Arc;

use mrmat_api_types::scope::Scope;
use mrmat_api_types::secret::Secret;
use oauth2::TokenIntrospectionResponse;
use serde::Serialize;

use crate::auth::provider::ProviderError;
use crate::auth::{Authenticator, jwt};
use crate::db::{self, migrate};
use crate::metrics::Metrics;
use crate::settings::{ConfigError, DatabaseUrl, OidcSettings, Settings};
use crate::trust;

/// The variable holding a token for the doctor to try.
pub const DOCTOR_TOKEN_ENV: &str = "MRMAT_API_DOCTOR_TOKEN";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but needs a look.
    Warn,
    /// Broken: the server will not work as configured.
    Fail,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, when something is to be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Every check, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// True when no check failed.
    pub ok: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// The report as text: one line a check, the fix indented below it.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let status = match check.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            text.push_str(&format!(
                "{status:<5} {:<13} {}\n",
                check.name, check.detail
            ));
            if let Some(fix) = &check.fix {
                text.push_str(&format!("{:<19}fix: {fix}\n", ""));
            }
        }
        text.push_str(if self.ok {
            "\nno check failed\n"
        } else {
            "\nsome checks failed\n"
        });
        text
    }
}

struct Checks(Vec<Check>);

impl Checks {
    fn ok(&mut self, name: &'static str, detail: impl Into<String>) {
        self.push(name, Status::Ok, detail, None::<String>);
    }

    fn warn(&mut self, name: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Status::Warn, detail, Some(fix));
    }

    fn fail(&mut self, name: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Status::Fail, detail, Some(fix));
    }

    fn push(
        &mut self,
        name: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: Option<impl Into<String>>,
    ) {
        self.0.push(Check {
            name,
            status,
            detail: detail.into(),
            fix: fix.map(Into::into),
        });
    }
}

/// Runs every check `settings` allows (a configuration that does not load is the only
/// check then).
pub async fn examine(settings: Result<Settings, ConfigError>, token: Option<Secret>) -> Report {
    let mut checks = Checks(Vec::new());
    match settings {
        Err(error) => checks.fail(
            "configuration",
            error.to_string(),
            "correct the option named above (flag, MRMAT_API_* variable or config file)",
        ),
        Ok(settings) => {
            checks.ok("configuration", summary(&settings));
            database(&settings, &mut checks).await;
            provider(&settings, token, &mut checks).await;
        }
    }
    Report {
        ok: checks.0.iter().all(|c| c.status != Status::Fail),
        checks: checks.0,
    }
}

fn summary(settings: &Settings) -> String {
    let database = match &settings.database {
        DatabaseUrl::Sqlite(path) => format!("sqlite {}", path.display()),
        DatabaseUrl::Postgres(_) => "postgres".to_owned(),
    };
    let listen = match &settings.unix_socket {
        Some(socket) => format!("unix:{}", socket.path.display()),
        None => format!("{}:{}", settings.host, settings.port),
    };
    format!(
        "{listen}, {} worker(s), database {database}",
        settings.workers
    )
}

async fn database(settings: &Settings, checks: &mut Checks) {
    // A check creates nothing: a missing SQLite file is what `serve` will create.
    if let DatabaseUrl::Sqlite(path) = &settings.database
        && !path.exists()
    {
        checks.warn(
            "database",
            format!("{} does not exist yet", path.display()),
            "start the server (or run `mrmat-api migrate`) to create it; check --db or --instance-path if it should exist",
        );
        return;
    }
    let url = settings.database.clone();
    let timeout = settings.db_timeout;
    let outcome = tokio::task::spawn_blocking(move || {
        let mut conn = db::establish(&url, timeout)?;
        migrate::status(&mut conn)
    })
    .await;
    let status = match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(error)) => {
            checks.fail(
                "database",
                error.to_string(),
                "check --db, that the database server runs and that this host may reach it",
            );
            return;
        }
        Err(error) => {
            checks.fail("database", error.to_string(), "report this as a bug");
            return;
        }
    };
    checks.ok(
        "database",
        format!("reachable ({})", settings.database.backend()),
    );
    let latest = status
        .applied
        .iter()
        .max()
        .cloned()
        .unwrap_or_else(|| "none".to_owned());
    match (status.pending.len(), status.unknown.is_empty()) {
        (0, true) => checks.ok(
            "schema",
            format!("current: {} migration(s), latest {latest}", status.applied.len()),
        ),
        (pending, true) => checks.warn(
            "schema",
            format!("{pending} migration(s) pending ({})", status.pending.join(", ")),
            "run `mrmat-api migrate` (serve applies them at start unless --no-migrate)",
        ),
        (_, false) => checks.warn(
            "schema",
            format!(
                "the database has migrations this binary does not know ({}): a newer version migrated it",
                status.unknown.join(", ")
            ),
            "run the newer binary, or check that the old one still works with the new schema (expand, then contract)",
        ),
    }
}

async fn provider(settings: &Settings, token: Option<Secret>, checks: &mut Checks) {
    if settings.oidc.is_empty() {
        checks.warn(
            "oidc",
            "not configured: protected endpoints answer 503",
            "give --oidc-issuer, and --oidc-client-id and --oidc-client-secret (or --oidc-secrets) to introspect, or --public-url to check JWT access tokens here",
        );
        return;
    }
    let mut authenticators = Vec::new();
    for oidc in &settings.oidc {
        match Authenticator::new(oidc.clone(), Arc::new(Metrics::new())) {
            Ok(auth) => {
                one_provider(&auth, oidc, settings.oidc.len() > 1, checks).await;
                authenticators.push(auth);
            }
            Err(error) => checks.fail("oidc", error.to_string(), "check --oidc-ca-file"),
        }
    }
    let Some(token) = token else {
        checks.ok(
            "token",
            format!("not tried: set {DOCTOR_TOKEN_ENV} to an access token to try one"),
        );
        return;
    };
    match jwt::peek(token.expose()) {
        Some(peeked) => match authenticators.iter().find(|a| a.is_issuer(&peeked.issuer)) {
            Some(auth) if auth.settings().checks_jwts() => {
                try_jwt(auth, &token, &peeked, checks).await;
            }
            Some(auth) if auth.introspects() => try_token(auth, &token, auth.settings(), checks).await,
            Some(_) => checks.fail(
                "token",
                "a JWT of a provider that neither checks JWTs nor introspects",
                "give that provider an audience (--public-url or --oidc-audience)",
            ),
            None => checks.fail(
                "token",
                format!(
                    "the token's issuer {} is none of the configured issuers: the server refuses it unasked",
                    without_controls(&peeked.issuer)
                ),
                "configure that issuer (--oidc-issuer), or --oidc-public-issuer when it is the same provider under another URL",
            ),
        },
        None => match authenticators.iter().find(|a| a.introspects()) {
            Some(auth) => try_token(auth, &token, auth.settings(), checks).await,
            None => checks.fail(
                "token",
                "not a JWT, and no provider has the server's client to introspect it",
                "give --oidc-client-id and --oidc-client-secret for the provider that issued it",
            ),
        },
    }
}

/// The checks of one provider; `named` prefixes details with its issuer when there are
/// several.
async fn one_provider(auth: &Authenticator, oidc: &OidcSettings, named: bool, checks: &mut Checks) {
    let who = if named {
        format!("{}: ", oidc.issuer)
    } else {
        String::new()
    };
    if oidc.allow_insecure_http
        && !trust::is_loopback(&oidc.issuer)
        && oidc.issuer.scheme() == "http"
    {
        checks.warn(
            "https",
            format!(
                "plain http to {} is allowed by --oidc-allow-insecure-http",
                oidc.issuer
            ),
            "use the provider's https URL and drop --oidc-allow-insecure-http",
        );
    } else {
        checks.ok(
            "https",
            format!("the provider is reached at {}", oidc.issuer),
        );
    }
    if oidc.has_placeholder_secret() {
        checks.warn(
            "secret",
            format!("{who}--oidc-client-secret is a published placeholder"),
            "set the secret the provider generated for this client",
        );
    }
    let endpoints = match auth.endpoints().await {
        Ok(endpoints) => endpoints,
        Err(error) => {
            checks.fail("discovery", format!("{who}{error}"), fix_for(&error));
            return;
        }
    };
    let named_endpoint = |url: &Option<url::Url>| {
        url.as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string)
    };
    checks.ok(
        "discovery",
        format!(
            "{who}introspection at {}, tokens at {}, keys at {}",
            named_endpoint(&endpoints.introspection),
            named_endpoint(&endpoints.token),
            named_endpoint(&endpoints.jwks),
        ),
    );
    if oidc.checks_jwts() {
        checks.ok(
            "audience",
            format!(
                "{who}JWT access tokens are checked here and must name one of: {}",
                oidc.audiences.join(", ")
            ),
        );
        match auth.signing_keys().await {
            Ok((0, _)) => checks.fail(
                "keys",
                format!("{who}the provider's JWKS holds no signing key this server can use"),
                "check the provider's signing keys (RS*, PS*, ES256/384 or EdDSA)",
            ),
            Ok((usable, skipped)) => checks.ok(
                "keys",
                format!("{who}{usable} signing key(s) published ({skipped} skipped: encryption or unknown)"),
            ),
            Err(error) => checks.fail("keys", format!("{who}{error}"), fix_for(&error)),
        }
    } else {
        checks.warn(
            "audience",
            format!("{who}no audience: introspected tokens meant for any application are accepted, and JWTs are introspected"),
            "set --public-url to the URL clients use (and/or --oidc-audience), so only tokens issued for this server pass",
        );
    }
    if oidc.credentials.is_some() {
        match auth.probe().await {
            Ok(()) => checks.ok(
                "introspection",
                format!(
                    "{who}the provider lets {} introspect",
                    oidc.client_id().unwrap_or("the server")
                ),
            ),
            Err(error) => checks.fail("introspection", format!("{who}{error}"), fix_for(&error)),
        }
    }
}

/// A JWT access token checked as the server would, saying which rule refuses it.
async fn try_jwt(auth: &Authenticator, token: &Secret, peeked: &jwt::Peeked, checks: &mut Checks) {
    let verdict = match auth.check_jwt(token.expose(), peeked).await {
        Ok(verdict) => verdict,
        Err(error) => {
            checks.fail("token", error.to_string(), fix_for(&error));
            return;
        }
    };
    let principal = match verdict {
        Ok(verdict) => verdict.principal,
        Err(rejection) => {
            let fix = match rejection {
                jwt::Rejection::Audience(_) => "ask the provider for a token for this server (the client's resource indicator, Auth0's audience, an Audience mapper), or add its aud to --oidc-audience".to_owned(),
                jwt::Rejection::Expired => format!("put a fresh access token in {DOCTOR_TOKEN_ENV}"),
                jwt::Rejection::NotAnAccessToken(_) => format!("put an access token, not an ID or refresh token, in {DOCTOR_TOKEN_ENV}"),
                jwt::Rejection::Signature => "a token of this provider signed by a key it does not publish: check --oidc-issuer".to_owned(),
                _ => "see docs/DESIGN.md, Authentication, for the rules a JWT must meet".to_owned(),
            };
            checks.fail(
                "token",
                format!("a JWT the server would refuse: {rejection}"),
                fix,
            );
            return;
        }
    };
    let Some(principal) = principal else {
        checks.fail(
            "token",
            "a JWT the server would refuse",
            "see docs/DESIGN.md",
        );
        return;
    };
    let described = format!(
        "a JWT checked here, of {}; scopes [{}]",
        without_controls(&principal.subject),
        without_controls(&principal.scopes.join(" "))
    );
    accepted(
        &principal.scopes,
        described,
        ", or check --oidc-scope-claim",
        checks,
    );
}

/// The verdict on a token the server accepts: a warning when it carries none of the API's
/// scopes (it would pass only the routes that want any token), naming them all.
fn accepted(scopes: &[String], described: String, hint: &str, checks: &mut Checks) {
    if scopes.iter().any(|name| Scope::from_name(name).is_some()) {
        checks.ok("token", format!("{described}: accepted"));
    } else {
        checks.warn(
            "token",
            format!("{described}: accepted, but it carries none of the API's scopes"),
            format!(
                "ask for {} when the token is issued{hint}",
                Scope::SPACE_SEPARATED
            ),
        );
    }
}

/// Outside text, with control characters shown as escapes: a token's claims must not
/// drive the terminal that reads the report.
fn without_controls(text: &str) -> String {
    text.chars()
        .flat_map(char::escape_debug)
        .collect::<String>()
}

fn fix_for(error: &ProviderError) -> String {
    match error {
        ProviderError::Unreachable(_) => {
            "check that the provider runs and that --oidc-issuer is the URL this host reaches it at (--oidc-timeout to wait longer)".to_owned()
        }
        ProviderError::Misconfigured { option, .. } => format!("check {option}"),
    }
}

async fn try_token(auth: &Authenticator, token: &Secret, oidc: &OidcSettings, checks: &mut Checks) {
    let audiences = &oidc.audiences;
    let examined = match auth.examine(token.expose()).await {
        Ok(examined) => examined,
        Err(error) => {
            checks.fail("token", error.to_string(), fix_for(&error));
            return;
        }
    };
    let Some(answer) = examined.answer else {
        checks.fail(
            "token",
            "the provider refused the token (not an access token it knows)",
            format!("put an access token, not an ID or refresh token, in {DOCTOR_TOKEN_ENV}"),
        );
        return;
    };
    if !answer.active() {
        let (detail, fix) = why_inactive(token.expose(), oidc.client_id().unwrap_or_default());
        checks.fail("token", detail, fix);
        return;
    }
    let scopes = answer
        .scopes()
        .map(|scopes| scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap_or_default();
    let aud = answer.aud().cloned().unwrap_or_default();
    let described = format!(
        "active; scopes [{}]; aud [{}]",
        scopes.join(" "),
        aud.join(" ")
    );
    if !examined.accepted {
        let fix = if !audiences.is_empty() && !aud.iter().any(|a| audiences.contains(a)) {
            format!(
                "the token's aud names none of --oidc-audience ({}): add the Audience mapper for it",
                audiences.join(", ")
            )
        } else {
            "the token is not an access token the server accepts (token_type Bearer, not expired, with sub or client_id)".to_owned()
        };
        checks.fail(
            "token",
            format!("{described}, but the server would refuse it"),
            fix,
        );
        return;
    }
    accepted(&scopes, described, "", checks);
}

/// Why a token the provider called inactive may be so, read from the token itself when it
/// is a JWT (Keycloak's are). Unverified, and only used to explain a refusal: recent
/// Keycloak answers `active: false` to a client that is not in the token's `aud`, which
/// looks exactly like a revoked token unless the `aud` is read.
fn why_inactive(token: &str, client_id: &str) -> (String, String) {
    const INACTIVE: &str = "introspection says active: false";
    let unknown = || {
        (
            INACTIVE.to_owned(),
            format!(
                "if the token is fresh: recent Keycloak answers active:false unless {client_id} is in the token's aud; add the Audience mapper (docs/keycloak.md)"
            ),
        )
    };
    let Some(claims) = unverified_claims(token) else {
        return unknown();
    };
    if let Some(exp) = claims["exp"].as_i64()
        && exp <= chrono::Utc::now().timestamp()
    {
        return (
            format!("{INACTIVE}: the token expired"),
            format!("put a fresh access token in {DOCTOR_TOKEN_ENV}"),
        );
    }
    let aud: Vec<&str> = match &claims["aud"] {
        serde_json::Value::String(one) => vec![one.as_str()],
        serde_json::Value::Array(many) => many.iter().filter_map(|a| a.as_str()).collect(),
        _ => Vec::new(),
    };
    if aud.contains(&client_id) {
        return unknown();
    }
    let issued_to = claims["azp"]
        .as_str()
        .or_else(|| claims["client_id"].as_str())
        .unwrap_or("the token's client");
    (
        format!(
            "{INACTIVE}: the token's aud [{}] does not name {client_id}, the client this server introspects with, and Keycloak answers active:false to a client not in aud",
            aud.join(" ")
        ),
        format!(
            "add an Audience mapper (included.client.audience: {client_id}) to a default client scope of {issued_to}: the realm export's mrmat-api-audience scope (docs/keycloak.md)"
        ),
    )
}

/// The payload of a JWT-shaped token, not verified.
fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        payload.trim_end_matches('='),
    )
    .ok()?;
    serde_json::from_slice::<serde_json::Value>(&payload)
        .ok()
        .filter(serde_json::Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &serde_json::Value) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = claims.to_string().into_bytes();
        let mut text = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                text.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        format!("e30.{text}.c2ln")
    }

    fn future() -> i64 {
        chrono::Utc::now().timestamp() + 300
    }

    #[test]
    fn an_inactive_token_whose_aud_lacks_the_server_names_the_audience_mapper() {
        let token =
            jwt(&serde_json::json!({"aud": "account", "azp": "mrmat-api-cli", "exp": future()}));
        let (detail, fix) = why_inactive(&token, "mrmat-api");
        assert!(
            detail.contains("aud [account] does not name mrmat-api"),
            "{detail}"
        );
        assert!(fix.contains("Audience mapper"), "{fix}");
        assert!(fix.contains("mrmat-api-cli"), "{fix}");
    }

    #[test]
    fn an_inactive_token_without_aud_is_named_too() {
        let token = jwt(&serde_json::json!({"azp": "mrmat-api-test", "exp": future()}));
        let (detail, _) = why_inactive(&token, "mrmat-api");
        assert!(
            detail.contains("aud [] does not name mrmat-api"),
            "{detail}"
        );
    }

    #[test]
    fn an_inactive_token_naming_the_server_is_not_blamed_on_the_audience() {
        let token = jwt(&serde_json::json!({"aud": ["x", "mrmat-api"], "exp": future()}));
        let (detail, _) = why_inactive(&token, "mrmat-api");
        assert_eq!(detail, "introspection says active: false");
    }

    #[test]
    fn an_expired_token_is_called_expired() {
        let token = jwt(&serde_json::json!({"aud": "x", "exp": 1}));
        assert!(
            why_inactive(&token, "mrmat-api")
                .0
                .ends_with("the token expired")
        );
    }

    #[test]
    fn an_opaque_token_keeps_the_general_hint() {
        let (detail, fix) = why_inactive("opaque-token", "mrmat-api");
        assert_eq!(detail, "introspection says active: false");
        assert!(fix.contains("Audience mapper"));
    }
}
