//! Resource v1: CRUD on named resources. Anyone with the read scope reads everything;
//! writers create resources for themselves and change or delete only their own.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use mrmat_api_types::Problem;
use mrmat_api_types::resource::{Owner, Resource, ResourceInput, ResourceList};
use utoipa::OpenApi;

use crate::api::Mount;
use crate::api::route::Endpoint;
use crate::auth::{Authorized, Principal, ResourceRead, ResourceWrite};
use crate::db::resources::{self as store, OwnerIdentity, ResourceWithOwner};
use crate::error::ApiError;
use crate::extract::{JsonBody, Paging, parse_id};
use crate::state::AppState;

/// Mounted at `/api/resource/v1`.
pub(crate) const MOUNT: Mount = Mount {
    name: "resource",
    version: "v1",
    prefix: "/api/resource/v1",
    endpoints,
    openapi: Doc::openapi,
};

#[derive(OpenApi)]
#[openapi(
    paths(list, get, create, update, delete),
    components(schemas(Resource, ResourceList, ResourceInput))
)]
struct Doc;

fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::at("/").get(list).post(create),
        Endpoint::at("/{id}").get(get).put(update).delete(delete),
    ]
}

/// The wire form of a stored resource.
fn to_wire((resource, owner): ResourceWithOwner) -> Resource {
    Resource {
        id: resource.id,
        name: resource.name,
        owner: Owner {
            id: owner.id,
            client_id: owner.client_id,
            name: owner.name,
        },
        created_at: utc(resource.created_at),
        updated_at: utc(resource.updated_at),
    }
}

fn utc(naive: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(naive, Utc)
}

fn owner(principal: &Principal) -> OwnerIdentity<'_> {
    OwnerIdentity {
        issuer: &principal.issuer,
        subject: &principal.subject,
        client_id: &principal.client_id,
        name: &principal.username,
        // Owner rows without an issuer were stored by a release that knew one provider,
        // the primary; a second one is added only once no such release runs (README).
        adopt_legacy: principal.primary,
    }
}

/// Lists resources, ordered by id.
#[utoipa::path(
    get,
    path = "/",
    tag = "resource",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1 to 1000 (default 100)"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Resources to skip (default 0)"),
        ("after" = Option<i64>, Query, minimum = 0, description = "Only resources with a larger id: the keyset cursor of `next`")
    ),
    responses(
        (status = 200, description = "One page of resources; `next` (and a `Link` header with rel=\"next\") when there are more", body = ResourceList),
        (status = 400, description = "Bad limit, offset or after; `detail` names it", body = Problem, content_type = "application/problem+json")
    )
)]
async fn list(
    _auth: Authorized<ResourceRead>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let paging = Paging::from_query(req.query_string())?;
    // One row more than asked tells whether a next page exists without counting.
    let mut rows = state
        .db
        .run(store::LIST, move |conn| {
            store::list(
                conn,
                paging.after.unwrap_or(0),
                paging.limit + 1,
                paging.offset,
            )
        })
        .await?;
    let more = rows.len() > usize::try_from(paging.limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(paging.limit).unwrap_or(usize::MAX));
    let next = match rows.last() {
        Some((last, _)) if more => Some(format!(
            "{}/?limit={}&after={}",
            MOUNT.prefix, paging.limit, last.id
        )),
        _ => None,
    };
    let mut response = HttpResponse::Ok();
    if let Some(next) = &next {
        response.insert_header((header::LINK, format!("<{next}>; rel=\"next\"")));
    }
    Ok(response.json(ResourceList {
        resources: rows.into_iter().map(to_wire).collect(),
        next,
    }))
}

/// Reads one resource.
#[utoipa::path(
    get,
    path = "/{id}",
    tag = "resource",
    params(("id" = i64, Path, minimum = 1, description = "Resource id: a positive integer")),
    responses(
        (status = 200, description = "The resource", body = Resource)
    )
)]
async fn get(
    _auth: Authorized<ResourceRead>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<Resource>, ApiError> {
    let id = parse_id(&id)?;
    let row = state
        .db
        .run(store::GET, move |conn| store::get(conn, id))
        .await?;
    Ok(web::Json(to_wire(row)))
}

/// Creates a resource owned by the caller.
#[utoipa::path(
    post,
    path = "/",
    tag = "resource",
    request_body = ResourceInput,
    responses(
        (status = 201, description = "Created; `Location` names it", body = Resource),
        (status = 409, description = "The caller already has a resource of that name", body = Problem, content_type = "application/problem+json")
    )
)]
async fn create(
    auth: Authorized<ResourceWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let input: ResourceInput = body.parse().await?;
    let principal = auth.principal;
    let row = state
        .db
        .run(store::CREATE, move |conn| {
            store::create(conn, &owner(&principal), &input.name)
        })
        .await?;
    let resource = to_wire(row);
    let path = format!("{}/{}", MOUNT.prefix, resource.id);
    let location = match state.proxies.base_url(&req) {
        Some(base) => format!("{base}{path}"),
        None => path,
    };
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(resource))
}

/// Renames a resource the caller owns.
#[utoipa::path(
    put,
    path = "/{id}",
    tag = "resource",
    params(("id" = i64, Path, minimum = 1, description = "Resource id: a positive integer")),
    request_body = ResourceInput,
    responses(
        (status = 200, description = "The changed resource", body = Resource),
        (status = 403, description = "Token lacks the write scope, or the caller is not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The owner already has another resource of that name", body = Problem, content_type = "application/problem+json")
    )
)]
async fn update(
    auth: Authorized<ResourceWrite>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<web::Json<Resource>, ApiError> {
    let id = parse_id(&id)?;
    let input: ResourceInput = body.parse().await?;
    let principal = auth.principal;
    let row = state
        .db
        .run(store::UPDATE, move |conn| {
            store::update(conn, &owner(&principal), id, &input.name)
        })
        .await?;
    Ok(web::Json(to_wire(row)))
}

/// Deletes a resource the caller owns.
#[utoipa::path(
    delete,
    path = "/{id}",
    tag = "resource",
    params(("id" = i64, Path, minimum = 1, description = "Resource id: a positive integer")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Token lacks the write scope, or the caller is not the owner", body = Problem, content_type = "application/problem+json")
    )
)]
async fn delete(
    auth: Authorized<ResourceWrite>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let principal = auth.principal;
    state
        .db
        .run(store::DELETE, move |conn| {
            store::delete(conn, &owner(&principal), id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
