//! Resource v1: CRUD on named resources. Anyone with the read scope reads everything;
//! writers create resources for themselves and change or delete only their own.

use actix_web::{HttpRequest, HttpResponse, web};
use mrmat_api_types::Problem;
use mrmat_api_types::resource::{Resource, ResourceInput, ResourceList};
use utoipa::OpenApi;

use crate::api::owned::{self, Page};
use crate::api::route::Endpoint;
use crate::api::{Mount, mount};
use crate::auth::{Authorized, ResourceRead, ResourceWrite};
use crate::db::resources::{self as store, NOUN, WithOwner};
use crate::error::ApiError;
use crate::extract::{JsonBody, Paging, parse_id};
use crate::state::AppState;

/// Mounted at `/api/resource/v1`.
pub(crate) const MOUNT: Mount = mount!("resource", "v1", endpoints, Doc::openapi);

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
fn to_wire((resource, owner): WithOwner) -> Resource {
    Resource {
        id: resource.id,
        name: resource.name,
        owner: owned::owner(owner),
        created_at: owned::utc(resource.created_at),
        updated_at: owned::utc(resource.updated_at),
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
    let paging = Paging::from_query(req.query_string(), NOUN)?;
    let rows = state
        .db
        .run(store::LIST, move |conn, _| {
            store::list(conn, paging.after(), paging.limit + 1, paging.offset)
        })
        .await?;
    let page = Page::of(rows, paging, MOUNT.prefix, |(row, _)| row.id);
    Ok(page.response().json(ResourceList {
        next: page.next,
        resources: page.rows.into_iter().map(to_wire).collect(),
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
    let id = parse_id(&id, NOUN)?;
    let row = state
        .db
        .run(store::GET, move |conn, _| store::get(conn, id))
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
        .run(store::CREATE, move |conn, deadline| {
            store::create(conn, deadline, &owned::identity(&principal), &input.name)
        })
        .await?;
    let resource = to_wire(row);
    Ok(owned::created(&state, &req, MOUNT.prefix, resource.id).json(resource))
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
    let id = parse_id(&id, NOUN)?;
    let input: ResourceInput = body.parse().await?;
    let principal = auth.principal;
    let found = state
        .db
        .run(store::UPDATE, move |conn, deadline| {
            store::update(
                conn,
                deadline,
                &owned::identity(&principal),
                id,
                &input.name,
            )
        })
        .await?;
    Ok(web::Json(to_wire(owned::only_owner(NOUN, id, found)?)))
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
    let id = parse_id(&id, NOUN)?;
    let principal = auth.principal;
    let found = state
        .db
        .run(store::DELETE, move |conn, deadline| {
            store::delete(conn, deadline, &owned::identity(&principal), id)
        })
        .await?;
    owned::only_owner(NOUN, id, found)?;
    Ok(HttpResponse::NoContent().finish())
}
