//! Client configuration: a file in the Python original's JSON shape
//! (`{"client_id", "client_secret", "discovery_url"}`, and optionally `server`,
//! `resource_indicator`, `resource_indicator_param`, `no_resource_indicator` and
//! `no_dpop`),
//! overridden by flags and `MRMAT_API_CLIENT_*` variables.

use std::path::{Path, PathBuf};

use mrmat_api_types::redact::without_values;
use mrmat_api_types::secret::Secret;
use serde::Deserialize;
use url::Url;

use crate::binding::{IndicatorOptions, ResourceIndicator};
use crate::error::ClientError;
use crate::http::{HttpOptions, check_url};
use crate::server_url::{ServerUrl, parse_http_url};

/// The client id used when none is configured: the CLI client of `var/keycloak/`.
pub const DEFAULT_CLIENT_ID: &str = "mrmat-api-cli";
/// The server used when none is configured.
pub const DEFAULT_SERVER: &str = "http://localhost:8080";

/// The config file. A key it does not know is an error: a misspelt one would otherwise
/// be ignored, and the login go elsewhere than meant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    discovery_url: Option<String>,
    server: Option<String>,
    resource_indicator: Option<String>,
    resource_indicator_param: Option<String>,
    #[serde(default)]
    no_resource_indicator: bool,
    #[serde(default)]
    no_dpop: bool,
}

/// Values given on the command line or in the environment; they beat the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// OAuth client id.
    pub client_id: Option<String>,
    /// OAuth client secret, for confidential CLI clients.
    pub client_secret: Option<Secret>,
    /// The provider's discovery document URL.
    pub discovery_url: Option<String>,
    /// The API server.
    pub server: Option<String>,
    /// What logins ask their tokens to be bound to (RFC 8707).
    pub resource_indicator: IndicatorOptions,
    /// Bounds, trust and the insecure-http switch of the HTTP client.
    pub http: HttpOptions,
    /// Ask for plain bearer tokens even where the server takes DPoP.
    pub no_dpop: bool,
}

/// Resolved client settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The API server, normalised.
    pub server: ServerUrl,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret, if the client is confidential.
    pub client_secret: Option<Secret>,
    /// Where the provider's discovery document is; found from the server when `None`.
    pub discovery_url: Option<Url>,
    /// What logins ask their tokens to be bound to; `None` sends no indicator.
    pub resource_indicator: Option<ResourceIndicator>,
    /// Bounds, trust and the insecure-http switch of the HTTP client.
    pub http: HttpOptions,
    /// Logins ask for plain bearer tokens, even where the server takes DPoP (RFC 9449).
    pub no_dpop: bool,
}

/// The default config file: `<platform config dir>/mrmat-api-client/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "mrmat-api-client")
        .map(|dirs| dirs.config_dir().join("config.json"))
}

impl ClientSettings {
    /// Reads `explicit` (which must exist) or the default file (which may not), then applies
    /// `overrides`.
    pub fn load(explicit: Option<&Path>, overrides: Overrides) -> Result<Self, ClientError> {
        let file = match explicit {
            Some(path) => read(path)?,
            None => match default_config_path() {
                Some(path) if path.exists() => read(&path)?,
                _ => ConfigFile::default(),
            },
        };
        let server = overrides
            .server
            .or(file.server)
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let server = ServerUrl::parse("--server", &server)?;
        let insecure = overrides.http.allow_insecure_http;
        check_url("--server", server.url(), insecure)?;
        let discovery_url = overrides
            .discovery_url
            .or(file.discovery_url)
            .filter(|u| !u.is_empty())
            .map(|u| parse_http_url("--discovery-url", &u))
            .transpose()?;
        if let Some(url) = &discovery_url {
            check_url("--discovery-url", url, insecure)?;
        }
        let indicator = overrides.resource_indicator;
        let resource_indicator = ResourceIndicator::resolve(
            &server,
            IndicatorOptions {
                param: indicator.param.or(file.resource_indicator_param),
                value: indicator.value.or(file.resource_indicator),
                // Either place may ask for none; sending none is the exception a
                // provider forces, so it is not undone by a default elsewhere.
                none: indicator.none || file.no_resource_indicator,
            },
        )?;
        Ok(Self {
            resource_indicator,
            server,
            client_id: overrides
                .client_id
                .or(file.client_id)
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned()),
            client_secret: overrides
                .client_secret
                .or(file.client_secret)
                .filter(|s| !s.expose().is_empty()),
            discovery_url,
            http: overrides.http,
            // As with the resource indicator, either place may turn it off.
            no_dpop: overrides.no_dpop || file.no_dpop,
        })
    }
}

fn read(path: &Path) -> Result<ConfigFile, ClientError> {
    let fail =
        |reason: String| ClientError::Config(format!("--config {}: {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        let message = without_values(&e.to_string());
        let suggestion = suggestion(&message)
            .map(|key| format!(" (did you mean \"{key}\"?)"))
            .unwrap_or_default();
        fail(format!("not a client config: {message}{suggestion}"))
    })
}

/// For serde's "unknown field `x`, expected one of `a`, `b`, ...": the known key within
/// two edits of `x`, the nearest. The known keys are read from the message, so the
/// struct stays the one list of them.
fn suggestion(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let (_, expected) = rest.split_once("expected ")?;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|known| (edit_distance(key, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known.to_owned())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_in_the_original_shape_is_read_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"client_id": "file-id", "client_secret": "hunter2-file", "discovery_url": "https://idp/.well-known/openid-configuration"}"#).unwrap();
        let settings = ClientSettings::load(
            Some(&path),
            Overrides {
                client_id: Some("flag-id".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(settings.client_id, "flag-id");
        assert_eq!(
            settings.client_secret.as_ref().map(Secret::expose),
            Some("hunter2-file")
        );
        assert!(settings.discovery_url.is_some());
        assert!(!format!("{settings:?}").contains("hunter2-file"));
    }

    #[test]
    fn a_flag_secret_beats_the_file_and_an_empty_one_means_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"client_secret": "from-file"}"#).unwrap();
        let load = |secret: &str| {
            ClientSettings::load(
                Some(&path),
                Overrides {
                    client_secret: Some(Secret::new(secret)),
                    ..Overrides::default()
                },
            )
            .unwrap()
            .client_secret
        };
        assert_eq!(
            load("from-flag").as_ref().map(Secret::expose),
            Some("from-flag")
        );
        assert!(load("").is_none());
    }

    #[test]
    fn overrides_debug_output_hides_the_client_secret() {
        let overrides = Overrides {
            client_secret: Some(Secret::new("hunter2-flag")),
            ..Overrides::default()
        };
        let text = format!("{overrides:?}");
        assert!(!text.contains("hunter2-flag"), "{text}");
    }

    #[test]
    fn a_misspelt_key_is_an_error_that_names_it_and_the_right_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"sever": "http://localhost:9000"}"#).unwrap();
        let error = ClientSettings::load(Some(&path), Overrides::default()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("unknown field `sever`"), "{message}");
        assert!(message.ends_with("(did you mean \"server\"?)"), "{message}");
        assert_eq!(error.exit_code(), 2);

        std::fs::write(&path, r#"{"colour": "blue"}"#).unwrap();
        let message = ClientSettings::load(Some(&path), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(!message.contains("did you mean"), "{message}");
    }

    #[test]
    fn the_server_comes_from_the_file_and_the_flag_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"server": "http://localhost:9000"}"#).unwrap();
        let load = |server: Option<&str>| {
            ClientSettings::load(
                Some(&path),
                Overrides {
                    server: server.map(str::to_owned),
                    ..Overrides::default()
                },
            )
            .unwrap()
            .server
            .to_string()
        };
        assert_eq!(load(None), "http://localhost:9000");
        assert_eq!(load(Some("http://127.0.0.1:1")), "http://127.0.0.1:1");
    }

    #[test]
    fn missing_explicit_file_is_a_config_error() {
        let error =
            ClientSettings::load(Some(Path::new("/nonexistent/c.json")), Overrides::default())
                .unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn plain_http_to_another_machine_is_refused_unless_allowed() {
        let overrides = |allow_insecure_http| Overrides {
            server: Some("http://api.example.com".into()),
            http: HttpOptions {
                allow_insecure_http,
                ..HttpOptions::default()
            },
            ..Overrides::default()
        };
        assert!(matches!(
            ClientSettings::load(None, overrides(false)),
            Err(ClientError::InsecureUrl { .. })
        ));
        assert!(ClientSettings::load(None, overrides(true)).is_ok());
    }

    #[test]
    fn the_resource_indicator_comes_from_the_file_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(
            &path,
            r#"{"server": "http://localhost:8080", "resource_indicator_param": "audience", "resource_indicator": "file-api"}"#,
        )
        .unwrap();
        let load = |value: Option<&str>| {
            ClientSettings::load(
                Some(&path),
                Overrides {
                    resource_indicator: IndicatorOptions {
                        value: value.map(str::to_owned),
                        ..IndicatorOptions::default()
                    },
                    ..Overrides::default()
                },
            )
            .unwrap()
            .resource_indicator
            .unwrap()
        };
        assert_eq!(load(None).param, "audience");
        assert_eq!(load(None).value, "file-api");
        assert_eq!(load(Some("flag-api")).value, "flag-api");
    }

    #[test]
    fn no_resource_indicator_in_the_file_sends_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"no_resource_indicator": true}"#).unwrap();
        let settings = ClientSettings::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(settings.resource_indicator, None);
    }

    #[test]
    fn without_options_the_indicator_is_the_normalised_server_url() {
        let overrides = Overrides {
            server: Some("http://LOCALHOST:8080/".into()),
            ..Overrides::default()
        };
        let settings = ClientSettings::load(None, overrides).unwrap();
        let indicator = settings.resource_indicator.unwrap();
        assert_eq!(indicator.param, "resource");
        assert_eq!(indicator.value, "http://localhost:8080");
    }

    #[test]
    fn bad_server_url_is_a_config_error() {
        let overrides = Overrides {
            server: Some("ftp://x".into()),
            ..Overrides::default()
        };
        assert!(matches!(
            ClientSettings::load(None, overrides),
            Err(ClientError::Config(_))
        ));
    }
}
