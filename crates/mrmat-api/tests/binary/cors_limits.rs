//! `--cors-origins` and `--rate-limit`: an unsafe or malformed value ends the start with
//! exit 2 and one `error:` line naming the option.

use crate::process::assert_bad_config;

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
