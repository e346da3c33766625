//! `cargo xtask <task>`: the workspace's own tasks, in Rust so that they need nothing but
//! cargo (the alias is in `.cargo/config.toml`).
//!
//! - `cargo xtask test [CARGO_TEST_OPTIONS] [-- FILTER...]`: the README's test command.
//!   Every test of the workspace, each in a process of its own with a time limit
//!   (xtask/src/test/mod.rs says why and how).
//! - `cargo xtask new-api NAME [--crud]`: writes a new API (docs/ADDING_AN_API.md).
//! - `cargo xtask rename NEW-NAME`: makes the template yours (xtask/src/rename.rs).

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask test [--test-jobs N] [CARGO_TEST_OPTIONS] [-- FILTER...]
       cargo xtask new-api NAME [--crud]

  Builds the workspace's tests (or those that CARGO_TEST_OPTIONS such as
  `-p mrmat-api-client --test glewlwyd` select) and runs each test in a process of
  its own, N at a time (default: the number of CPUs), each with a time limit.
  FILTERs select tests whose names contain them, as `cargo test` does.

usage: cargo xtask rename NEW-NAME

  Renames the template to NEW-NAME (kebab-case, e.g. acme-api):
  crates, binaries, env and metric prefixes, scopes, deployment files, docs.";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("test") => xtask::test::main(args.collect()),
        Some("new-api") => xtask::new_api::main(args.collect()),
        Some("rename") => xtask::rename::main(args.collect()),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
