//! mrmat-api-client: a typed Rust client for the mrmat-api HTTP interface, and the OAuth
//! 2.0 device-flow login, token cache and refresh behind the `mrmat-api-client` CLI.
//!
//! [`api::ApiClient`] calls the API with a token; [`session::Session`] gets and keeps
//! that token; [`authorized::AuthorizedApi`] puts the two together, refreshing and
//! retrying once when the server refuses a token. Every request goes through one
//! [`http::Http`], which keeps tokens off plain http to other machines. The CLI is a thin
//! layer over these.

pub mod api;
pub mod authorized;
pub mod binding;
pub mod config;
pub mod device_login;
pub mod dpop;
pub mod error;
pub mod http;
mod oauth;
pub mod provider;
pub mod revocation;
pub mod sanitise;
pub mod server_url;
pub mod session;
pub mod token_cache;
pub mod words;

pub use api::ApiClient;
pub use authorized::{AuthorizedApi, TokenSource};
pub use error::ClientError;
