//! One identity provider's judgement of tokens: JWT access tokens checked here against its
//! keys (`jwt`, `jwks`) when an audience is configured, other tokens by introspection
//! (RFC 7662) authenticated with the server's own client (HTTP Basic, or a bearer token of
//! its own with `--oidc-introspection-token-scope`); both behind one single-flight cache
//! keyed by a hash of the token.
//!
//! The request is made here rather than with `oauth2`'s introspection support, because
//! what the provider answers decides the outcome and that crate hides it: the status of an
//! error answer without a body (Glewlwyd refuses credentials with a bare 401), and the
//! bearer authentication RFC 7662 allows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use oauth2::TokenIntrospectionResponse;
use oauth2::basic::BasicErrorResponse;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::claims::{self, IntrospectionResponse, Rules, Verdict};
use super::http::{ProviderHttp, read_capped};
use super::jwks::{Jwks, Lookup};
use super::jwt::{self, Expectations, Peeked, Rejection};
use super::provider::{self, Endpoints, ProviderError, ProviderHealth};
use super::service_token::{self, ServiceToken};
use crate::error::ApiError;
use crate::metrics::{Metrics, Outcome};
use crate::outage::{Outage, Part};
use crate::settings::OidcSettings;

/// The cache key of a token: its SHA-256 (never the token itself).
pub(crate) type TokenKey = [u8; 32];

/// The cache key of `token`.
pub(crate) fn token_key(token: &str) -> TokenKey {
    Sha256::digest(token.as_bytes()).into()
}

/// Most introspection results kept at once.
const CACHE_CAPACITY: u64 = 100_000;

/// Most introspections in flight to one provider at once. A flood of made-up tokens
/// (each unknown to the cache) then costs the provider at most this many concurrent
/// calls, not one connection per request; a request that cannot get a turn within the
/// provider timeout is answered 503, like a slow provider.
pub(crate) const MAX_CONCURRENT_CALLS: usize = 32;

/// What the readiness probe introspects when the server has no token of its own.
const PROBE_TOKEN: &str = "mrmat-api-readiness-probe";

/// Each entry lives as long as its verdict says.
struct VerdictExpiry;

impl Expiry<[u8; 32], Verdict> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Verdict,
        created_at: std::time::Instant,
    ) -> Option<Duration> {
        // From when it was judged, not when it arrived here: the workers' own recent
        // verdicts (`super::recent`) end at the same moment.
        Some(value.until().saturating_duration_since(created_at))
    }
}

/// Checks bearer tokens with the identity provider.
pub(crate) struct Authenticator {
    settings: OidcSettings,
    /// The issuer as identities name it (see [`super::Identity::issuer`]).
    issuer: Arc<str>,
    /// The `iss` values its tokens may carry: the issuer and the public issuer, each as
    /// configured (with and without the slash URL parsing adds to a bare host).
    iss: Vec<String>,
    /// Its signing keys, for JWT access tokens.
    keys: Jwks,
    /// Whether it is the primary provider (see [`super::Identity::primary`]).
    primary: bool,
    /// Turns to call the introspection endpoint: [`MAX_CONCURRENT_CALLS`].
    calls: tokio::sync::Semaphore,
    http: ProviderHttp,
    endpoints: OnceCell<Endpoints>,
    /// Set with `--oidc-introspection-token-scope`: introspect with this, not Basic.
    service_token: Option<ServiceToken>,
    cache: Cache<[u8; 32], Verdict>,
    /// The provider down, slow or answering garbage: a warning per outage.
    unreachable: Outage,
    /// The provider refusing the server's own credentials: an error per episode, naming
    /// the option to fix.
    misconfigured: Outage,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.settings.issuer.as_str())
            .field("client_id", &self.settings.client_id())
            .finish_non_exhaustive()
    }
}

/// What `doctor` learns about a token.
#[derive(Debug)]
pub(crate) struct Examined {
    /// The introspection answer; `None` when the provider refused the token outright.
    pub(crate) answer: Option<Box<IntrospectionResponse>>,
    /// Whether the server would accept the token.
    pub(crate) accepted: bool,
}

/// What the provider answered about one token. Only `active: false`, or an OAuth error
/// naming the token itself (`invalid_token`, `unsupported_token_type`: the test provider
/// answers an ID token so), says a token is not valid; any other answer (a 429, a bodiless
/// 404, a 5xx) says nothing about the token, so it is an error, never a verdict.
enum Answer {
    /// A well-formed introspection answer.
    Introspected(Box<IntrospectionResponse>),
    /// An OAuth error about the token itself: it is not valid.
    TokenRefused,
}

impl Authenticator {
    /// An authenticator for `settings`. Nothing is fetched until the first token arrives,
    /// so the server starts while the provider is still down.
    pub(crate) fn new(settings: OidcSettings, metrics: Arc<Metrics>) -> Result<Self, ApiError> {
        let http = ProviderHttp::new(&settings).map_err(ApiError::internal)?;
        let cache = Cache::builder()
            .max_capacity(CACHE_CAPACITY)
            .expire_after(VerdictExpiry)
            .build();
        Ok(Self {
            service_token: settings
                .introspection_token_scope
                .clone()
                .map(ServiceToken::new),
            issuer: jwt::issuer_identity(&settings.issuer),
            iss: std::iter::once(&settings.issuer)
                .chain(settings.public_issuer.as_ref())
                .flat_map(|url| {
                    [
                        url.as_str().to_owned(),
                        url.as_str().trim_end_matches('/').to_owned(),
                    ]
                })
                .fold(Vec::new(), |mut all, iss| {
                    if !all.contains(&iss) {
                        all.push(iss);
                    }
                    all
                }),
            keys: Jwks::new(),
            primary: true,
            calls: tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS),
            settings,
            http,
            endpoints: OnceCell::new(),
            cache,
            unreachable: Outage::new("the identity provider"),
            misconfigured: Outage::logged_at("token introspection", log::Level::Error),
            metrics,
        })
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            ceiling: self.settings.cache_ttl,
            audiences: &self.settings.audiences,
            issuer: &self.issuer,
            primary: self.primary,
        }
    }

    /// The settings this authenticator uses.
    pub(crate) fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The same authenticator as a secondary provider.
    pub(crate) fn secondary(self) -> Self {
        Self {
            primary: false,
            ..self
        }
    }

    /// Whether `iss` names this provider.
    pub(crate) fn is_issuer(&self, iss: &str) -> bool {
        self.iss.iter().any(|own| own == iss)
    }

    /// Whether it can introspect (it has the server's client).
    pub(crate) fn introspects(&self) -> bool {
        self.settings.credentials.is_some()
    }

    /// The verdict on `token` (`jwt`: the token read as a JWT of this provider's), from
    /// the cache, the keys or the provider. Concurrent calls for one uncached token share
    /// one check.
    pub(crate) async fn authenticate(
        &self,
        key: TokenKey,
        token: &str,
        jwt: Option<&Peeked>,
    ) -> Result<Verdict, ApiError> {
        let cached = self.cache.get(&key).await;
        self.metrics.cache(cached.is_some());
        let verdict = match cached {
            Some(verdict) => Ok(verdict),
            None => self.cache.try_get_with(key, self.judge(token, jwt)).await,
        };
        let verdict = match verdict {
            Ok(verdict) => {
                self.unreachable.answered(Part::WHOLE);
                self.misconfigured.answered(Part::WHOLE);
                verdict
            }
            Err(error) => {
                self.observe(&error);
                return Err((*error).clone().into());
            }
        };
        Ok(verdict)
    }

    /// The verdict on the token with `key` when this provider has it cached: no decoding,
    /// no call. `None` when it has none.
    pub(crate) async fn cached(&self, key: &TokenKey) -> Option<Verdict> {
        let verdict = self.cache.get(key).await?;
        self.metrics.cache(true);
        Some(verdict)
    }

    fn observe(&self, error: &ProviderError) {
        match error {
            ProviderError::Unreachable(cause) => self.unreachable.failed(Part::WHOLE, cause),
            misconfigured => self.misconfigured.failed(Part::WHOLE, misconfigured),
        }
    }

    /// Whether the provider answers and lets the server introspect. Where the server can
    /// have a token of its own, that fresh token must come back active: a provider that
    /// lets this client introspect only nothing (or only its own tokens) is found out here
    /// rather than by every user's request. Else a token that cannot exist must be judged.
    pub(crate) async fn check(&self) -> ProviderHealth {
        let health = match self.probe().await {
            Ok(()) => ProviderHealth::Ok,
            Err(ProviderError::Unreachable(_)) => ProviderHealth::Unreachable,
            Err(ProviderError::Misconfigured { .. }) => ProviderHealth::Misconfigured,
        };
        log::debug!("readiness: the identity provider is {}", health.as_str());
        health
    }

    /// The readiness probe itself: the same verdict, with the provider's reason. A
    /// provider whose JWTs are checked here must publish keys; one that introspects must
    /// let the server do so.
    pub(crate) async fn probe(&self) -> Result<(), ProviderError> {
        let endpoints = self.endpoints().await?;
        if self.settings.checks_jwts() {
            let Some(jwks) = &endpoints.jwks else {
                return Err(ProviderError::Misconfigured {
                    option: "--oidc-issuer",
                    reason: "the provider's discovery names no jwks_uri".to_owned(),
                });
            };
            // Any algorithm will do: this loads (or refreshes) the set, and fails only when
            // there is none to be had.
            self.keys
                .lookup(&self.http, jwks, None, jsonwebtoken::Algorithm::RS256)
                .await?;
        }
        if !self.introspects() {
            return Ok(());
        }
        let own = match (&self.service_token, &endpoints.token) {
            (Some(service), Some(token_endpoint)) => Some(
                service
                    .get(&self.http, &self.settings, token_endpoint)
                    .await?,
            ),
            // A Basic client may or may not be granted tokens of its own; when it is not,
            // the probe falls back to a token that cannot exist.
            (None, Some(token_endpoint)) => {
                match service_token::fetch(&self.http, &self.settings, token_endpoint, None).await {
                    Ok((token, _)) => Some(token),
                    Err(ProviderError::Misconfigured { .. }) => None,
                    Err(unreachable) => return Err(unreachable),
                }
            }
            _ => None,
        };
        match own {
            Some(token) => match self.ask(token.expose()).await? {
                Answer::Introspected(response) if response.active() => Ok(()),
                _ => Err(ProviderError::Misconfigured {
                    option: self.credentials_option(),
                    reason: "the provider answers active:false for the server's own fresh token: this client may not introspect tokens (Keycloak: add the Audience mapper for this client; Glewlwyd: use --oidc-introspection-token-scope)".to_owned(),
                }),
            },
            None => self.ask(PROBE_TOKEN).await.map(|_| ()),
        }
    }

    /// Where the server introspects, and where it gets tokens of its own.
    pub(crate) async fn endpoints(&self) -> Result<&Endpoints, ProviderError> {
        self.endpoints
            .get_or_try_init(|| async {
                let endpoints = provider::endpoints(&self.http, &self.settings).await?;
                if let Some(introspection) = &endpoints.introspection
                    && self.introspects()
                {
                    log::info!("introspecting tokens at {introspection}");
                }
                if let Some(jwks) = &endpoints.jwks
                    && self.settings.checks_jwts()
                {
                    log::info!(
                        "checking JWT access tokens of {} with the keys at {jwks}",
                        self.issuer
                    );
                }
                Ok(endpoints)
            })
            .await
    }

    fn credentials_option(&self) -> &'static str {
        if self.service_token.is_some() {
            "--oidc-client-id/--oidc-client-secret/--oidc-introspection-token-scope"
        } else {
            "--oidc-client-id/--oidc-client-secret"
        }
    }

    /// A verdict on a token not in the cache.
    async fn judge(&self, token: &str, jwt: Option<&Peeked>) -> Result<Verdict, ProviderError> {
        match jwt {
            Some(peeked) if self.settings.checks_jwts() => {
                Ok(match self.check_jwt(token, peeked).await? {
                    Ok(verdict) => verdict,
                    Err(rejection) => {
                        log::debug!("JWT refused: {rejection}");
                        Verdict::invalid()
                    }
                })
            }
            _ if self.introspects() => self.introspect(token).await,
            _ => Ok(Verdict::invalid()),
        }
    }

    /// How many usable signing keys the provider publishes, and how many it publishes that
    /// are skipped, fetched now (for `doctor`).
    pub(crate) async fn signing_keys(&self) -> Result<(usize, usize), ProviderError> {
        let endpoints = self.endpoints().await?;
        let Some(jwks) = &endpoints.jwks else {
            return Err(ProviderError::Misconfigured {
                option: "--oidc-issuer",
                reason: "the provider's discovery names no jwks_uri".to_owned(),
            });
        };
        let set = super::jwks::fetch(&self.http, jwks).await?;
        Ok((set.keys.len(), set.skipped))
    }

    /// A JWT access token checked against this provider's keys: an error only when the
    /// keys cannot be had; a refusal is the token's fault.
    pub(crate) async fn check_jwt(
        &self,
        token: &str,
        peeked: &Peeked,
    ) -> Result<Result<Verdict, Rejection>, ProviderError> {
        let Some(alg) = peeked.alg else {
            return Ok(Err(Rejection::Algorithm));
        };
        let endpoints = self.endpoints().await?;
        let Some(jwks) = &endpoints.jwks else {
            return Err(ProviderError::Misconfigured {
                option: "--oidc-issuer",
                reason: "the provider's discovery names no jwks_uri".to_owned(),
            });
        };
        let keys = match self
            .keys
            .lookup(&self.http, jwks, peeked.kid.as_deref(), alg)
            .await?
        {
            Lookup::Found(keys) => keys,
            Lookup::Unknown => return Ok(Err(Rejection::Signature)),
        };
        let expect = Expectations {
            issuers: &self.iss,
            scope_claim: &self.settings.scope_claim,
            rules: self.rules(),
        };
        let mut outcome = Err(Rejection::Signature);
        for key in &keys {
            outcome = jwt::verify(token, peeked, &key.key, expect)
                .map(|v| v.capped(self.settings.cache_ttl));
            if !matches!(outcome, Err(Rejection::Signature)) {
                break;
            }
        }
        Ok(outcome)
    }

    async fn introspect(&self, token: &str) -> Result<Verdict, ProviderError> {
        let rules = self.rules();
        let started = Instant::now();
        let answer = self.ask(token).await;
        let verdict = match &answer {
            Ok(Answer::Introspected(response)) => Some(claims::judge(response, rules)),
            Ok(Answer::TokenRefused) => Some(Verdict::invalid()),
            Err(_) => None,
        };
        let outcome = match &verdict {
            Some(verdict) if verdict.principal.is_some() => Outcome::active,
            Some(_) => Outcome::inactive,
            None => Outcome::error,
        };
        self.metrics.introspection(outcome, started.elapsed());
        match (verdict, answer) {
            (Some(verdict), _) => Ok(verdict.capped(self.settings.cache_ttl)),
            (None, Err(error)) => Err(error),
            (None, Ok(_)) => Err(ProviderError::Unreachable("no verdict".to_owned())),
        }
    }

    /// What the provider says about `token`, for `doctor`: the raw answer and the
    /// server's verdict on it. Never cached.
    pub(crate) async fn examine(&self, token: &str) -> Result<Examined, ProviderError> {
        let rules = self.rules();
        Ok(match self.ask(token).await? {
            Answer::Introspected(response) => {
                let accepted = claims::judge(&response, rules).principal.is_some();
                Examined {
                    answer: Some(response),
                    accepted,
                }
            }
            Answer::TokenRefused => Examined {
                answer: None,
                accepted: false,
            },
        })
    }

    /// Asks the provider about `token`.
    async fn ask(&self, token: &str) -> Result<Answer, ProviderError> {
        let endpoints = self.endpoints().await?;
        let (Some(credentials), Some(introspection)) =
            (&self.settings.credentials, &endpoints.introspection)
        else {
            return Err(ProviderError::Misconfigured {
                option: "--oidc-client-id/--oidc-client-secret",
                reason: "the server has no client at this provider to introspect with".to_owned(),
            });
        };
        let _turn = tokio::time::timeout(self.settings.timeout, self.calls.acquire())
            .await
            .map_err(|_| {
                ProviderError::Unreachable(format!(
                    "{MAX_CONCURRENT_CALLS} introspections already in flight for {:?}",
                    self.settings.timeout
                ))
            })?
            .map_err(|_| ProviderError::Unreachable("shutting down".to_owned()))?;
        let mut reconnected = false;
        let mut renewed = false;
        loop {
            let request = self
                .http
                .post(introspection.as_str())
                .form(&[("token", token), ("token_type_hint", "access_token")]);
            let request = match (&self.service_token, &endpoints.token) {
                (Some(service), Some(token_endpoint)) => request.bearer_auth(
                    service
                        .get(&self.http, &self.settings, token_endpoint)
                        .await?
                        .expose(),
                ),
                (Some(_), None) => {
                    return Err(ProviderError::Misconfigured {
                        option: "--oidc-introspection-token-scope",
                        reason: "the provider names no token endpoint to get the server's own token from".to_owned(),
                    });
                }
                (None, _) => request.basic_auth(
                    mrmat_api_types::urls::basic_auth_part(&credentials.client_id),
                    Some(mrmat_api_types::urls::basic_auth_part(
                        credentials.client_secret.secret(),
                    )),
                ),
            };
            let response = match self.http.send("introspection", request).await {
                Ok(response) => response,
                // A pooled connection the provider closed while idle fails at once; one
                // fresh attempt tells that apart from a provider that is really down.
                Err(e) if !reconnected && !e.is_timeout() => {
                    reconnected = true;
                    continue;
                }
                Err(e) => {
                    // Without the URL: it is the provider's, and the message is enough.
                    return Err(ProviderError::Unreachable(format!(
                        "introspection: {}",
                        e.without_url()
                    )));
                }
            };
            let status = response.status();
            let body = read_capped(response)
                .await
                .map_err(|e| ProviderError::Unreachable(format!("introspection: {e}")))?;
            if status == StatusCode::UNAUTHORIZED && !renewed {
                // The server's own token may have been revoked or expired early: once more
                // with a new one.
                if let Some(service) = &self.service_token {
                    service.forget().await;
                    renewed = true;
                    continue;
                }
            }
            return self.interpret(status, &body);
        }
    }

    /// What an answer means: a 200 with an introspection answer, or the provider refusing
    /// the server (401, 403, `invalid_client`), or it cannot decide now (anything else:
    /// 503 to the client, never cached, readiness DEGRADED).
    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Answer, ProviderError> {
        if status.is_success() {
            return serde_json::from_slice::<IntrospectionResponse>(body)
                .map(|response| Answer::Introspected(Box::new(response)))
                .map_err(|e| {
                    ProviderError::Unreachable(format!("unreadable introspection answer: {e}"))
                });
        }
        let code = serde_json::from_slice::<BasicErrorResponse>(body)
            .ok()
            .map(|e| e.error().to_string());
        let refused = |what: String| ProviderError::Misconfigured {
            option: self.credentials_option(),
            reason: format!("the provider refused the server's credentials ({what})"),
        };
        let described = || match &code {
            Some(code) => format!("{status}, {code}"),
            None => status.to_string(),
        };
        match (status, code.as_deref()) {
            // Any 401, with or without a body (RFC 6749 section 5.2 wants invalid_client;
            // not every provider sends it), and a 403 are about the server's own client.
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => Err(refused(described())),
            (_, Some("invalid_client" | "unauthorized_client")) => Err(refused(described())),
            (StatusCode::BAD_REQUEST, Some("invalid_token" | "unsupported_token_type")) => {
                Ok(Answer::TokenRefused)
            }
            _ => Err(ProviderError::Unreachable(format!(
                "introspection answered {}",
                described()
            ))),
        }
    }
}
