//! mrmat-api-client: a typed Rust client for the mrmat-api HTTP interface, and the OAuth
//! 2.0 device-flow login, token cache and refresh behind the `mrmat-api-client` CLI.
//!
//! [`api::ApiClient`] calls the API with a token; [`session::Session`] gets and keeps
//! that token; [`authorized::AuthorizedApi`] puts the two together, refreshing and
//! retrying once when the server refuses a token. The CLI is a thin layer over these.

pub mod api;
pub mod authorized;
pub mod config;
pub mod error;
pub mod provider;
pub mod session;
pub mod token_cache;

pub use api::ApiClient;
pub use authorized::{AuthorizedApi, TokenSource};
pub use error::ClientError;
