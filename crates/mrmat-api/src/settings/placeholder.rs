//! Client secrets anyone can read: the placeholders of examples, exports and the test
//! provider. The server warns at every start when its secret is one.

/// Client secrets published in examples, exports and the test provider.
const PLACEHOLDER_SECRETS: &[&str] = &[
    "secret",
    "password",
    "client-secret",
    "mrmat-api-secret",
    "your-client-secret",
    "replace-me",
];

/// Whether `secret` is such a placeholder.
pub(super) fn is_placeholder(secret: &str) -> bool {
    let secret = secret.trim().to_ascii_lowercase();
    PLACEHOLDER_SECRETS.contains(&secret.as_str())
        || secret.starts_with("change-me")
        || secret.starts_with("changeme")
        || secret.chars().all(|c| c == '*')
}
