//! The OAuth scopes of the API: one closed set, named once, used by the server to guard
//! its routes and document them, and by the client to ask for them at login.

use serde::{Deserialize, Serialize};

/// A scope the API understands. Routes name one of these, never a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Read resources.
    #[serde(rename = "mrmat-api-resource-read")]
    ResourceRead,
    /// Create, change and delete one's own resources.
    #[serde(rename = "mrmat-api-resource-write")]
    ResourceWrite,
}

impl Scope {
    /// Every scope, in the order metadata documents list them.
    pub const ALL: [Scope; 2] = [Scope::ResourceRead, Scope::ResourceWrite];

    /// The scope's name in tokens.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ResourceRead => "mrmat-api-resource-read",
            Self::ResourceWrite => "mrmat-api-resource-write",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_token_names() {
        for scope in Scope::ALL {
            assert_eq!(
                serde_json::to_value(scope).unwrap(),
                serde_json::json!(scope.as_str())
            );
        }
    }
}
