//! mrmat-api: versioned JSON APIs on actix-web, data in SQLite or PostgreSQL through
//! Diesel, endpoints protected by OIDC bearer tokens checked by token introspection.
//!
//! [`Application`] is the server; `main.rs` only parses the command line and runs it, and
//! the tests build the very same thing. The modules form a stack, each importing only
//! from the floors below it. From the bottom: `error`, `outage`, `drain`, `request_id`,
//! `forwarded`, `trust`, `metrics`, `logging`, `cli`, `settings`; then `telemetry`; then
//! `extract`, `db/` and `auth/`; then `rate_limit` and `cors`; then `state` and
//! `middleware`; then `api/`; then `startup` and `doctor`; `main.rs` on top. The README
//! lists the same order (a test below holds the two, and this list, to every module).

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
mod drain;
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

pub use db::{openssl_without_exit_handler, schema};
pub use forwarded::{ForwardedHeaders, TrustedProxy};
pub use settings::{CorsOrigins, RateLimit, Settings};
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

#[cfg(test)]
mod tests {
    /// The backticked names of the layer order in `text`, from "From the bottom:" to "on top".
    fn layers(text: &str) -> Vec<String> {
        let text = text.replace("//!", " ");
        let start = text.find("From the bottom:").expect("the layer order");
        let end = start + text[start..].find("on top").expect("its end");
        text[start..end]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|name| {
                name.trim_end_matches('/')
                    .trim_end_matches(".rs")
                    .to_owned()
            })
            // Module names only: the README also names a type (`AppState`) in passing.
            .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect()
    }

    #[test]
    fn the_layer_order_names_every_module_and_agrees_with_the_readme() {
        let lib = include_str!("lib.rs");
        let order = layers(lib);
        for line in lib.lines() {
            let declared = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))
                .and_then(|rest| rest.strip_suffix(';'));
            if let Some(module) = declared {
                assert!(
                    order.iter().any(|m| m == module),
                    "{module} is not in the layer order"
                );
            }
        }
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
        assert_eq!(layers(readme), order, "README.md and lib.rs disagree");
    }
}
