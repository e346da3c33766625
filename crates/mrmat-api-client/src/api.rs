//! A typed client of the mrmat-api HTTP interface. It sends what it is given as the bearer
//! token and turns problem+json answers into [`ClientError::Api`].

use std::time::Duration;

use mrmat_api_types::Problem;
use mrmat_api_types::greeting::Greeting;
use mrmat_api_types::metadata::ProtectedResourceMetadata;
use mrmat_api_types::resource::{Resource, ResourceInput, ResourceList};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{ClientError, display_url, printable};

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
    fn path(self) -> &'static str {
        match self {
            Self::V1 => "/api/greeting/v1/",
            Self::V2 => "/api/greeting/v2/",
            Self::V3 => "/api/greeting/v3/",
        }
    }
}

/// A client of one mrmat-api server.
#[derive(Clone)]
pub struct ApiClient {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Builds the HTTP client every part of this crate uses: bounded in time, no redirects
/// (a redirect could carry the bearer token elsewhere).
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("mrmat-api-client/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))
}

impl ApiClient {
    /// A client of the server at `base` (e.g. `http://localhost:8080`).
    pub fn new(base: Url) -> Result<Self, ClientError> {
        Ok(Self::with_http(base, http_client()?))
    }

    /// A client of `base` sharing an existing HTTP client (and its connection pool).
    pub fn with_http(base: Url, http: reqwest::Client) -> Self {
        Self {
            base,
            http,
            token: None,
        }
    }

    /// The same client sending `token` as its bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder, path: &str) -> Result<Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::unreachable("the server", &self.url(path), &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(problem(response).await)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        path: &str,
    ) -> Result<T, ClientError> {
        self.send(request, path)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Protocol {
                what: "the server",
                reason: e.without_url().to_string(),
            })
    }

    /// `GET /api/greeting/vN/`, with `?name=` for v2.
    pub async fn greeting(
        &self,
        version: GreetingVersion,
        name: Option<&str>,
    ) -> Result<Greeting, ClientError> {
        let mut request = self.request(Method::GET, version.path());
        if let (GreetingVersion::V2, Some(name)) = (version, name) {
            request = request.query(&[("name", name)]);
        }
        self.json(request, version.path()).await
    }

    /// One page of resources.
    pub async fn list_resources(
        &self,
        limit: Option<u32>,
        offset: Option<u64>,
    ) -> Result<ResourceList, ClientError> {
        let path = "/api/resource/v1/";
        let mut request = self.request(Method::GET, path);
        if let Some(limit) = limit {
            request = request.query(&[("limit", limit)]);
        }
        if let Some(offset) = offset {
            request = request.query(&[("offset", offset)]);
        }
        self.json(request, path).await
    }

    /// One resource.
    pub async fn get_resource(&self, id: i64) -> Result<Resource, ClientError> {
        let path = format!("/api/resource/v1/{id}");
        self.json(self.request(Method::GET, &path), &path).await
    }

    /// Creates a resource named `name`.
    pub async fn create_resource(&self, name: &str) -> Result<Resource, ClientError> {
        let path = "/api/resource/v1/";
        let request = self
            .request(Method::POST, path)
            .json(&ResourceInput::new(name));
        self.json(request, path).await
    }

    /// Renames resource `id`.
    pub async fn update_resource(&self, id: i64, name: &str) -> Result<Resource, ClientError> {
        let path = format!("/api/resource/v1/{id}");
        let request = self
            .request(Method::PUT, &path)
            .json(&ResourceInput::new(name));
        self.json(request, &path).await
    }

    /// Deletes resource `id`.
    pub async fn delete_resource(&self, id: i64) -> Result<(), ClientError> {
        let path = format!("/api/resource/v1/{id}");
        self.send(self.request(Method::DELETE, &path), &path)
            .await?;
        Ok(())
    }

    /// The server's RFC 9728 metadata: which provider and scopes it uses.
    pub async fn protected_resource_metadata(
        &self,
    ) -> Result<ProtectedResourceMetadata, ClientError> {
        let path = "/.well-known/oauth-protected-resource";
        // Without the token: the document is public and the token is not needed to find it.
        let request = self.http.get(self.url(path));
        self.json(request, path).await
    }
}

/// The error an unsuccessful answer stands for.
async fn problem(response: Response) -> ClientError {
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
        return ClientError::Api {
            status: status.as_u16(),
            detail: format!("the server redirects to {location}; check --server (http or https?)"),
            invalid_token,
        };
    }
    let body = response.bytes().await.unwrap_or_default();
    let detail = match serde_json::from_slice::<Problem>(&body) {
        Ok(problem) => problem.detail.unwrap_or(problem.title),
        Err(_) => status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_owned(),
    };
    ClientError::Api {
        status: status.as_u16(),
        detail: printable(&detail),
        invalid_token,
    }
}
