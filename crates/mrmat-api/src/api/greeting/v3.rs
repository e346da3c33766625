//! Greeting v3: greets the holder of the bearer token.

use actix_web::web;
use mrmat_api_types::Problem;
use mrmat_api_types::greeting::Greeting;
use utoipa::OpenApi;

use crate::api::{Mount, get, method_not_allowed};
use crate::auth::Principal;

/// Mounted at `/api/greeting/v3`.
pub const MOUNT: Mount = Mount {
    name: "greeting",
    version: "v3",
    prefix: "/api/greeting/v3",
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

/// Says hello to the token's user: any valid access token will do.
#[utoipa::path(
    get,
    path = "/api/greeting/v3/",
    tag = "greeting",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The greeting", body = Greeting),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Authentication unavailable", body = Problem, content_type = "application/problem+json")
    )
)]
async fn greet(principal: Principal) -> web::Json<Greeting> {
    web::Json(Greeting {
        message: format!("Hello {}", principal.username),
    })
}
