//! The one gate between text from elsewhere (the identity provider, the API server, a
//! token's claims) and the terminal. Such text could carry escape sequences: an OSC 8
//! hyperlink shows one URL and opens another, a CSI sequence can clear the screen or
//! rewrite the line above, a bidi override can show `moc.live` as `evil.com`. Everything a
//! person reads passes through [`printable`] first.

/// What stands in for something that was removed, so tampering shows instead of hiding.
pub const REPLACEMENT: char = '\u{FFFD}';

const ESC: char = '\u{1b}';
const BEL: char = '\u{07}';
/// The 8-bit forms of CSI, OSC and the string introducers DCS, SOS, PM, APC.
const C1_CSI: char = '\u{9b}';
const C1_STRINGS: [char; 5] = ['\u{90}', '\u{98}', '\u{9d}', '\u{9e}', '\u{9f}'];
/// The 8-bit string terminator.
const C1_ST: char = '\u{9c}';

/// `text` made safe for a terminal, on one line: every escape sequence (CSI, OSC such as
/// hyperlinks and window titles, DCS/SOS/PM/APC strings, two-character escapes) becomes
/// one [`REPLACEMENT`]; so does every other C0 or C1 control character and every bidi
/// control; line breaks and tabs become spaces. Printable text of any script is kept.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ESC => {
                match chars.next() {
                    Some('[') => skip_csi(&mut chars),
                    Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                    // Two-character escapes (ESC c resets the terminal): drop both.
                    Some(_) | None => {}
                }
                out.push(REPLACEMENT);
            }
            C1_CSI => {
                skip_csi(&mut chars);
                out.push(REPLACEMENT);
            }
            c if C1_STRINGS.contains(&c) => {
                skip_string(&mut chars);
                out.push(REPLACEMENT);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() || is_bidi_control(c) => out.push(REPLACEMENT),
            c => out.push(c),
        }
    }
    out
}

/// Skips a control sequence's parameter and intermediate bytes and its final byte.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            return;
        }
        // A sequence cut short by another control: stop, the control is handled anew.
        if !('\u{20}'..='\u{3f}').contains(&c) {
            return;
        }
    }
}

/// Skips a control string (an OSC's hyperlink target, say) up to and including its
/// terminator: BEL, ESC \ or the 8-bit ST. An unterminated string runs to the end, as it
/// would swallow everything on a terminal too.
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            BEL | C1_ST => return,
            ESC => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

/// Characters that reorder the text around them (Unicode bidi embeddings, overrides,
/// isolates and marks).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_osc_8_hyperlink_loses_its_hidden_target() {
        let text =
            "\u{1b}]8;;https://evil.example/\u{7}https://idp.example/device\u{1b}]8;;\u{1b}\\";
        let shown = printable(text);
        assert_eq!(shown, "\u{fffd}https://idp.example/device\u{fffd}");
        assert!(!shown.contains("evil"));
    }

    #[test]
    fn ansi_colours_and_screen_clears_are_replaced() {
        assert_eq!(
            printable("\u{1b}[31mred\u{1b}[0m\u{1b}[2J"),
            "\u{fffd}red\u{fffd}\u{fffd}"
        );
    }

    #[test]
    fn eight_bit_controls_are_replaced_with_their_sequences() {
        assert_eq!(
            printable("a\u{9b}2Jb\u{9d}0;title\u{9c}c"),
            "a\u{fffd}b\u{fffd}c"
        );
    }

    #[test]
    fn bidi_overrides_are_replaced() {
        assert_eq!(printable("abc\u{202e}moc.live"), "abc\u{fffd}moc.live");
    }

    #[test]
    fn line_breaks_become_spaces_and_other_controls_are_replaced() {
        assert_eq!(printable("a\nb\r\tc\u{7}\u{7f}"), "a b  c\u{fffd}\u{fffd}");
    }

    #[test]
    fn text_of_any_script_is_kept() {
        let text = "名前 émoji 🦀 ÿ";
        assert_eq!(printable(text), text);
    }

    #[test]
    fn an_unterminated_string_swallows_the_rest() {
        assert_eq!(printable("ok\u{1b}]0;title"), "ok\u{fffd}");
    }
}
