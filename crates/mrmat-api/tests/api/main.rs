//! Integration tests of the HTTP contract: the real application on a random port, a fresh
//! database per test (SQLite, and PostgreSQL when MRMAT_TEST_POSTGRES_URL is set) and the
//! real test identity provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod browser;
mod cors;
mod dpop;
mod failures;
mod greeting;
mod health;
mod helpers;
mod hostile;
mod jwt;
mod meta;
mod metrics;
mod rate_limit;
mod resource;
mod schema;
mod trust;
