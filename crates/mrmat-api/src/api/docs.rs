//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the handlers.

use actix_web::{HttpResponse, web};
use mrmat_api_types::Problem;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi as _};

use super::{get, healthz, index, method_not_allowed, well_known};

/// The name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/openapi.json")
            .route(get().to(openapi_json))
            .default_service(method_not_allowed("GET, HEAD")),
    );
}

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "mrmat-api",
        description = "Versioned JSON APIs protected by OIDC bearer tokens (token introspection). Errors are RFC 9457 problem+json."
    ),
    paths(
        healthz::liveness,
        healthz::readiness,
        index::list,
        openapi_json,
        well_known::protected_resource
    ),
    components(schemas(Problem)),
    modifiers(&BearerScheme)
)]
struct BaseDoc;

/// The document without the versioned APIs.
pub(super) fn base() -> OpenApi {
    BaseDoc::openapi()
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi())
}
