//! The API registry: every mounted API version, the open endpoints around them, and the
//! OpenAPI document assembled from the same list.
//!
//! Adding `greeting/v4` is one module with a `MOUNT` and one line in [`APIS`];
//! `cargo xtask new-api NAME [--crud]` writes such a module (docs/ADDING_AN_API.md).

pub(crate) mod docs;
pub(crate) mod greeting;
pub(crate) mod healthz;
pub(crate) mod index;
pub(crate) mod metrics;
pub(crate) mod owned;
pub(crate) mod resource;
pub(crate) mod route;
pub(crate) mod well_known;

use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::OpenApi;

use crate::error::ApiError;
use route::{Endpoint, Form};

/// One API version: where it lives, what it serves, how it documents itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mount {
    /// API name, e.g. `greeting`.
    pub(crate) name: &'static str,
    /// Version, e.g. `v1`.
    pub(crate) version: &'static str,
    /// Mount path, without a trailing slash (both forms are served): `/api/{name}/{version}`,
    /// derived by [`mount!`], never stated.
    pub(crate) prefix: &'static str,
    /// The endpoints, with paths relative to `prefix`.
    pub(crate) endpoints: fn() -> Vec<Endpoint>,
    /// The OpenAPI paths of this version, relative to `prefix`.
    pub(crate) openapi: fn() -> OpenApi,
}

/// The [`Mount`] of API `$name` version `$version`, at `/api/$name/$version`, serving
/// `$endpoints` documented by `$openapi`.
macro_rules! mount {
    ($name:literal, $version:literal, $endpoints:expr, $openapi:expr) => {
        $crate::api::Mount {
            name: $name,
            version: $version,
            prefix: mrmat_api_types::mount_path!($name, $version),
            endpoints: $endpoints,
            openapi: $openapi,
        }
    };
}
pub(crate) use mount;

/// Every versioned API this server mounts, in the order `GET /api/` lists them.
pub(crate) const APIS: &[Mount] = &[
    greeting::v1::MOUNT,
    greeting::v2::MOUNT,
    greeting::v3::MOUNT,
    resource::v1::MOUNT,
];

/// The open endpoints around the APIs, at absolute paths.
fn open_endpoints() -> Vec<Endpoint> {
    let mut endpoints = healthz::endpoints();
    endpoints.extend(index::endpoints());
    endpoints.extend(docs::endpoints());
    endpoints.extend(well_known::endpoints());
    endpoints
}

/// Registers every route of the application.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    // The router tries each registration in turn, so the order is by how often a path is
    // asked: every path with its trailing slash (the form clients use) before any without,
    // and the APIs before the open endpoints, which before them cost every API request a
    // dozen failed matches (about 2,000 instructions, callgrind). No two of these paths
    // match one request, so the order changes no answer.
    let endpoints: Vec<(&str, Endpoint)> = APIS
        .iter()
        .flat_map(|api| (api.endpoints)().into_iter().map(|e| (api.prefix, e)))
        .chain(open_endpoints().into_iter().map(|e| ("", e)))
        .collect();
    for form in Form::BOTH {
        for (prefix, endpoint) in &endpoints {
            endpoint.register_form(cfg, prefix, form);
        }
    }
}

/// The OpenAPI document of everything [`configure`] registers.
pub(crate) fn openapi() -> OpenApi {
    docs::document(&open_endpoints(), APIS)
}

/// The answer of an unknown path: 404 problem+json.
pub(crate) async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no such path: {}", req.path())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What lets [`configure`] register the APIs first: no open endpoint lies under an
    /// API's mount path, so which is tried first decides no request.
    #[test]
    fn no_open_endpoint_lies_under_an_api() {
        for endpoint in open_endpoints() {
            for api in APIS {
                let path = endpoint.path();
                assert!(
                    path != api.prefix && !path.starts_with(&format!("{}/", api.prefix)),
                    "{path} is under {}",
                    api.prefix
                );
            }
        }
    }
}
