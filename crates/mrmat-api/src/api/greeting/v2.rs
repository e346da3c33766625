//! Greeting v2: greets whoever `?name=` names.

use actix_web::{HttpRequest, web};
use mrmat_api_types::greeting::Greeting;
use utoipa::OpenApi;

use crate::api::route::Endpoint;
use crate::api::{Mount, mount};

/// Mounted at `/api/greeting/v2`.
pub(crate) const MOUNT: Mount = mount!("greeting", "v2", endpoints, Doc::openapi);

#[derive(OpenApi)]
#[openapi(paths(greet), components(schemas(Greeting)))]
struct Doc;

fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::at("/").get(greet)]
}

/// The name to greet: the first non-blank `name` parameter. Read leniently, so a
/// repeated or oddly encoded parameter still gets a greeting rather than an error.
fn name_from_query(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "name")
        .map(|(_, value)| value.into_owned())
        .find(|value| !value.trim().is_empty())
}

/// Says hello to `name`, or to the world when it is missing or empty.
#[utoipa::path(
    get,
    path = "/",
    tag = "greeting",
    params(("name" = Option<String>, Query, description = "Who to greet")),
    responses((status = 200, description = "The greeting", body = Greeting))
)]
async fn greet(req: HttpRequest) -> web::Json<Greeting> {
    let name = name_from_query(req.query_string()).unwrap_or_else(|| "World".to_owned());
    web::Json(Greeting {
        message: format!("Hello {name}").into(),
    })
}

#[cfg(test)]
mod tests {
    use super::name_from_query;

    #[test]
    fn name_is_percent_decoded() {
        assert_eq!(
            name_from_query("name=J%C3%BCrgen+X").as_deref(),
            Some("Jürgen X")
        );
    }

    #[test]
    fn blank_name_means_none() {
        assert_eq!(name_from_query("name=&x=1"), None);
        assert_eq!(name_from_query("name=%20"), None);
    }
}
