//! Greeting v1: a fixed greeting.

use actix_web::web;
use mrmat_api_types::greeting::Greeting;
use utoipa::OpenApi;

use crate::api::{Mount, get, method_not_allowed};

/// Mounted at `/api/greeting/v1`.
pub const MOUNT: Mount = Mount {
    name: "greeting",
    version: "v1",
    prefix: "/api/greeting/v1",
    configure,
    openapi: Doc::openapi,
};

#[derive(OpenApi)]
#[openapi(paths(greet), components(schemas(Greeting)))]
struct Doc;

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("")
            .route(get().to(greet))
            .default_service(method_not_allowed("GET, HEAD")),
    );
}

/// Says hello to the world.
#[utoipa::path(
    get,
    path = "/api/greeting/v1/",
    tag = "greeting",
    responses((status = 200, description = "The greeting", body = Greeting))
)]
async fn greet() -> web::Json<Greeting> {
    web::Json(Greeting {
        message: "Hello World".to_owned(),
    })
}
