//! The state every worker shares, built once at start-up. Handlers take [`AppState`];
//! the lower layers register and read only their own part (the authenticator, the trusted
//! proxies), so nothing below the API imports this module.

use std::time::Duration;

use actix_web::web;
use moka::future::Cache;
use mrmat_api_types::health::Readiness;

use crate::auth::Issuers;
use crate::db::Db;
use crate::drain::Drain;
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
    /// Tagged with [`crate::outage::transitions`] as it was when the check began: a
    /// verdict older than the last outage starting or ending is not used.
    pub(crate) readiness: Cache<(), Verdict>,
    /// Set on SIGTERM/SIGINT: readiness answers 503 and every answer closes its connection.
    pub(crate) drain: web::Data<Drain>,
}

/// A readiness verdict: the outage transitions it saw, whether ready, and the body.
pub(crate) type Verdict = (u64, bool, Readiness);

/// How long a readiness verdict is shared.
const READINESS_TTL: Duration = Duration::from_secs(2);

impl AppState {
    /// An empty readiness cache; one check runs at a time, the others wait for it.
    pub(crate) fn readiness_cache() -> Cache<(), Verdict> {
        Cache::builder()
            .max_capacity(1)
            .time_to_live(READINESS_TTL)
            .build()
    }

    /// Whether the server is shutting down.
    pub(crate) fn is_draining(&self) -> bool {
        self.drain.is_draining()
    }

    /// The server is shutting down: from now on readiness says so at once.
    pub(crate) fn start_draining(&self) {
        self.drain.start();
        self.readiness.invalidate_all();
    }
}
