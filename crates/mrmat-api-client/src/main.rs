//! The `mrmat-api-client` binary.

use clap::Parser;

/// Companion CLI of mrmat-api.
#[derive(Debug, Parser)]
#[command(name = "mrmat-api-client", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
