//! Request context: the `X-Request-Id` every response carries, the one log line of a
//! server-side failure's cause (with that id), and one access-log line per request. The
//! path is logged without its query string, where tokens could hide.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};

use crate::error::ApiError;
use crate::forwarded::TrustedProxies;
use crate::metrics::{self, Metrics, RouteName};
use crate::request_id::{RequestId, X_REQUEST_ID};

/// Tags the request with an id, echoes it on the response and logs the outcome.
pub(crate) async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = RequestId::for_request(req.headers().get(X_REQUEST_ID));
    req.extensions_mut().insert(id.clone());
    let method = req.method().clone();
    let path = req.path().to_owned();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let client = match req.app_data::<web::Data<TrustedProxies>>() {
        Some(proxies) => proxies.client_addr(req.request()),
        None => TrustedProxies::default().client_addr(req.request()),
    };
    let log = |status: u16, route: Option<&RouteName>, error: Option<&Error>| {
        if let Some(metrics) = &metrics {
            let route = route.map_or(metrics::UNMATCHED, |name| name.0);
            metrics.request(route, &method, status, started.elapsed());
        }
        if let Some((level, cause)) = error
            .and_then(|e| e.as_error::<ApiError>())
            .and_then(ApiError::log_cause)
        {
            log::log!(level, "request_id={} {cause}", id.as_str());
        }
        log::info!(
            target: "mrmat_api::access",
            "{client} \"{method} {path}\" {status} {:.1}ms request_id={}",
            started.elapsed().as_secs_f64() * 1000.0,
            id.as_str(),
        );
    };

    // The request is not cloned to keep for the error case: routing needs it unshared.
    match next.call(req).await {
        Ok(response) => {
            let mut response = response.map_into_boxed_body();
            response.headers_mut().insert(X_REQUEST_ID, id.0.clone());
            log(
                response.status().as_u16(),
                response.request().app_data::<RouteName>(),
                response.response().error(),
            );
            Ok(response)
        }
        Err(error) => {
            let mut response = error.error_response();
            response.headers_mut().insert(X_REQUEST_ID, id.0.clone());
            log(response.status().as_u16(), None, Some(&error));
            Err(InternalError::from_response(error.to_string(), response).into())
        }
    }
}
