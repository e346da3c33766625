//! The OAuth scopes of the API: one closed set, named once in the [`scopes!`] list below,
//! used by the server to guard its routes and document them, by the client to ask for
//! them at login, and by the test kit to register them at every test identity provider.
//!
//! Adding a scope is one line in that list: the enum variant, its token name, the API it
//! belongs to, whether it reads or writes, and the marker type a handler names
//! (`Authorized<WidgetRead>`) all come from it.

use serde::{Deserialize, Serialize};

/// What a scope lets its holder do with its API. The test providers give a read-only
/// client every [`Permission::Read`] scope, and a read-write client all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read.
    Read,
    /// Create, change and delete.
    Write,
}

/// A scope a route requires, as a type: `Authorized<ResourceWrite>` in a handler's
/// signature. One marker per scope is made in [`required`] by the list.
pub trait RequiredScope {
    /// The scope.
    const SCOPE: Scope;
}

/// Declares every scope from one list: `Variant = "token name", api: "api name", Read|Write;`
/// with its doc comment (the scope's description wherever one is shown).
macro_rules! scopes {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $name:literal, api: $api:literal, $permission:ident;
    )+) => {
        /// A scope the API understands. Routes name one of these, never a string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Scope {
            $(
                $(#[doc = $doc])+
                #[serde(rename = $name)]
                $variant,
            )+
        }

        impl Scope {
            /// Every scope, in the order metadata documents list them.
            pub const ALL: &'static [Scope] = &[$(Scope::$variant),+];

            /// Every scope's name, space-separated as OAuth writes a scope list.
            pub const SPACE_SEPARATED: &'static str =
                concat!($(" ", $name),+).trim_ascii_start();

            /// The scope's name in tokens.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// The name of the API it belongs to (the `name` of its mounts).
            pub const fn api(self) -> &'static str {
                match self {
                    $(Self::$variant => $api,)+
                }
            }

            /// Whether it reads or writes.
            pub const fn permission(self) -> Permission {
                match self {
                    $(Self::$variant => Permission::$permission,)+
                }
            }

            /// What it allows, in a sentence: its doc comment.
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!($($doc),+).trim(),)+
                }
            }
        }

        /// One marker type per scope, named like its variant, for `Authorized<...>`.
        pub mod required {
            use super::{RequiredScope, Scope};
            $(
                #[doc = concat!("Marker for [`Scope::", stringify!($variant), "`].")]
                #[derive(Debug)]
                pub struct $variant;
                impl RequiredScope for $variant {
                    const SCOPE: Scope = Scope::$variant;
                }
            )+
        }
    };
}

scopes! {
    /// Read resources.
    ResourceRead = "mrmat-api-resource-read", api: "resource", Read;
    /// Create, change and delete one's own resources.
    ResourceWrite = "mrmat-api-resource-write", api: "resource", Write;
}

impl Scope {
    /// The scope named `name` in a token, if the API has one.
    pub fn from_name(name: &str) -> Option<Scope> {
        Self::ALL
            .iter()
            .copied()
            .find(|scope| scope.as_str() == name)
    }

    /// Every scope that grants `permission`, in list order.
    pub fn with_permission(permission: Permission) -> impl Iterator<Item = Scope> {
        Self::ALL
            .iter()
            .copied()
            .filter(move |scope| scope.permission() == permission)
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
            assert_eq!(Scope::from_name(scope.as_str()), Some(*scope));
        }
    }

    #[test]
    fn the_space_separated_list_names_every_scope_once() {
        let names: Vec<&str> = Scope::SPACE_SEPARATED.split(' ').collect();
        let expected: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn descriptions_are_the_doc_comments() {
        assert_eq!(Scope::ResourceRead.description(), "Read resources.");
        assert_eq!(
            <required::ResourceWrite as RequiredScope>::SCOPE,
            Scope::ResourceWrite
        );
    }
}
