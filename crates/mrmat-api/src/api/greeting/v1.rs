//! Greeting v1: a fixed greeting.

use actix_web::web;
use mrmat_api_types::greeting::Greeting;
use utoipa::OpenApi;

use crate::api::route::Endpoint;
use crate::api::{Mount, mount};

/// Mounted at `/api/greeting/v1`.
pub(crate) const MOUNT: Mount = mount!("greeting", "v1", endpoints, Doc::openapi);

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
        message: "Hello World".into(),
    })
}
