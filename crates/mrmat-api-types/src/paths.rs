//! Where the server mounts each API version and the documents around them, stated once
//! for the server and the client: a path the client calls is a path the server serves.
//! A mount path has no trailing slash; the server answers with and without one.

/// The index of the mounted APIs (`GET /api/`).
pub const API_INDEX: &str = "/api/";

/// The mount path of API `name` at `version`: `/api/{name}/{version}`. A macro, as the
/// server's `mount!` and the constants below need it at compile time (`concat!` takes
/// literals only); a test holds it to [`API_INDEX`].
#[macro_export]
macro_rules! mount_path {
    ($name:literal, $version:literal) => {
        concat!("/api/", $name, "/", $version)
    };
}

/// `greeting` v1: `Hello World`.
pub const GREETING_V1: &str = mount_path!("greeting", "v1");
/// `greeting` v2: `Hello <name>`.
pub const GREETING_V2: &str = mount_path!("greeting", "v2");
/// `greeting` v3: `Hello <user of the token>`.
pub const GREETING_V3: &str = mount_path!("greeting", "v3");
/// `resource` v1: the owner-scoped CRUD API.
pub const RESOURCE_V1: &str = mount_path!("resource", "v1");

/// The RFC 9728 protected resource metadata.
pub const PROTECTED_RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

#[cfg(test)]
mod tests {
    use super::*;

    /// A mount is `<name>/<version>` under the index, without a trailing slash.
    #[test]
    fn mounts_are_name_and_version_under_the_index() {
        assert_eq!(mount_path!("widget", "v2"), format!("{API_INDEX}widget/v2"));
        assert_eq!(RESOURCE_V1, "/api/resource/v1");
    }
}
