//! Liveness and readiness.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use mrmat_api_types::health::{HealthStatus, Liveness, Readiness};

use super::route::Endpoint;
use crate::auth::ProviderHealth;
use crate::error::RETRY_AFTER_SECONDS;
use crate::outage;
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
    if state.is_draining() {
        // Shutting down: a balancer must stop sending here, whatever the dependencies say.
        let body = Readiness {
            status: HealthStatus::Degraded,
            checks: BTreeMap::from([("server".to_owned(), "SHUTTING_DOWN".to_owned())]),
        };
        return unavailable(body);
    }
    let (healthy, body) = verdict(&state).await;
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        unavailable(body)
    }
}

fn unavailable(body: Readiness) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS))
        .json(body)
}

/// The shared verdict, unless an outage started or ended since its check began: then a
/// fresh one. So a probe right after a request saw the provider or the database fail, or
/// answer again, already says so.
async fn verdict(state: &web::Data<AppState>) -> (bool, Readiness) {
    let now = outage::transitions();
    // Twice at most: a check already under way when this probe came may have begun before
    // the last transition; the second round begins after it.
    for _ in 0..2 {
        if let Some((seen, ..)) = state.readiness.get(&()).await
            && seen < now
        {
            state.readiness.invalidate(&()).await;
        }
        let checked = state.clone();
        let (seen, healthy, body) = state
            .readiness
            .get_with((), async move {
                let seen = outage::transitions();
                let (healthy, body) = check(&checked).await;
                (seen, healthy, body)
            })
            .await;
        if seen >= now {
            return (healthy, body);
        }
    }
    check(state).await
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
