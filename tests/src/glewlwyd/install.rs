//! Whether Glewlwyd can run here: installed, or installed now from its Debian package when
//! running as root under CI (`CI` set) or when asked (`MRMAT_TEST_GLEWLWYD_INSTALL=1`).
//! Outside CI a machine without it skips the suite, visibly; under CI it is a failure.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::try_output;

/// The variable that asks the harness to install Glewlwyd outside CI.
pub const INSTALL_ENV: &str = "MRMAT_TEST_GLEWLWYD_INSTALL";

/// What a skipped test prints.
pub const SKIP_MESSAGE: &str = "skipped: glewlwyd is not installed (apt-get install glewlwyd)";

/// The schema the package ships for a fresh SQLite database (dbconfig-common's copy).
pub const SCHEMA: &str = "/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3";

/// The server binary.
pub(super) const BINARY: &str = "/usr/bin/glewlwyd";

/// Longest an `apt-get` run may take.
const APT_TIMEOUT: Duration = Duration::from_secs(600);

fn installed() -> bool {
    Path::new(BINARY).exists() && Path::new(SCHEMA).exists()
}

fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

fn asked() -> bool {
    std::env::var(INSTALL_ENV).is_ok_and(|v| v == "1")
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user: no libc call needed.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn apt_get(args: &[&str]) -> bool {
    try_output(
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        APT_TIMEOUT,
    )
    .is_ok_and(|output| output.status.success())
}

fn install() {
    // Test binaries run in parallel: one installs, the others wait for it.
    let lock_path = std::env::temp_dir().join("mrmat-api-glewlwyd-install.lock");
    let lock = std::fs::File::create(&lock_path).expect("create the install lock file");
    lock.lock().expect("lock the install lock file");
    if installed() {
        return;
    }
    eprintln!("installing glewlwyd from its Debian package");
    if !apt_get(&["install", "-y", "glewlwyd"]) {
        apt_get(&["update"]);
        apt_get(&["install", "-y", "glewlwyd"]);
    }
}

/// Whether the Glewlwyd suite can run. Installs the package when allowed; panics under CI
/// when Glewlwyd is still missing, since a skipped suite would count as a pass there.
pub fn available() -> bool {
    if installed() {
        return true;
    }
    if (under_ci() || asked()) && is_root() {
        install();
    }
    let available = installed();
    assert!(
        available || !under_ci(),
        "CI is set but Glewlwyd is not installed and could not be (run as root, or apt-get install -y glewlwyd)"
    );
    available
}
