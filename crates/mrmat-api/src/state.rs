//! The state every worker shares, built once at start-up. Handlers take [`AppState`];
//! the lower layers register and read only their own part (the authenticator, the trusted
//! proxies), so nothing below the API imports this module.

use std::time::Duration;

use actix_web::web;
use moka::future::Cache;
use mrmat_api_types::health::Readiness;

use crate::auth::Issuers;
use crate::db::Db;
use crate::forwarded::TrustedProxies;

/// Shared by every worker.
#[derive(Debug)]
pub(crate) struct AppState {
    /// The database.
    pub(crate) db: Db,
    /// Token checking; `None` when OIDC is not configured.
    pub(crate) auth: Option<web::Data<Issuers>>,
    /// Where clients reach this server, when configured (`--public-url`).
    pub(crate) public_url: Option<url::Url>,
    /// Proxies whose forwarding headers are believed.
    pub(crate) proxies: web::Data<TrustedProxies>,
    /// The last readiness verdict, shared for a moment: N probes a second must not become
    /// N introspections by the server's client and N pool checkouts.
    pub(crate) readiness: Cache<(), (bool, Readiness)>,
}

/// How long a readiness verdict is shared.
const READINESS_TTL: Duration = Duration::from_secs(2);

impl AppState {
    /// An empty readiness cache; one check runs at a time, the others wait for it.
    pub(crate) fn readiness_cache() -> Cache<(), (bool, Readiness)> {
        Cache::builder()
            .max_capacity(1)
            .time_to_live(READINESS_TTL)
            .build()
    }
}
