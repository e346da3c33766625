//! `GET /.well-known/oauth-protected-resource` (RFC 9728): how a client finds the identity
//! provider and the scopes from this server's URL alone.

use actix_web::{HttpRequest, web};
use mrmat_api_types::metadata::ProtectedResourceMetadata;

use super::{get, method_not_allowed};
use crate::auth::Scope;
use crate::forwarded;
use crate::startup::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/.well-known/oauth-protected-resource")
            .route(get().to(protected_resource))
            .default_service(method_not_allowed("GET, HEAD")),
    );
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
    let resource = forwarded::base_url(&req, &state.trusted_proxies).unwrap_or_default();
    let authorization_servers = state
        .auth
        .iter()
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
    })
}
