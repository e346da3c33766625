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
    /// The algorithms a DPoP proof (RFC 9449) may be signed with: the server accepts
    /// tokens bound to a key, presented with the `DPoP` scheme and a proof.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether only DPoP-bound tokens are accepted (bearer tokens are refused).
    #[serde(default)]
    pub dpop_bound_access_tokens_required: bool,
}

/// The algorithms of DPoP proofs, and of the JWT access tokens the server checks itself:
/// asymmetric ones only (never `none`, never HMAC). The client signs its proofs with the
/// first it supports.
pub const SIGNING_ALGORITHMS: &[&str] = &[
    "ES256", "ES384", "EdDSA", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512",
];
