//! Request context: the `X-Request-Id` every response carries, and one access-log line per
//! request. The path is logged without its query string, where tokens could hide.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};

use crate::forwarded;
use crate::startup::AppState;

/// The request id header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts the caller's id when it is 1 to 128 visible ASCII characters.
fn caller_id(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let valid = (1..=128).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b));
    valid.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Tags the request with an id, echoes it on the response and logs the outcome.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(caller_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.path().to_owned();
    let client = match req.app_data::<web::Data<AppState>>() {
        Some(state) => forwarded::client_addr(req.request(), &state.trusted_proxies),
        None => req
            .peer_addr()
            .map_or_else(|| "-".to_owned(), |addr| addr.ip().to_string()),
    };
    let header = HeaderValue::from_str(&id).ok();
    let log = |status: u16| {
        log::info!(
            target: "mrmat_api::access",
            "{client} \"{method} {path}\" {status} {:.1}ms request_id={id}",
            started.elapsed().as_secs_f64() * 1000.0,
        );
    };

    // The request is not cloned to keep for the error case: routing needs it unshared.
    match next.call(req).await {
        Ok(response) => {
            let mut response = response.map_into_boxed_body();
            if let Some(value) = header {
                response.headers_mut().insert(X_REQUEST_ID, value);
            }
            log(response.status().as_u16());
            Ok(response)
        }
        Err(error) => {
            let mut response = error.error_response();
            if let Some(value) = header {
                response.headers_mut().insert(X_REQUEST_ID, value);
            }
            log(response.status().as_u16());
            Err(InternalError::from_response(error.to_string(), response).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_of_visible_ascii_are_kept() {
        assert_eq!(
            caller_id(&HeaderValue::from_static("abc-123")).as_deref(),
            Some("abc-123")
        );
    }

    #[test]
    fn caller_ids_with_spaces_or_too_long_are_replaced() {
        assert!(caller_id(&HeaderValue::from_static("a b")).is_none());
        assert!(caller_id(&HeaderValue::from_str(&"x".repeat(129)).unwrap()).is_none());
        assert!(caller_id(&HeaderValue::from_static("")).is_none());
    }
}
