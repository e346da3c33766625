//! The config file (`--config`): the command line's options in TOML, or JSON when the
//! file's name ends in `.json`.

use std::path::Path;

use mrmat_api_types::redact::without_values;

use super::ConfigError;
use crate::cli::Options;

/// Reads the config file: the same options as the command line, snake_case keys.
pub(super) fn read_config_file(path: &Path) -> Result<Options, ConfigError> {
    let fail =
        |reason: String| ConfigError::invalid("--config", format!("{}: {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .map_err(|e| fail(format!("invalid JSON: {}", without_values(&e.to_string()))))
    } else {
        toml::from_str(&text)
            .map_err(|e| fail(format!("invalid TOML: {}", without_values(e.message()))))
    }
}
