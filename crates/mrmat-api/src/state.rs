//! The state every worker shares, built once at start-up. Handlers take [`AppState`];
//! the lower layers register and read only their own part (the authenticator, the trusted
//! proxies), so nothing below the API imports this module.

use actix_web::web;

use crate::auth::Authenticator;
use crate::db::Db;
use crate::forwarded::TrustedProxies;

/// Shared by every worker.
#[derive(Debug)]
pub(crate) struct AppState {
    /// The database.
    pub(crate) db: Db,
    /// Token checking; `None` when OIDC is not configured.
    pub(crate) auth: Option<web::Data<Authenticator>>,
    /// Proxies whose forwarding headers are believed.
    pub(crate) proxies: web::Data<TrustedProxies>,
}
