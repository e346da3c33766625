//! `GET /.well-known/oauth-protected-resource` (RFC 9728): how a client finds the identity
//! provider and the scopes from this server's URL alone.

use actix_web::{HttpRequest, web};
use mrmat_api_types::metadata::{ProtectedResourceMetadata, SIGNING_ALGORITHMS};

use super::route::Endpoint;
use crate::auth::Scope;
use crate::state::AppState;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::at("/.well-known/oauth-protected-resource").get(protected_resource)]
}

/// Protected resource metadata.
#[utoipa::path(
    get,
    path = "/.well-known/oauth-protected-resource",
    tag = "meta",
    responses((status = 200, description = "RFC 9728 metadata", body = ProtectedResourceMetadata))
)]
pub(super) async fn protected_resource(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> web::Json<ProtectedResourceMetadata> {
    // Configured, the URL is what tokens must name; otherwise the best guess is the URL
    // this request came in on (the metadata then only informs, it binds nothing).
    let resource = match &state.public_url {
        Some(url) => url.as_str().to_owned(),
        None => state.proxies.base_url(&req).unwrap_or_default(),
    };
    let authorization_servers = state
        .auth
        .iter()
        .flat_map(|issuers| issuers.iter())
        .map(|auth| {
            auth.settings()
                .advertised_issuer()
                .as_str()
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    web::Json(ProtectedResourceMetadata {
        resource,
        authorization_servers,
        scopes_supported: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
        bearer_methods_supported: vec!["header".to_owned()],
        resource_name: Some("mrmat-api".to_owned()),
        dpop_signing_alg_values_supported: SIGNING_ALGORITHMS
            .iter()
            .map(|alg| (*alg).to_owned())
            .collect(),
        dpop_bound_access_tokens_required: state
            .auth
            .as_ref()
            .is_some_and(|auth| auth.binding().required()),
    })
}
