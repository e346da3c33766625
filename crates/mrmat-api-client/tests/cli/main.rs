//! End-to-end tests of the `mrmat-api-client` binary against the real server and the real
//! test identity provider, with a scripted person approving logins on the provider's pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod login;
mod session;
