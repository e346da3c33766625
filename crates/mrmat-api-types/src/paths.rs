//! Where the server mounts each API version and the documents around them, stated once
//! for the server and the client: a path the client calls is a path the server serves.
//! A mount path has no trailing slash; the server answers with and without one.

/// The index of the mounted APIs (`GET /api/`).
pub const API_INDEX: &str = "/api/";

/// `greeting` v1: `Hello World`.
pub const GREETING_V1: &str = "/api/greeting/v1";
/// `greeting` v2: `Hello <name>`.
pub const GREETING_V2: &str = "/api/greeting/v2";
/// `greeting` v3: `Hello <user of the token>`.
pub const GREETING_V3: &str = "/api/greeting/v3";
/// `resource` v1: the owner-scoped CRUD API.
pub const RESOURCE_V1: &str = "/api/resource/v1";

/// The RFC 9728 protected resource metadata.
pub const PROTECTED_RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mount is `/api/<name>/<version>` under the index, without a trailing slash.
    #[test]
    fn mounts_are_name_and_version_under_the_index() {
        for (path, name, version) in [
            (GREETING_V1, "greeting", "v1"),
            (GREETING_V2, "greeting", "v2"),
            (GREETING_V3, "greeting", "v3"),
            (RESOURCE_V1, "resource", "v1"),
        ] {
            assert_eq!(path, format!("{API_INDEX}{name}/{version}"));
        }
    }
}
