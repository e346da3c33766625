//! Configuration: every bad value exits 2 with one line naming the option; precedence is
//! flag > environment > file > default.

use std::path::Path;

use crate::process::{assert_bad_config, free_port, run, start_on_loopback, start_server};

#[test]
fn unknown_database_scheme_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_bad_config(dir.path(), &["--db", "mysql://localhost/db"], &[], "--db");
}

#[test]
fn in_memory_sqlite_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_bad_config(dir.path(), &["--db", "sqlite://:memory:"], &[], "--db");
}

#[test]
fn unreachable_database_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/nothing", free_port());
    assert_bad_config(dir.path(), &["--db", &url], &[], "--db");
}

#[test]
fn unwritable_sqlite_location_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    assert_bad_config(
        dir.path(),
        &["--db", "sqlite://file/sub/x.sqlite"],
        &[],
        "--db",
    );
}

#[test]
fn unreadable_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_bad_config(dir.path(), &["--config", "missing.toml"], &[], "--config");
}

#[test]
fn invalid_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "port = \"many\"\n").unwrap();
    assert_bad_config(dir.path(), &["--config", "bad.toml"], &[], "--config");
    std::fs::write(dir.path().join("unknown.json"), r#"{"colour": "red"}"#).unwrap();
    assert_bad_config(dir.path(), &["--config", "unknown.json"], &[], "--config");
}

#[test]
fn unreadable_oidc_secrets_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_bad_config(
        dir.path(),
        &["--oidc-secrets", "nope.json"],
        &[],
        "--oidc-secrets",
    );
    std::fs::write(dir.path().join("secrets.json"), r#"{"installed": {}}"#).unwrap();
    assert_bad_config(
        dir.path(),
        &["--oidc-secrets", "secrets.json"],
        &[],
        "--oidc-secrets",
    );
}

#[test]
fn port_out_of_range_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_bad_config(dir.path(), &["--port", "70000"], &[], "--port");
    assert_bad_config(dir.path(), &[], &[("MRMAT_API_PORT", "-1")], "--port");
    assert_bad_config(dir.path(), &[], &[("PORT", "http")], "PORT");
}

#[test]
fn oidc_issuer_that_is_not_a_url_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--oidc-issuer",
        "not a url",
        "--oidc-client-id",
        "a",
        "--oidc-client-secret",
        "b",
    ];
    assert_bad_config(dir.path(), &args, &[], "--oidc-issuer");
}

#[test]
fn a_plain_http_issuer_elsewhere_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--oidc-issuer",
        "http://keycloak.example/realms/mrmat",
        "--oidc-client-id",
        "a",
        "--oidc-client-secret",
        "b",
    ];
    assert_bad_config(dir.path(), &args, &[], "--oidc-issuer");
}

#[test]
fn a_plain_http_issuer_elsewhere_is_allowed_with_the_flag_and_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on_loopback(
        dir.path(),
        &[
            "--oidc-issuer",
            "http://keycloak.example/realms/mrmat",
            "--oidc-client-id",
            "a",
            "--oidc-client-secret",
            "b",
            "--oidc-allow-insecure-http",
        ],
        &[],
    );
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains(" WARN ") && l.contains("--oidc-allow-insecure-http")),
        "{log}"
    );
}

#[test]
fn an_issuer_with_a_user_or_password_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--oidc-issuer",
        "https://user:pass@keycloak.example/realms/mrmat",
        "--oidc-client-id",
        "a",
        "--oidc-client-secret",
        "b",
    ];
    let output = run(dir.path(), &args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--oidc-issuer"), "{stderr}");
    assert!(
        !stderr.contains("pass@"),
        "the password is not repeated: {stderr}"
    );
}

#[test]
fn a_placeholder_client_secret_is_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on_loopback(
        dir.path(),
        &[
            "--oidc-issuer",
            "http://127.0.0.1:9/realms/mrmat",
            "--oidc-client-id",
            "mrmat-api",
            "--oidc-client-secret",
            "change-me-mrmat-api-test",
        ],
        &[],
    );
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains(" WARN ") && l.contains("placeholder")),
        "{log}"
    );
}

#[test]
fn oidc_without_client_credentials_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_bad_config(
        dir.path(),
        &["--oidc-issuer", "http://127.0.0.1:1"],
        &[],
        "--oidc-client-id",
    );
}

#[test]
fn zero_workers_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_bad_config(dir.path(), &["--workers", "0"], &[], "--workers");
}

#[test]
fn a_pool_size_of_0_or_above_10000_exits_2() {
    for size in ["0", "10001", "many"] {
        let dir = tempfile::tempdir().unwrap();
        assert_bad_config(dir.path(), &["--db-pool-size", size], &[], "--db-pool-size");
    }
}

#[test]
fn port_in_use_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    assert_bad_config(
        dir.path(),
        &["--host", "127.0.0.1", "--port", &port],
        &[],
        "--port",
    );
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.path().join("config.toml"),
        format!("host = \"127.0.0.1\"\nport = {file_port}\n"),
    )
    .unwrap();
    let env_value = env_port.to_string();
    let env = [("MRMAT_API_PORT", env_value.as_str())];
    let flag_value = flag_port.to_string();

    let server = start_server(
        dir.path(),
        &["--config", "config.toml", "--port", &flag_value],
        &env,
    );
    assert_eq!(server.port, flag_port);
    drop(server);
    let server = start_server(dir.path(), &["--config", "config.toml"], &env);
    assert_eq!(server.port, env_port);
    drop(server);
    let server = start_server(dir.path(), &["--config", "config.toml"], &[]);
    assert_eq!(server.port, file_port);
    drop(server);

    // Default: no port anywhere; the instance path default shows through instead.
    let output = run(dir.path(), &["migrate"], &[]);
    assert!(output.status.success());
    assert!(dir.path().join("var/instance/mrmat-api.sqlite").exists());
}

#[test]
fn json_config_files_work_too() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"host": "127.0.0.1", "port": {port}}}"#),
    )
    .unwrap();
    let server = start_server(dir.path(), &["--config", "config.json"], &[]);
    assert_eq!(server.port, port);
}

#[test]
fn dot_env_in_the_working_directory_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join(".env"),
        format!("MRMAT_API_HOST=127.0.0.1\nMRMAT_API_PORT={port}\n"),
    )
    .unwrap();
    let server = start_server(dir.path(), &[], &[]);
    assert_eq!(server.port, port);
}

#[test]
fn dot_env_in_a_parent_directory_is_ignored() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("work");
    std::fs::create_dir(&dir).unwrap();
    // A shared parent's .env must not configure this server: here it would break it.
    std::fs::write(
        parent.path().join(".env"),
        "MRMAT_API_DB=mysql://nowhere/db\n",
    )
    .unwrap();
    let port = free_port();
    let server = start_server(
        &dir,
        &["--host", "127.0.0.1", "--port", &port.to_string()],
        &[],
    );
    assert_eq!(server.port, port);
}

#[test]
fn container_port_variable_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let server = start_server(
        dir.path(),
        &["--host", "127.0.0.1"],
        &[("PORT", port.as_str())],
    );
    assert_eq!(server.port.to_string(), port);
}

#[test]
fn debug_in_the_config_file_turns_on_debug_logging() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "debug = true\nhost = \"127.0.0.1\"\nport = 0\n",
    )
    .unwrap();
    let server = start_server(dir.path(), &["--config", "config.toml"], &[]);
    let log = server.log();
    assert!(
        log.contains("DEBUG") && log.contains("configuration: 127.0.0.1:0"),
        "{log}"
    );
}

/// The `MRMAT_API_*` names in `text` (not the prefix alone, as in `MRMAT_API_<NAME>`).
fn variable_names(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|word| word.starts_with("MRMAT_API_") && !word.ends_with('_'))
        .map(str::to_owned)
        .collect()
}

/// Every file under `dir`, depth first.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn every_variable_the_shipped_deployment_files_set_is_an_option() {
    let dir = tempfile::tempdir().unwrap();
    let help = run(dir.path(), &["--help"], &[]);
    let options = variable_names(&String::from_utf8_lossy(&help.stdout));
    assert!(options.contains("MRMAT_API_DB"), "help names the variables");

    let var = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../var");
    let mut checked = 0;
    for file in files_under(&var) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for name in variable_names(&text) {
            assert!(
                options.contains(&name),
                "{} sets {name}, which is no option of mrmat-api",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "the deployment files were read: {checked}");
}
