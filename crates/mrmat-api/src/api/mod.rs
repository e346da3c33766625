//! The API registry: every mounted API version, the open endpoints around them, and the
//! OpenAPI document assembled from the same list.
//!
//! Adding `greeting/v4` is one module with a `MOUNT` and one line in [`APIS`].

pub mod docs;
pub mod greeting;
pub mod healthz;
pub mod index;
pub mod resource;
pub mod well_known;

use actix_web::{HttpRequest, HttpResponse, Route, guard, web};
use utoipa::openapi::OpenApi;

use crate::error::ApiError;

/// One API version: where it lives, how it routes, how it documents itself.
#[derive(Debug, Clone, Copy)]
pub struct Mount {
    /// API name, e.g. `greeting`.
    pub name: &'static str,
    /// Version, e.g. `v1`.
    pub version: &'static str,
    /// Mount path, without a trailing slash (both forms are served).
    pub prefix: &'static str,
    /// Registers the routes, relative to `prefix`.
    pub configure: fn(&mut web::ServiceConfig),
    /// The OpenAPI paths of this version.
    pub openapi: fn() -> OpenApi,
}

/// Every versioned API this server mounts, in the order `GET /api/` lists them.
pub const APIS: &[Mount] = &[
    greeting::v1::MOUNT,
    greeting::v2::MOUNT,
    greeting::v3::MOUNT,
    resource::v1::MOUNT,
];

/// Registers every route of the application.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(healthz::configure)
        .configure(index::configure)
        .configure(docs::configure)
        .configure(well_known::configure);
    for api in APIS {
        cfg.service(web::scope(api.prefix).configure(api.configure));
    }
}

/// The OpenAPI document of everything [`configure`] registers.
pub fn openapi() -> OpenApi {
    let mut doc = docs::base();
    for api in APIS {
        doc.merge((api.openapi)());
    }
    doc
}

/// A GET route that answers HEAD too, as HTTP requires (actix sends no body for HEAD).
pub fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The answer of a known path to a method it does not have: 405 with `Allow`.
pub fn method_not_allowed(allow: &'static str) -> Route {
    web::route().to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        })
    })
}

/// The answer of an unknown path: 404 problem+json.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no such path: {}", req.path())))
}
