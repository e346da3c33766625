//! `GET /api/`: which APIs and versions are mounted.

use actix_web::web;
use mrmat_api_types::index::{ApiIndex, MountedApi};

use super::{APIS, get, method_not_allowed};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api")
            .route(get().to(list))
            .default_service(method_not_allowed("GET, HEAD")),
    );
}

/// The mounted APIs.
#[utoipa::path(
    get,
    path = "/api/",
    tag = "meta",
    responses((status = 200, description = "Mounted APIs", body = ApiIndex))
)]
pub(super) async fn list() -> web::Json<ApiIndex> {
    web::Json(ApiIndex {
        apis: APIS
            .iter()
            .map(|api| MountedApi {
                name: api.name.to_owned(),
                version: api.version.to_owned(),
                path: format!("{}/", api.prefix),
            })
            .collect(),
    })
}
