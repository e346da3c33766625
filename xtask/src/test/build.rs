//! Building the test binaries: `cargo test --no-run`, read through cargo's JSON messages
//! so that each binary comes with its package and directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// One test binary cargo built.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// `package::target` (`mrmat-api::api`), or `package` for a crate's unit tests.
    pub name: String,
    /// The target's name alone (`api`, `glewlwyd`).
    pub target: String,
    /// The package name.
    pub package: String,
    /// The executable.
    pub executable: PathBuf,
    /// Its package's directory: `cargo test` runs a test binary there, and so does this.
    pub package_dir: PathBuf,
}

/// Builds the tests with `cargo test --no-run` and the caller's cargo options; `None`
/// when the build failed (cargo has printed why).
pub fn build(cargo_options: &[String]) -> Option<Vec<TestBinary>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let selects_packages = cargo_options
        .iter()
        .any(|o| o == "-p" || o.starts_with("--package") || o == "--workspace");
    let mut command = Command::new(cargo);
    command
        .args([
            "test",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .args(if selects_packages {
            &[][..]
        } else {
            &["--workspace"][..]
        })
        .args(cargo_options)
        .stdout(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("error: cannot run cargo: {e}");
            return None;
        }
    };
    let mut binaries = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(binary) = serde_json::from_str(&line).ok().and_then(test_binary) {
                binaries.push(binary);
            }
        }
    }
    match child.wait() {
        Ok(status) if status.success() => {
            binaries.sort_by(|a, b| a.name.cmp(&b.name));
            Some(binaries)
        }
        _ => None,
    }
}

/// The test binary a `compiler-artifact` message names, if it names one.
fn test_binary(message: Value) -> Option<TestBinary> {
    if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
        return None;
    }
    let executable = PathBuf::from(message["executable"].as_str()?);
    let package_dir = PathBuf::from(message["manifest_path"].as_str()?)
        .parent()?
        .to_path_buf();
    let package = package_name(message["package_id"].as_str()?, &package_dir)?;
    let target = message["target"]["name"].as_str()?.to_owned();
    let is_library = message["target"]["kind"]
        .as_array()
        .is_some_and(|kinds| kinds.iter().any(|k| k == "lib"));
    let name = if is_library {
        package.clone()
    } else {
        format!("{package}::{target}")
    };
    Some(TestBinary {
        name,
        target,
        package,
        executable,
        package_dir,
    })
}

/// The package name in a package id: `path+file:///w/tests#mrmat-api-testkit@0.1.0`
/// names it after `#`; `path+file:///w/crates/mrmat-api#0.1.0`, where the directory has
/// the package's name, only by the directory.
fn package_name(package_id: &str, package_dir: &std::path::Path) -> Option<String> {
    match package_id.rsplit_once('#') {
        Some((_, fragment)) if fragment.contains('@') => {
            fragment.split('@').next().map(str::to_owned)
        }
        _ => package_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_package_id_with_a_name_fragment_names_the_package() {
        assert_eq!(
            package_name(
                "path+file:///w/tests#mrmat-api-testkit@0.1.0",
                Path::new("/w/tests")
            ),
            Some("mrmat-api-testkit".to_owned())
        );
    }

    #[test]
    fn a_package_id_with_only_a_version_is_named_by_its_directory() {
        assert_eq!(
            package_name(
                "path+file:///w/crates/mrmat-api#0.1.0",
                Path::new("/w/crates/mrmat-api")
            ),
            Some("mrmat-api".to_owned())
        );
    }

    #[test]
    fn an_integration_test_binary_is_named_package_and_target() {
        let message = serde_json::json!({
            "reason": "compiler-artifact",
            "package_id": "path+file:///w/crates/mrmat-api#0.1.0",
            "manifest_path": "/w/crates/mrmat-api/Cargo.toml",
            "target": {"kind": ["test"], "name": "api"},
            "profile": {"test": true},
            "executable": "/w/target/debug/deps/api-0123"
        });
        let binary = test_binary(message).expect("a test binary");
        assert_eq!(binary.name, "mrmat-api::api");
        assert_eq!(binary.package_dir, Path::new("/w/crates/mrmat-api"));
    }

    #[test]
    fn a_library_built_without_tests_is_no_test_binary() {
        let message = serde_json::json!({
            "reason": "compiler-artifact",
            "package_id": "path+file:///w/crates/mrmat-api#0.1.0",
            "manifest_path": "/w/crates/mrmat-api/Cargo.toml",
            "target": {"kind": ["lib"], "name": "mrmat_api"},
            "profile": {"test": false},
            "executable": null
        });
        assert!(test_binary(message).is_none());
    }
}
