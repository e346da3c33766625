//! The names a new API's code uses, all derived from the one NAME it is given, and the
//! rules NAME must keep.

/// Rust keywords (strict, reserved and edition 2024's `gen`): a module cannot be named so.
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// SQL words PostgreSQL or SQLite refuse as a bare table name.
const SQL_RESERVED: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "case",
    "cast",
    "check",
    "column",
    "constraint",
    "create",
    "default",
    "delete",
    "desc",
    "distinct",
    "drop",
    "from",
    "grant",
    "group",
    "having",
    "index",
    "insert",
    "into",
    "join",
    "key",
    "limit",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "primary",
    "references",
    "select",
    "table",
    "to",
    "union",
    "unique",
    "update",
    "user",
    "values",
    "when",
    "window",
    "with",
];

/// Type names the generated code imports or defines itself: an API whose type is one of
/// them would not compile.
const USED_TYPE_NAMES: &[&str] = &[
    "ApiError",
    "AppState",
    "Authorized",
    "Doc",
    "Endpoint",
    "HttpRequest",
    "HttpResponse",
    "JsonBody",
    "Mount",
    "OpenApi",
    "Owner",
    "Page",
    "Paging",
    "Problem",
    "Row",
    "Scope",
    "Value",
    "WithOwner",
];

/// Longest accepted NAME: it becomes a path segment, a table, a module and scope names.
const MAX_LEN: usize = 40;

/// Every name the templates use, derived from NAME (`gift_cards` in the examples).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// NAME itself: module, table, path segment, list field (`gift_cards`).
    pub name: String,
    /// For prose, plural (`gift cards`).
    pub plural: String,
    /// For prose, singular: what one row is (`gift card`).
    pub noun: String,
    /// Capitalised prose (`Gift cards`).
    pub title: String,
    /// The Rust type of one row (`GiftCard`); for a stateless API, of the API (`GiftCards`).
    pub type_name: String,
    /// The Rust type of the API as a whole, unsingularised (`GiftCards`).
    pub plural_type: String,
    /// NAME with dashes, for scope names (`gift-cards`).
    pub dashed: String,
}

impl Names {
    /// The names of the API `name`, or why `name` cannot be one: not a lowercase
    /// identifier, a Rust keyword or SQL word, or a type name the generated code uses.
    pub fn new(name: &str) -> Result<Self, String> {
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if name.is_empty()
            || !valid_chars
            || !name.starts_with(|c: char| c.is_ascii_lowercase())
            || name.ends_with('_')
            || name.contains("__")
        {
            return Err(format!(
                "`{name}` is not a lowercase identifier: use a-z, 0-9 and single underscores, starting with a letter (e.g. widgets)"
            ));
        }
        if name.len() > MAX_LEN {
            return Err(format!(
                "`{name}` is longer than {MAX_LEN} characters; it becomes a path, a table and scope names"
            ));
        }
        if RUST_KEYWORDS.contains(&name) {
            return Err(format!(
                "`{name}` is a Rust keyword and cannot name a module; pick another name"
            ));
        }
        if SQL_RESERVED.contains(&name) {
            return Err(format!(
                "`{name}` is an SQL keyword and cannot name a table; pick another name"
            ));
        }
        let plural = name.replace('_', " ");
        let noun = singular(name).replace('_', " ");
        let names = Self {
            name: name.to_owned(),
            title: capitalised(&plural),
            type_name: camel(&singular(name)),
            plural_type: camel(name),
            dashed: name.replace('_', "-"),
            plural,
            noun,
        };
        for type_name in [&names.type_name, &names.plural_type] {
            if USED_TYPE_NAMES.contains(&type_name.as_str()) {
                return Err(format!(
                    "`{name}` makes the type `{type_name}`, a name the generated code already uses; pick another name"
                ));
            }
        }
        Ok(names)
    }

    /// The placeholders of the templates and their values.
    pub fn vars(&self, scope_prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("name", self.name.clone()),
            ("plural", self.plural.clone()),
            ("noun", self.noun.clone()),
            ("Title", self.title.clone()),
            ("Type", self.type_name.clone()),
            ("Plural", self.plural_type.clone()),
            ("dashed", self.dashed.clone()),
            ("scope_prefix", scope_prefix.to_owned()),
        ]
    }
}

/// English plural to singular, for the common endings; a name it gets wrong still works
/// (only messages and type names read oddly) and can be renamed by hand.
fn singular(name: &str) -> String {
    let (head, last) = match name.rsplit_once('_') {
        Some((head, last)) => (format!("{head}_"), last),
        None => (String::new(), name),
    };
    let one = if let Some(stem) = last.strip_suffix("ies").filter(|s| !s.is_empty()) {
        format!("{stem}y")
    } else if ["sses", "shes", "ches", "xes", "zes"]
        .iter()
        .any(|end| last.ends_with(end))
    {
        last[..last.len() - 2].to_owned()
    } else if last.ends_with('s')
        && last.len() > 1
        && !["ss", "us", "is"].iter().any(|end| last.ends_with(end))
    {
        last[..last.len() - 1].to_owned()
    } else {
        last.to_owned()
    };
    format!("{head}{one}")
}

/// `gift_card` as `GiftCard`.
fn camel(name: &str) -> String {
    name.split('_').map(capitalised).collect()
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_derived_from_name() {
        let names = Names::new("gift_cards").unwrap();
        assert_eq!(names.plural, "gift cards");
        assert_eq!(names.noun, "gift card");
        assert_eq!(names.title, "Gift cards");
        assert_eq!(names.type_name, "GiftCard");
        assert_eq!(names.plural_type, "GiftCards");
        assert_eq!(names.dashed, "gift-cards");
        let widgets = Names::new("widgets").unwrap();
        assert_eq!(
            (widgets.noun.as_str(), widgets.type_name.as_str()),
            ("widget", "Widget")
        );
        assert_eq!(Names::new("hello").unwrap().type_name, "Hello");
    }

    #[test]
    fn common_plurals_become_singular() {
        for (plural, one) in [
            ("widgets", "widget"),
            ("categories", "category"),
            ("boxes", "box"),
            ("matches", "match"),
            ("addresses", "address"),
            ("status", "status"),
            ("news_items", "news_item"),
            ("s", "s"),
            ("v2", "v2"),
        ] {
            assert_eq!(singular(plural), one, "{plural}");
        }
    }

    #[test]
    fn only_lowercase_identifiers_are_names() {
        for bad in [
            "",
            "Widgets",
            "2fa",
            "_x",
            "x_",
            "a__b",
            "gift-cards",
            "wid gets",
            "ü",
            "x.y",
        ] {
            let error = Names::new(bad).unwrap_err();
            assert!(error.contains("lowercase identifier"), "{bad}: {error}");
        }
        assert!(Names::new(&"x".repeat(MAX_LEN + 1)).is_err());
        assert!(Names::new(&"x".repeat(MAX_LEN)).is_ok());
    }

    #[test]
    fn keywords_and_names_the_code_uses_are_refused() {
        assert!(Names::new("type").unwrap_err().contains("Rust keyword"));
        assert!(Names::new("order").unwrap_err().contains("SQL keyword"));
        assert!(Names::new("user").unwrap_err().contains("SQL keyword"));
        assert!(Names::new("pages").unwrap_err().contains("`Page`"));
        assert!(Names::new("problems").unwrap_err().contains("`Problem`"));
    }
}
