//! The server as it is deployed: the real binary behind a real nginx (TCP and unix
//! socket), several instances on one PostgreSQL database behind nginx's balancer, and the
//! served OpenAPI document checked by openapi-spec-validator and exercised by schemathesis.
//!
//! nginx and the Python tools come from outside the Rust build. Without them a test prints
//! "skipped: ..." and passes, except under CI (`CI` set), where it fails: `.ci/run`
//! installs nginx, and `.ci/validate` installs the Python tools and sets
//! `MRMAT_TEST_SCHEMATHESIS` and `MRMAT_TEST_OPENAPI_SPEC_VALIDATOR`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod openapi;
mod proxy;
mod rolling;
mod scale_out;
mod support;
