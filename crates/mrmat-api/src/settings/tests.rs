//! How options become settings: the checks, the precedence, the secrets kept out of logs.

use super::*;

#[test]
fn sqlite_url_with_relative_path() {
    assert_eq!(
        DatabaseUrl::parse("sqlite://var/x.sqlite").unwrap(),
        DatabaseUrl::Sqlite(PathBuf::from("var/x.sqlite"))
    );
}

#[test]
fn sqlite_url_with_absolute_path() {
    assert_eq!(
        DatabaseUrl::parse("sqlite:///tmp/x.sqlite").unwrap(),
        DatabaseUrl::Sqlite(PathBuf::from("/tmp/x.sqlite"))
    );
}

#[test]
fn in_memory_sqlite_is_refused() {
    assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
}

#[test]
fn postgres_url_is_accepted() {
    assert!(matches!(
        DatabaseUrl::parse("postgresql://u@h/db").unwrap(),
        DatabaseUrl::Postgres(_)
    ));
}

#[test]
fn unknown_scheme_names_the_option_and_the_fix() {
    let message = DatabaseUrl::parse("mysql://h/db").unwrap_err().to_string();
    assert!(message.starts_with("--db: "), "{message}");
    assert!(message.contains("\"mysql\""), "{message}");
}

fn options(args: &[&str]) -> Options {
    let mut argv = vec!["mrmat-api"];
    argv.extend_from_slice(args);
    crate::cli::Cli::try_parse_from(argv).unwrap().options
}

#[test]
fn secrets_are_not_in_debug_output() {
    let settings = Settings::load(options(&[
        "--db",
        "postgres://u:pg-password@h/db",
        "--oidc-issuer",
        "http://127.0.0.1:1",
        "--oidc-client-id",
        "id",
        "--oidc-client-secret",
        "hunter2",
    ]))
    .unwrap();
    let debug = format!("{settings:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("pg-password"), "{debug}");
    let debug = format!("{:?}", options(&["--oidc-client-secret", "hunter2"]));
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn a_provider_without_credentials_or_audience_is_refused_naming_both_ways() {
    let error = Settings::load(options(&["--oidc-issuer", "http://127.0.0.1:1"]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("--oidc-client-id"), "{error}");
    assert!(error.contains("--public-url"), "{error}");
    assert!(error.contains("--oidc-audience"), "{error}");
}

#[test]
fn a_provider_with_an_audience_needs_no_credentials() {
    let settings = Settings::load(options(&[
        "--oidc-issuer",
        "http://127.0.0.1:1",
        "--public-url",
        "https://api.example",
    ]))
    .unwrap();
    let provider = &settings.oidc[0];
    assert!(provider.credentials.is_none());
    assert!(provider.checks_jwts());
    assert_eq!(provider.audiences, ["https://api.example/"]);
}

#[test]
fn the_public_url_joins_the_configured_audiences() {
    let settings = Settings::load(options(&[
        "--oidc-issuer",
        "http://127.0.0.1:1",
        "--oidc-audience",
        "api://mrmat",
        "--public-url",
        "https://api.example/v",
    ]))
    .unwrap();
    assert_eq!(
        settings.oidc[0].audiences,
        ["api://mrmat", "https://api.example/v"]
    );
}

#[test]
fn a_public_url_with_a_query_or_a_user_is_refused() {
    for url in [
        "https://api.example/?x=1",
        "https://u@api.example",
        "ftp://api.example",
    ] {
        let error = Settings::load(options(&["--public-url", url]))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("--public-url: "), "{error}");
    }
}

#[test]
fn further_issuers_are_jwt_only_providers() {
    let settings = Settings::load(options(&[
        "--oidc-issuer",
        "http://127.0.0.1:1,http://127.0.0.1:2",
        "--oidc-client-id",
        "id",
        "--oidc-client-secret",
        "s",
        "--public-url",
        "https://api.example",
    ]))
    .unwrap();
    assert_eq!(settings.oidc.len(), 2);
    assert!(settings.oidc[0].credentials.is_some());
    assert!(settings.oidc[1].credentials.is_none());
}

#[test]
fn one_issuer_configured_twice_is_refused() {
    let error = Settings::load(options(&[
        "--oidc-issuer",
        "http://127.0.0.1:1",
        "--oidc-issuer",
        "http://127.0.0.1:1/",
        "--public-url",
        "https://api.example",
    ]))
    .unwrap_err()
    .to_string();
    assert!(error.contains("configured twice"), "{error}");
}

#[test]
fn the_config_file_lists_providers_each_with_its_own_rules() {
    let file: Options = toml::from_str(
        r#"
        oidc_issuer = "http://127.0.0.1:1"
        oidc_client_id = "id"
        oidc_client_secret = "s"

        [[oidc_providers]]
        issuer = "http://127.0.0.1:2"
        audience = "api://two"
        scope_claim = "scp"
        "#,
    )
    .unwrap();
    let settings = Settings::load(options(&[]).or(file)).unwrap();
    assert_eq!(settings.oidc.len(), 2);
    let second = &settings.oidc[1];
    assert_eq!(second.audiences, ["api://two"]);
    assert_eq!(second.scope_claim.to_string(), "scp");
    assert!(second.credentials.is_none());
}

#[test]
fn a_bad_scope_claim_is_refused() {
    let error = Settings::load(options(&["--oidc-scope-claim", "a..b"]))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("--oidc-scope-claim: "), "{error}");
}

#[test]
fn command_line_beats_the_file_field_by_field() {
    let file = Options {
        host: Some("file-host".into()),
        port: Some(1),
        ..Options::default()
    };
    let merged = options(&["--port", "2"]).or(file);
    assert_eq!(merged.port, Some(2));
    assert_eq!(merged.host.as_deref(), Some("file-host"));
}

#[test]
fn boolean_flags_take_an_optional_value() {
    assert_eq!(options(&["-d"]).debug, Some(true));
    assert_eq!(options(&["--debug=false"]).debug, Some(false));
    assert_eq!(options(&[]).debug, None);
    assert_eq!(options(&["--no-migrate"]).no_migrate, Some(true));
}

#[test]
fn the_pool_holds_twice_the_workers_and_at_least_8_by_default() {
    let pool = |workers: &str| {
        Settings::load(options(&["--workers", workers]))
            .unwrap()
            .db_pool_size
    };
    assert_eq!(pool("1"), 8);
    assert_eq!(pool("4"), 8);
    assert_eq!(pool("16"), 32);
}

#[test]
fn a_given_pool_size_is_taken_as_it_is() {
    let settings = Settings::load(options(&["--workers", "16", "--db-pool-size", "3"])).unwrap();
    assert_eq!(settings.db_pool_size, 3);
}
