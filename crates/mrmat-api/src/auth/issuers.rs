//! Every configured identity provider, and which of them judges a token: the one its
//! `iss` names, and no other, so `alice` of one provider never passes as another's.
//!
//! - A JWT naming a configured issuer goes to that provider: checked against its keys when
//!   it has an audience, else introspected when it has the server's client.
//! - A JWT naming no configured issuer is refused without a provider call: discovery
//!   already holds the provider's issuer to the configured one (or `--oidc-public-issuer`),
//!   so no provider's token can name another, and a flood of made-up JWTs costs nothing.
//! - Any other token (opaque) is introspected by the first provider with the server's
//!   client; with none, it is refused.

use std::sync::Arc;

use actix_web::{HttpRequest, web};
use url::Url;

use super::bearer;
use super::claims::Verdict;
use super::dpop::Binding;
use super::introspection::TokenKey;
use super::jwt::{self, Peeked};
use super::recent::{Lookup, Recent};
use super::{Authenticator, Principal, ProviderHealth};
use crate::error::ApiError;
use crate::forwarded::TrustedProxies;
use crate::metrics::Metrics;
use crate::settings::OidcSettings;

/// The configured providers, the primary first, and the rules every token shares.
#[derive(Debug)]
pub(crate) struct Issuers {
    all: Vec<Authenticator>,
    /// How a DPoP-bound token must be presented.
    binding: Binding,
    /// `--public-url`: the URL DPoP proofs name, when set.
    public_url: Option<Url>,
    metrics: Arc<Metrics>,
}

/// What [`Issuers::recall`] can say of a token at once.
#[derive(Debug)]
pub(crate) enum Recall {
    /// The answer.
    Known(Result<Principal, ApiError>),
    /// Not judged lately: to be judged, under this key.
    Unknown(TokenKey),
}

impl Issuers {
    /// One authenticator per provider; `None` when none is configured.
    pub(crate) fn new(
        providers: &[OidcSettings],
        metrics: &Arc<Metrics>,
        public_url: Option<Url>,
        require_dpop: bool,
    ) -> Result<Option<Self>, ApiError> {
        let all = providers
            .iter()
            .enumerate()
            .map(|(i, settings)| {
                let auth = Authenticator::new(settings.clone(), metrics.clone())?;
                Ok(if i == 0 { auth } else { auth.secondary() })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok((!all.is_empty()).then_some(Self {
            all,
            binding: Binding::new(require_dpop),
            public_url,
            metrics: metrics.clone(),
        }))
    }

    /// The DPoP rules.
    pub(crate) fn binding(&self) -> &Binding {
        &self.binding
    }

    /// The URL of `req` as its client addressed it, query left out, which a DPoP proof
    /// must name: under `--public-url` when set, else as the trusted proxies report it.
    pub(crate) fn request_url(&self, req: &HttpRequest) -> Option<String> {
        let base = match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => req.app_data::<web::Data<TrustedProxies>>()?.base_url(req)?,
        };
        Some(format!("{base}{}", req.uri().path()))
    }

    /// Each provider.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Authenticator> {
        self.all.iter()
    }

    /// The provider that judges `token`, and the token read as a JWT when it is one.
    pub(crate) fn judge_of(&self, token: &str) -> Option<(&Authenticator, Option<Peeked>)> {
        match jwt::peek(token) {
            Some(peeked) => self
                .all
                .iter()
                .find(|a| a.is_issuer(&peeked.issuer))
                .map(|named| (named, Some(peeked))),
            None => self
                .all
                .iter()
                .find(|a| a.introspects())
                .map(|introspecting| (introspecting, None)),
        }
    }

    /// What can be said of `token` without a wait: too long, or judged lately by this
    /// worker (`recent`: its verdicts). Else the key to [`Self::judge`] it by, which
    /// refuses a token of characters RFC 6750 does not allow without asking a provider.
    pub(crate) fn recall(&self, recent: Option<&Recent>, token: &str) -> Recall {
        // Longer than any real token: refused before anything is decoded or sent.
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Recall::Known(Err(ApiError::Unauthenticated {
                invalid_token: true,
            }));
        }
        // A token seen before is judged from the cache, before anything is decoded: reading
        // a JWT's header and payload first held warm JWT requests to 0.54 of greeting v1
        // in the benchmark, against 0.78 for opaque tokens.
        // Only a well-formed token is ever judged and cached, so one found there needs no
        // second look at its characters.
        let lookup = Lookup::of(token);
        match recent.and_then(|recent| recent.get(&lookup)) {
            Some(verdict) => {
                self.metrics.cache(true);
                Recall::Known(verdict.into_principal())
            }
            None => Recall::Unknown(lookup.token_key(token)),
        }
    }

    /// The holder of `token`, whose key is `key`, from the shared cache, the keys or the
    /// provider; the verdict is kept in `recent`.
    pub(crate) async fn judge(
        &self,
        recent: Option<&Recent>,
        key: TokenKey,
        token: &str,
    ) -> Result<Principal, ApiError> {
        let verdict = self.verdict(key, token).await?;
        if let Some(recent) = recent {
            recent.remember(token, &verdict);
        }
        verdict.into_principal()
    }

    async fn verdict(&self, key: TokenKey, token: &str) -> Result<Verdict, ApiError> {
        for provider in &self.all {
            if let Some(verdict) = provider.cached(&key).await {
                return Ok(verdict);
            }
        }
        bearer::well_formed(token)?;
        match self.judge_of(token) {
            Some((judge, peeked)) => judge.authenticate(key, token, peeked.as_ref()).await,
            None => Err(ApiError::Unauthenticated {
                invalid_token: true,
            }),
        }
    }

    /// Readiness: every provider answers; the worst of their states.
    pub(crate) async fn check(&self) -> ProviderHealth {
        let states = futures_util::future::join_all(self.all.iter().map(|a| a.check())).await;
        states
            .into_iter()
            .max_by_key(|health| match health {
                ProviderHealth::Ok => 0,
                ProviderHealth::Unreachable => 1,
                ProviderHealth::Misconfigured => 2,
            })
            .unwrap_or(ProviderHealth::Ok)
    }
}
