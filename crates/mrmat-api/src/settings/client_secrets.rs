//! A Flask-OIDC `client_secrets.json` (`--oidc-secrets`), so that a user of the Python
//! original can reuse theirs.

use std::path::Path;

use mrmat_api_types::redact::without_values;
use mrmat_api_types::secret::Secret;
use serde::Deserialize;

use super::ConfigError;

/// The Flask-OIDC `client_secrets.json` shape: `{"web": {...}}`.
#[derive(Debug, Deserialize)]
struct ClientSecretsFile {
    web: ClientSecretsWeb,
}

#[derive(Debug, Deserialize)]
pub(super) struct ClientSecretsWeb {
    pub(super) client_id: String,
    pub(super) client_secret: Secret,
    pub(super) issuer: Option<String>,
    pub(super) token_introspection_uri: Option<String>,
    pub(super) token_uri: Option<String>,
    pub(super) introspection_endpoint: Option<String>,
}

pub(super) fn read_client_secrets(path: &Path) -> Result<ClientSecretsWeb, ConfigError> {
    let fail = |reason: String| {
        ConfigError::invalid("--oidc-secrets", format!("{}: {reason}", path.display()))
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let file: ClientSecretsFile = serde_json::from_str(&text).map_err(|e| {
        fail(format!(
            "not a client_secrets.json ({{\"web\": {{client_id, client_secret, issuer, ...}}}}): {}",
            without_values(&e.to_string())
        ))
    })?;
    Ok(file.web)
}
