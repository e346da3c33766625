//! mrmat-api-client: a typed Rust client for the mrmat-api HTTP interface, and the OAuth
//! 2.0 device-flow login, token cache and refresh behind the `mrmat-api-client` CLI.
//!
//! [`api::ApiClient`] is all another Rust program needs to call the API with a token;
//! [`session::Session`] gets and keeps that token.

pub mod api;
pub mod config;
pub mod error;
pub mod provider;
pub mod session;
pub mod token_cache;

pub use api::ApiClient;
pub use error::ClientError;
