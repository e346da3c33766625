//! Bearer-token authentication: who is calling and what they may do.
//!
//! [`Principal`] is the extractor for "any valid access token"; [`Authorized<S>`] also
//! demands a scope, visible in the handler's signature. Both run before any body or path
//! parsing, so an unauthenticated request is always answered 401 first.

mod bearer;
pub(crate) mod claims;
mod dpop;
mod http;
mod introspection;
mod issuers;
mod jwks;
pub(crate) mod jwt;
pub(crate) mod provider;
mod recent;
mod service_token;
#[cfg(test)]
mod test_key;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::FutureExt;
use futures_util::future::{Either, LocalBoxFuture, Map, Ready, ready};

pub(crate) use introspection::Authenticator;
pub(crate) use issuers::{Issuers, Recall};
pub(crate) use mrmat_api_types::scope::{RequiredScope, Scope};
pub(crate) use recent::Recent;
// The markers a handler names (`Authorized<ResourceRead>`) are made by the scope list, one
// per scope: naming them here again would be a second list to keep.
pub(crate) use mrmat_api_types::scope::required::*;
pub(crate) use provider::ProviderHealth;

use crate::error::ApiError;
use crate::logging::Subject;

/// What a valid access token says about its holder; shared, not copied, between the
/// introspection cache and the requests that present the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The provider that vouches for the token: its issuer as configured, without a
    /// trailing slash. With the subject it keys the owner: `alice` of one provider is
    /// not `alice` of another.
    pub(crate) issuer: Arc<str>,
    /// Whether that provider is the primary one (configured first): owner rows an older
    /// release stored without an issuer are its users'.
    pub(crate) primary: bool,
    /// Stable identity: the token's `sub`, or `client:<client_id>` for a token that has
    /// no user (client credentials).
    pub(crate) subject: Arc<str>,
    /// Display name: `preferred_username`, else `username`, else the subject.
    pub(crate) username: String,
    /// The client the token was issued to: `client_id`, else `azp`.
    pub(crate) client_id: String,
    /// Granted scopes.
    pub(crate) scopes: Vec<String>,
    /// When the token expires, when the provider said.
    pub(crate) expires_at: Option<SystemTime>,
    /// The thumbprint of the DPoP key the token is bound to (`cnf.jkt`): then it is
    /// worth nothing without a proof by that key.
    pub(crate) bound_to: Option<Arc<str>>,
}

/// The holder of a valid access token: the extractor for "any valid access token".
#[derive(Debug, Clone)]
pub(crate) struct Principal(pub(crate) Arc<Identity>);

impl std::ops::Deref for Principal {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0
    }
}

impl Identity {
    /// Whether the token carries `scope`.
    pub(crate) fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s == scope.as_str())
    }

    fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= SystemTime::now())
    }
}

/// The extractors' future: ready at once for a token this worker judged lately (no
/// allocation, no wait), boxed only when the token must be judged.
type Judged<T> = Either<Ready<Result<T, ApiError>>, LocalBoxFuture<'static, Result<T, ApiError>>>;

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Judged<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Registered only when OIDC is configured.
        let Some(auth) = req.app_data::<web::Data<Issuers>>() else {
            return Either::Left(ready(Err(ApiError::AuthNotConfigured)));
        };
        // Read in place: copying the token out cost a warm JWT request an allocation
        // and a copy of its 800 bytes.
        let credential = match bearer::credential(req) {
            Ok(credential) => credential,
            Err(refused) => return Either::Left(ready(Err(refused))),
        };
        match auth.recall(req.app_data::<Recent>(), credential.token) {
            Recall::Known(judged) => {
                Either::Left(ready(judged.and_then(|p| admit(req, auth, credential, p))))
            }
            Recall::Unknown(key) => {
                let auth = auth.clone();
                let req = req.clone();
                Either::Right(Box::pin(async move {
                    let credential = bearer::credential(&req)?;
                    let recent = req.app_data::<Recent>();
                    let principal = auth.judge(recent, key, credential.token).await?;
                    admit(&req, &auth, credential, principal)
                }))
            }
        }
    }
}

/// The holder of a token, once the token is known valid: still in its life, presented as
/// its binding demands; named for the access log.
fn admit(
    req: &HttpRequest,
    auth: &Issuers,
    credential: bearer::Credential<'_>,
    principal: Principal,
) -> Result<Principal, ApiError> {
    if principal.is_expired() {
        return Err(ApiError::Unauthenticated {
            invalid_token: true,
        });
    }
    auth.binding().check(
        credential.scheme,
        principal.bound_to.as_deref(),
        || {
            req.headers()
                .get_all(DPOP)
                .map(|value| value.to_str().ok().map(str::to_owned))
                .collect()
        },
        || Some((req.method().as_str().to_owned(), auth.request_url(req)?)),
        credential.token,
    )?;
    // The access log names who called.
    req.extensions_mut()
        .insert(Subject(principal.subject.clone()));
    Ok(principal)
}

/// The proof header of RFC 9449.
const DPOP: actix_web::http::header::HeaderName =
    actix_web::http::header::HeaderName::from_static("dpop");

/// What a route demands of its caller, read from the type of its handler's first argument
/// (see [`Access`]); the routing and the OpenAPI document both use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requirement {
    /// Anyone.
    Open,
    /// Any valid access token.
    AnyToken,
    /// A valid access token carrying the scope.
    Scope(Scope),
}

/// An extractor's demand on the caller: [`Principal`] wants a token, [`Authorized<S>`]
/// a token with scope `S`, anything else nothing.
pub(crate) trait Access {
    /// The demand.
    const REQUIREMENT: Requirement;
}

impl Access for Principal {
    const REQUIREMENT: Requirement = Requirement::AnyToken;
}

impl<S: RequiredScope> Access for Authorized<S> {
    const REQUIREMENT: Requirement = Requirement::Scope(S::SCOPE);
}

/// A [`Principal`] whose token carries the scope `S`; 403 `insufficient_scope` otherwise.
#[derive(Debug)]
pub(crate) struct Authorized<S: RequiredScope> {
    /// The caller.
    pub(crate) principal: Principal,
    scope: PhantomData<S>,
}

impl<S: RequiredScope + 'static> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = Map<Judged<Principal>, fn(Result<Principal, ApiError>) -> Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        Principal::from_request(req, payload).map(Self::scoped as fn(_) -> _)
    }
}

impl<S: RequiredScope> Authorized<S> {
    fn scoped(principal: Result<Principal, ApiError>) -> Result<Self, ApiError> {
        let principal = principal?;
        if !principal.has_scope(S::SCOPE) {
            return Err(ApiError::InsufficientScope(S::SCOPE));
        }
        Ok(Self {
            principal,
            scope: PhantomData,
        })
    }
}
