//! `GET /api/`: which APIs and versions are mounted.

use actix_web::web;
use mrmat_api_types::index::{ApiIndex, MountedApi};

use super::APIS;
use super::route::Endpoint;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::at("/api/").get(list)]
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
