//! The second-provider suite: the real server and the real `mrmat-api-client` binary
//! against Glewlwyd (the Debian package), started and provisioned per test by
//! `mrmat_api_testkit::glewlwyd`, with device logins approved through the calls its pages
//! make. Without Glewlwyd and outside CI every test prints why it is skipped and passes.
//!
//! - `provider`: what Glewlwyd does, as the server and client rely on it;
//! - `server`: the server introspecting Glewlwyd's tokens with a bearer token;
//! - `client`: the client binary's login, refresh and logout, then the server's APIs;
//! - `jwt`: Glewlwyd's `at+jwt` access tokens checked by the server itself, no
//!   introspection, the client end to end included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
mod home;
mod jwt;
mod provider;
mod server;

use mrmat_api_testkit::{Glewlwyd, GlewlwydOptions};

/// A provisioned Glewlwyd with default options, or `None` (the test is skipped).
async fn glewlwyd() -> Option<Glewlwyd> {
    Glewlwyd::start_or_skip(GlewlwydOptions::default()).await
}
