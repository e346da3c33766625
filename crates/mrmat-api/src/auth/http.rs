//! The HTTP client of every call to the identity provider: no redirects (following them
//! invites SSRF), bounded in time, and bounded in what it reads: an answer over
//! [`MAX_ANSWER_BYTES`] is refused unread, so a broken or hostile provider cannot make the
//! server buffer hundreds of megabytes.

use std::future::Future;
use std::pin::Pin;

use oauth2::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};

/// Largest discovery document or introspection answer read. Real ones are a few KiB.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A failed call to the provider.
pub(crate) type CallError = HttpClientError<reqwest::Error>;

/// The provider's HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct ProviderHttp {
    client: reqwest::Client,
}

impl ProviderHttp {
    /// Wraps `client` (built with redirects off and timeouts on).
    pub(crate) fn new(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// A GET request.
    pub(crate) fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url)
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, CallError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = request.try_into().map_err(Box::new)?;
            let response = self.client.execute(request).await.map_err(Box::new)?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = read_capped(response).await?;
            builder.body(body).map_err(HttpClientError::Http)
        })
    }
}

/// The body of `response`, unless it is larger than [`MAX_ANSWER_BYTES`].
pub(crate) async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let too_large = || {
        HttpClientError::Other(format!(
            "the answer is larger than {MAX_ANSWER_BYTES} bytes; refused"
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Box::new)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
