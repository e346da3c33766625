//! The `mrmat-api-client` binary: parse the command line, run, and end with one clear line
//! and the exit code of its kind on failure.

mod cli;
mod commands;
mod output;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_args();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::write_err(&format!("error: cannot start the async runtime: {e}\n"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((message, code)) => {
            output::write_err(&format!("error: {message}\n"));
            ExitCode::from(code)
        }
    }
}
