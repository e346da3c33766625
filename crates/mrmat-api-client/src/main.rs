//! The `mrmat-api-client` binary: parse the command line, run, and end with one clear line
//! and the exit code of its kind on failure.

mod browser;
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
    let result = runtime.block_on(commands::run(cli));
    // Not waiting for blocking tasks: a question's read of stdin, cancelled by Ctrl-C,
    // would keep the process alive until the next line typed, and swallow it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((message, code)) => {
            output::write_err(&format!("error: {message}\n"));
            ExitCode::from(code)
        }
    }
}
