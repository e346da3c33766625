//! The server binary as a process, for faults that need one: SIGKILL mid-write, and what
//! it logs during an outage.

use std::path::Path;

use mrmat_api_testkit::server_process::{self, ServerProcess};

/// Starts the binary in `dir` on a random loopback port and waits (at most 30 s) for its
/// "listening on" line. Killed when dropped.
pub fn start_server(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::start(
        server_process::command(env!("CARGO_BIN_EXE_mrmat-api"), dir)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .envs(env.iter().copied()),
    )
}
