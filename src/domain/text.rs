//! Text shown as one line (a name, a file name, an email subject): what breaks or
//! reorders a line, refusing it where text comes in, and removing it where text goes out.

/// Whether `c` breaks or reorders a line of text: a control character (CR and LF among
/// them), a line or paragraph separator, or a bidirectional mark, embedding, override
/// or isolate (U+202E shows the rest of a line reversed: `evil\u{202e}gpj.pdf` reads as
/// `evilfdp.jpg`).
pub fn breaks_line(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` refused, saying which character and where, when it holds one that breaks or
/// reorders a line ([`breaks_line`]): what a name coming in must be.
pub fn check_one_line(text: &str) -> Result<(), String> {
    match text.chars().enumerate().find(|(_, c)| breaks_line(*c)) {
        Some((at, c)) => Err(format!(
            "must not hold control characters, line breaks or bidirectional controls (U+{:04X} at character {})",
            u32::from(c),
            at + 1
        )),
        None => Ok(()),
    }
}

/// `text` as one line that a header carries as it is shown: each run of characters
/// that break or reorder a line ([`breaks_line`]) becomes one space, and the ends are
/// trimmed. A rendered subject goes through it, since a value filled in (a debtor's
/// name from a row written before names were checked) may hold any of them.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut broken = false;
    for c in text.chars() {
        if breaks_line(c) {
            broken = true;
            continue;
        }
        if broken && !out.is_empty() {
            out.push(' ');
        }
        broken = false;
        out.push(c);
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_controls_and_bidirectional_overrides_are_refused_by_code_point() {
        for (text, code) in [
            ("Jane\r\nBcc: x", "U+000D at character 5"),
            ("evil\u{202e}gpj", "U+202E at character 5"),
            ("a\u{2066}b", "U+2066"),
            ("tab\there", "U+0009"),
            ("nul\0", "U+0000"),
            ("line\u{2028}sep", "U+2028"),
        ] {
            let refused = check_one_line(text).unwrap_err();
            assert!(refused.contains(code), "{text:?}: {refused}");
        }
        for fine in ["Jane O'Brien-Smith", "José Ñúñez", "李小龍", "محمد علي", "Zoë 👋"] {
            assert_eq!(check_one_line(fine), Ok(()), "{fine}");
        }
    }

    #[test]
    fn one_line_turns_every_break_into_one_space() {
        assert_eq!(one_line("Zoë\r\nBcc: x@example.com"), "Zoë Bcc: x@example.com");
        assert_eq!(one_line("a\u{1b}[2Jb\u{7}"), "a [2Jb");
        assert_eq!(one_line("\u{202e}fdp.exe\u{2028}next\u{2069}"), "fdp.exe next");
        assert_eq!(one_line("\t\n \r"), "");
        assert_eq!(one_line("Your balance, Zoë"), "Your balance, Zoë");
    }
}
