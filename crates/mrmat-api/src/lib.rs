//! mrmat-api: versioned JSON APIs on actix-web, data in SQLite or PostgreSQL through
//! Diesel, endpoints protected by OIDC bearer tokens checked by token introspection.
//!
//! [`Application`] is the server; `main.rs` only parses the command line and runs it, and
//! the tests build the very same thing. The modules form a stack, each importing only
//! from below: `error`, `outage`, `request_id`, `forwarded`, `logging`, `cli` and
//! `settings` at the bottom; then `telemetry`; then `extract`, `db` and `auth`; then
//! `rate_limit` and `cors`; then `state` and `middleware`; then `api`; then `startup`.

pub mod cli;
pub mod doctor;
pub mod logging;
mod metrics;
pub mod settings;
pub mod startup;

mod api;
mod auth;
mod cors;
mod db;
mod error;
mod extract;
mod forwarded;
mod middleware;
mod outage;
mod rate_limit;
mod request_id;
mod state;
mod telemetry;
mod trust;

pub use cors::CorsOrigins;
pub use db::{openssl_without_exit_handler, schema};
pub use forwarded::{ForwardedHeaders, TrustedProxy};
pub use rate_limit::RateLimit;
pub use settings::Settings;
pub use startup::{Application, StartupError, migrate, openapi_json};
pub use telemetry::Telemetry;

/// One mounted API version, as the registry has it: for tests and tools that must cover
/// every API without a list of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedApi {
    /// API name, e.g. `greeting`.
    pub name: &'static str,
    /// Version, e.g. `v1`.
    pub version: &'static str,
    /// Mount path, without a trailing slash.
    pub prefix: &'static str,
    /// Each endpoint's absolute path as the OpenAPI document writes it (`/api/resource/v1/{id}`).
    pub paths: Vec<String>,
}

/// Every API version the server mounts, in the order `GET /api/` lists them.
pub fn mounted_apis() -> Vec<MountedApi> {
    api::APIS
        .iter()
        .map(|api| MountedApi {
            name: api.name,
            version: api.version,
            prefix: api.prefix,
            paths: (api.endpoints)()
                .iter()
                .map(|endpoint| format!("{}{}", api.prefix, endpoint.path()))
                .collect(),
        })
        .collect()
}
