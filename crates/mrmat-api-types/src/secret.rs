//! A value that must never be printed: client secrets, tokens, database URLs with
//! passwords. `Debug` shows a placeholder and there is no `Display`; reading the value
//! takes an explicit [`Secret::expose`], easy to find in a review. Serialising is the one
//! other way out, for files that must keep the value (the client's token cache).
//!
//! Kept by hand rather than `secrecy` (0.10), after checking what it would take: its
//! `SecretString` serialises only through a `serialize_with` on every field (by design it
//! does not implement its own `SerializableSecret`, and the orphan rule stops us doing
//! it), it has no `PartialEq` (the server's settings compare database URLs that hold
//! one), and its one gain, zeroing on drop, does not hold here: reqwest and oauth2 copy
//! every secret into request bodies and headers that are never zeroed. Forty lines here
//! against a dependency and about fifty changed call sites for no safer result.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that does not print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(value))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// Writes the value itself, as a plain string: deliberately, since a file that keeps a
/// secret (the client's token cache, mode 0600) needs it back. This and
/// [`Secret::expose`] are the only ways out, so a review finds every use.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn serialises_as_the_plain_string_it_was_read_from() {
        let secret: Secret = serde_json::from_str(r#""hunter2""#).unwrap();
        assert_eq!(serde_json::to_string(&secret).unwrap(), r#""hunter2""#);
    }
}
