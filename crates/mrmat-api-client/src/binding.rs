//! Binding a login's tokens to the one server it is for. The client asks the provider for
//! tokens meant for that server (RFC 8707 resource indicators: `resource=<server URL>` in
//! the device authorization, token and refresh requests), and refuses a server whose
//! RFC 9728 metadata names another resource (section 3.3). Without both, a look-alike
//! server that names the real provider would receive tokens that work on the real server.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::ClientError;
use crate::server_url::ServerUrl;

/// The parameter RFC 8707 defines. Auth0 wants `audience` instead.
pub const DEFAULT_PARAM: &str = "resource";

/// Parameters of the requests themselves: a resource indicator under one of these names
/// would replace or duplicate what the request means.
const RESERVED_PARAMS: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "device_code",
    "refresh_token",
    "code",
    "code_verifier",
    "redirect_uri",
    "username",
    "password",
];

/// What a login asks the provider to bind its tokens to: `param=value` in every device
/// authorization, token and refresh request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceIndicator {
    /// The parameter's name: `resource`, or what the provider calls it (`audience`).
    pub param: String,
    /// Its value: the server URL, or the provider's identifier of the API.
    pub value: String,
}

/// The resource indicator options as given, each from flag, environment or file.
#[derive(Debug, Clone, Default)]
pub struct IndicatorOptions {
    /// `--resource-indicator-param`.
    pub param: Option<String>,
    /// `--resource-indicator`.
    pub value: Option<String>,
    /// `--no-resource-indicator`: send none.
    pub none: bool,
}

impl ResourceIndicator {
    /// The indicator a login to `server` sends, or `None` when asked to send none.
    /// Without options that is `resource=<server>`, `server` in its normal form: the
    /// same text the server advertises as its RFC 9728 `resource`.
    pub fn resolve(
        server: &ServerUrl,
        options: IndicatorOptions,
    ) -> Result<Option<Self>, ClientError> {
        if options.none {
            return Ok(None);
        }
        let param = options
            .param
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PARAM.to_owned());
        check_param(&param)?;
        let value = match options.value.filter(|v| !v.is_empty()) {
            Some(value) => {
                check_value(&param, &value)?;
                value
            }
            None => server.as_str().to_owned(),
        };
        Ok(Some(Self { param, value }))
    }
}

fn check_param(param: &str) -> Result<(), ClientError> {
    let name_like = param
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !name_like {
        return Err(ClientError::Config(format!(
            "--resource-indicator-param: {param:?} is not a parameter name (letters, digits, '_', '-', '.')"
        )));
    }
    if RESERVED_PARAMS.contains(&param) {
        return Err(ClientError::Config(format!(
            "--resource-indicator-param: {param} is a parameter of the token request itself; name the one the provider reads the API from (resource, audience)"
        )));
    }
    Ok(())
}

fn check_value(param: &str, value: &str) -> Result<(), ClientError> {
    if value.chars().any(char::is_control) {
        return Err(ClientError::Config(
            "--resource-indicator: the value must not contain control characters".into(),
        ));
    }
    // RFC 8707 section 2: a `resource` is an absolute URI without fragment. Other names
    // are the provider's own (Auth0's API identifiers may be any string).
    if param == DEFAULT_PARAM {
        let url = Url::parse(value).map_err(|e| {
            ClientError::Config(format!(
                "--resource-indicator: {value:?} is not an absolute URI, which RFC 8707 requires of `resource`: {e}"
            ))
        })?;
        if url.fragment().is_some() {
            return Err(ClientError::Config(format!(
                "--resource-indicator: {value:?} must not have a fragment (RFC 8707)"
            )));
        }
    }
    Ok(())
}

/// Whether an RFC 9728 `resource` names `server`: equal after the normalisation the
/// client applies to server URLs (case of scheme and host, default port, trailing slash).
/// Scheme, host, port, path, and any query, user or fragment make another resource.
pub fn names_server(resource: &str, server: &ServerUrl) -> bool {
    match ServerUrl::parse("resource", resource) {
        Ok(named) => &named == server,
        Err(_) => false,
    }
}

/// RFC 9728 section 3.3: metadata fetched from `server` is only used when its `resource`
/// is `server`. Metadata without one is refused too: the field is REQUIRED, and without
/// it nothing ties the document to the server that served it.
pub fn check_metadata_resource(
    server: &ServerUrl,
    resource: Option<&str>,
) -> Result<(), ClientError> {
    match resource {
        Some(resource) if names_server(resource, server) => Ok(()),
        other => Err(ClientError::ResourceMismatch {
            server: server.to_string(),
            resource: other.map(str::to_owned),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(value: &str) -> ServerUrl {
        ServerUrl::parse("--server", value).unwrap()
    }

    #[test]
    fn a_trailing_slash_case_or_default_port_does_not_make_another_resource() {
        let given = server("http://127.0.0.1:8080");
        for resource in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "HTTP://127.0.0.1:8080",
        ] {
            assert!(names_server(resource, &given), "{resource}");
        }
        assert!(names_server(
            "https://API.example.com:443/mrmat/",
            &server("https://api.example.com/mrmat")
        ));
    }

    #[test]
    fn another_scheme_host_port_or_path_is_another_resource() {
        let given = server("http://127.0.0.2:19100");
        for resource in [
            "https://127.0.0.2:19100",
            "http://127.0.0.1:19100",
            "http://localhost:19100",
            "http://127.0.0.2:19101",
            "http://127.0.0.2",
            "http://127.0.0.2:19100/api",
        ] {
            assert!(!names_server(resource, &given), "{resource}");
        }
        assert!(!names_server(
            "https://api.example.com",
            &server("https://api.example.com/mrmat")
        ));
    }

    #[test]
    fn a_query_fragment_user_or_non_url_is_another_resource() {
        let given = server("http://127.0.0.1:8080");
        for resource in [
            "http://127.0.0.1:8080/?a=1",
            "http://127.0.0.1:8080/#f",
            "http://u@127.0.0.1:8080",
            "127.0.0.1:8080",
            "",
            "urn:mrmat-api",
        ] {
            assert!(!names_server(resource, &given), "{resource}");
        }
    }

    #[test]
    fn metadata_without_a_resource_is_refused() {
        let error = check_metadata_resource(&server("http://127.0.0.1:8080"), None).unwrap_err();
        assert!(matches!(
            error,
            ClientError::ResourceMismatch { resource: None, .. }
        ));
    }

    #[test]
    fn metadata_for_another_resource_is_refused_naming_both() {
        let error = check_metadata_resource(
            &server("http://127.0.0.2:19100"),
            Some("http://127.0.0.1:8080"),
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("http://127.0.0.2:19100"), "{text}");
        assert!(text.contains("http://127.0.0.1:8080"), "{text}");
    }

    #[test]
    fn by_default_the_indicator_is_resource_equal_to_the_normalised_server_url() {
        let indicator = ResourceIndicator::resolve(
            &server("HTTP://Example.com:80/api/"),
            IndicatorOptions::default(),
        )
        .unwrap();
        assert_eq!(
            indicator,
            Some(ResourceIndicator {
                param: "resource".into(),
                value: "http://example.com/api".into()
            })
        );
    }

    #[test]
    fn the_parameter_and_its_value_can_be_renamed_for_auth0() {
        let indicator = ResourceIndicator::resolve(
            &server("http://localhost:8080"),
            IndicatorOptions {
                param: Some("audience".into()),
                value: Some("mrmat-api".into()),
                none: false,
            },
        )
        .unwrap();
        assert_eq!(
            indicator,
            Some(ResourceIndicator {
                param: "audience".into(),
                value: "mrmat-api".into()
            })
        );
    }

    #[test]
    fn none_sends_no_indicator_whatever_else_is_set() {
        let options = IndicatorOptions {
            param: Some("audience".into()),
            value: Some("x".into()),
            none: true,
        };
        assert_eq!(
            ResourceIndicator::resolve(&server("http://localhost:8080"), options).unwrap(),
            None
        );
    }

    #[test]
    fn a_parameter_of_the_request_itself_is_refused_as_the_indicator_name() {
        for param in ["scope", "grant_type", "client_id", "a b", "x&y"] {
            let options = IndicatorOptions {
                param: Some(param.into()),
                ..IndicatorOptions::default()
            };
            let error =
                ResourceIndicator::resolve(&server("http://localhost:8080"), options).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{param}");
        }
    }

    #[test]
    fn a_resource_value_must_be_an_absolute_uri_without_fragment() {
        let resolve = |param: &str, value: &str| {
            ResourceIndicator::resolve(
                &server("http://localhost:8080"),
                IndicatorOptions {
                    param: Some(param.into()),
                    value: Some(value.into()),
                    none: false,
                },
            )
        };
        assert!(resolve("resource", "mrmat-api").is_err());
        assert!(resolve("resource", "https://api.example.com/#x").is_err());
        assert!(resolve("resource", "urn:mrmat:api").is_ok());
        assert!(resolve("audience", "mrmat-api").is_ok());
        assert!(resolve("audience", "bad\u{1b}value").is_err());
    }
}
