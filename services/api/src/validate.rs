//! The one check every text field of every request body goes through: its length in characters,
//! and no control characters. Postgres refuses U+0000 in `text` (which used to make a NUL in a
//! name a 500), and the other control characters (Unicode category Cc: U+0001–U+001F, U+007F,
//! U+0080–U+009F) have no business in a name or a team and can rewrite a terminal or a log line
//! when shown. Only free text (an intervention's `reason`) may hold line feeds and tabs.
//!
//! A refusal is a 422 problem naming the field, and where and which character it found.

use crate::error::ApiError;

/// What a text field may hold besides printable characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A name, a team, a title: one line, no control character at all.
    Line,
    /// Prose (a reason): may also hold line feeds (`\n`) and tabs (`\t`); no other control
    /// character (not even `\r`: a lone carriage return can overwrite what a terminal shows).
    Prose,
}

impl TextKind {
    fn allows(self, c: char) -> bool {
        match self {
            TextKind::Line => false,
            TextKind::Prose => c == '\n' || c == '\t',
        }
    }
}

/// Checks text field `field`: `min` to `max` characters, and no control character `kind` does
/// not allow.
pub fn text(
    field: &str,
    value: &str,
    kind: TextKind,
    min: usize,
    max: usize,
) -> Result<(), ApiError> {
    let len = value.chars().count();
    if !(min..=max).contains(&len) {
        return Err(ApiError::Invalid(format!(
            "{field} must be {min} to {max} characters, not {len}"
        )));
    }
    let bad = value.chars().enumerate().find(|(_, c)| c.is_control() && !kind.allows(*c));
    match bad {
        None => Ok(()),
        Some((at, c)) => {
            let allowed = match kind {
                TextKind::Line => "",
                TextKind::Prose => " other than line feeds and tabs",
            };
            Err(ApiError::Invalid(format!(
                "{field} must not contain control characters{allowed}: U+{:04X} at character {}",
                u32::from(c),
                at + 1
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(r: Result<(), ApiError>) -> String {
        match r {
            Err(ApiError::Invalid(d)) => d,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn printable_text_passes_within_its_length() {
        assert!(text("name", "Ada Lovelace", TextKind::Line, 1, 200).is_ok());
        assert!(text("name", "Zoë 山田 🚀", TextKind::Line, 1, 200).is_ok());
        assert!(text("title", "", TextKind::Line, 0, 100).is_ok());
        // Characters, not bytes: 100 four-byte characters are 100.
        assert!(text("team", &"🚀".repeat(100), TextKind::Line, 1, 100).is_ok());
        let d = detail(text("team", &"🚀".repeat(101), TextKind::Line, 1, 100));
        assert_eq!(d, "team must be 1 to 100 characters, not 101");
        assert_eq!(
            detail(text("name", "", TextKind::Line, 1, 200)),
            "name must be 1 to 200 characters, not 0"
        );
    }

    #[test]
    fn every_control_character_is_refused_in_a_line() {
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let value = format!("a{c}b");
            let d = detail(text("name", &value, TextKind::Line, 1, 200));
            assert!(d.starts_with("name must not contain control characters"), "{d}");
            assert!(d.ends_with(&format!("U+{:04X} at character 2", u32::from(c))), "{d}");
        }
        assert_eq!(
            detail(text("team", "t\0", TextKind::Line, 1, 100)),
            "team must not contain control characters: U+0000 at character 2"
        );
    }

    #[test]
    fn prose_keeps_line_feeds_and_tabs_only() {
        assert!(text("reason", "first line\n\tsecond line", TextKind::Prose, 1, 1000).is_ok());
        for bad in ["a\0b", "a\rb", "a\u{1b}[2Jb", "a\u{85}b", "a\u{7f}b"] {
            let d = detail(text("reason", bad, TextKind::Prose, 1, 1000));
            assert!(
                d.starts_with(
                    "reason must not contain control characters other than line feeds and tabs"
                ),
                "{d}"
            );
        }
        // A line allows neither.
        assert!(text("name", "a\nb", TextKind::Line, 1, 200).is_err());
        assert!(text("name", "a\tb", TextKind::Line, 1, 200).is_err());
    }

    #[test]
    fn format_characters_that_are_not_control_characters_pass() {
        // Zero-width joiner (Cf), used in emoji sequences and some scripts.
        assert!(text("name", "👩\u{200d}💻", TextKind::Line, 1, 200).is_ok());
    }
}
