//! Tools from outside the Rust build that some tests need (nginx, the Python checkers):
//! found, or skipped with a visible line, except under CI (`CI` set), where a missing tool
//! fails the test, since a silently skipped check would count as a pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::try_output;

/// Longest an `openssl` command of the tests (a key pair, a certificate) may take.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(30);

/// Makes an ECDSA P-256 key pair (ES256) as `key.pem` in `dir`.
pub fn p256_key(dir: &Path) {
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "key.pem",
        ],
        dir,
    );
}

/// Runs `openssl args` in `dir`; a failure ends the test with openssl's stderr.
pub fn openssl(args: &[&str], dir: &Path) {
    let output = try_output(
        Command::new("openssl").args(args).current_dir(dir),
        OPENSSL_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("openssl {args:?}: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Says why a test does not run: a visible "skipped: ..." line outside CI, a failure
/// under CI.
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but this test cannot run: {reason}"
    );
    eprintln!("skipped: {reason}");
}

/// The executable `var` names (e.g. `MRMAT_TEST_SCHEMATHESIS`), or `None` after [`skip`].
pub fn from_env(var: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(path) if Path::new(&path).is_file() => Some(PathBuf::from(path)),
        Some(path) => {
            skip(&format!(
                "{var}={} is not a file ({what})",
                Path::new(&path).display()
            ));
            None
        }
        None => {
            skip(&format!(
                "{var} is not set ({what}; .ci/validate installs it and sets it)"
            ));
            None
        }
    }
}

/// `name` on `PATH` or in one of `extra` directories.
pub fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
