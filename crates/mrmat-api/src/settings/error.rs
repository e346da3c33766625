//! The one error of the configuration: which option, and what to do about it.

/// A configuration value that cannot be used. Its `Display` is the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An option has a bad value.
    #[error("{option}: {reason}")]
    Invalid {
        /// The option as the user would type it.
        option: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl ConfigError {
    /// A bad value of `option`.
    pub fn invalid(option: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            option,
            reason: reason.into(),
        }
    }
}
