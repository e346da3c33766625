//! A typed client of the mrmat-api HTTP interface. It sends what it is given as the bearer
//! token and turns problem+json answers into [`ClientError::Api`]. An answer that no
//! mrmat-api server would give (a 404 without a problem body, JSON of another shape) is
//! checked against `GET /api/`, so a `--server` pointing elsewhere is named as such.

use mrmat_api_types::Problem;
use mrmat_api_types::greeting::Greeting;
use mrmat_api_types::index::ApiIndex;
use mrmat_api_types::metadata::ProtectedResourceMetadata;
use mrmat_api_types::paths;
use mrmat_api_types::resource::{Resource, ResourceInput, ResourceList};
use mrmat_api_types::secret::Secret;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::binding::check_metadata_resource;
use crate::dpop::DpopKey;
use crate::error::{ClientError, display_url};
use crate::http::{Answer, Http, MAX_API_ANSWER, MAX_PROVIDER_ANSWER};
use crate::sanitise::printable;
use crate::server_url::ServerUrl;

/// The greeting API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GreetingVersion {
    /// `Hello World`.
    V1,
    /// `Hello <name>`.
    V2,
    /// `Hello <user of the token>`.
    #[default]
    V3,
}

impl GreetingVersion {
    /// The version's mount, with the trailing slash the server's table writes.
    fn path(self) -> String {
        let mount = match self {
            Self::V1 => paths::GREETING_V1,
            Self::V2 => paths::GREETING_V2,
            Self::V3 => paths::GREETING_V3,
        };
        format!("{mount}/")
    }
}

/// Which page of resources to ask for; the server's defaults where `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
    /// Resources to skip.
    pub offset: Option<u64>,
    /// Keyset cursor: only ids above this one.
    pub after: Option<i64>,
}

/// A client of one mrmat-api server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: ServerUrl,
    http: Http,
    token: Option<Secret>,
    /// The key the token is bound to (RFC 9449): then it goes as `DPoP <token>` with a
    /// fresh proof, never as a bearer token.
    dpop: Option<DpopKey>,
}

impl ApiClient {
    /// A client of the server at `base` (e.g. `http://localhost:8080`) with default
    /// HTTP options.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let base = ServerUrl::parse("the server URL", base)?;
        let http = Http::new(&crate::http::HttpOptions::default())?;
        http.check_url("the server URL", base.url())?;
        Ok(Self::with_http(base, http))
    }

    /// A client of `base` sharing an existing HTTP client (and its connection pool).
    pub fn with_http(base: ServerUrl, http: Http) -> Self {
        Self {
            base,
            http,
            token: None,
            dpop: None,
        }
    }

    /// The same client sending `token` as its bearer token.
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self.dpop = None;
        self
    }

    /// The same client sending `token`, bound to `key` when given: each request then
    /// carries `Authorization: DPoP <token>` and a fresh proof signed by `key`.
    pub fn with_bound_token(mut self, token: Secret, key: Option<DpopKey>) -> Self {
        self.token = Some(token);
        self.dpop = key;
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &ServerUrl {
        &self.base
    }

    /// Whether this client carries a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn url(&self, path: &str) -> String {
        self.base.join(path)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, &self.url(path));
        match (&self.token, &self.dpop) {
            // The proof needs the whole request (its query too, to leave out): `send`.
            (Some(_), Some(_)) => request,
            (Some(token), None) => request.bearer_auth(token.expose()),
            (None, _) => request,
        }
    }

    /// `request` with the DPoP scheme and a fresh proof for it, when the token is bound.
    fn bound(&self, request: RequestBuilder) -> Result<RequestBuilder, ClientError> {
        let (Some(token), Some(key)) = (&self.token, &self.dpop) else {
            return Ok(request);
        };
        let (client, built) = request.build_split();
        let built = built.map_err(|e| ClientError::Protocol {
            what: "the request",
            reason: printable(&e.to_string()),
        })?;
        let proof = key.proof(
            built.method().as_str(),
            built.url().as_str(),
            Some(token.expose()),
            None,
        )?;
        let mut authorization = HeaderValue::from_str(&format!("DPoP {}", token.expose()))
            .map_err(|_| ClientError::Protocol {
                what: "the token",
                reason: "the access token is not a valid header value".into(),
            })?;
        authorization.set_sensitive(true);
        let proof = HeaderValue::from_str(&proof).map_err(|_| ClientError::Protocol {
            what: "a DPoP proof",
            reason: "not a valid header value".into(),
        })?;
        Ok(RequestBuilder::from_parts(client, built)
            .header(AUTHORIZATION, authorization)
            .header("DPoP", proof))
    }

    /// Sends `request`, reading an answer of up to `limit` bytes; an unsuccessful one is
    /// an error.
    async fn send(
        &self,
        request: RequestBuilder,
        path: &str,
        limit: usize,
    ) -> Result<Answer, ClientError> {
        let answer = self
            .http
            .send(self.bound(request)?, limit)
            .await
            .map_err(|e| ClientError::http("the server", &self.url(path), &e))?;
        if answer.status().is_success() {
            return Ok(answer);
        }
        let (error, from_mrmat_api) = problem(&answer);
        if from_mrmat_api {
            return Err(error);
        }
        Err(self.unless_foreign(error, path).await)
    }

    /// An API answer (up to [`MAX_API_ANSWER`]) as `T`.
    async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        path: &str,
    ) -> Result<T, ClientError> {
        self.json_capped(request, path, MAX_API_ANSWER).await
    }

    /// An answer of up to `limit` bytes as `T`.
    async fn json_capped<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        path: &str,
        limit: usize,
    ) -> Result<T, ClientError> {
        let answer = self.send(request, path, limit).await?;
        match serde_json::from_slice(answer.body()) {
            Ok(value) => Ok(value),
            Err(e) => {
                let error = ClientError::Protocol {
                    what: "the server",
                    reason: format!("GET {path}: {e}"),
                };
                Err(self.unless_foreign(error, path).await)
            }
        }
    }

    /// `error`, unless the server turns out not to be an mrmat-api server at all: then
    /// that, which is what the person has to fix. Only answers no mrmat-api server gives
    /// (a 404 or 405 without a problem body, a body of another shape) are checked.
    async fn unless_foreign(&self, error: ClientError, path: &str) -> ClientError {
        let suspicious = matches!(
            error,
            ClientError::Protocol { .. }
                | ClientError::Api {
                    status: 404 | 405,
                    ..
                }
        );
        if !suspicious {
            return error;
        }
        match self.index().await {
            Ok(index)
                if index
                    .apis
                    .iter()
                    .any(|a| a.path.starts_with(paths::API_INDEX)) =>
            {
                error
            }
            Ok(_) | Err(ClientError::Api { .. } | ClientError::Protocol { .. }) => {
                ClientError::NotMrmatApi {
                    url: self.base.to_string(),
                    reason: format!("neither {path} nor {} answers like one", paths::API_INDEX),
                }
            }
            Err(_) => error,
        }
    }

    /// `GET /api/`: the APIs the server mounts. Used to tell whether a server is an
    /// mrmat-api server, so it never asks that question itself.
    pub async fn index(&self) -> Result<ApiIndex, ClientError> {
        let url = self.url(paths::API_INDEX);
        let answer = self
            .http
            .send(self.http.request(Method::GET, &url), MAX_PROVIDER_ANSWER)
            .await
            .map_err(|e| ClientError::http("the server", &url, &e))?;
        if !answer.status().is_success() {
            return Err(problem(&answer).0);
        }
        serde_json::from_slice(answer.body()).map_err(|e| ClientError::Protocol {
            what: "the server",
            reason: format!("GET {}: {e}", paths::API_INDEX),
        })
    }

    /// `GET /api/greeting/vN/`, with `?name=` for v2.
    pub async fn greeting(
        &self,
        version: GreetingVersion,
        name: Option<&str>,
    ) -> Result<Greeting, ClientError> {
        let path = version.path();
        let mut request = self.request(Method::GET, &path);
        if let (GreetingVersion::V2, Some(name)) = (version, name) {
            request = request.query(&[("name", name)]);
        }
        self.json(request, &path).await
    }

    /// One page of resources; its `next` names the following page, if there is one.
    pub async fn list_resources(&self, query: &ListQuery) -> Result<ResourceList, ClientError> {
        let path = &resources();
        let mut request = self.request(Method::GET, path);
        if let Some(limit) = query.limit {
            request = request.query(&[("limit", limit)]);
        }
        if let Some(offset) = query.offset {
            request = request.query(&[("offset", offset)]);
        }
        if let Some(after) = query.after {
            request = request.query(&[("after", after)]);
        }
        self.json(request, path).await
    }

    /// The page a previous page's `next` names. `next` must be a path on this server: the
    /// token is never sent anywhere else, whatever a page says.
    pub async fn list_resources_next(&self, next: &str) -> Result<ResourceList, ClientError> {
        let on_this_server = next.starts_with('/')
            && !next.starts_with("//")
            && !next.contains('\\')
            && !next.chars().any(|c| c.is_control() || c.is_whitespace());
        if !on_this_server {
            return Err(ClientError::Protocol {
                what: "the server",
                reason: "its next page link is not a path on the server".into(),
            });
        }
        let path = next.split('?').next().unwrap_or(next).to_owned();
        self.json(self.request(Method::GET, next), &path).await
    }

    /// One resource.
    pub async fn get_resource(&self, id: i64) -> Result<Resource, ClientError> {
        let path = resource(id);
        self.json(self.request(Method::GET, &path), &path).await
    }

    /// Creates a resource named `name`.
    pub async fn create_resource(&self, name: &str) -> Result<Resource, ClientError> {
        let path = &resources();
        let request = self
            .request(Method::POST, path)
            .json(&ResourceInput::new(name));
        self.json(request, path).await
    }

    /// Renames resource `id`.
    pub async fn update_resource(&self, id: i64, name: &str) -> Result<Resource, ClientError> {
        let path = resource(id);
        let request = self
            .request(Method::PUT, &path)
            .json(&ResourceInput::new(name));
        self.json(request, &path).await
    }

    /// Deletes resource `id`.
    pub async fn delete_resource(&self, id: i64) -> Result<(), ClientError> {
        let path = resource(id);
        self.send(self.request(Method::DELETE, &path), &path, MAX_API_ANSWER)
            .await?;
        Ok(())
    }

    /// The server's RFC 9728 metadata: which provider and scopes it uses. Only metadata
    /// whose `resource` is this server's URL is returned (RFC 9728 section 3.3), so a
    /// server cannot pass itself off as another to get that one's tokens.
    pub async fn protected_resource_metadata(
        &self,
    ) -> Result<ProtectedResourceMetadata, ClientError> {
        let path = paths::PROTECTED_RESOURCE_METADATA;
        // Without the token: the document is public and the token is not needed to find it.
        let request = self.http.request(Method::GET, &self.url(path));
        // Read loosely first: a document without `resource` is refused as such, not as
        // JSON of the wrong shape.
        let document: serde_json::Value =
            match self.json_capped(request, path, MAX_PROVIDER_ANSWER).await {
                Err(ClientError::Api { status, .. }) => {
                    // No mrmat-api server lacks the document; maybe this is not one at all.
                    let error = ClientError::NotMrmatApi {
                        url: self.base.to_string(),
                        reason: format!("it has no {path}: {status}"),
                    };
                    Err(match self.index().await {
                        Ok(_) => ClientError::Protocol {
                            what: "the server",
                            reason: format!("{path} answered {status}"),
                        },
                        Err(_) => error,
                    })
                }
                other => other,
            }?;
        if !document.is_object() {
            let error = ClientError::Protocol {
                what: "the server",
                reason: format!("GET {path}: not a JSON object"),
            };
            return Err(self.unless_foreign(error, path).await);
        }
        check_metadata_resource(
            &self.base,
            document.get("resource").and_then(serde_json::Value::as_str),
        )?;
        serde_json::from_value(document).map_err(|e| ClientError::Protocol {
            what: "the server",
            reason: format!("GET {path}: {e}"),
        })
    }
}

/// The resource collection: `POST` creates, `GET` lists.
fn resources() -> String {
    format!("{}/", paths::RESOURCE_V1)
}

/// One resource.
fn resource(id: i64) -> String {
    format!("{}/{id}", paths::RESOURCE_V1)
}

/// The error an unsuccessful answer stands for, and whether it came as a problem document
/// (which only an mrmat-api server, or something speaking for it, sends).
fn problem(response: &Answer) -> (ClientError, bool) {
    let status = response.status();
    let invalid_token = status == StatusCode::UNAUTHORIZED
        && response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("invalid_token"));
    if status.is_redirection() {
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| "elsewhere".to_owned(), display_url);
        let error = ClientError::Api {
            status: status.as_u16(),
            detail: format!(
                "the server redirects to {}; check --server (http or https?)",
                printable(&location)
            ),
            invalid_token,
        };
        return (error, true);
    }
    let (detail, from_mrmat_api) = match serde_json::from_slice::<Problem>(response.body()) {
        Ok(problem) => (problem.detail.unwrap_or(problem.title), true),
        Err(_) => (
            status
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_owned(),
            false,
        ),
    };
    let error = ClientError::Api {
        status: status.as_u16(),
        detail: printable(&detail),
        invalid_token,
    };
    (error, from_mrmat_api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_bearer_token() {
        let client = ApiClient::new("http://localhost:8080")
            .unwrap()
            .with_token(Secret::new("hunter2-bearer"));
        let text = format!("{client:?}");
        assert!(!text.contains("hunter2-bearer"), "{text}");
    }
}
