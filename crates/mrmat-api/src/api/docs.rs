//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the handlers.
//!
//! Each API version documents its paths relative to its mount; they are nested under the
//! mount's prefix here. What every operation shares is added here once, from its
//! [`Endpoint`]: the security requirement (derived from the handler's auth extractor),
//! the problem+json answers that follow from it and from the operation's shape (401, 403,
//! 503; 400/413/415/422 with a body; 404 with an id; 507 for writes), and an operation id
//! made unique by the API's name and version.

use actix_web::HttpResponse;
use actix_web::http::Method;
use mrmat_api_types::Problem;
use mrmat_api_types::owner::NAME_PATTERN;
use mrmat_api_types::problem::PROBLEM_JSON;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi as _};

use super::Mount;
use super::route::Endpoint;
use super::{healthz, index, well_known};
use crate::auth::Requirement;

/// The name of the bearer security scheme in the document.
pub(crate) const BEARER: &str = "bearer";

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::at("/api/openapi.json").get(openapi_json)]
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

/// States the body rules the way the server applies them, for every request body of an
/// owner-scoped API (a schema named `...Input` with a `name`, see
/// `mrmat_api_types::owner`): the name's length after trimming (see [`NAME_PATTERN`]),
/// which a `maxLength` cannot, and no unknown fields.
fn name_rule(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (schema_name, input) in components.schemas.iter_mut() {
        let RefOr::T(Schema::Object(input)) = input else {
            continue;
        };
        if !schema_name.ends_with("Input") || !input.properties.contains_key("name") {
            continue;
        }
        input.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        if let Some(RefOr::T(Schema::Object(name))) = input.properties.get_mut("name") {
            name.pattern = Some(NAME_PATTERN.to_owned());
            name.min_length = None;
            name.max_length = None;
        }
    }
}

/// The document of the open endpoints and of every API in `apis`.
pub(super) fn document(open: &[Endpoint], apis: &[Mount]) -> OpenApi {
    let mut doc = BaseDoc::openapi();
    for endpoint in open {
        describe(&mut doc, endpoint.path(), endpoint);
    }
    for api in apis {
        let mut version = (api.openapi)();
        for item in version.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                let name = operation.operation_id.take().unwrap_or_default();
                operation.operation_id = Some(format!("{}_{}_{name}", api.name, api.version));
            }
        }
        doc = doc.nest(api.prefix, version);
        for endpoint in (api.endpoints)() {
            describe(
                &mut doc,
                &format!("{}{}", api.prefix, endpoint.path()),
                &endpoint,
            );
        }
    }
    name_rule(&mut doc);
    doc
}

fn operations_mut(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn operation_mut<'a>(
    doc: &'a mut OpenApi,
    path: &str,
    method: &Method,
) -> Option<&'a mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match *method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        _ => None,
    }
}

/// Adds what follows from `endpoint` to its operations at `path`.
fn describe(doc: &mut OpenApi, path: &str, endpoint: &Endpoint) {
    for (method, requirement) in endpoint.operations() {
        let Some(operation) = operation_mut(doc, path, method) else {
            continue;
        };
        match requirement {
            Requirement::Open => {}
            Requirement::AnyToken => {
                operation.security =
                    Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
            }
            Requirement::Scope(scope) => {
                operation.security = Some(vec![SecurityRequirement::new(BEARER, [scope.as_str()])]);
                problem(
                    operation,
                    403,
                    &format!("The token lacks the scope {scope}"),
                );
            }
        }
        if *requirement != Requirement::Open {
            problem(
                operation,
                401,
                "No token, or a malformed, unknown, expired or revoked one",
            );
            problem(
                operation,
                503,
                "The identity provider or the database is unavailable; retry after `Retry-After` seconds",
            );
        }
        if operation.request_body.is_some() {
            problem(operation, 400, "Malformed JSON, or not an object");
            problem(operation, 413, "The body is larger than 64 KiB");
            problem(operation, 415, "The body is not application/json");
            problem(
                operation,
                422,
                "The body breaks a rule; `detail` names the field",
            );
        }
        if path.contains('{') {
            problem(operation, 404, "No such resource");
        }
        if matches!(*method, Method::POST | Method::PUT | Method::DELETE) {
            problem(operation, 507, "Storage is full; nothing was stored");
        }
    }
}

/// Adds a problem+json answer with `status`, unless the operation declares its own.
fn problem(operation: &mut Operation, status: u16, description: &str) {
    let response: Response = ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build();
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert(RefOr::T(response));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation the router serves is in the document with the security its
    /// handler's extractor demands, and the document lists nothing the router lacks.
    #[test]
    fn the_document_and_the_routes_agree() {
        let doc = super::super::openapi();
        let mut routed = Vec::new();
        let mut endpoints: Vec<(String, Endpoint)> = super::super::open_endpoints()
            .into_iter()
            .map(|e| (e.path().to_owned(), e))
            .collect();
        for api in super::super::APIS {
            for endpoint in (api.endpoints)() {
                endpoints.push((format!("{}{}", api.prefix, endpoint.path()), endpoint));
            }
        }
        for (path, endpoint) in &endpoints {
            for (method, requirement) in endpoint.operations() {
                if *method == Method::HEAD {
                    continue;
                }
                let item = doc
                    .paths
                    .paths
                    .get(path)
                    .unwrap_or_else(|| panic!("{path} is not documented"));
                let operation = match *method {
                    Method::GET => item.get.as_ref(),
                    Method::POST => item.post.as_ref(),
                    Method::PUT => item.put.as_ref(),
                    Method::DELETE => item.delete.as_ref(),
                    _ => None,
                }
                .unwrap_or_else(|| panic!("{method} {path} is not documented"));
                let scopes: Option<Vec<String>> = operation.security.as_ref().map(|list| {
                    serde_json::to_value(list).unwrap()[0][BEARER]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_owned())
                        .collect()
                });
                let expected = match requirement {
                    Requirement::Open => None,
                    Requirement::AnyToken => Some(vec![]),
                    Requirement::Scope(scope) => Some(vec![scope.as_str().to_owned()]),
                };
                assert_eq!(scopes, expected, "{method} {path}");
                routed.push((path.clone(), method.to_string()));
            }
        }
        let documented: usize = doc
            .paths
            .paths
            .values()
            .map(|item| {
                [&item.get, &item.post, &item.put, &item.delete]
                    .iter()
                    .filter(|op| op.is_some())
                    .count()
            })
            .sum();
        assert_eq!(
            documented,
            routed.len(),
            "documented operations that are not routed"
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = super::super::openapi();
        let mut ids: Vec<String> = doc
            .paths
            .paths
            .values()
            .flat_map(|item| [&item.get, &item.post, &item.put, &item.delete])
            .filter_map(|op| op.as_ref().and_then(|op| op.operation_id.clone()))
            .collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count);
    }
}
