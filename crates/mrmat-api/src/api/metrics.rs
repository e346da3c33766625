//! `GET /metrics`: the Prometheus text exposition. Not part of the API (nor of its OpenAPI
//! document): operators scrape it, on the public port or on `--metrics-addr`.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};

use super::route::Endpoint;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Registers `/metrics`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    Endpoint::at("/metrics").get(metrics).register(cfg, "");
}

async fn metrics(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let (connections, idle) = state.db.pool_state();
    let text = metrics
        .render(connections, idle)
        .map_err(|e| ApiError::internal(format!("metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .insert_header(ContentType(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
                .parse()
                .unwrap_or(mime_plain()),
        ))
        .body(text))
}

fn mime_plain() -> actix_web::mime::Mime {
    actix_web::mime::TEXT_PLAIN_UTF_8
}
