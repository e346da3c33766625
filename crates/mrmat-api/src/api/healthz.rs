//! Liveness and readiness.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use mrmat_api_types::health::{HealthStatus, Liveness, Readiness};

use super::route::Endpoint;
use crate::auth::ProviderHealth;
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
    let mut checks = BTreeMap::new();
    let mut healthy = true;

    let database = match state.db.ping().await {
        Ok(()) => "OK",
        Err(_) => {
            healthy = false;
            "UNREACHABLE"
        }
    };
    checks.insert("database".to_owned(), database.to_owned());

    let oidc = match &state.auth {
        None => "NOT_CONFIGURED",
        Some(auth) => {
            let health = auth.check().await;
            if health != ProviderHealth::Ok {
                healthy = false;
            }
            health.as_str()
        }
    };
    checks.insert("oidc".to_owned(), oidc.to_owned());

    let body = Readiness {
        status: if healthy {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        },
        checks,
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
