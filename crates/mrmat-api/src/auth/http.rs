//! The HTTP client of every call to the identity provider: no redirects (following them
//! invites SSRF), bounded in time, trusting the platform's and webpki's roots plus
//! `--oidc-ca-file`, and bounded in what it reads: an answer over [`MAX_ANSWER_BYTES`] is
//! refused unread, so a broken or hostile provider cannot make the server buffer hundreds
//! of megabytes.

use std::time::Duration;

use crate::settings::OidcSettings;
use crate::telemetry;

/// Largest discovery document, token or introspection answer read. Real ones are a few KiB.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Idle pooled connections are dropped before the provider's keep-alive (Node's default is
/// 5 s) would close them under us.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// The provider's HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct ProviderHttp {
    client: reqwest::Client,
}

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The connection failed mid-answer.
    #[error("{0}")]
    Transport(String),
    /// Longer than [`MAX_ANSWER_BYTES`].
    #[error("the answer is larger than {MAX_ANSWER_BYTES} bytes; refused")]
    TooLarge,
}

impl ProviderHttp {
    /// The client for `settings`; fails on a CA file reqwest cannot use.
    pub(crate) fn new(settings: &OidcSettings) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("mrmat-api/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("--oidc-ca-file: {e}"))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        builder
            .build()
            .map(|client| Self { client })
            .map_err(|e| format!("HTTP client: {e}"))
    }

    /// A GET request.
    pub(crate) fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    /// A POST request.
    pub(crate) fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Sends `request` (built by [`Self::get`] or [`Self::post`]), the `what` call to the
    /// provider: with tracing on, in a client span of the current trace whose context the
    /// request carries (`traceparent`).
    pub(crate) async fn send(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        if telemetry::tracer().is_none() {
            return request.send().await;
        }
        let mut request = request.build()?;
        let span = telemetry::provider_call(what, &mut request);
        let result = self.client.execute(request).await;
        telemetry::provider_answered(span, result.as_ref().map(|response| response.status()));
        result
    }
}

/// The body of `response`, unless it is larger than [`MAX_ANSWER_BYTES`].
pub(crate) async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ReadError::Transport(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
