//! The `mrmat-api` binary as a process: start, signals, exit codes, configuration
//! precedence, migrations, and what it logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod cors_limits;
mod doctor;
mod hostile;
mod lifecycle;
mod listeners;
mod logs;
mod process;
mod shutdown;
mod tracing;
