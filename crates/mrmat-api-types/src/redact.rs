//! Error messages of serde formats quote the offending value (``invalid type: string
//! `hunter2`, expected ...``). In a file that holds secrets that value may be one, so
//! messages about files are passed through [`without_values`] before anyone sees them.

/// `message` without the values it quotes, when it is about a wrong value; other messages
/// (missing or unknown fields, syntax) name only keys and are kept as they are.
pub fn without_values(message: &str) -> String {
    let about_a_value = ["invalid type", "invalid value", "invalid length"]
        .iter()
        .any(|kind| message.contains(kind));
    if !about_a_value {
        return message.to_owned();
    }
    let mut kept = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '`' {
            quoted = !quoted;
        } else if !quoted {
            kept.push(c);
        }
    }
    kept.replace(" ,", ",").replace("  ", " ")
}

#[cfg(test)]
mod tests {
    use super::without_values;

    #[test]
    fn quoted_values_are_dropped_from_wrong_value_messages() {
        assert_eq!(
            without_values("invalid type: string `hunter2`, expected u16 at line 1 column 9"),
            "invalid type: string, expected u16 at line 1 column 9"
        );
    }

    #[test]
    fn messages_about_keys_are_kept() {
        let message = "unknown field `colour`, expected `name`";
        assert_eq!(without_values(message), message);
    }
}
