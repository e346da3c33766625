//! Greeting v3: greets the holder of the bearer token.

use actix_web::web;
use mrmat_api_types::greeting::Greeting;
use utoipa::OpenApi;

use crate::api::route::Endpoint;
use crate::api::{Mount, mount};
use crate::auth::Principal;

/// Mounted at `/api/greeting/v3`.
pub(crate) const MOUNT: Mount = mount!("greeting", "v3", endpoints, Doc::openapi);

#[derive(OpenApi)]
#[openapi(paths(greet), components(schemas(Greeting)))]
struct Doc;

fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::at("/").get(greet)]
}

/// Says hello to the token's user: any valid access token will do.
#[utoipa::path(
    get,
    path = "/",
    tag = "greeting",
    responses((status = 200, description = "The greeting", body = Greeting))
)]
async fn greet(principal: Principal) -> web::Json<Greeting> {
    // Sized once: `format!` grew its buffer for the name (a reallocation a request).
    let mut message = String::with_capacity("Hello ".len() + principal.username.len());
    message.push_str("Hello ");
    message.push_str(&principal.username);
    web::Json(Greeting {
        message: message.into(),
    })
}
