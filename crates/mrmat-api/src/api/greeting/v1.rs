//! Greeting v1: a fixed greeting.

use actix_web::web;
use mrmat_api_types::greeting::Greeting;
use utoipa::OpenApi;

use crate::api::Mount;
use crate::api::route::Endpoint;

/// Mounted at `/api/greeting/v1`.
pub(crate) const MOUNT: Mount = Mount {
    name: "greeting",
    version: "v1",
    prefix: "/api/greeting/v1",
    endpoints,
    openapi: Doc::openapi,
};

#[derive(OpenApi)]
#[openapi(paths(greet), components(schemas(Greeting)))]
struct Doc;

fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::at("/").get(greet)]
}

/// Says hello to the world.
#[utoipa::path(
    get,
    path = "/",
    tag = "greeting",
    responses((status = 200, description = "The greeting", body = Greeting))
)]
async fn greet() -> web::Json<Greeting> {
    web::Json(Greeting {
        message: "Hello World".to_owned(),
    })
}
