//! `mrmat-api-floor`: the floor of the benchmark (`bench/run.sh`).
//!
//! A bare actix-web server on 127.0.0.1 that answers `GET /api/greeting/v1/` (greeting
//! v1's path, so both route the same path) with greeting v1's body,
//! `{"message":"Hello World"}`: no middleware, no logging, no request id, no state. What
//! greeting v1 of `mrmat-api` does beyond this is what the benchmark's "× floor" ratio
//! prices. It serialises a struct like the server's handler does, so the ratio measures
//! the server's per-request extras, not a difference in how the body is made.
//!
//! Reads `MRMAT_FLOOR_PORT` and `MRMAT_FLOOR_WORKERS` (the flags win). Prints one line,
//! `{"port":PORT}`, on stdout once it listens.

use std::io::Write;
use std::process::ExitCode;

use actix_web::{App, HttpServer, web};
use clap::Parser;
use serde::Serialize;

/// A bare actix-web "hello" server: the floor the benchmark compares mrmat-api with.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Port to bind on 127.0.0.1; 0 lets the kernel choose (the line on stdout tells which).
    #[arg(long, env = "MRMAT_FLOOR_PORT", default_value_t = 0)]
    port: u16,

    /// HTTP worker threads [default: CPU count, like mrmat-api].
    #[arg(long, env = "MRMAT_FLOOR_WORKERS")]
    workers: Option<usize>,
}

/// Greeting v1's path on mrmat-api.
const GREETING_V1: &str = "/api/greeting/v1/";

/// The body of greeting v1.
#[derive(Debug, Serialize)]
struct Greeting {
    message: &'static str,
}

async fn hello() -> web::Json<Greeting> {
    web::Json(Greeting {
        message: "Hello World",
    })
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut server = HttpServer::new(|| App::new().route(GREETING_V1, web::get().to(hello)));
    if let Some(workers) = cli.workers {
        server = server.workers(workers.max(1));
    }
    let server = match server.bind(("127.0.0.1", cli.port)) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("mrmat-api-floor: cannot bind 127.0.0.1:{}: {e}", cli.port);
            return ExitCode::from(2);
        }
    };
    let port = server.addrs().first().map_or(cli.port, |a| a.port());
    // The benchmark waits for this line; flush so a pipe does not hold it back.
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{{\"port\":{port}}}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    match server.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mrmat-api-floor: {e}");
            ExitCode::FAILURE
        }
    }
}
