//! Test harness shared by the workspace's tests: the real test identity provider
//! (`tests/idp/`), a fresh database per test on SQLite and PostgreSQL, the real
//! application spawned on a random port (in process, or the binary as a child process:
//! `server_process`), a real nginx in front of it (`nginx`), and the client binary on a
//! user's machine of its own (`client_home`); every child process a test starts is
//! bounded in time (`process`).
//!
//! Set `MRMAT_TEST_POSTGRES_URL` to run every database test on PostgreSQL too, and
//! `MRMAT_TEST_OIDC_CONFIG` to run the authentication tests against a real Keycloak.
//! `glewlwyd` runs a second real provider, Glewlwyd, for the suite that checks the server
//! and client against a provider other than the test one.

// Test support: a panic with a message is how a test reports a broken set-up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod client_home;
pub mod credentials;
pub mod db;
pub mod glewlwyd;
pub mod idp;
pub mod keycloak;
pub mod nginx;
pub mod oidc;
pub mod otlp;
pub mod pg_server;
pub mod process;
pub mod proxy;
pub mod server_process;
pub mod small_fs;
pub mod tools;

pub use app::TestApp;
pub use db::{Backend, TestDb};
pub use glewlwyd::{Glewlwyd, GlewlwydOptions};
pub use idp::Idp;
pub use keycloak::Keycloak;
pub use nginx::Nginx;
pub use oidc::{Oidc, TestClient};
pub use server_process::ServerProcess;

/// Runs a test body once per database backend: `backend_tests! { fn name(backend) { .. } }`
/// makes `name::sqlite` and `name::postgres`. The PostgreSQL variant passes (and says so)
/// when `MRMAT_TEST_POSTGRES_URL` is not set.
#[macro_export]
macro_rules! backend_tests {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($backend: $crate::Backend) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run($crate::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if !$crate::Backend::Postgres.available() {
                        eprintln!("skipped: MRMAT_TEST_POSTGRES_URL is not set");
                        return;
                    }
                    run($crate::Backend::Postgres).await;
                }
            }
        )*
    };
}
