//! The live-Keycloak suite: the real server and the real `mrmat-api-client` binary against
//! Keycloak itself (the pinned release, fetched from Maven Central and cached by
//! `mrmat_api_testkit::keycloak`), with the realm of `var/keycloak/` imported twice:
//! `mrmat` as shipped, and `mrmat-noaud` without its Audience mappers. One Keycloak serves
//! every test of this binary. Without Java or Maven, and outside CI, every test prints why
//! it is skipped and passes.
//!
//! - `server`: the server introspecting Keycloak's client-credentials tokens;
//! - `audience`: the realm without the Audience mapper: the server refuses, doctor names it;
//! - `client`: the client binary's device login on Keycloak's pages, refresh and logout;
//! - `jwt`: Keycloak's JWT access tokens checked by the server against Keycloak's keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audience;
mod client;
mod jwt;
mod server;

use mrmat_api_testkit::Keycloak;

/// The shared Keycloak, or `None` (the test is skipped).
async fn keycloak() -> Option<&'static Keycloak> {
    Keycloak::shared().await
}
