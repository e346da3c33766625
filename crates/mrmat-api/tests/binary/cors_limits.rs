//! `--cors-origins` and `--rate-limit`: an unsafe or malformed value ends the start with
//! exit 2 and one `error:` line naming the option.

use std::path::Path;

use crate::process::run;

/// Runs with `args` and `env` and asserts exit 2 with one `error:` line naming `option`.
fn assert_bad_config(dir: &Path, args: &[&str], env: &[(&str, &str)], option: &str) {
    let output = run(dir, args, env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: one error line in {stderr}");
    assert!(
        errors[0].contains(option),
        "{args:?}: {option} in {:?}",
        errors[0]
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unsafe_or_malformed_cors_origins_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for origins in [
        "*,https://app.example",
        "null",
        "https://app.example/path",
        "https://user@app.example",
        "file:///tmp/page.html",
        "app.example",
        ",",
    ] {
        assert_bad_config(
            dir.path(),
            &["--cors-origins", origins],
            &[],
            "--cors-origins",
        );
    }
    assert_bad_config(
        dir.path(),
        &[],
        &[("MRMAT_API_CORS_ORIGINS", "null")],
        "--cors-origins",
    );
}

#[test]
fn a_malformed_rate_limit_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    for rate in ["10", "0/s", "10/h", "ten/s", "1.5/min", "99999999999/s"] {
        assert_bad_config(dir.path(), &["--rate-limit", rate], &[], "--rate-limit");
    }
}
