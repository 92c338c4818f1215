//! Text that came off the wire, made safe to print or to put into a spreadsheet.
//!
//! A result, a dead letter or a broker reply carries strings someone else chose (output names
//! and units, error kinds and messages, participant and submission ids, reasons). Printed as
//! they are, an ESC sequence could rewrite the terminal (colours, cursor moves, a fake line), a
//! carriage return could overwrite what was printed before it, and a bidi override could show a
//! text in another order than it is stored. A spreadsheet opening a CSV runs a cell starting
//! with `=`, `+`, `-` or `@` as a formula. Everything from the wire goes through [`escaped`]
//! before it is printed, and through [`csv_cell`] before it becomes a CSV cell.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as it is: control characters (C0, DEL, C1), the bidi
/// formatting characters that reorder what is shown (embeddings, overrides, isolates, marks),
/// and the Unicode line and paragraph separators.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character (see the module documentation) written as an escape:
/// `\n`, `\r`, `\t`, and `\u{..}` for the rest (ESC becomes `\u{1b}`). Backslashes are kept
/// as they are: the output is for reading, not for parsing back. Borrowed when nothing needed
/// escaping (the common case).
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `text` is a plain number (`-4.2`, `+3`, `1e-5`): a spreadsheet reads it as a number,
/// not a formula, and it must stay one.
fn is_plain_number(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
        && text.parse::<f64>().is_ok_and(f64::is_finite)
}

/// A CSV cell for `text` from the wire: [`escaped`], then prefixed with `'` when a spreadsheet
/// would run it as a formula (first character `=`, `+`, `-`, `@`, or a tab or carriage return,
/// which some spreadsheets skip before looking for one). Plain numbers, negative ones included,
/// stay as they are.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    let starts_formula = text
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    if starts_formula && !is_plain_number(text) {
        // The tab or CR itself is escaped too: the cell then starts with the quote.
        return Cow::Owned(format!("'{}", escaped(text)));
    }
    escaped(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(escaped("glucose mg/dL é"), Cow::Borrowed(_)));
        assert_eq!(escaped("glucose mg/dL é"), "glucose mg/dL é");
    }

    #[test]
    fn escape_sequences_cannot_reach_the_terminal() {
        assert_eq!(escaped("\x1b[2J\x1b[31mred"), "\\u{1b}[2J\\u{1b}[31mred");
        assert_eq!(escaped("a\u{7f}b\u{9b}c"), "a\\u{7f}b\\u{9b}c");
        assert_eq!(escaped("\0"), "\\u{0}");
    }

    #[test]
    fn line_breaks_and_carriage_returns_cannot_forge_lines() {
        assert_eq!(
            escaped("ok\r  ERROR forged\nsubmission x"),
            "ok\\r  ERROR forged\\nsubmission x"
        );
        assert_eq!(escaped("a\tb"), "a\\tb");
        assert_eq!(escaped("a\u{2028}b\u{2029}"), "a\\u{2028}b\\u{2029}");
    }

    #[test]
    fn bidi_overrides_cannot_reorder_text() {
        assert_eq!(escaped("\u{202e}Ld/gm"), "\\u{202e}Ld/gm");
        assert_eq!(
            escaped("a\u{2066}b\u{2069}\u{200f}\u{061c}"),
            "a\\u{2066}b\\u{2069}\\u{200f}\\u{61c}"
        );
    }

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+1+cmd"), "'+1+cmd");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\t=1"), "'\\t=1");
        assert_eq!(csv_cell("\r=1"), "'\\r=1");
        assert_eq!(csv_cell("-inf"), "'-inf");
    }

    #[test]
    fn numbers_and_plain_text_stay_as_they_are() {
        assert_eq!(csv_cell("-4.2"), "-4.2");
        assert_eq!(csv_cell("+3"), "+3");
        assert_eq!(csv_cell("-1e-5"), "-1e-5");
        assert_eq!(csv_cell("97.3"), "97.3");
        assert_eq!(csv_cell("a=b"), "a=b");
        assert_eq!(csv_cell(""), "");
        assert_eq!(csv_cell("x\x1b"), "x\\u{1b}");
    }
}
