//! Liveness and readiness.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use mrmat_api_types::health::{HealthStatus, Liveness, Readiness};

use super::route::Endpoint;
use crate::auth::ProviderHealth;
use crate::error::RETRY_AFTER_SECONDS;
use crate::state::AppState;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::at("/healthz/").get(liveness),
        Endpoint::at("/healthz/ready").get(readiness),
    ]
}

/// The process is alive.
#[utoipa::path(
    get,
    path = "/healthz/",
    tag = "health",
    responses((status = 200, description = "Alive", body = Liveness))
)]
pub(super) async fn liveness() -> web::Json<Liveness> {
    web::Json(Liveness {
        status: HealthStatus::Ok,
    })
}

/// Whether the database and the identity provider answer.
#[utoipa::path(
    get,
    path = "/healthz/ready",
    tag = "health",
    responses(
        (status = 200, description = "Every dependency answers", body = Readiness),
        (status = 503, description = "A dependency fails", body = Readiness)
    )
)]
pub(super) async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    let checked = state.clone();
    let (healthy, body) = state
        .readiness
        .get_with((), async move { check(&checked).await })
        .await;
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS))
            .json(body)
    }
}

/// Asks the database and the identity provider, both at once.
async fn check(state: &AppState) -> (bool, Readiness) {
    let provider = async {
        match &state.auth {
            None => None,
            Some(auth) => Some(auth.check().await),
        }
    };
    let (database, provider) = tokio::join!(state.db.ping(), provider);
    let database_ok = database.is_ok();
    let provider_ok = provider
        .as_ref()
        .is_none_or(|health| *health == ProviderHealth::Ok);
    let mut checks = BTreeMap::new();
    checks.insert(
        "database".to_owned(),
        if database_ok { "OK" } else { "UNREACHABLE" }.to_owned(),
    );
    checks.insert(
        "oidc".to_owned(),
        provider
            .as_ref()
            .map_or("NOT_CONFIGURED", ProviderHealth::as_str)
            .to_owned(),
    );
    let healthy = database_ok && provider_ok;
    let body = Readiness {
        status: if healthy {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        },
        checks,
    };
    (healthy, body)
}
