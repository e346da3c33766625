//! Characters that text from outside must not carry where a person reads it: the one list
//! that the server's name rule refuses and its log and `doctor` output escape.

/// Whether `c` can change what a reader sees beyond itself, or hide: a control character
/// (C0, DEL, C1: a terminal acts on escape sequences and a newline starts a forged log
/// line), a line or paragraph separator (a new line to some viewers), a bidirectional
/// control (reorders the text around it: U+061C, U+200E, U+200F, U+202A to U+202E, U+2066
/// to U+2069), or a zero-width character (makes two different strings look alike: U+180E,
/// U+200B, U+2060 to U+2064, U+FEFF). The zero-width joiner and non-joiner (U+200C,
/// U+200D) are letters' business, not spoofing: emoji sequences (👩‍👩‍👧) and Persian and
/// Indic words need them.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// The same set as a character class body for a JSON Schema (ECMA-262) pattern, as a
/// macro so that `concat!` can build the name pattern from it (resource.rs).
macro_rules! unsafe_class {
    () => {
        r"\u0000-\u001f\u007f-\u009f\u061c\u180e\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
    };
}
pub(crate) use unsafe_class;

/// The same set as a character class body for a JSON Schema (ECMA-262) pattern, so the
/// published rule and [`is_unsafe_char`] are one list (a test holds them together).
pub const UNSAFE_CLASS: &str = unsafe_class!();

/// `\uXXXX` (ECMA-262, the JSON Schema patterns) as `\x{XXXX}` (the regex crate), so
/// tests can run the published patterns; resource.rs's tests use it too.
#[cfg(test)]
pub(crate) fn ecma_to_rust(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(at) = rest.find("\\u") {
        out.push_str(&rest[..at]);
        out.push_str(&format!("\\x{{{}}}", &rest[at + 2..at + 6]));
        rest = &rest[at + 6..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_zero_width_characters_are_unsafe() {
        for c in [
            '\0', '\n', '\t', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{202e}', '\u{2066}',
            '\u{200e}', '\u{200b}', '\u{feff}', '\u{2028}',
        ] {
            assert!(is_unsafe_char(c), "{c:?}");
        }
        for c in [
            'a', ' ', 'é', '\u{3000}', '🦀', '\u{a0}', '"', '\\', '\u{200c}', '\u{200d}',
        ] {
            assert!(!is_unsafe_char(c), "{c:?}");
        }
    }

    /// The class published in the pattern and the function are the same set.
    #[test]
    fn the_class_and_the_function_agree_on_every_character() {
        let class = regex::Regex::new(&format!("^[{}]$", ecma_to_rust(UNSAFE_CLASS)))
            .expect("the class compiles");
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(
                class.is_match(c.encode_utf8(&mut [0; 4])),
                is_unsafe_char(c),
                "{c:?}"
            );
        }
    }
}
