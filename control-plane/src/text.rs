//! Rules for text that the control plane stores and shows back: no control characters and no
//! bidirectional overrides (which make a name read differently from what it is), bounded
//! lengths, and short excerpts of refused input for error messages.

/// Text refused by [`check_text`]: what is wrong, for a `422` (`ApiError` converts it).
#[derive(Debug, Clone, PartialEq)]
pub struct TextError(pub String);

/// Longest description (roles, secrets, display names).
pub const MAX_DESCRIPTION: usize = 1024;

/// Longest free-form name (API key names, display names).
pub const MAX_NAME: usize = 128;

/// Whether `c` is a control character or a bidirectional formatting character.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            | '\u{061C}' | '\u{FEFF}')
}

/// Checks free text: at most `max` characters and no unsafe characters (`multiline` allows
/// newlines and tabs, as in descriptions).
pub fn check_text(what: &str, text: &str, max: usize, multiline: bool) -> Result<(), TextError> {
    let n = text.chars().count();
    if n > max {
        return Err(TextError(format!(
            "{what} has {n} characters; at most {max} are allowed"
        )));
    }
    if let Some(c) = text
        .chars()
        .find(|&c| is_unsafe_char(c) && !(multiline && matches!(c, '\n' | '\t')))
    {
        return Err(TextError(format!(
            "{what} contains the control or bidirectional character U+{:04X}; remove it",
            c as u32
        )));
    }
    Ok(())
}

/// Checks a DNS-label name.
pub fn check_name(what: &str, name: &str) -> Result<(), TextError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(TextError(format!(
            "{what} `{name}` must be 1-63 lowercase letters, digits or `-`, not starting or ending with `-`"
        )))
    }
}

/// The start of `text` for an error message: at most 64 characters, unsafe ones escaped.
pub fn excerpt(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .map(|c| {
            if is_unsafe_char(c) {
                format!("\\u{{{:04X}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// `text` cut to at most `max` characters (the last one `…` when cut).
pub fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_control_and_bidi_characters_and_long_text() {
        assert!(check_text("name", "ci deploy", 10, false).is_ok());
        assert!(check_text("name", "a\u{0}b", 10, false).is_err());
        assert!(check_text("name", "a\u{7}b", 10, false).is_err());
        assert!(check_text("name", "evil\u{202E}gpj.exe", 64, false).is_err());
        assert!(check_text("name", "a\nb", 10, false).is_err());
        assert!(check_text("description", "a\nb", 10, true).is_ok());
        assert!(check_text("name", &"x".repeat(11), 10, false).is_err());
        assert_eq!(excerpt("a\u{202E}b"), "a\\u{202E}b");
        assert!(excerpt(&"x".repeat(100)).ends_with('…'));
    }
}
