//! Certificate authorities for the identity provider (`--oidc-ca-file`).

use std::path::Path;

use super::ConfigError;

pub(super) fn read_ca_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let fail = |reason: String| {
        ConfigError::invalid("--oidc-ca-file", format!("{}: {reason}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(pem),
        Ok(_) => Err(fail("holds no PEM certificate".to_owned())),
        Err(e) => Err(fail(format!("not a PEM certificate bundle: {e}"))),
    }
}
