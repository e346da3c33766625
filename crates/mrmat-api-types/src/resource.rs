//! Resource API v1 bodies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

pub use crate::owner::{NAME_MAX_CHARS, NAME_PATTERN, Owner};

/// A stored resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Resource {
    /// Resource id: a positive integer.
    pub id: i64,
    /// The name, unique per owner.
    pub name: String,
    /// The owner, the only one who may change or delete it.
    pub owner: Owner,
    /// When it was created (RFC 3339, UTC).
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    /// When it last changed (RFC 3339, UTC); never earlier than `created_at`.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/resource/v1/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResourceList {
    /// One page of resources, ordered by id.
    pub resources: Vec<Resource>,
    /// The next page, as a path with a keyset cursor (`?limit=N&after=<last id>`) relative
    /// to the server; absent on the last page. Added after v1 shipped: old clients ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "/api/resource/v1/?limit=100&after=100")]
    pub next: Option<String>,
}

/// Body of `POST` and `PUT /api/resource/v1/...`.
///
/// The name is trimmed and normalised to NFC while it is read, so validation and storage
/// see the same string, and one name typed as composed or decomposed characters (NFC or
/// NFD) is one name: the second is a 409, not a look-alike twin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceInput {
    /// 1 to 255 characters after trimming and NFC normalisation; no control, line
    /// separator, bidi control or zero-width character.
    #[serde(deserialize_with = "crate::owner::trimmed")]
    #[validate(
        length(min = 1, max = NAME_MAX_CHARS, message = "must be 1 to 255 characters after trimming"),
        custom(function = "crate::owner::no_unsafe_chars")
    )]
    // The length rule applies after trimming, which JSON Schema's maxLength cannot say:
    // the OpenAPI document states it as NAME_PATTERN instead (set where it is assembled).
    #[schema(example = "my resource")]
    pub name: String,
}

impl ResourceInput {
    /// A body naming `name` (sent as given; the server trims it).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ResourceInput, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn name_is_trimmed_when_read() {
        assert_eq!(parse(r#"{"name":"  spaced \t"}"#).unwrap().name, "spaced");
    }

    #[test]
    fn blank_name_fails_validation() {
        assert!(parse(r#"{"name":"   "}"#).unwrap().validate().is_err());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let name = "é".repeat(255);
        assert!(ResourceInput::new(name).validate().is_ok());
        assert!(ResourceInput::new("é".repeat(256)).validate().is_err());
    }

    #[test]
    fn nul_character_fails_validation() {
        let errors = ResourceInput::new("a\0b").validate().unwrap_err();
        assert!(errors.field_errors().contains_key("name"));
    }

    /// The pattern the OpenAPI document publishes and the rule the server enforces agree.
    #[test]
    fn the_published_pattern_matches_what_validation_accepts() {
        let pattern = regex::Regex::new(&crate::text::ecma_to_rust(NAME_PATTERN)).unwrap();
        let samples = [
            "a".to_owned(),
            " a ".to_owned(),
            "\u{3000}a\u{2028}".to_owned(),
            "a b".to_owned(),
            "".to_owned(),
            "   ".to_owned(),
            "a\0b".to_owned(),
            "\0".to_owned(),
            "é".repeat(255),
            "é".repeat(256),
            format!("  {}  ", "x".repeat(255)),
            format!(" {} ", "x".repeat(256)),
            "\u{1c}".to_owned(),
            "\u{feff}x".to_owned(),
            "🦀".repeat(255),
            "a\u{202e}b".to_owned(),
            "\u{202e}ab".to_owned(),
            "a\u{200b}".to_owned(),
            "a\u{2066}b\u{2069}".to_owned(),
            "\u{1b}]8;;http://x\u{7}x".to_owned(),
            "a\nb".to_owned(),
            "a\tb".to_owned(),
            "a\u{85}b".to_owned(),
            "a\u{9b}b".to_owned(),
            "a\u{7f}".to_owned(),
            "a\u{2028}b".to_owned(),
            "\u{2028}a\u{2029}".to_owned(),
            "a\u{ad}b".to_owned(),
            "e\u{301}".to_owned(),
        ];
        for name in samples {
            let valid = ResourceInput::new(name.trim()).validate().is_ok();
            assert_eq!(pattern.is_match(&name), valid, "{name:?}");
        }
    }

    /// The pattern spells out the unsafe class three times (concat! takes literals only):
    /// each is the one list of `text`.
    #[test]
    fn the_pattern_refuses_the_one_list_of_unsafe_characters() {
        assert_eq!(NAME_PATTERN.matches(crate::text::UNSAFE_CLASS).count(), 3);
    }

    #[test]
    fn names_are_normalised_to_nfc_when_read() {
        let decomposed = parse(r#"{"name":"Cafe\u0301"}"#).unwrap();
        let composed = parse(r#"{"name":"Caf\u00e9"}"#).unwrap();
        assert_eq!(decomposed.name, "Caf\u{e9}");
        assert_eq!(decomposed, composed);
    }

    #[test]
    fn bidi_controls_and_zero_width_characters_fail_validation_naming_them() {
        for (name, code) in [
            ("evil\u{202e}txt.exe", "U+202E"),
            ("a\u{200b}b", "U+200B"),
            ("a\u{1b}[2Jb", "U+001B"),
            ("a\nb", "U+000A"),
        ] {
            let errors = ResourceInput::new(name).validate().unwrap_err();
            let message = errors.field_errors()["name"][0].message.clone().unwrap();
            assert!(message.contains(code), "{name:?}: {message}");
        }
    }

    #[test]
    fn unknown_field_is_refused() {
        let error = parse(r#"{"name":"x","colour":"red"}"#).unwrap_err();
        assert!(error.to_string().contains("colour"));
    }
}
