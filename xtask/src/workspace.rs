//! Where the workspace is, and which cargo runs the tasks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The root of the workspace `cargo xtask` was run in, asked of cargo when it runs. Not
/// this crate's `CARGO_MANIFEST_DIR` at build time: two checkouts that share a target
/// directory (CI's rename and new-api checks build their clones in this checkout's)
/// share this crate's artifacts too, as cargo hashes a workspace crate by its path
/// relative to the root, and a binary built in one would edit the other.
pub fn root() -> Result<PathBuf, String> {
    let output = Command::new(cargo())
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .map_err(|e| format!("cargo locate-project: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    let manifest = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} has no directory", manifest.display()))
}

/// The cargo that runs this task (`CARGO`), else the one on `PATH`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
