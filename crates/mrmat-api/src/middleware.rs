//! Request context: the `X-Request-Id` every response carries, the one log line of a
//! server-side failure's cause (with that id), and one access-log line per request. The
//! path is logged without its query string, where tokens could hide.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, web};

use crate::error::ApiError;
use crate::forwarded::TrustedProxies;
use crate::logging::{self, AccessRecord, Subject};
use crate::metrics::{self, Metrics, RouteName};
use crate::request_id::{RequestId, X_REQUEST_ID};

/// Tags the request with an id, echoes it on the response and logs the outcome.
pub(crate) async fn request_context<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let started = Instant::now();
    let id = RequestId::for_request(req.headers().get(X_REQUEST_ID));
    let method = req.method().clone();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    // Gathered only when the access log is on; the writer thread formats it.
    let access = logging::access_enabled().then(|| {
        let client = match req.app_data::<web::Data<TrustedProxies>>() {
            Some(proxies) => proxies.client_addr(req.request()),
            None => TrustedProxies::default().client_addr(req.request()),
        };
        (client, req.uri().clone())
    });
    let finish = |status: u16, request: Option<&HttpRequest>, error: Option<&Error>| {
        let took = started.elapsed();
        if let Some(metrics) = &metrics {
            let route = request
                .and_then(|r| r.app_data::<RouteName>())
                .map_or(metrics::UNMATCHED, |name| name.0);
            metrics.request(route, &method, status, took);
        }
        if let Some((level, cause)) = error
            .and_then(|e| e.as_error::<ApiError>())
            .and_then(ApiError::log_cause)
        {
            log::log!(level, "request_id={} {cause}", id.as_str());
        }
        if let Some((client, uri)) = access {
            logging::access(AccessRecord {
                client,
                method: method.clone(),
                uri,
                status,
                took,
                request_id: id.0.clone(),
                subject: request.and_then(|r| r.extensions().get::<Subject>().map(|s| s.0.clone())),
            });
        }
    };

    // The request is not cloned to keep for the error case: routing needs it unshared.
    match next.call(req).await {
        Ok(response) => {
            // The handler's body passes through as it is (no boxing per request).
            let mut response = response.map_into_left_body();
            response.headers_mut().insert(X_REQUEST_ID, id.0.clone());
            finish(
                response.status().as_u16(),
                Some(response.request()),
                response.response().error(),
            );
            Ok(response)
        }
        Err(error) => {
            let mut response = error.error_response().map_into_right_body::<B>();
            response.headers_mut().insert(X_REQUEST_ID, id.0.clone());
            finish(response.status().as_u16(), None, Some(&error));
            Err(
                InternalError::from_response(error.to_string(), response.map_into_boxed_body())
                    .into(),
            )
        }
    }
}
