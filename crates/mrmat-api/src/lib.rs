//! mrmat-api: versioned JSON APIs on actix-web, data in SQLite or PostgreSQL through
//! Diesel, endpoints protected by OIDC bearer tokens checked by token introspection.
//!
//! [`startup::Application`] is the server; `main.rs` only parses the command line and runs
//! it, and the tests build the very same thing.

pub mod api;
pub mod auth;
pub mod cli;
pub mod db;
pub mod error;
pub mod extract;
pub mod forwarded;
pub mod logging;
pub mod middleware;
mod outage;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use startup::Application;
