//! What every owner-scoped API shows of a row's owner, and the rule every name in such an
//! API keeps (trimmed, NFC, no character that could forge or hide text), shared so that a
//! second API states neither again.

use serde::{Deserialize, Deserializer, Serialize};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;
use validator::ValidationError;

use crate::text::is_unsafe_char;

/// The JSON Schema pattern of a valid name, as the OpenAPI document states it (ECMA-262
/// syntax): optional white space (Unicode White_Space, what `str::trim` removes), then 1
/// to 255 characters that begin and end with neither white space nor an unsafe character
/// and hold no unsafe character ([`crate::text::UNSAFE_CLASS`]: controls, NUL included,
/// line separators, bidi controls, zero-width characters), then optional white space: the
/// rules after trimming, in one expression. It states the rule for a name in NFC, the form
/// the server stores: one in another form is normalised first, which may change its length.
/// (JSON holding a lone surrogate is refused with 400 before any rule applies; the pattern
/// does not exclude them because common JSON Schema tools cannot compile such a range.)
pub const NAME_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
    r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000",
    crate::text::unsafe_class!(),
    r"]",
    r"(?:[^",
    crate::text::unsafe_class!(),
    r"]{0,253}",
    r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000",
    crate::text::unsafe_class!(),
    r"])?",
    r"[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
);

/// Longest accepted name, in Unicode characters after trimming.
pub const NAME_MAX_CHARS: u64 = 255;

/// Who owns a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Owner {
    /// Owner id.
    pub id: i64,
    /// The OAuth client the owner last wrote through.
    pub client_id: String,
    /// Display name of the owner.
    pub name: String,
}

/// Reads a name trimmed and normalised to NFC, so validation and storage see the same
/// string, and one name typed as composed or decomposed characters is one name.
/// For `#[serde(deserialize_with = "crate::owner::trimmed")]`.
pub fn trimmed<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = String::deserialize(deserializer)?;
    Ok(value.trim().nfc().collect())
}

/// Refuses what could forge or hide text where a name is shown (a terminal, a log, a
/// list): controls (NUL too: PostgreSQL text cannot hold it), bidi controls, zero-width
/// characters. The detail names the first one, as a code point.
/// For `#[validate(custom(function = "crate::owner::no_unsafe_chars"))]`.
pub fn no_unsafe_chars(name: &str) -> Result<(), ValidationError> {
    if let Some(c) = name.chars().find(|c| is_unsafe_char(*c)) {
        let mut error = ValidationError::new("unsafe_char");
        error.message = Some(
            format!(
                "must not contain control, bidi or zero-width characters (found U+{:04X})",
                u32::from(c)
            )
            .into(),
        );
        return Err(error);
    }
    Ok(())
}
