//! RFC 9728 OAuth 2.0 protected resource metadata.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /.well-known/oauth-protected-resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: this server's base URL.
    pub resource: String,
    /// Issuer URLs of the authorization servers whose tokens this server accepts.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource understands.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// How a bearer token may be sent: only `header`.
    #[serde(default)]
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}
