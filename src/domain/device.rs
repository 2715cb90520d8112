//! The device a session signed in from, as its User-Agent names it: kept to show the
//! user their sessions, so it is bounded and holds printable text only.

/// Characters of a User-Agent kept.
pub const MAX_DEVICE_CHARS: usize = 200;

/// `user_agent` with control and format characters dropped, runs of whitespace made
/// one space and cut to [`MAX_DEVICE_CHARS`]; `None` when nothing is left.
pub fn device(user_agent: &str) -> Option<String> {
    let mut out = String::new();
    for word in user_agent
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().filter(|c| !is_format(*c)));
    }
    let out: String = out.chars().take(MAX_DEVICE_CHARS).collect();
    let out = out.trim_end().to_owned();
    (!out.is_empty()).then_some(out)
}

/// Invisible characters that reorder or hide text (bidirectional controls, zero-width
/// characters), which a name shown to a person must not carry.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_printable_text_bounded() {
        assert_eq!(
            device("  Mozilla/5.0\t(X11;\r\n Linux)  ").as_deref(),
            Some("Mozilla/5.0 (X11; Linux)")
        );
        assert_eq!(device("a\u{202E}b\u{0}c").as_deref(), Some("ab c"));
        assert_eq!(device(" \n\t"), None);
        assert_eq!(device(&"x".repeat(500)).unwrap().chars().count(), MAX_DEVICE_CHARS);
    }
}
